"""Where a video.to4d job trains: CUDA with gsplat, CUDA with our rasterizer, or the CPU."""

from __future__ import annotations

import torch

from backend.methods.ds4d import jobs
from backend.render import dispatch


def test_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert jobs._train_device() == ("cpu", "auto", None)


def test_gsplat_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dispatch, "gsplat_available", lambda: True)
    assert jobs._train_device() == ("cuda", "auto", None)


def test_our_rasterizer_on_a_gpu_without_gsplat_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dispatch, "gsplat_available", lambda: False)
    device, rasterizer, note = jobs._train_device()
    assert (device, rasterizer) == ("cuda", "torch")
    assert "gsplat is not installed" in note and "pip install -e '.[cuda]'" in note
