"""Multi-view sources: the input view alone (with its warning) and user-supplied views."""

from __future__ import annotations

import numpy as np
import pytest

from backend.methods.ds4d.clip import Clip, CropBox
from backend.methods.ds4d.views import InputViewOnly, SuppliedViews, ViewSpec, WeakViewsWarning
from backend.render.cameras import intrinsics_from_fov, orbit_viewmat
from shared.errors import FormatError, ParamError


def _clip(T=3, S=32) -> Clip:
    box = CropBox(10.0, 20.0, 64.0)
    rgba = np.zeros((T, S, S, 4), np.float32)
    rgba[:, 8:24, 8:24] = 1
    return Clip(rgba, np.linspace(0, 1, T, dtype=np.float32), np.arange(T),
                [f"{i}.png" for i in range(T)], box, (100, 100), None, "alpha")


def _project(vm, K, p):
    c = vm[:3, :3] @ p + vm[:3, 3]
    return (K @ c)[:2] / c[2]


def test_input_view_only_warns_and_uses_the_stag4d_front_camera():
    with pytest.warns(WeakViewsWarning, match="unseen|does not see.*weak"):
        src = InputViewOnly(_clip())
    (v,) = src.views()
    assert v.name == "input" and v.rgba.shape == (3, 32, 32, 4)
    # The world origin projects to the image centre from 2 units in front (+Z).
    assert np.allclose(_project(v.viewmat, v.K, np.zeros(3)), [16, 16])
    assert np.allclose(-v.viewmat[:3, :3].T @ v.viewmat[:3, 3], [0, 0, 2])
    assert np.allclose(v.K, intrinsics_from_fov(49.1, 32, 32))
    rgba, vms, Ks = src.stacked()
    assert rgba.shape == (1, 3, 32, 32, 4) and vms.shape == (1, 4, 4) and Ks.shape == (1, 3, 3)


def test_supplied_views_carry_cameras_and_the_input_crop():
    clip = _clip()
    K_src = intrinsics_from_fov(40.0, 100, 100)
    vm0 = orbit_viewmat(0, 10, 3.0)
    side = ViewSpec("side", np.ones((3, 24, 24, 4), np.float32), orbit_viewmat(90, 15, 2.0),
                    intrinsics_from_fov(49.1, 24, 24))
    still = ViewSpec("still", (np.ones((24, 24, 4)) * 255).astype(np.uint8),
                     orbit_viewmat(180, 15, 2.0), intrinsics_from_fov(49.1, 24, 24))
    src = SuppliedViews(clip, [side, still], input_viewmat=vm0, input_K=K_src)
    vs = src.views()
    assert [v.name for v in vs] == ["input", "side", "still"]
    assert vs[2].rgba.shape == (3, 24, 24, 4) and vs[2].rgba.max() == 1.0
    # A point's source pixel maps through the crop (x0 10, y0 20, side 64 -> 32 px: x 0.5).
    p = np.array([0.2, -0.1, 0.3])
    u_src = _project(vm0, K_src, p)
    u_crop = _project(vs[0].viewmat, vs[0].K, p)
    assert np.allclose(u_crop, (u_src - [10, 20]) * 0.5)
    assert np.allclose(vs[1].viewmat, side.viewmat)
    with pytest.raises(FormatError, match="different sizes"):
        src.stacked()
    alone = InputViewOnly(clip, vm0, K_src, warn=False)  # the same camera convention
    assert np.allclose(alone.views()[0].K, vs[0].K)


def test_supplied_views_errors():
    clip = _clip()
    vm, K = orbit_viewmat(90, 0, 2.0), intrinsics_from_fov(49.1, 16, 16)
    ok = np.ones((3, 16, 16, 4), np.float32)
    with pytest.raises(FormatError, match="'b' has 2 frames but the input clip has 3"):
        SuppliedViews(clip, [ViewSpec("b", ok[:2], vm, K)])
    with pytest.raises(FormatError, match="RGBA"):
        SuppliedViews(clip, [ViewSpec("b", ok[..., :3], vm, K)])
    empty = ok.copy()
    empty[1, ..., 3] = 0
    with pytest.raises(FormatError, match="'b' frame 1: the object mask is empty"):
        SuppliedViews(clip, [ViewSpec("b", empty, vm, K)])
    with pytest.raises(ParamError, match="rigid transform"):
        SuppliedViews(clip, [ViewSpec("b", ok, vm * 2, K)])
    with pytest.raises(ParamError, match="fx, fy > 0"):
        SuppliedViews(clip, [ViewSpec("b", ok, vm, -K)])
    with pytest.raises(ParamError, match="used twice"):
        SuppliedViews(clip, [ViewSpec("input", ok, vm, K)])
