"""Preview events: the newest replaces one not yet delivered; 1.1 peers only; none after done."""

from __future__ import annotations

import numpy as np

from backend.server.config import ServerConfig
from backend.server.server import Server
from backend.server.store import JobRecord
from shared.protocol import decode


def _server(tmp_path, monkeypatch):
    srv = Server(ServerConfig(data_dir=tmp_path / "data"), kinds={})
    sent: list[list] = []
    room = {"free": False}

    def send_frames(identity, frames, queue_if_full):
        if not room["free"]:
            return False
        sent.append(frames)
        return True

    monkeypatch.setattr(srv, "_send_frames", send_frames)
    return srv, sent, room


def _preview(srv, rec, step):
    srv.engine.previews[rec.id] = ({"stage": "dynamic", "step": step, "times": [0.0]},
                                   {"means": np.full((1, 2, 3), step, np.float32)})
    srv._on_job_change(rec, "preview")


def test_latest_preview_replaces_an_undelivered_one_and_goes_to_1_1_peers(tmp_path,
                                                                           monkeypatch):
    srv, sent, room = _server(tmp_path, monkeypatch)
    rec = JobRecord("ab" * 8, "video.to4d", {}, state="running")
    srv.engine.records[rec.id] = rec
    srv.subs[rec.id] = {b"new": "r1", b"old": "r2"}
    srv.sub_minor.update({b"new": 1, b"old": 0})
    _preview(srv, rec, 3)  # the peer is full: it waits
    _preview(srv, rec, 6)  # and is replaced, not queued behind
    assert sent == [] and list(srv.pending_previews) == [(b"new", rec.id)]
    room["free"] = True
    srv._pump_previews()
    assert len(sent) == 1 and sent[0][0] == b"new" and not srv.pending_previews
    msg = decode(sent[0][1:])
    assert msg.type == "preview" and msg.content["step"] == 6 and msg.reply_to == "r1"
    assert float(msg.arrays["means"].max()) == 6.0
    room["free"] = False
    _preview(srv, rec, 9)
    rec.state = "done"  # a preview not delivered by the end is dropped
    srv._on_job_change(rec, "state")
    assert not srv.pending_previews
