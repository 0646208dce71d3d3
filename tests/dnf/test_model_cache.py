"""The process-level model cache (backend/models/cache.py) and the DNF loaders on it
(backend/methods/dnf/resident.py): a second load of unchanged files is a hit (the same objects,
no reading); a file rewritten, replaced by a rename, or removed is loaded again; the cache is an
LRU of a few entries."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from backend.methods.dnf import resident
from backend.methods.dnf.model_files import SHIPPED_DIR
from backend.models.cache import CACHE, ModelCache
from shared.errors import FormatError


@pytest.fixture
def tiny(tmp_path):
    """A copy of the shipped tiny model (with its generator), and a fresh process cache."""
    folder = shutil.copytree(SHIPPED_DIR / "tiny", tmp_path / "tiny")
    CACHE.clear()
    yield folder
    CACHE.clear()


def _counts():
    return CACHE.stats.loads, CACHE.stats.hits


def test_dnf_model_and_generator_load_once_while_the_files_are_unchanged(tiny):
    loads, hits = _counts()
    model, sgen, mgen, info = resident.load_with_generator(tiny, "tiny")
    assert _counts() == (loads + 2, hits)  # the checkpoint, then its generators
    again = resident.load_with_generator(tiny, "tiny")
    assert _counts() == (loads + 2, hits + 2)
    assert again[0] is model and again[1] is sgen and again[2] is mgen
    assert resident.load_model(tiny, "tiny") is model
    # the generator's weights written again (retrained): the generators are loaded again,
    # the model (unchanged) is not
    gen = tiny / "generator" / "shape.safetensors"
    st = gen.stat()
    os.utime(gen, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = resident.load_with_generator(tiny, "tiny")
    assert _counts() == (loads + 3, hits + 4)  # (load_model above was a hit too)
    assert third[0] is model and third[1] is not sgen
    # with other content: checked again, as on a first load
    gen.write_bytes(gen.read_bytes()[:-1] + b"\0")
    with pytest.raises(FormatError, match="does not match the SHA-256"):
        resident.load_with_generator(tiny, "tiny")


def test_a_replaced_dnf_model_is_reloaded_never_served_stale(tiny, tmp_path):
    model = resident.load_model(tiny, "tiny")
    # replaced by a rename onto it (what a copy tool does): a new inode, maybe the same size
    weights = tiny / "model.safetensors"
    other = tmp_path / "other.safetensors"
    shutil.copy2(weights, other)
    data = bytearray(other.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    other.write_bytes(bytes(data))
    os.replace(other, weights)
    with pytest.raises(FormatError, match="does not match"):
        resident.load_model(tiny, "tiny")
    # restored: a new load (not the entry from before), equal weights
    shutil.copy2(SHIPPED_DIR / "tiny" / "model.safetensors", weights)
    again = resident.load_model(tiny, "tiny")
    assert again is not model
    assert torch.equal(again.shape_vecs["d"], model.shape_vecs["d"])


def test_lru_keeps_the_last_used_entries(tmp_path):
    cache = ModelCache(capacity=2)
    files = {}
    for name in "abc":
        files[name] = tmp_path / name
        files[name].write_text(name)
    made = []

    def get(name):
        return cache.get((name,), [files[name]], lambda: made.append(name) or name.upper())

    assert [get("a"), get("b"), get("a")] == ["A", "B", "A"]
    get("c")  # evicts b, the least recently used
    assert len(cache) == 2 and cache.stats.evicted == 1
    get("a")
    get("b")
    assert made == ["a", "b", "c", "b"]
    files["b"].unlink()  # a file gone: loaded again (the loader says what is wrong)
    with pytest.raises(FileNotFoundError):
        cache.get(("b",), [files["b"]], lambda: files["b"].read_text())
    assert cache.stats.stale == 1
    if "ANIM4D_MODEL_CACHE" not in os.environ:
        assert CACHE.capacity == 4  # docs/deploy.md: two DNF models with their generators
    off = ModelCache(capacity=0)
    off.get(("a",), [files["a"]], lambda: 1)
    off.get(("a",), [files["a"]], lambda: 1)
    assert off.stats.loads == 2 and len(off) == 0
