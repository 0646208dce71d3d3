"""Address policy, job-list state and the local backend process (no bpy)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from blender_addon.core import local_backend, netpolicy
from blender_addon.core.client_types import JobInfo, ProgressInfo
from blender_addon.core.jobs_state import JobsState
from blender_addon.core.worker import Event


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:5555", "tcp://localhost:1", "tcp://[::1]:9",
                                     "tcp://127.3.2.1:80", "ipc:///tmp/a4d", "inproc://x"])
def test_loopback_addresses_are_always_allowed(address: str) -> None:
    assert netpolicy.is_loopback(address)
    netpolicy.check_address(address, online_access=False, background=True, environ={})


@pytest.mark.parametrize("address", ["tcp://192.168.1.5:5555", "tcp://gpu.example.com:5555",
                                     "tcp://[2001:db8::1]:5555", "tcp://0.0.0.0:5555"])
def test_remote_addresses_need_online_access(address: str) -> None:
    assert not netpolicy.is_loopback(address)
    netpolicy.check_address(address, online_access=True, background=False, environ={})
    with pytest.raises(netpolicy.NetworkNotAllowed, match="Allow Online Access"):
        netpolicy.check_address(address, online_access=False, background=False, environ={})
    with pytest.raises(netpolicy.NetworkNotAllowed, match="ANIM4D_ALLOW_NETWORK=1") as err:
        netpolicy.check_address(address, online_access=False, background=True, environ={})
    assert address in str(err.value) and err.value.code == "offline"
    netpolicy.check_address(address, online_access=False, background=True,
                            environ={"ANIM4D_ALLOW_NETWORK": "1"})
    with pytest.raises(netpolicy.NetworkNotAllowed):  # the variable is for background only
        netpolicy.check_address(address, online_access=False, background=False,
                                environ={"ANIM4D_ALLOW_NETWORK": "1"})


def test_jobs_state_follows_events() -> None:
    st = JobsState()
    st.apply(Event("progress", data=ProgressInfo("", "uploading", "uploading a.mp4", 0.5)))
    assert st.upload_text == "uploading a.mp4 50%" and not st.jobs
    st.apply(Event("submitted", "j1", {"kind": "video.ds4d"}))
    st.apply(Event("progress", "j1", ProgressInfo("j1", "running", "fitting", 0.25, "step 5")))
    row = st.jobs["j1"]
    assert (row.state, row.fraction, row.kind) == ("running", 0.25, "video.ds4d")
    assert row.status_text() == "fitting: step 5" and not row.can_import
    failed = JobInfo("j2", "creature.dnf", "failed",
                     error={"code": "job_failed", "message": "out of memory"})
    st.apply(Event("jobs", data=[JobInfo("j1", "video.ds4d", "done", fraction=1.0), failed]))
    assert st.jobs["j1"].can_import and st.jobs["j2"].error == "out of memory"
    assert [j.id for j in st.ordered()] == ["j2", "j1"] and st.active_ids() == []
    st.apply(Event("chunk", "j1", type("C", (), {"frame_stop": 12})()))
    assert st.jobs["j1"].importing and not st.jobs["j1"].can_import
    assert st.jobs["j1"].status_text() == "importing (12 frames)"
    st.apply(Event("error", "j1", "tcp://x:1: timed out", "timeout", "fetch"))
    assert st.connection == "error" and not st.jobs["j1"].importing and st.jobs["j1"].can_import
    st.apply(Event("deleted", "j2"))
    assert list(st.jobs) == ["j1"]


def test_local_backend_missing_python_is_a_clear_error(tmp_path: Path) -> None:
    lb = local_backend.LocalBackend(str(tmp_path / "nope" / "python"), "tcp://127.0.0.1:5555")
    with pytest.raises(local_backend.LocalBackendError, match="does not exist"):
        lb.start()
    assert lb.state == "stopped" and lb.describe() == "not running"


def test_local_backend_lifecycle_with_a_stand_in_server(tmp_path: Path) -> None:
    """A stand-in 'python' that prints like `anim4d serve` and waits to be terminated."""
    fake = tmp_path / "fake_python.py"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, time
        print("anim4d: serving on", sys.argv[sys.argv.index("--bind") + 1], flush=True)
        time.sleep(60)
    """))
    fake.chmod(0o755)
    lb = local_backend.LocalBackend(str(fake), "tcp://127.0.0.1:5599", str(tmp_path / "data"))
    cmd = local_backend.serve_command(str(fake), lb.address, lb.data_dir)
    assert cmd[2:6] == ["-m", "backend.cli.main", "serve", "--bind"] and "--data-dir" in cmd
    lb.start()
    try:
        assert lb.wait_ready(20) and lb.state == "running"
        assert "running on tcp://127.0.0.1:5599" in lb.describe()
    finally:
        lb.stop(timeout=5)
    assert lb.state == "exited" and lb.returncode is not None


def test_local_backend_that_dies_shows_why(tmp_path: Path) -> None:
    fake = tmp_path / "dying.py"
    fake.write_text(f"#!{sys.executable}\nimport sys\nprint('ImportError: no backend here')\n"
                    "sys.exit(3)\n")
    fake.chmod(0o755)
    lb = local_backend.LocalBackend(str(fake), "tcp://127.0.0.1:5598")
    lb.start()
    assert not lb.wait_ready(20)
    lb._reader.join(5)
    assert lb.state == "exited" and "code 3" in lb.describe() and "no backend" in lb.describe()
