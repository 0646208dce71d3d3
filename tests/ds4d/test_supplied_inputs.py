"""video.to4d's other inputs: the background choice, a mask sequence, user-supplied views with a
cameras file; the per-input file naming on the wire; every error path.

The views are Blender renders of one static object (tests/render/data/views48.npz, 48 px, Y-up
world, OpenCV cameras); the "clip" repeats each view over a few frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.methods.ds4d import jobs as ds4d_jobs
from backend.methods.ds4d.clip import BACKGROUNDS, InputConfig, load_clip
from backend.methods.ds4d.presets import PRESETS
from backend.methods.ds4d.view_files import group_view_files, supplied_view_source
from backend.methods.ds4d.views import InputViewOnly, SuppliedViews, WeakViewsWarning
from blender_addon.core.client import Client
from shared.cameras import camera_dict, check_camera, read_cameras, write_cameras
from shared.errors import Anim4DError, FormatError, ParamError
from shared.gaussians import read_gaussian_result
from shared.manifest import read_manifest

VIEWS48 = Path(__file__).resolve().parents[1] / "render" / "data" / "views48.npz"
T = 4  # frames of every clip here (the tiny preset's frame count)
INPUT, OTHERS = 0, {"b": 4, "c": 8}  # views48 indices: azimuths 0, 120, 240


@pytest.fixture(scope="module")
def v48():
    d = np.load(VIEWS48)
    return {k: d[k] for k in ("images", "viewmats", "Ks")}


def _cam(v48, name: str, i: int) -> dict:
    return camera_dict(name, v48["viewmats"][i], v48["Ks"][i], 48, 48)


def _noisy_rgb(rgba: np.ndarray, seed: int = 0) -> np.ndarray:
    """The object over a background that cannot be keyed (uniform noise), uint8 RGB."""
    noise = np.random.default_rng(seed).integers(0, 256, rgba.shape[:2] + (3,))
    a = rgba[..., 3:].astype(np.float64) / 255
    return np.round(rgba[..., :3] * a + noise * (1 - a)).astype(np.uint8)


def _save(folder: Path, name: str, arrs) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for t, a in enumerate(arrs):
        out.append(folder / name.format(t=t))
        Image.fromarray(a).save(out[-1])
    return out


@pytest.fixture(scope="module")
def files(v48, tmp_path_factory):
    """Frames on noise + their masks (same names), views b and c as RGBA sequences, cameras."""
    root = tmp_path_factory.mktemp("in")
    img = v48["images"]
    frames = _save(root / "frames", "{t}.png", [_noisy_rgb(img[INPUT], t) for t in range(T)])
    masks = _save(root / "masks", "{t}.png", [img[INPUT][..., 3]] * T)
    views = []
    for name, i in OTHERS.items():
        views += _save(root / "views", name + "_{t:04d}.png", [img[i]] * T)
    cams = write_cameras(root / "cams.json", [_cam(v48, "input", INPUT)]
                         + [_cam(v48, n, i) for n, i in OTHERS.items()])
    return {"root": root, "frames": frames, "masks": masks, "views": views, "cameras": cams}


def test_backgrounds_match_the_kind():
    assert ds4d_jobs.BACKGROUNDS == BACKGROUNDS
    assert [i.name for i in ds4d_jobs.TO4D_KIND.inputs] == ["video", "masks", "views", "cameras"]


# -- the background parameter -------------------------------------------------------------------


def test_background_choices(files, v48):
    cfg = InputConfig(size=32, frames=None)
    with pytest.raises(FormatError, match="cannot be keyed"):  # noise: auto keying fails
        load_clip(files["frames"], cfg)
    clip = load_clip(files["frames"], cfg, masks=files["masks"])  # auto + masks -> masks
    assert clip.mask_source == "masks" and clip.source_frames == T
    mask = InputConfig(size=32, frames=None, background="mask")
    assert load_clip(files["frames"], mask, masks=files["masks"]).mask_source == "masks"
    with pytest.raises(ParamError, match="background 'mask' needs a mask sequence.*got none"):
        load_clip(files["frames"], mask)
    white = InputConfig(size=32, frames=None, background="white")
    with pytest.raises(ParamError, match="mask sequence was given with background 'white'"):
        load_clip(files["frames"], white, masks=files["masks"])
    with pytest.raises(ParamError, match="background 'alpha' but 0.png has no alpha channel"):
        load_clip(files["frames"], InputConfig(size=32, background="alpha"))
    # An RGBA clip on a white background: 'alpha' reads the alpha, 'white' keys the RGB.
    rgba = v48["images"][INPUT].copy()
    rgba[..., :3] = np.where(rgba[..., 3:] > 0, rgba[..., :3], 255)
    rgba[..., 3] = np.where(np.arange(48)[:, None] < 40, 255, 0)  # an alpha that is not the mask
    paths = _save(files["root"] / "white", "{t}.png", [rgba] * 2)
    a = load_clip(paths, InputConfig(size=32, frames=None, background="alpha"))
    k = load_clip(paths, InputConfig(size=32, frames=None, background="white"))
    assert a.mask_source == "alpha" and k.mask_source.startswith("keyed RGB(255, 255, 255)")
    assert load_clip(paths, InputConfig(size=32, frames=None)).mask_source == "alpha"
    assert abs(k.box.side - a.box.side) > 2  # the keyed mask is the object, not the alpha
    with pytest.raises(FormatError, match="given as black but the frame border is RGB"):
        load_clip(paths, InputConfig(size=32, background="black"))


def test_mask_sequence_errors(files):
    cfg = InputConfig(size=32, frames=None)
    with pytest.raises(FormatError, match="mask sequence has 3 frames but the input has 4"):
        load_clip(files["frames"], cfg, masks=files["masks"][:3])
    small = _save(files["root"] / "small", "{t}.png", [np.zeros((40, 48), np.uint8)] * T)
    with pytest.raises(FormatError, match="0.png is 48x40 but the frames are 48x48"):
        load_clip(files["frames"], cfg, masks=small)
    empty = _save(files["root"] / "empty", "{t}.png",
                  [np.full((48, 48), 255 * (t != 2), np.uint8) for t in range(T)])
    with pytest.raises(FormatError, match=r"2.png: the object mask is empty.*mask from masks"):
        load_clip(files["frames"], cfg, masks=empty)


# -- cameras files --------------------------------------------------------------------------------


def test_cameras_file_round_trip_and_errors(v48, tmp_path):
    cams = [_cam(v48, "input", 0), _cam(v48, "b", 4)]
    back = read_cameras(write_cameras(tmp_path / "c.json", cams))
    assert [c.name for c in back] == ["input", "b"]
    np.testing.assert_array_equal(back[1].world_to_camera, v48["viewmats"][4].astype(np.float64))
    (tmp_path / "wrapped.json").write_text(json.dumps({"cameras": cams}))
    assert len(read_cameras(tmp_path / "wrapped.json")) == 2
    bad = dict(cams[1])
    for change, match in [
        ({"world_to_camera": np.eye(3).tolist()}, r"'b': world_to_camera must be 4x4.*\[3, 3\]"),
        ({"world_to_camera": (np.diag([2.0, 2, 2, 1])).tolist()}, "'b'.*rigid transform"),
        ({"world_to_camera": np.diag([1.0, 1, -1, 1]).tolist()}, "determinant \\+1"),
        ({"K": np.eye(4).tolist()}, r"'b': K must be 3x3"),
        ({"K": [[50, 0, 24], [0, -50, 24], [0, 0, 1]]}, "fx, fy > 0"),
        ({"K": [[50, 0, 24], [0, 50, 24], [0, 0, 2]]}, "pinhole"),
        ({"width": 0}, "width must be a positive whole number"),
        ({"K": [[np.nan, 0, 24], [0, 50, 24], [0, 0, 1]]}, "NaN"),
    ]:
        with pytest.raises(FormatError, match=match):
            check_camera({**bad, **change})
    with pytest.raises(FormatError, match="lacks K"):
        check_camera({k: v for k, v in bad.items() if k != "K"})
    (tmp_path / "dup.json").write_text(json.dumps([cams[1], cams[1]]))
    with pytest.raises(FormatError, match="'b' is used 2 times"):
        read_cameras(tmp_path / "dup.json")
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(FormatError, match="bad.json: cannot be read as JSON"):
        read_cameras(tmp_path / "bad.json")


# -- supplied views from files ---------------------------------------------------------------


def test_view_files_group_by_name():
    names = ["left_0002.png", "left_0010.png", "left_0001.png", "right.0001.png", "top3.png",
             "back.mp4"]
    g = group_view_files([Path(n) for n in names])
    assert sorted(g) == ["back", "left", "right", "top"]
    assert [p.name for p in g["left"]] == ["left_0001.png", "left_0002.png", "left_0010.png"]
    assert g["back"] == Path("back.mp4")
    with pytest.raises(ParamError, match="0001.png: no view name"):
        group_view_files([Path("0001.png")])
    with pytest.raises(ParamError, match="'back': give one video or image files"):
        group_view_files([Path("back.mp4"), Path("back_0001.png")])


def test_supplied_view_source_from_files(files, v48):
    cfg = InputConfig(size=32, frames=T)
    clip = load_clip(files["frames"], cfg, masks=files["masks"])
    src = supplied_view_source(clip, files["views"], files["cameras"], cfg)
    assert isinstance(src, SuppliedViews)
    vs = src.views()
    assert [v.name for v in vs] == ["input", "b", "c"]
    for v, i in zip(vs, (INPUT, *OTHERS.values()), strict=True):
        np.testing.assert_allclose(v.viewmat, v48["viewmats"][i], atol=1e-6)
        # each view was cropped to the object: its alpha-weighted centroid maps through the new
        # K to where it was in the 48-pixel source image
        a = v.rgba[0, ..., 3]
        ys, xs = np.mgrid[0:32, 0:32] + 0.5
        c_crop = np.array([(a * xs).sum(), (a * ys).sum()]) / a.sum()
        src_a = v48["images"][i][..., 3] / 255.0
        ys, xs = np.mgrid[0:48, 0:48] + 0.5
        c_src = np.array([(src_a * xs).sum(), (src_a * ys).sum()]) / src_a.sum()
        K0 = v48["Ks"][i]
        s = v.K[0, 0] / K0[0, 0]
        np.testing.assert_allclose((c_src - K0[:2, 2]) * s + v.K[:2, 2], c_crop, atol=0.35)
    with pytest.warns(WeakViewsWarning):  # no views, no cameras: the input alone
        alone = supplied_view_source(clip, [], None, cfg)
    assert isinstance(alone, InputViewOnly)
    only = write_cameras(files["root"] / "only.json", [_cam(v48, "input", INPUT)])
    with pytest.warns(WeakViewsWarning):
        src1 = supplied_view_source(clip, [], only, cfg)
    assert isinstance(src1, InputViewOnly)
    np.testing.assert_allclose(src1.views()[0].K, vs[0].K)


def test_supplied_view_errors(files, v48, tmp_path):
    cfg = InputConfig(size=32, frames=T)
    clip = load_clip(files["frames"], cfg, masks=files["masks"])
    views, cams = files["views"], files["cameras"]
    with pytest.raises(ParamError, match=r"2 view\(s\) \(b, c\) were given without a cameras"):
        supplied_view_source(clip, views, None, cfg)
    no_c = write_cameras(tmp_path / "no_c.json", [_cam(v48, "input", 0), _cam(v48, "b", 4)])
    with pytest.raises(ParamError, match=r"view 'c' \(c_0000.png\) has no camera in no_c.json; "
                                         "cameras there: input, b"):
        supplied_view_source(clip, views, no_c, cfg)
    with pytest.raises(ParamError, match="camera\\(s\\) 'c' without a view; views given: b"):
        supplied_view_source(clip, [v for v in views if v.name.startswith("b")], cams, cfg)
    no_in = write_cameras(tmp_path / "no_in.json", [_cam(v48, "b", 4), _cam(v48, "c", 8)])
    with pytest.raises(ParamError, match="no camera named 'input'"):
        supplied_view_source(clip, views, no_in, cfg)
    short = [v for v in views if v.name != "c_0003.png"]
    with pytest.raises(ParamError, match="view 'c' has 3 frames but the input clip has 4"):
        supplied_view_source(clip, short, cams, cfg)
    big = [_cam(v48, "input", 0), {**_cam(v48, "b", 4), "width": 96, "height": 96},
           _cam(v48, "c", 8)]
    with pytest.raises(ParamError, match="camera 'b' is 96x96 but view 'b' is 48x48"):
        supplied_view_source(clip, views, write_cameras(tmp_path / "big.json", big), cfg)
    bent = tmp_path / "bent.json"
    bent.write_text(json.dumps([_cam(v48, "input", 0), {**_cam(v48, "b", 4), "world_to_camera":
                                                        (np.eye(4) * [1, 1.5, 1, 1]).tolist()}]))
    with pytest.raises(FormatError, match="bent.json\\[1\\]: camera 'b'.*rigid transform"):
        supplied_view_source(clip, views, bent, cfg)


# -- over the wire --------------------------------------------------------------------------------


def test_cli_job_with_masks_views_and_cameras(served, files, v48, tmp_path):
    """Frames on noise (only the masks make them usable), views b and c with their cameras:
    the result lists the three cameras and its Gaussians sit inside every view's mask."""
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "backend.cli.main", "submit", "video.to4d", "--server",
           served.address, "--input", *map(str, files["frames"]),
           "--input-for", "masks", *map(str, files["masks"]),
           "--input-for", "views", *map(str, files["views"]),
           "--input-for", "cameras", str(files["cameras"]),
           "--param", "preset=tiny", "--wait", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    m = read_manifest(out)
    assert m.extra["mask_source"] == "masks"
    assert not any("weak" in n for n in m.extra["notes"])  # not the input view alone
    assert [c["name"] for c in m.cameras] == ["input", "b", "c"]
    seq = read_gaussian_result(out)
    assert seq.frame_count == T
    size = PRESETS["tiny"].size
    for cam, i in zip(m.cameras, (INPUT, *OTHERS.values()), strict=True):
        vm = np.array(cam["world_to_camera"])
        np.testing.assert_allclose(vm, v48["viewmats"][i], atol=1e-6)
        assert (cam["width"], cam["height"]) == (size, size)
        # project the centres with the supplied (48 px, uncropped) camera: inside the mask
        K = v48["Ks"][i].astype(np.float64)
        pc = seq.frames[0].means @ vm[:3, :3].T + vm[:3, 3]
        uv = np.floor(pc[:, :2] / pc[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]).astype(int)
        ok = (uv >= 0).all(1) & (uv < 48).all(1)
        inside = v48["images"][i][uv[ok, 1], uv[ok, 0], 3] > 0
        # measured 0.965 / 0.965 / 0.981 (input, b, c); from the input view alone b and c get
        # 0.76 and 0.79 (the unseen sides are guessed)
        assert ok.mean() > 0.98 and inside.mean() > 0.93, (cam["name"], inside.mean())


