"""Input clips: real clips from ../shared/data, keying, cropping, and every error path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.methods.ds4d.clip import (
    CropBox,
    InputConfig,
    crop_box,
    crop_resample,
    load_clip,
    pick_frames,
)
from backend.methods.ds4d.keying import KeyConfig, key_frames
from backend.methods.ds4d.video_io import RawFrames, read_frames
from shared.errors import FormatError, ParamError

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ANIM4D_SHARED_DATA", REPO / ".." / "shared" / "data")) / "videos"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real clips absent: {DATA} (or set $ANIM4D_SHARED_DATA)")


def _disk_frames(T=4, H=64, W=80, bg=(255, 255, 255), colour=(200, 30, 30), r=10, dx=6):
    """RGB frames of a disk moving right by dx pixels per frame, and the true masks."""
    yy, xx = np.mgrid[0:H, 0:W]
    frames = np.empty((T, H, W, 3), np.uint8)
    masks = np.empty((T, H, W), bool)
    for t in range(T):
        m = (xx + 0.5 - (25 + dx * t)) ** 2 + (yy + 0.5 - 32) ** 2 <= r * r
        frames[t] = np.where(m[..., None], colour, bg)
        masks[t] = m
    return frames, masks


def _write_pngs(folder: Path, arrs) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, a in enumerate(arrs):
        p = folder / f"{i}.png"
        Image.fromarray(a).save(p)
        paths.append(p)
    return paths


@needs_data
def test_trex_rgba_frames():
    clip = load_clip(DATA / "roaring_t-rex", InputConfig(size=64, frames=5))
    assert clip.rgba.shape == (5, 64, 64, 4) and clip.mask_source == "alpha"
    # Natural order: 0, 1, 2, ... 31 (not 0, 1, 10, 11...), frames picked evenly.
    assert clip.names == ["0.png", "8.png", "16.png", "23.png", "31.png"]
    assert np.allclose(clip.times, clip.source_indices / 31)
    a = clip.rgba[..., 3] > 0.5
    assert 0.03 < a.mean() < 0.6
    # Centred: the union of the masks' boxes is centred in the frame (within 2 px) and fills
    # 0.8 of the side along its longer axis.
    ys, xs = np.nonzero(a.any(0))
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    assert abs(cx - 32) <= 2 and abs(cy - 32) <= 2, (cx, cy)
    assert abs(max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) - 0.8 * 64) <= 2


@needs_data
def test_white_background_mp4_is_keyed():
    clip = load_clip(DATA / "blooming_rose_fg.mp4", InputConfig(size=64, frames=4))
    assert clip.rgba.shape == (4, 64, 64, 4) and clip.fps == 16.0
    assert clip.mask_source == "keyed RGB(255, 255, 255)"
    a = clip.rgba[..., 3]
    assert 0.05 < (a > 0.5).mean() < 0.7
    # Border of the crop is background: fully transparent.
    assert a[:, 0].max() == 0 and a[:, -1].max() == 0


def test_keying_recovers_a_disk_on_each_background():
    for bg in [(255, 255, 255), (0, 0, 0), (20, 190, 60)]:
        frames, masks = _disk_frames(bg=bg, colour=(120, 60, 200))
        rng = np.random.default_rng(0)
        noisy = np.clip(frames + rng.integers(-4, 5, frames.shape), 0, 255).astype(np.uint8)
        res = key_frames(noisy)
        assert np.abs(np.array(res.background) - bg).max() <= 4
        m = res.rgba[..., 3] > 0.5
        iou = (m & masks).sum() / (m | masks).sum()
        assert iou > 0.97, (bg, iou)
        # Decontaminated colour inside the object.
        assert np.abs(res.rgba[masks][:, :3] * 255 - (120, 60, 200)).max() < 12


def test_keying_mattes_antialiased_edges():
    # A disk rendered with 8 x 8 supersampling: edge pixels are true blends with the background.
    H = W = 48
    ss = 8
    yy, xx = (np.mgrid[0:H * ss, 0:W * ss] + 0.5) / ss
    cover = ((xx - 23.3) ** 2 + (yy - 24.6) ** 2 <= 13.7 ** 2).reshape(H, ss, W, ss).mean((1, 3))
    obj, bg = np.array([40.0, 90.0, 200.0]), np.array([255.0, 255.0, 255.0])
    frame = np.round(cover[..., None] * obj + (1 - cover[..., None]) * bg).astype(np.uint8)
    res = key_frames(frame[None])
    alpha, rgb = res.rgba[0, ..., 3], res.rgba[0, ..., :3] * 255
    # Alpha error: the uint8 rounding of the blends (measured 0.0025).
    assert np.abs(alpha - cover).max() < 0.005, np.abs(alpha - cover).max()
    edge = (cover > 0.1) & (cover < 0.9)
    assert edge.sum() > 40
    # Decontaminated: edge colours are the object's, not a blend with white (measured 2.3
    # levels, from the rounding divided by alpha).
    assert np.abs(rgb[edge] - obj).max() < 4, np.abs(rgb[edge] - obj).max()


def test_keying_threshold_rises_with_the_background_noise():
    frames, masks = _disk_frames(T=2, bg=(20, 190, 60), colour=(200, 40, 160), r=14)
    rng = np.random.default_rng(3)
    noisy = np.clip(frames + rng.integers(-26, 27, frames.shape), 0, 255).astype(np.uint8)
    res = key_frames(noisy)
    assert res.noise > 20  # the border's 99th percentile distance
    m = res.rgba[..., 3] > 0.5
    assert (m & masks).sum() / (m | masks).sum() > 0.95


def test_keying_fills_holes_and_drops_specks():
    frames, masks = _disk_frames(T=1, r=14)
    frames[0, 30:33, 24:27] = 255  # a white patch inside the object (e.g. teeth)
    frames[0, 5, 70] = (0, 0, 0)  # a one-pixel speck
    m = key_frames(frames).rgba[0, ..., 3] > 0.5
    assert m[31, 25] and not m[5, 70]


def test_one_crop_box_keeps_the_motion():
    frames, masks = _disk_frames(T=3, dx=10)
    clip = load_clip(RawFrames(frames, [f"f{i}" for i in range(3)]),
                     InputConfig(size=60, frames=None))
    xs = [np.nonzero(clip.rgba[t, ..., 3] > 0.5)[1].mean() for t in range(3)]
    # The disk still moves right by the same step (10 px source = 10 * 60 / side px).
    step = 10 * 60 / clip.box.side
    assert abs((xs[1] - xs[0]) - step) < 1 and abs((xs[2] - xs[1]) - step) < 1
    box = crop_box(masks, 0.8)
    assert box.side == pytest.approx((20 + 20) / 0.8)


def test_crop_resample_is_pixel_exact():
    rgba = np.zeros((1, 40, 40, 4), np.float32)
    rgba[0, 12:22, 10:20] = (0.2, 0.4, 0.6, 1.0)
    out = crop_resample(rgba, CropBox(5.0, 7.0, 20.0), 20)  # same scale: a shift by (5, 7)
    want = np.zeros((20, 20), np.float32)
    want[5:15, 5:15] = 1
    assert np.abs(out[0, ..., 3] - want).max() < 1e-6
    assert np.allclose(out[0, 5:15, 5:15, :3], (0.2, 0.4, 0.6), atol=1e-6)
    half = crop_resample(rgba, CropBox(-10.0, -8.0, 60.0), 30)  # half size, past the image
    want = np.zeros((30, 30), np.float32)
    want[10:15, 10:15] = 1
    assert np.abs(half[0, ..., 3] - want).max() < 1e-6
    assert np.allclose(half[0, 10:15, 10:15, :3], (0.2, 0.4, 0.6), atol=1e-6)
    # Off by one source pixel: edge pixels half covered; the colour of transparent pixels
    # (green here) must not bleed in (premultiplied resampling).
    rgba[0, ..., 1] = np.where(rgba[0, ..., 3] > 0, rgba[0, ..., 1], 1.0)
    odd = crop_resample(rgba, CropBox(-9.0, -8.0, 60.0), 30)
    assert np.allclose(odd[0, 10:15, 9, 3], 0.5, atol=1e-6)
    assert np.allclose(odd[0, 10:15, 9, :3], (0.2, 0.4, 0.6), atol=1e-6)


def test_pick_frames_and_mask_sequence(tmp_path):
    assert list(pick_frames(10, 4)) == [0, 3, 6, 9] and list(pick_frames(3, 8)) == [0, 1, 2]
    frames, masks = _disk_frames(T=3, bg=(90, 90, 90))  # grey: keyed only if asked
    mpaths = _write_pngs(tmp_path / "m", [(m * 255).astype(np.uint8) for m in masks])
    fpaths = _write_pngs(tmp_path / "f", list(frames))
    clip = load_clip(fpaths, InputConfig(size=32, frames=None), masks=mpaths)
    assert clip.mask_source == "masks" and clip.rgba.shape == (3, 32, 32, 4)
    with pytest.raises(FormatError, match="one mask per frame"):
        load_clip(fpaths, InputConfig(size=32), masks=mpaths[:2])
    with pytest.raises(FormatError, match="masks must have the frames' size"):
        load_clip(fpaths, InputConfig(size=32), masks=masks[:, :40])


def _write_video(path: Path, codec: str, pix_fmt: str, frames: np.ndarray) -> None:
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=8)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgba")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize("name,codec,pix_fmt", [("a.webm", "libvpx-vp9", "yuva420p"),
                                                ("a.mov", "png", "rgba"),
                                                ("b.mov", "qtrle", "argb")])
def test_videos_with_alpha_keep_it(tmp_path, name, codec, pix_fmt):
    frames = np.zeros((4, 64, 64, 4), np.uint8)
    for t in range(4):
        frames[t, 10 + 4 * t: 40 + 4 * t, 20:50] = (200, 50, 30, 255)
    _write_video(tmp_path / name, codec, pix_fmt, frames)
    raw = read_frames(tmp_path / name)
    assert raw.has_alpha and raw.pixels.shape == (4, 64, 64, 4), raw.pixels.shape
    # Lossy VP9 blurs the edge a little: compare the mask away from it.
    assert ((raw.pixels[..., 3] > 127) == (frames[..., 3] > 127)).mean() > 0.99
    clip = load_clip(tmp_path / name, InputConfig(size=32, frames=None))
    assert clip.mask_source == "alpha" and clip.fps == 8.0


def test_error_unreadable_files(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video" * 50)
    with pytest.raises(FormatError, match=r"clip\.mp4 cannot be decoded as a video"):
        read_frames(bad)
    png = tmp_path / "seq"
    _write_pngs(png, [np.zeros((8, 8, 3), np.uint8)] * 2)
    (png / "2.png").write_bytes(b"garbage")
    with pytest.raises(FormatError, match=r"frame 2 \(2\.png\): cannot be read as an image"):
        read_frames(png)
    with pytest.raises(FormatError, match="does not exist"):
        read_frames(tmp_path / "missing.mp4")
    txt = tmp_path / "notes.txt"
    txt.write_text("hi")
    with pytest.raises(FormatError, match=r"unknown file type '\.txt'; accepted: a video"):
        read_frames(txt)


def test_error_zero_frames(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="holds no images.*zero frames"):
        read_frames(tmp_path / "empty")
    with pytest.raises(FormatError, match="zero frames"):
        read_frames([])
    # A valid video container with no frames at all.
    import av

    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height = 32, 32
    with pytest.raises(FormatError, match="empty.mp4"):
        read_frames(path)


def test_error_empty_mask_names_the_frame(tmp_path):
    rgba = np.zeros((3, 16, 16, 4), np.uint8)
    rgba[:, 4:10, 4:10] = 255
    rgba[1, ..., 3] = 0  # frame 1 fully transparent
    paths = _write_pngs(tmp_path, list(rgba))
    with pytest.raises(FormatError, match=r"1\.png: the object mask is empty.*mask from alpha"):
        load_clip(paths, InputConfig(size=16, frames=None))


def test_error_size_mismatch(tmp_path):
    paths = _write_pngs(tmp_path, [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)])
    with pytest.raises(FormatError, match=r"frame 1 \(1\.png\) is 9x8 .* frame 0 \(0\.png\) "
                                          r"is 8x8.*same size"):
        read_frames(paths)


def test_error_background_cannot_be_keyed():
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(FormatError, match=r"cannot be keyed: only \d+ % of the frame border"):
        load_clip(RawFrames(noise, ["a", "b"]), InputConfig(size=32))
    frames, _ = _disk_frames(bg=(0, 0, 0))
    with pytest.raises(FormatError, match="given as white but the frame border is RGB"):
        key_frames(frames, KeyConfig(background="white"))
    with pytest.raises(ParamError, match="accepted: 'auto'"):
        key_frames(frames, KeyConfig(background="purple"))
    with pytest.raises(ParamError, match="input size"):
        load_clip(RawFrames(frames, ["a"] * 4), InputConfig(size=4))
