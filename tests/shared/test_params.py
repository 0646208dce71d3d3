"""Protocol 1.1 parameter types (``job``, ``floats``), results with several sequences and video
results: coercion, JSON round trips, manifest checks and the result stream."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from shared.errors import FormatError, ParamError
from shared.manifest import Manifest, write_manifest
from shared.meshseq import MeshSequence, load_npz, save_npz
from shared.params import KindSpec, ParamSpec
from shared.results import open_result
from shared.stream import ResultAssembler, ResultReader

TIMES = ParamSpec("times", "floats", (0.0, 1.0), "seconds", 0.0, 10.0, max_items=4)
SOURCE = ParamSpec("source", "job", "", "a finished job")
KIND = KindSpec("x.resample", "Resample", "", "mesh_sequence", params=(SOURCE, TIMES))


@pytest.mark.parametrize("given, expected", [
    ("0,0.5,1", [0.0, 0.5, 1.0]),
    (" 0 , 2.5 ", [0.0, 2.5]),
    ("[1, 2]", [1.0, 2.0]),
    ("3", [3.0]),
    ([0, 0.5, 10], [0.0, 0.5, 10.0]),
    ((1, 2), [1.0, 2.0]),
    (7, [7.0]),
    (7.5, [7.5]),
])
def test_floats_accept_text_lists_and_numbers(given, expected):
    got = TIMES.coerce(given, "x.resample")
    assert got == expected and all(type(v) is float for v in got)


@pytest.mark.parametrize("given, match", [
    ("0,abc", r"'times': element 1 = 'abc' is not a number; expected a list of 1 to 4 numbers"),
    ("", "holds 0 numbers"),
    ("0,,1", "element 1 = '' is not a number"),
    ([0, True], "element 1 = True is not a number"),
    ([0, "x"], "element 1 = 'x' is not a number"),
    ("0,11", r"element 1 = '11' is out of range; expected .* each in \[0, 10\]"),
    ([-0.5], "element 0 = -0.5 is out of range"),
    ("0,nan", "element 1 = 'nan' is out of range"),
    ([math.inf], "out of range"),
    ("0,1,2,3,4", "holds 5 numbers"),
    ({"a": 1}, r"'times' = \{'a': 1\} is not accepted"),
    (True, "is not accepted"),
    (None, "is not accepted"),
])
def test_floats_refuse_what_is_not_a_bounded_list_of_numbers(given, match):
    with pytest.raises(ParamError, match=match) as err:
        TIMES.coerce(given, "x.resample")
    assert err.value.code == "bad_param" and "x.resample: parameter 'times'" in str(err.value)


def test_floats_without_max_items_are_still_capped():
    spec = ParamSpec("t", "floats", (0.0,))
    assert spec.coerce(list(range(1000))) == [float(i) for i in range(1000)]
    with pytest.raises(ParamError, match="holds 100001 numbers"):
        spec.coerce([0.0] * 100_001)


@pytest.mark.parametrize("given, expected", [
    ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
    ("ABCdef12", "abcdef12"),
    (" 3f ", "3f"),
])
def test_job_ids_and_prefixes_are_accepted_in_lower_case(given, expected):
    assert SOURCE.coerce(given) == expected


@pytest.mark.parametrize("given", ["", "  ", "zz12", "../etc", "a" * 65, 12, None, ["ab"]])
def test_job_values_that_cannot_be_job_ids_are_refused(given):
    with pytest.raises(ParamError, match="expected the id .* of a finished job"):
        SOURCE.coerce(given, "x.resample")


def test_new_types_round_trip_through_json_and_mark_the_kind_1_1():
    wire = json.loads(json.dumps(KIND.to_json()))  # what hello carries
    back = KindSpec.from_json(wire)
    assert back.to_json() == KIND.to_json()
    times = back.param("times")
    assert (times.type, times.max_items, list(times.default)) == ("floats", 4, [0.0, 1.0])
    assert back.param("source").type == "job" and back.job_params() == (back.param("source"),)
    assert KIND.protocol_minor == 1
    plain = KindSpec("x.plain", "Plain", "", "mesh_sequence",
                     params=(ParamSpec("n", "int", 1), ParamSpec("s", "str", "")))
    assert plain.protocol_minor == 0 and plain.job_params() == ()
    # a 1.0 peer's parameter has no max_items: read as None
    old = {"name": "n", "type": "int", "default": 1, "help": "", "min": 0, "max": 9,
           "choices": []}
    assert ParamSpec.from_json(old).max_items is None


def test_validate_params_fills_a_fresh_list_default():
    a = KIND.validate_params({"source": "ab12"})
    assert a == {"source": "ab12", "times": [0.0, 1.0]}
    a["times"].append(5.0)
    assert KIND.validate_params({"source": "ab12"})["times"] == [0.0, 1.0]


# ---- results with several sequences, and videos --------------------------------------------

def _seq(frames: int, verts: int, seed: int) -> MeshSequence:
    rng = np.random.default_rng(seed)
    faces = np.stack([np.arange(verts - 2), np.arange(1, verts - 1), np.arange(2, verts)], 1)
    return MeshSequence(rng.normal(size=(frames, verts, 3)), faces, np.arange(frames) / 10.0)


def _multi(folder, seqs) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = ["sequence.npz"] + [f"sequence_{i}.npz" for i in range(1, len(seqs))]
    for seq, name in zip(seqs, names, strict=True):
        save_npz(seq, folder / name)
    write_manifest(folder, Manifest(
        kind="x.sample", representation="mesh_sequence",
        frame_times=[float(t) for t in seqs[0].times], fps=10.0,
        files={"sequence": names[0], "sequences": names},
        counts={"frames": seqs[0].frame_count, "vertices": seqs[0].vertex_count}))


@pytest.mark.parametrize("files, match", [
    ({"sequence": "a.npz", "sequences": ["b.npz", "a.npz"]}, "first is files.sequence"),
    ({"sequence": "a.npz", "sequences": "a.npz"}, "must be a list"),
    ({"sequence": "a.npz", "sequences": []}, "must be a list"),
    ({"sequence": "a.npz", "sequences": ["a.npz", "a.npz"]}, "distinct"),
    ({"sequence": "a.npz", "sequences": ["a.npz", 3]}, "must be a list"),
])
def test_manifest_checks_files_sequences(files, match):
    m = Manifest(kind="k", representation="mesh_sequence", frame_times=[0.0], fps=1.0,
                 files=files)
    with pytest.raises(FormatError, match=match):
        m.validate()


def test_video_manifests_need_their_video_and_hold_no_sequences():
    with pytest.raises(FormatError, match="needs files.video"):
        Manifest(kind="k", representation="video", frame_times=[0.0], fps=1.0,
                 files={}).validate()
    with pytest.raises(FormatError, match="files.sequences"):
        Manifest(kind="k", representation="video", frame_times=[0.0], fps=1.0,
                 files={"video": "v.mp4", "sequences": ["a.npz"]}).validate()
    m = Manifest(kind="k", representation="video", frame_times=[0.0], fps=1.0,
                 files={"video": "v.mp4"})
    m.validate()
    assert m.sequence_files == []


def test_several_sequences_open_and_travel_byte_for_byte(tmp_path):
    seqs = [_seq(5, 30, 0), _seq(5, 12, 1), _seq(5, 7, 2)]
    _multi(tmp_path / "src", seqs)
    res = open_result(tmp_path / "src")
    assert res.sequence_count == 3
    for i, seq in enumerate(seqs):
        assert np.array_equal(res.mesh_sequence(i).vertices, seq.vertices.astype(np.float32))
    with pytest.raises(FormatError, match="no mesh sequence 3"):
        res.mesh_sequence(3)
    reader = ResultReader(tmp_path / "src", chunk_bytes=256)
    assert [a["path"] for a in reader.attachments] == ["sequence_1.npz", "sequence_2.npz"]
    out = ResultAssembler(tmp_path / "out")
    for chunk in reader:
        out.add(chunk)
    got = open_result(out.finish())
    assert got.sequence_count == 3
    for name in ("sequence_1.npz", "sequence_2.npz"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "src" / name).read_bytes()
    first = load_npz(tmp_path / "out" / "sequence.npz")
    assert np.array_equal(first.vertices, seqs[0].vertices.astype(np.float32))


def test_a_sequence_with_other_frame_times_is_refused(tmp_path):
    _multi(tmp_path / "r", [_seq(5, 30, 0), _seq(4, 12, 1)])
    with pytest.raises(FormatError, match="sequence_1.npz holds 4 frames"):
        open_result(tmp_path / "r").mesh_sequence(1)


def test_a_video_result_travels_as_one_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    video = bytes(range(256)) * 40
    (src / "render.mp4").write_bytes(video)
    write_manifest(src, Manifest(kind="render.video", representation="video",
                                 frame_times=[0.0, 0.5, 1.0], fps=2.0,
                                 files={"video": "render.mp4"}))
    reader = ResultReader(src, chunk_bytes=4096)
    parts = [c.part for c in reader]
    assert parts == ["header", "file", "file", "file"]  # no frame chunks
    out = ResultAssembler(tmp_path / "out")
    for chunk in reader:
        out.add(chunk)
    res = open_result(out.finish())
    assert res.representation == "video" and res.video.read_bytes() == video
    with pytest.raises(FormatError, match="holds a video"):
        res.load()
