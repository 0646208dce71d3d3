"""The DS4D study's metrics (bench/ds4d_study/metrics.py) on hand-made images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.ds4d_study.metrics import (
    blank_score,
    mask_iou,
    mean_scores,
    object_box,
    over_white,
    psnr,
    score,
    ssim,
)


def _square(H=64, W=64, box=(20, 30, 10, 26), rgb=(0.2, 0.4, 0.6)) -> np.ndarray:
    """RGBA [H, W, 4]: transparent with one opaque coloured rectangle (y0, y1, x0, x1)."""
    img = np.zeros((H, W, 4), np.float32)
    y0, y1, x0, x1 = box
    img[y0:y1, x0:x1, :3] = rgb
    img[y0:y1, x0:x1, 3] = 1.0
    return img


def test_psnr_of_a_known_error():
    a = np.zeros((8, 8, 3))
    b = np.full((8, 8, 3), 0.1)  # MSE 0.01 -> 20 dB
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-9)
    assert math.isinf(psnr(a, a))


def _ssim_direct(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s SSIM written out: an 11 x 11 Gaussian window (sigma 1.5) at every position
    where it fits, per channel, averaged."""
    r = np.arange(-5, 6)
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    vals = []
    for c in range(a.shape[2]):
        for i in range(5, a.shape[0] - 5):
            for j in range(5, a.shape[1] - 5):
                x, y = a[i - 5:i + 6, j - 5:j + 6, c], b[i - 5:i + 6, j - 5:j + 6, c]
                mx, my = (g * x).sum(), (g * y).sum()
                vx, vy = (g * x * x).sum() - mx ** 2, (g * y * y).sum() - my ** 2
                cxy = (g * x * y).sum() - mx * my
                vals.append((2 * mx * my + c1) * (2 * cxy + c2)
                            / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_one_for_equal_images_and_lower_for_noise():
    rng = np.random.default_rng(0)
    a = rng.random((32, 32, 3))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    noisy = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert ssim(a, noisy) == pytest.approx(_ssim_direct(a, noisy), abs=1e-9)
    assert ssim(a, noisy) < 0.9
    # constant images of different levels: luminance term only, (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)
    c1 = 0.01 ** 2
    expect = (2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1)
    assert ssim(np.full((16, 16, 3), 0.2), np.full((16, 16, 3), 0.6)) == pytest.approx(expect,
                                                                                      rel=1e-6)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_iou_on_overlapping_rectangles():
    a = _square(box=(0, 10, 0, 10))[..., 3]
    b = _square(box=(0, 10, 5, 15))[..., 3]  # overlap 50 px, union 150 px
    assert mask_iou(a, b) == pytest.approx(50 / 150)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros_like(a), np.zeros_like(a)) == 1.0
    half = a * 0.5  # alpha exactly 0.5 is not inside (alpha > 0.5)
    assert mask_iou(half, a) == 0.0


def test_object_box_is_the_padded_union():
    a = _square(box=(20, 30, 10, 26))[..., 3]
    b = _square(box=(25, 40, 30, 34))[..., 3]
    assert object_box(a, b, pad=4) == (16, 44, 6, 38)
    assert object_box(a, pad=0) == (19, 30, 10, 26)  # 10 rows grown to the 11-px SSIM window
    assert object_box(a, pad=0, min_side=1) == (20, 30, 10, 26)
    # clipped at the borders, grown to the SSIM window when small
    c = _square(box=(0, 2, 62, 64))[..., 3]
    y0, y1, x0, x1 = object_box(c, pad=1)
    assert (y0, x1) == (0, 64) and y1 - y0 >= 11 and x1 - x0 >= 11
    empty = np.zeros((64, 64))
    assert object_box(empty) == (0, 64, 0, 64)


def test_blank_floor_and_box_scores():
    gt = _square(rgb=(0.0, 0.0, 0.0))  # black rectangle on white
    blank = blank_score(gt)
    # whole frame: 160 of 4096 px wrong by 1 in every channel
    assert blank.psnr == pytest.approx(10 * math.log10(4096 / 160), rel=1e-9)
    # box (pad 4): 18 x 24 = 432 px, 160 wrong
    assert blank.psnr_box == pytest.approx(10 * math.log10(432 / 160), rel=1e-9)
    assert blank.iou == 0.0
    perfect = score(gt, gt)
    assert math.isinf(perfect.psnr) and perfect.ssim == pytest.approx(1.0)
    assert perfect.iou == 1.0
    # an image half as good inside the box scores far below the frame-wide PSNR
    worse = gt.copy()
    worse[20:30, 10:26, :3] = 0.5
    s = score(worse, gt)
    assert s.psnr_box < s.psnr - 9
    assert s.iou == 1.0
    assert mean_scores([perfect, s]).psnr == pytest.approx((100.0 + s.psnr) / 2)


def test_over_white_composites_straight_alpha():
    img = np.zeros((2, 2, 4))
    img[0, 0] = (1.0, 0.0, 0.0, 0.5)
    out = over_white(img)
    assert np.allclose(out[0, 0], (1.0, 0.5, 0.5)) and np.allclose(out[1, 1], 1.0)


def test_score_rejects_size_mismatch():
    with pytest.raises(ValueError, match="sizes differ"):
        score(np.zeros((16, 16, 4)), np.zeros((16, 17, 4)))


def test_remaking_the_page_keeps_the_block_another_command_measured(tmp_path):
    from bench.ds4d_study.doc import KEEP, kept_block

    page = tmp_path / "ds4d.md"
    assert kept_block(page) == []  # no page yet
    page.write_text(f"# old\n\nstale figures\n\n{KEEP[0]}\n## Motion\n\n| a | 1 |\n{KEEP[1]}\n"
                    "\n## Timings\n")
    assert kept_block(page) == [KEEP[0], "## Motion", "", "| a | 1 |", KEEP[1], ""]
    page.write_text("# a page without the block\n")
    assert kept_block(page) == []