def test_wire_input_naming_and_job_errors(served, files, tmp_path):
    with Client(served.address, timeout=30) as c:
        def fails(params, inputs, match, code=None):
            try:
                job = c.submit("video.to4d", {"preset": "tiny", **params}, inputs)
            except Exception as e:  # refused at submit
                assert match in str(e) and (code is None or e.code == code), e
                return
            info = c.wait(job)
            assert info.state == "failed" and match in info.error["message"], info.error

        frames = files["frames"]
        fails({}, [*frames, ("shapes", files["masks"][0])],
              "is for the input 'shapes'; this kind's inputs: video, masks, views, cameras",
              "bad_input")
        fails({}, [*frames, ("cameras", files["cameras"]), ("cameras", tmp_path / "x.json")],
              "input file", "bad_input")  # the second does not exist here
        (tmp_path / "x.json").write_text("[]")
        fails({}, [*frames, ("cameras", files["cameras"]), ("cameras", tmp_path / "x.json")],
              "its 'cameras' input takes one file, got 2", "bad_input")
        fails({}, [*frames, ("cameras", files["masks"][0])],
              "unsupported type for the input 'cameras'; accepted: .json", "bad_input")
        fails({}, [("masks", m) for m in files["masks"]], "needs its 'video' input")
        with pytest.raises(Anim4DError, match="inputs\\[0\\].input must be the name") as err:
            c.request("submit", {"kind": "video.to4d", "params": {}, "inputs": [
                {"name": "a.png", "array": "a", "input": ["video"]}]},
                arrays={"a": np.zeros(3, np.uint8)})
        assert err.value.code == "bad_message"
        # job-level errors name the problem
        fails({"background": "white"}, {"video": frames, "masks": files["masks"]},
              "mask sequence was given with background 'white'")
        fails({}, {"video": frames, "masks": files["masks"], "views": files["views"]},
              "were given without a cameras file")


