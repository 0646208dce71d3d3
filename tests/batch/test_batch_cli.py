"""``anim4d batch`` end to end: jobs on an embedded backend, fetched, rendered, indexed; a
failed item is recorded and the rest go on; each item's remake parameters really remake it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from support import requires_bpy

from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from shared.results import open_result

ANIM4D = [sys.executable, "-m", "backend.cli.main"]
CEILING = 600.0  # catches a hang only
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def batch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ANIM4D, "batch", *args], capture_output=True, text=True,
                          timeout=CEILING)



@requires_bpy
@pytest.mark.blender
def test_seeds_are_made_rendered_and_indexed_and_each_remakes_from_its_entry(tmp_path,
                                                                           html_links):
    out = tmp_path / "batch"
    done = batch("creature.procedural", "--seeds", "3..4", "--param", "frames=4", "fps=8",
                 "--embedded", "--out", str(out), "--resolution", "32", "--samples", "1")
    assert done.returncode == 0, done.stderr
    assert "batch done: 2 of 2 made" in done.stdout
    doc = json.loads((out / "index.json").read_text())
    assert (doc["kind"], doc["done"], doc["total"]) == ("creature.procedural", 2, 2)
    assert doc["render"]["resolution"] == 32
    entries = doc["items"]
    assert [(e["name"], e["seed"], e["state"]) for e in entries] == [
        ("1-seed3", 3, "done"), ("2-seed4", 4, "done")]
    for e in entries:
        assert e["error"] is None and e["params"] == {"frames": "4", "fps": "8", "seed": str(
            e["seed"])}
        assert open_result(out / e["result"]).frame_count == 4
        assert len(e["frames"]) == 4 and all((out / f).is_file() for f in e["frames"])
        assert e["still"] in e["frames"]
        with av.open(str(out / e["video"])) as video:
            got = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
        assert len(got) == 4 and got[0].shape == (32, 32, 3)
        assert f"seed={e['seed']}" in e["remake"]
    a, b = (open_result(out / e["result"]).mesh_sequence(0).vertices for e in entries)
    assert np.abs(a - b).max() > 1e-3, "two seeds made the same creature"
    links = html_links((out / "index.html").read_text())
    assert len(links) == 6 and all((out / link).exists() for link in links)
    # the parameters an entry records remake its creature exactly
    with EmbeddedServer(tmp_path / "data") as srv, Client(srv.address, timeout=60) as c:
        job = c.submit(entries[1]["kind"], entries[1]["params"])
        assert c.wait(job).state == "done"
        again = open_result(c.fetch(job, tmp_path / "again")).mesh_sequence(0).vertices
    assert np.array_equal(again, b)


def test_a_failed_item_is_recorded_and_the_others_are_made(tmp_path):
    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"glTF but not really")
    good = DATA / "animals" / "Velociraptor.glb"
    out = tmp_path / "batch"
    done = batch("sequence.bake", "--inputs", str(broken), str(good), "--param", "fps=4",
                 "--embedded", "--out", str(out), "--no-render")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "batch done: 1 of 2 made" in done.stdout and "1-broken:" in done.stdout
    doc = json.loads((out / "index.json").read_text())
    bad, ok = doc["items"]
    assert bad["state"] == "failed" and "broken.glb" in bad["error"] and bad["result"] is None
    assert ok["state"] == "done" and open_result(out / ok["result"]).frame_count > 1
    assert doc["render"] is None and ok["video"] is None


@pytest.mark.parametrize("args, says", [
    (["creature.procedural"], "needs --seeds"),
    (["creature.procedural", "--seeds", "5..1"], "runs backwards"),
])
def test_a_batch_that_cannot_start_says_why_in_one_line(tmp_path, args, says):
    done = batch(*args, "--out", str(tmp_path / "b"), "--no-render", "--embedded")
    assert done.returncode == 1 and says in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
