"""With CURVE keys, an artist sees and cancels only their own jobs; an admin key sees all;
without keys every client sees every job."""

from __future__ import annotations

import pytest

from backend.cli.main import main
from backend.jobs.registry import debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from blender_addon.core.client_types import CurveConfig
from shared.errors import Anim4DError

QUICK = {"seconds": 0.0, "steps": 1}


def test_an_artist_sees_and_cancels_only_their_own_jobs(tmp_path):
    keys = tmp_path / "keys"
    assert main(["keys", str(keys), "--client", "alice", "--client", "bob",
                 "--admin", "wrangler"]) == 0

    def key(name: str) -> CurveConfig:
        return CurveConfig.from_files(str(keys / "server.key"), str(keys / f"{name}.key_secret"))

    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), curve_keys=keys,
                        heartbeat_s=0.3) as srv, \
            Client(srv.address, timeout=60, curve=key("alice")) as alice, \
            Client(srv.address, timeout=60, curve=key("bob")) as bob, \
            Client(srv.address, timeout=60, curve=key("wrangler")) as admin:
        hers = alice.submit("debug.sleep", QUICK)
        assert alice.wait(hers).state == "done"
        his = bob.submit("debug.sleep", {"seconds": 120.0, "steps": 1200})
        assert [j.id for j in alice.jobs()] == [hers]
        assert [j.id for j in bob.jobs()] == [his]
        assert {j.id for j in admin.jobs()} == {hers, his}
        for request in ("job", "watch", "cancel", "delete"):  # as if it did not exist
            with pytest.raises(Anim4DError) as err:
                bob.request(request, job=hers)
            assert err.value.code == "unknown_job", request
        with pytest.raises(Anim4DError) as err:
            bob.request("fetch", {"from_chunk": 0}, job=hers)
        assert err.value.code == "unknown_job"
        with pytest.raises(Anim4DError) as err:  # nor take it as a source
            bob.submit("debug.resample", {"source": hers, "times": [0.0]})
        assert err.value.code == "bad_param" and "no job" in str(err.value)
        assert alice.job(hers).state == "done"  # untouched
        assert admin.cancel(his).id == his  # the admin key may
        assert bob.wait(his, timeout=60).state == "cancelled"
    assert (keys / "admins" / "wrangler.key").is_file()
    assert not (keys / "admins" / "alice.key").exists()


def test_without_keys_every_client_sees_every_job(tmp_path):
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds()) as srv, \
            Client(srv.address, timeout=60) as a, Client(srv.address, timeout=60) as b:
        job = a.submit("debug.sleep", QUICK)
        assert b.wait(job).state == "done"
        assert [j.id for j in b.jobs()] == [job]
