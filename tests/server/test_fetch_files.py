"""A fetched result folder is the server's, byte for byte: over the wire, after a resume, for
mesh and Gaussian results and attachments; an older server (no file layout in the header) still
gives the same arrays; a header whose layout does not hold up is a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.jobs.api import JobContext, mesh_result
from backend.jobs.debug import _strip
from backend.jobs.registry import debug_kinds
from backend.server.embedded import EmbeddedServer
from blender_addon.core.client import Client
from shared.errors import FormatError
from shared.gaussians import GaussianSequence, write_gaussian_result
from shared.manifest import write_manifest
from shared.meshseq import MeshSequence
from shared.results import open_result
from shared.stream import Chunk, ResultAssembler, ResultReader

from ..shared.conftest import random_frame


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_files(got: Path, want: Path) -> None:
    got_files, want_files = files_of(got), files_of(want)
    assert sorted(got_files) == sorted(want_files)
    differ = [name for name in want_files if got_files[name] != want_files[name]]
    assert differ == [], f"files differ from the server's: {differ}"


def mesh_folder(tmp_path: Path, name: str = "a named strip", attach: bool = True) -> Path:
    """A server-side mesh result (a named sequence, so its ``name`` member is not the default)
    with an attachment of several chunks."""
    folder = tmp_path / "server_result"
    folder.mkdir()
    seq = _strip(9, 101)
    seq = MeshSequence(seq.vertices, seq.faces, seq.times, name=name,
                       colors=np.random.default_rng(1).random((101, 4), np.float32))
    m = mesh_result(JobContext("e" * 32, folder, tmp_path), seq, "debug.sleep", {})
    if attach:
        blob = np.random.default_rng(2).integers(0, 255, 9000, dtype=np.uint8)
        (folder / "extra").mkdir()
        blob.tofile(folder / "extra" / "vector.bin")
        m.files["vector"] = "extra/vector.bin"
    write_manifest(folder, m)
    return folder


def test_a_fetched_result_equals_the_servers_byte_for_byte(tmp_path):
    with EmbeddedServer(tmp_path / "data", kinds=debug_kinds(), chunk_bytes=4096) as srv:
        with Client(srv.address, timeout=10) as c:
            job = c.submit("debug.sleep", {"seconds": 0, "frames": 23, "vertices": 250})
            assert c.wait(job).state == "done"
            folder = c.fetch(job, tmp_path / "fetched")
        assert_same_files(folder, srv.server.store.result_dir(job))
    assert open_result(folder).mesh.vertices.shape == (23, 250, 3)


@pytest.mark.parametrize("stop_after", [0, 1, 3, 4, 5])
def test_a_resumed_fetch_is_byte_exact(tmp_path, stop_after):
    """The connection drops after chunk ``stop_after`` (the header, frames, an attachment piece);
    a new assembler on the same folder resumes where the first stopped."""
    src = mesh_folder(tmp_path)
    reader = ResultReader(src, chunk_bytes=4096)
    assert reader.frame_chunks == 3 and reader.count == 1 + 3 + 3
    chunks = list(reader)
    first = ResultAssembler(tmp_path / "out")
    for chunk in chunks[:stop_after + 1]:
        first.add(chunk)
    first.close()
    resumed = ResultAssembler(tmp_path / "out")
    assert resumed.next_chunk == stop_after + 1
    for chunk in chunks[resumed.next_chunk:]:
        resumed.add(chunk)
    assert_same_files(resumed.finish(), src)


def test_frames_in_any_order_land_in_place(tmp_path):
    src = mesh_folder(tmp_path, attach=False)
    chunks = list(ResultReader(src, chunk_bytes=4096))
    with ResultAssembler(tmp_path / "out") as asm:
        for chunk in [chunks[0], *reversed(chunks[1:])]:
            asm.add(chunk)
        assert_same_files(asm.finish(), src)


def test_a_gaussian_result_is_byte_exact(tmp_path):
    src = tmp_path / "server_result"
    frames = [random_frame(40 + i, degree=1, seed=i) for i in range(3)]
    write_gaussian_result(src, GaussianSequence(frames, np.array([0.0, 0.5, 1.0])),
                          kind="test.gaussians", job_id="g" * 32)
    with ResultAssembler(tmp_path / "out") as asm:
        for chunk in ResultReader(src):
            asm.add(chunk)
        assert_same_files(asm.finish(), src)


def without_layout(chunk: Chunk) -> Chunk:
    """The header as a server from before ``sequence_rest`` sends it."""
    if chunk.part != "header":
        return chunk
    content = {k: v for k, v in chunk.content.items() if k != "sequence_file"}
    arrays = {k: v for k, v in chunk.arrays.items() if k != "sequence_rest"}
    return Chunk(chunk.index, chunk.count, chunk.part, content, arrays)


def test_a_server_that_sends_no_layout_still_gives_the_same_arrays(tmp_path):
    src = mesh_folder(tmp_path, attach=False)
    chunks = [without_layout(c) for c in ResultReader(src, chunk_bytes=4096)]
    first = ResultAssembler(tmp_path / "out")
    first.add(chunks[0])
    first.add(chunks[1])
    first.close()
    with ResultAssembler(tmp_path / "out") as asm:  # resumed
        for chunk in chunks[asm.next_chunk:]:
            asm.add(chunk)
        got = open_result(asm.finish()).mesh
    want = open_result(src).mesh
    for name in ("vertices", "faces", "times", "colors"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert not (tmp_path / "out" / ".partial").exists()


def corrupt(chunk: Chunk, rest: np.ndarray | None = None, frames: int | None = None,
            **layout) -> Chunk:
    content = dict(chunk.content, sequence_file={**chunk.content["sequence_file"], **layout})
    if frames is not None:  # a manifest that lists fewer frames than the file holds
        manifest = dict(content["manifest"])
        manifest["frame_times"] = manifest["frame_times"][:frames]
        content["manifest"] = manifest
    arrays = dict(chunk.arrays)
    if rest is not None:
        arrays["sequence_rest"] = rest
    return Chunk(0, chunk.count, "header", content, arrays)


@pytest.mark.parametrize("change, match", [
    ({"data_offset": 10**9}, "does not fit around"),
    ({"data_offset": 64}, "not a usable .npz"),
    ({"frames": 8}, r"vertices are float32 \[9, 101, 3\] .*expected stored float32 \[8, V"),
    ({"size": 10}, "does not fit around"),
    ({"data_offset": "x"}, "malformed sequence_file"),
    ({"rest": "garbage"}, "not a usable .npz"),
])
def test_a_layout_that_does_not_hold_up_is_a_clear_error(tmp_path, change, match):
    header = next(iter(ResultReader(mesh_folder(tmp_path, attach=False))))
    if "rest" in change:
        bad = corrupt(header, rest=np.full(header.arrays["sequence_rest"].size, 7, np.uint8))
    else:
        bad = corrupt(header, **change)
    with ResultAssembler(tmp_path / "out") as asm, pytest.raises(FormatError, match=match):
        asm.add(bad)


def test_frames_that_do_not_fit_the_sequence_are_refused(tmp_path):
    chunks = list(ResultReader(mesh_folder(tmp_path, attach=False), chunk_bytes=4096))
    frames = chunks[1]
    wrong = Chunk(frames.index, frames.count, "frames", frames.content,
                  {"vertices": frames.arrays["vertices"][:, :-1]})
    with ResultAssembler(tmp_path / "out") as asm:
        asm.add(chunks[0])
        with pytest.raises(FormatError, match="result chunk 1: .*do not fit"):
            asm.add(wrong)


def test_an_older_clients_partial_folder_is_started_again(tmp_path):
    """Before, ``.partial/`` was a folder (state.json, vertices.npy): it is discarded."""
    src = mesh_folder(tmp_path, attach=False)
    old = tmp_path / "out" / ".partial"
    old.mkdir(parents=True)
    (old / "state.json").write_text('{"received": [0, 1], "count": 4}')
    (old / "vertices.npy").write_bytes(b"old")
    with ResultAssembler(tmp_path / "out") as asm:
        assert asm.next_chunk == 0
        for chunk in ResultReader(src, chunk_bytes=4096):
            asm.add(chunk)
        assert_same_files(asm.finish(), src)
