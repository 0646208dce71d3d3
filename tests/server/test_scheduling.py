"""The job queue: fair share between clients, priorities, queue positions, per-client limits.

The queue is the engine's, whatever executor runs the jobs; these tests use the local one (the
Ray tests in tests/ray/ repeat the fair-share one on a Ray cluster)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import BLOCK, until

from backend.jobs.registry import debug_kinds
from backend.server.embedded import EmbeddedServer
from backend.server.scheduling import FairQueue, SubmitRate
from blender_addon.core.client import Client
from shared.errors import Anim4DError

QUICK = {"seconds": 0.0, "steps": 1}




# ---- the queue alone ----------------------------------------------------------------------------
def test_round_robin_between_clients_and_priority_first():
    q = FairQueue()
    for i in range(4):
        q.append(f"a{i}", "A")
    q.append("b0", "B")
    q.append("c0", "C", priority=0)
    assert list(q) == ["a0", "b0", "c0", "a1", "a2", "a3"]
    assert q.index("b0") == 1 and q.index("a1") == 3
    assert q.popleft() == "a0"
    q.append("a-rush", "A", priority=5)  # priority comes before fair share
    assert list(q)[:3] == ["a-rush", "b0", "c0"]
    assert [q.popleft() for _ in range(3)] == ["a-rush", "b0", "c0"]
    q.append("b1", "B")
    assert q.popleft(blocked={"A"}) == "b1"  # A at its running limit: B's job starts
    with pytest.raises(IndexError):
        q.popleft(blocked={"A"})
    q.append("a-retry", "A", front=True)  # a retried job goes ahead of its client's others
    assert list(q) == ["a-retry", "a1", "a2", "a3"] and len(q) == 4
    q.remove("a2")
    assert list(q) == ["a-retry", "a1", "a3"] and "a2" not in q


@given(st.lists(st.tuples(st.sampled_from(["push", "push", "pop", "remove"]),
                          st.sampled_from("ABC"), st.integers(-2, 2)), max_size=60))
def test_queue_positions_are_the_start_order(ops):
    """Whatever happened before, iterating the queue (what positions are computed from) lists
    the jobs in exactly the order successive starts take them."""
    q, n = FairQueue(), 0
    for op, client, prio in ops:
        if op == "push":
            q.append(f"j{n}", client, prio)
            n += 1
        elif op == "pop" and q:
            q.popleft()
        elif op == "remove" and q:
            q.remove(list(q)[-1])
    promised = list(q)
    assert [q.index(j) for j in promised] == list(range(len(promised)))
    assert [q.popleft() for _ in range(len(promised))] == promised


def test_submit_rate_per_client_with_bursts():
    now = [0.0]
    rate = SubmitRate(3, clock=lambda: now[0])
    assert [rate.take("A") for _ in range(3)] == [0.0, 0.0, 0.0]  # a burst of 3
    assert rate.take("A") == pytest.approx(20.0)  # the next token in 60/3 s
    assert rate.take("B") == 0.0  # others are not affected
    now[0] = 19.0
    assert rate.take("A") == pytest.approx(1.0)
    now[0] = 20.0
    assert rate.take("A") == 0.0 and rate.take("A") > 0
    now[0] = 1000.0  # refills up to the burst size, not beyond
    assert [rate.take("A") for _ in range(4)][-1] > 0
    assert SubmitRate(0).take("A") == 0.0  # off


# ---- through a live server ----------------------------------------------------------------------
@pytest.fixture
def serve(tmp_path):
    servers = []

    def make(**config) -> EmbeddedServer:
        srv = EmbeddedServer(tmp_path / f"data{len(servers)}", kinds=debug_kinds(),
                             cancel_grace_s=1.0, heartbeat_s=0.3, **config)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


def fair_share_check(address: str, engine) -> None:
    """A client with 50 queued jobs, then a client with 1: the single one starts within the next
    two slots (here: the very next), and its queue position says so."""
    with Client(address, timeout=60) as a, Client(address, timeout=60) as b:
        blocker = a.submit("debug.sleep", BLOCK)
        until(lambda: a.job(blocker).state == "running", what="the blocker to run")
        batch = [a.submit("debug.sleep", QUICK) for _ in range(49)]
        assert a.job(batch[0]).queue_position == 1
        single = b.submit("debug.sleep", QUICK)
        assert b.job(single).queue_position == 1  # ahead of the 49 queued before it
        assert a.job(batch[0]).queue_position == 2  # which moved back one place
        a.cancel(blocker)
        assert b.wait(single, timeout=120).state == "done"
        started = engine.records[single].started
        before = [j for j in [blocker, *batch] if (engine.records[j].started or 1e300) < started]
        assert len(before) <= 2 and blocker in before
        # the progress events of A's first queued job told it when it moved back, then up
        seen = []
        a.wait(batch[0], on_progress=lambda p: seen.append(p.queue_position),
               cancel=lambda: True, timeout=60)
        assert 2 in seen and seen.index(2) < len(seen) - 1 - seen[::-1].index(1)
        for job in batch[1:]:
            a.cancel(job)


def test_fair_share_single_job_is_not_starved_by_a_batch(serve):
    srv = serve(workers=1)
    fair_share_check(srv.address, srv.server.engine)


def test_priority_starts_first_and_positions_follow(serve):
    srv = serve(workers=1)
    with Client(srv.address, timeout=60) as a:
        blocker = a.submit("debug.sleep", BLOCK)
        until(lambda: a.job(blocker).state == "running", what="the blocker to run")
        low = a.submit("debug.sleep", QUICK)
        high = a.submit("debug.sleep", QUICK, priority=3)
        assert a.job(high).queue_position == 1 and a.job(low).queue_position == 2
        a.cancel(blocker)
        assert a.wait(low, timeout=60).state == "done"
        recs = srv.server.engine.records
        assert recs[high].started < recs[low].started
        assert recs[high].priority == 3 and recs[low].priority == 0
        with pytest.raises(Anim4DError) as err:
            a.submit("debug.sleep", QUICK, priority=11)
        assert err.value.code == "bad_param" and "-10 to 10" in str(err.value)


def test_per_client_limits(serve):
    srv = serve(workers=2, max_queued_per_client=2, max_running_per_client=1)
    with Client(srv.address, timeout=60) as a, Client(srv.address, timeout=60) as b:
        first = a.submit("debug.sleep", BLOCK)
        until(lambda: a.job(first).state == "running", what="the first job to run")
        queued = [a.submit("debug.sleep", QUICK) for _ in range(2)]
        with pytest.raises(Anim4DError) as err:
            a.submit("debug.sleep", QUICK)
        assert err.value.code == "limit_reached" and "--max-queued 2" in str(err.value)
        # a slot is free, but A is at its running limit: its jobs wait, B's runs
        other = b.submit("debug.sleep", QUICK)
        assert b.wait(other, timeout=60).state == "done"
        assert [a.job(j).state for j in queued] == ["queued", "queued"]
        a.cancel(first)
        for job in queued:
            assert a.wait(job, timeout=60).state == "done"
        assert srv.server.engine.records[first].client != srv.server.engine.records[other].client


def test_with_curve_keys_the_client_is_its_key_across_connections(serve, tmp_path):
    """Fair share and limits count per CURVE key: two connections with alice's key are one
    client (her limit holds across them), bob's key is another."""
    from backend.cli.main import main
    from blender_addon.core.client_types import CurveConfig

    keys = tmp_path / "keys"
    assert main(["keys", str(keys), "--client", "alice", "--client", "bob"]) == 0
    srv = serve(workers=1, curve_keys=keys, max_queued_per_client=1)

    def key(name: str) -> CurveConfig:
        return CurveConfig.from_files(str(keys / "server.key"), str(keys / f"{name}.key_secret"))

    with Client(srv.address, timeout=60, curve=key("alice")) as a1, \
            Client(srv.address, timeout=60, curve=key("alice")) as a2, \
            Client(srv.address, timeout=60, curve=key("bob")) as b:
        blocker = a1.submit("debug.sleep", BLOCK)
        until(lambda: a1.job(blocker).state == "running", what="the blocker to run")
        mine = a1.submit("debug.sleep", QUICK)
        with pytest.raises(Anim4DError) as err:  # alice again, on another connection
            a2.submit("debug.sleep", QUICK)
        assert err.value.code == "limit_reached"
        theirs = b.submit("debug.sleep", QUICK)
        recs = srv.server.engine.records
        public = (keys / "alice.key").read_text()
        assert recs[mine].client == recs[blocker].client != recs[theirs].client
        assert recs[mine].client.startswith("curve:") and recs[mine].client[6:] in public
        a1.cancel(blocker)
        assert a1.wait(mine, timeout=60).state == "done"
        assert b.wait(theirs, timeout=60).state == "done"


def test_submit_rate_limit_through_the_server(serve):
    srv = serve(workers=1, max_submits_per_minute=2)
    with Client(srv.address, timeout=60) as a, Client(srv.address, timeout=60) as b:
        jobs = [a.submit("debug.sleep", QUICK) for _ in range(2)]
        with pytest.raises(Anim4DError) as err:
            a.submit("debug.sleep", QUICK)
        assert err.value.code == "rate_limited"
        assert "at most 2 per minute" in str(err.value) and "try again in" in str(err.value)
        jobs.append(b.submit("debug.sleep", QUICK))  # another client is not held back
        assert all(a.wait(j, timeout=60).state == "done" for j in jobs)