def test_mask_sequence_as_a_video(files, v48):
    """A mask video (H.264, lossy) works like mask images: white is the object."""
    av = pytest.importorskip("av")
    if "libx264" not in av.codecs_available:
        pytest.skip("this FFmpeg build has no libx264 encoder")
    path = files["root"] / "masks.mp4"
    m = v48["images"][INPUT][..., 3]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 48, 48, "yuv420p"
        for _ in range(T):
            for p in s.encode(av.VideoFrame.from_ndarray(np.repeat(m[..., None], 3, -1),
                                                         format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    cfg = InputConfig(size=48, frames=None, fill=1.0)
    a = load_clip(files["frames"], cfg, masks=path)
    rgba = _save(files["root"] / "rgba", "{t}.png", [v48["images"][INPUT]] * T)
    b = load_clip(rgba, cfg)  # the true masks, as alpha
    assert b.mask_source == "alpha"
    assert a.mask_source == "masks" and a.num_frames == T
    ia, ib = a.rgba[..., 3] > 0.5, b.rgba[..., 3] > 0.5
    # measured 0.996 (a few edge pixels flip through the codec)
    assert (ia & ib).sum() / (ia | ib).sum() > 0.99


def test_a_cameras_file_naming_only_the_input_places_the_input_camera(served, files, tmp_path):
    """No views, a cameras file with only 'input', default views_source: the job runs from the
    input view alone, at the given camera (it used to ask for the views input)."""
    import json

    from shared.manifest import read_manifest

    cams = [c for c in json.loads(Path(files["cameras"]).read_text()) if c["name"] == "input"]
    only = tmp_path / "input_only.json"
    only.write_text(json.dumps(cams))
    with Client(served.address, timeout=60) as c:
        job = c.submit("video.to4d", {"preset": "tiny", "background": "mask"},
                       {"video": files["frames"], "masks": files["masks"], "cameras": [only]})
        info = c.wait(job)
        assert info.state == "done", info.error
        out = c.fetch(job, tmp_path / "res")
    (cam,) = read_manifest(out).cameras
    assert cam["name"] == "input"
    assert np.abs(np.array(cam["world_to_camera"]) - np.array(cams[0]["world_to_camera"])).max() \
        < 1e-6
