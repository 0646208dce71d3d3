"""shared.gaussians: Gaussian sequence result folders, whole and streamed frame by frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.errors import FormatError
from shared.gaussians import (
    GaussianResultWriter,
    GaussianSequence,
    read_gaussian_result,
    write_gaussian_result,
)
from shared.gsply import GaussianFrame
from shared.manifest import read_manifest


def same_frame(a: GaussianFrame, b: GaussianFrame) -> bool:
    names = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")
    return all(
        np.array_equal(getattr(a, n).view(np.uint32), getattr(b, n).view(np.uint32)) for n in names
    )


def make_seq(make_frame, counts=(30, 45, 60), degree: int = 1) -> GaussianSequence:
    frames = [make_frame(n, degree, seed=i) for i, n in enumerate(counts)]
    return GaussianSequence(frames, np.arange(len(counts)) / 24.0, name="test")


def test_sequence_round_trip_with_densification(tmp_path: Path, make_frame) -> None:
    seq = make_seq(make_frame)
    manifest = write_gaussian_result(
        tmp_path / "r", seq, kind="ds4d", params={"iters": 10}, job_id="j1", seed=3
    )
    names = ["frame_0000.ply", "frame_0001.ply", "frame_0002.ply"]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [*names, "manifest.json"]
    on_disk = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert on_disk["representation"] == "gaussian_sequence"
    assert on_disk["files"] == {"frames": names}
    assert on_disk["counts"] == {"frames": 3, "gaussians": [30, 45, 60]}
    assert on_disk["kind"] == "ds4d" and on_disk["params"] == {"iters": 10}
    assert on_disk["fps"] == pytest.approx(24.0)
    assert on_disk["frame_times"] == pytest.approx([0, 1 / 24, 2 / 24])
    assert read_manifest(tmp_path / "r") == manifest

    back = read_gaussian_result(tmp_path / "r")
    assert back.gaussian_counts == [30, 45, 60] and back.sh_degree == 1
    assert np.array_equal(back.times, seq.times)
    assert all(same_frame(a, b) for a, b in zip(seq.frames, back.frames, strict=True))


def test_incremental_writer(tmp_path: Path, make_frame) -> None:
    folder = tmp_path / "stream"
    frames = [make_frame(10 + i, 0, seed=i) for i in range(4)]
    with GaussianResultWriter(folder, kind="ds4d", job_id="s") as w:
        for i, f in enumerate(frames):
            path = w.add_frame(f, 0.5 * i)
            assert path.is_file() and path.name == f"frame_{i:04d}.ply"
            assert not (folder / "manifest.json").exists()  # written last
        assert w.frame_count == 4
    assert w.manifest is not None and w.manifest.fps == pytest.approx(2.0)
    assert w.finish() is w.manifest  # idempotent
    back = read_gaussian_result(folder)
    assert back.gaussian_counts == [10, 11, 12, 13]
    assert all(same_frame(a, b) for a, b in zip(frames, back.frames, strict=True))
    with pytest.raises(RuntimeError, match="already finished"):
        w.add_frame(frames[0], 9.0)


def test_writer_failure_leaves_no_manifest(tmp_path: Path, make_frame) -> None:
    folder = tmp_path / "fail"
    with pytest.raises(ConnectionError), GaussianResultWriter(folder, kind="ds4d") as w:
        w.add_frame(make_frame(5), 0.0)
        raise ConnectionError("server went away")
    assert (folder / "frame_0000.ply").is_file()
    assert not (folder / "manifest.json").exists()


def test_writer_checks(tmp_path: Path, make_frame) -> None:
    w = GaussianResultWriter(tmp_path / "c", kind="ds4d")
    with pytest.raises(FormatError, match="at least one frame"):
        w.finish()
    w.add_frame(make_frame(5, 0), 1.0)
    with pytest.raises(FormatError, match="later than"):
        w.add_frame(make_frame(5, 0), 1.0)
    with pytest.raises(FormatError, match="SH degree 2"):
        w.add_frame(make_frame(5, 2), 2.0)
    assert w.finish(fps=30).fps == 30 and w.finish().frame_times == [1.0]
    with pytest.raises(FileExistsError):
        GaussianResultWriter(tmp_path / "c", kind="ds4d")
    w2 = GaussianResultWriter(tmp_path / "c", kind="ds4d", overwrite=True)
    assert not (tmp_path / "c" / "manifest.json").exists()
    w2.add_frame(make_frame(8, 0), 0.0)
    w2.finish()
    assert read_gaussian_result(tmp_path / "c").gaussian_counts == [8]


def test_sequence_validation(make_frame) -> None:
    with pytest.raises(FormatError, match="at least one frame"):
        GaussianSequence([], np.zeros(0))
    with pytest.raises(FormatError, match="times must be"):
        GaussianSequence([make_frame(3)], np.zeros(2))
    with pytest.raises(FormatError, match="strictly increasing"):
        GaussianSequence([make_frame(3), make_frame(3)], [1.0, 1.0])
    with pytest.raises(FormatError, match="one SH degree"):
        GaussianSequence([make_frame(3, 0), make_frame(3, 1)], [0.0, 1.0])
    assert GaussianSequence([make_frame(3)], [0.0]).fps == 0.0


def test_manifest_counts_must_match_files(tmp_path: Path, make_frame) -> None:
    folder = tmp_path / "r"
    write_gaussian_result(folder, make_seq(make_frame), kind="ds4d")
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["counts"]["gaussians"][1] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match="says 99 Gaussians for frame_0001.ply, which holds 45"):
        read_gaussian_result(folder)
    (folder / "frame_0002.ply").unlink()
    with pytest.raises(FormatError, match="frame_0002.ply"):
        read_gaussian_result(folder)
