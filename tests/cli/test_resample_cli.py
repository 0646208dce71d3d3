"""``anim4d resample`` against an embedded server offering the procedural creature and its
resample kind (in-process: no server start-up per test), and the hello field that names it."""

from __future__ import annotations

import numpy as np
import pytest

from backend.cli.main import main
from backend.cli.resample_cmds import plan_request
from backend.data import jobs as data_jobs
from backend.data import resample_jobs
from backend.data.procedural import animate, make_creature
from backend.jobs.registry import JobKind, debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from blender_addon.core.client_types import HelloInfo, JobInfo
from shared.errors import Anim4DError, ParamError
from shared.params import KindSpec
from shared.resample import times_for_speed
from shared.results import open_result

PROC = data_jobs.PROCEDURAL_KIND.name
RES = resample_jobs.PROCEDURAL_RESAMPLE


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    kinds = {PROC: JobKind(data_jobs.PROCEDURAL_KIND, "backend.data.jobs:run_procedural"),
             RES: JobKind(resample_jobs.PROCEDURAL_RESAMPLE_KIND,
                          "backend.data.resample_jobs:run_procedural_resample")}
    kinds.update({k: v for k, v in debug_kinds().items() if k in ("debug.sleep", "debug.fail")})
    srv = EmbeddedServer(tmp_path_factory.mktemp("data"), kinds=kinds)
    client = Client(srv.address, timeout=120)
    creature = client.submit(PROC, {"seed": 4, "gait": "walk", "frames": 12, "fps": 24})
    assert client.wait(creature).state == "done"
    yield srv, client, creature
    client.close()
    srv.stop()


def cli(srv, *args: str) -> list[str]:
    return ["resample", *args, "--server", srv.address, "--timeout", "120"]


def test_hello_names_the_resample_kind(served, capsys):
    srv, client, creature = served
    assert main(["kinds", "--server", srv.address]) == 0
    assert f"exact at new times: anim4d resample JOB (through {RES})" in capsys.readouterr().out
    hello = client.hello()
    assert hello.kind(PROC).resample_kind == RES and hello.kind(RES).resample_kind == RES
    assert hello.kind("debug.sleep").resample_kind == ""
    assert "resample_kind" not in hello.kind("debug.sleep").to_json()  # absent unless set
    m = client.job(creature).result
    assert m["resample"] == {"kind": RES, "source": "", "end": None}


def test_quarter_speed_from_the_cli_is_exact(served, tmp_path, capsys):
    srv, client, creature = served
    assert main(cli(srv, creature[:8], "--speed", "0.25", "--wait", "--out",
                    str(tmp_path / "r"))) == 0
    out = capsys.readouterr().out
    assert f"submitted {RES} as job" in out and f"45 times, 0 to 0.458333 s of job " \
        f"{creature[:12]}" in out
    res = open_result(tmp_path / "r")
    times = times_for_speed(0.0, 11 / 24, 24.0, 0.25)
    assert np.abs(res.mesh.vertices - animate(make_creature(4), "walk", times)).max() <= 1e-5
    assert res.manifest.frame_times == pytest.approx(np.arange(45) / 24)  # plays slowed
    assert res.manifest.resample["source"] == creature
    # a resampled result is resampled again from its source job, at the times asked for
    again = res.manifest.job_id
    assert main(cli(srv, again, "--times", "0.05,0.3")) == 0
    new = capsys.readouterr().out.split("as job ")[1].split(":")[0]
    info = client.job(new)
    assert info.params == {"source": creature, "times": [0.05, 0.3], "fps": 0.0}
    assert main(cli(srv, creature, "--fps", "48")) == 0
    new = capsys.readouterr().out.split("as job ")[1].split(":")[0]
    p = client.job(new).params
    assert p["fps"] == 48.0 and p["times"] == pytest.approx(np.arange(23) / 48)
    assert client.wait(new).state == "done"


def test_errors_are_one_clear_line(served, capsys):
    srv, client, _ = served
    sleep = client.submit("debug.sleep", {"seconds": 0, "steps": 1})
    fail = client.submit("debug.fail", {"message": "no luck"})
    assert client.wait(sleep).state == "done" and client.wait(fail).state == "failed"
    assert main(cli(srv, sleep, "--speed", "0.5")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(debug.sleep) cannot be re-evaluated at new times; " \
        f"results of these kinds can: {PROC}, {RES}" in err
    assert main(cli(srv, fail, "--fps", "10")) == 1
    assert "is failed (no luck); only a finished (done) job can be resampled" in \
        capsys.readouterr().err
    assert main(cli(srv, "ffff0000", "--fps", "10")) == 1
    assert "no job matches 'ffff0000'" in capsys.readouterr().err


def test_plan_checks_the_range_and_the_choice():
    spec = resample_jobs.SEQUENCE_RESAMPLE_KIND
    hello = HelloInfo("x", "1.1", [spec], {})
    manifest = {"job_id": "ab" * 8, "kind": "sequence.bake", "frame_times": [0, 0.5, 1.0],
                "fps": 2.0, "params": {"clip": "", "fps": 2.0},
                "resample": {"kind": spec.name, "source": "", "end": 1.0}}
    job = JobInfo("ab" * 8, "sequence.bake", "done", result=manifest)
    req = plan_request(job, hello, speed=0.5)
    assert req.params["times"] == [0.0, 0.25, 0.5, 0.75, 1.0] and req.params["fps"] == 2.0
    assert req.timed and req.play_fps == 2.0
    bare = KindSpec(spec.name, "r", "", "mesh_sequence", params=spec.params[:2])  # no fps
    req = plan_request(job, HelloInfo("x", "1.1", [bare], {}), speed=0.5)
    assert not req.timed and req.play_fps == 2.0 and "fps" not in req.params
    assert plan_request(job, hello, fps=4.0).params["times"] == [0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ParamError, match=r"time 1.5 s is outside the source; accepted: 0 to "
                                         r"1 s"):
        plan_request(job, hello, times="0,1.5")
    with pytest.raises(ParamError, match="element 0 = '-1' is out of range"):
        plan_request(job, hello, times="-1")
    with pytest.raises(ParamError, match="exactly one of --times, --fps, --speed"):
        plan_request(job, hello, fps=4.0, speed=0.5)
    with pytest.raises(Anim4DError, match="is running; only a finished"):
        plan_request(JobInfo("ab" * 8, "sequence.bake", "running"), hello, fps=4.0)


def test_the_add_on_worker_resamples_and_fetches(served, tmp_path):
    from blender_addon.core.worker import Command, Worker, drain

    srv, client, creature = served
    w = Worker(lambda: Client(srv.address, timeout=120))
    try:
        w.execute(Command("resample", {"kind": RES, "params": {"source": creature,
                                                               "times": [0.1, 0.2]},
                                       "out_root": str(tmp_path), "context": {"object": "A"}}))
        events = drain(w.events, float("inf"))
        kinds = [e.type for e in events]
        assert kinds[0] == "submitted" and kinds[-2:] == ["job", "resampled"], kinds
        done = events[-1]
        assert done.data["context"] == {"object": "A"}
        res = open_result(done.data["folder"])
        assert np.abs(res.mesh.vertices - animate(make_creature(4), "walk",
                                                  np.array([0.1, 0.2]))).max() <= 1e-5
        w.execute(Command("resample", {"kind": RES, "params": {"source": creature, "times": [-1]},
                                       "out_root": str(tmp_path)}))
        err = drain(w.events, float("inf"))[-1]
        assert err.type == "error" and "'times': element 0 = -1 is out of range" in err.data
    finally:
        w.stop()
