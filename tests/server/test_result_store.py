"""The result store reached by URL (``serve --result-store``): its marker-last protocol, without
Ray (the jobs through it are in tests/ray/test_result_store.py)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fsspec", reason="--result-store needs the ray extra: pip install -e '.[ray]'")

from backend.server.result_store import ResultStore, StoreError  # noqa: E402
from shared.errors import Anim4DError  # noqa: E402


def result_folder(root, files: dict[str, bytes]):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_a_result_round_trips_and_only_a_completed_one_is_taken(tmp_path):
    store = ResultStore(f"file://{tmp_path}/store")
    store.check()
    made = result_folder(tmp_path / "made", {"manifest.json": b"{}", "sub/a.npz": b"x" * 1000})
    store.put_result("ab12cd34", "ab12cd34:0:aaaaaa", made)
    assert store.has_result("ab12cd34")
    store.get_result("ab12cd34", tmp_path / "got", key="ab12cd34:0:aaaaaa")
    assert (tmp_path / "got" / "sub" / "a.npz").read_bytes() == b"x" * 1000
    # another attempt's result is refused
    with pytest.raises(StoreError, match="written by another run"):
        store.get_result("ab12cd34", tmp_path / "other", key="ab12cd34:1:bbbbbb")
    # a copy cut short (a file shorter than its marker says) is not taken as done
    (tmp_path / "store" / "ab12cd34" / "result" / "sub" / "a.npz").write_bytes(b"x" * 10)
    with pytest.raises(StoreError, match="incomplete: sub/a.npz has 10 bytes, 1000 expected"):
        store.get_result("ab12cd34", tmp_path / "got2")
    # a folder without its marker (the writer died before the end) is not a result
    (tmp_path / "store" / "ab12cd34" / "result.json").unlink()
    assert not store.has_result("ab12cd34")
    with pytest.raises(StoreError, match="missing or was never completed"):
        store.get_result("ab12cd34", tmp_path / "got3")
    # a marker naming a file outside its folder is refused
    (tmp_path / "store" / "ab12cd34" / "result.json").write_text(
        json.dumps({"files": {"../../evil": 1}}))
    with pytest.raises(StoreError, match="outside the folder"):
        store.get_result("ab12cd34", tmp_path / "got4")
    store.delete("ab12cd34")
    assert not (tmp_path / "store" / "ab12cd34").exists()


def test_inputs_by_name_and_errors_in_one_line(tmp_path):
    store = ResultStore(f"file://{tmp_path}/store")
    src = result_folder(tmp_path / "in", {"clip.mp4": b"v" * 7, "cams.json": b"[]"})
    store.put_inputs("ab12cd34", [src / "clip.mp4", src / "cams.json"])
    got = store.get_inputs("ab12cd34", tmp_path / "got", ["cams.json", "clip.mp4"])
    assert [p.read_bytes() for p in got] == [b"[]", b"v" * 7]
    with pytest.raises(StoreError, match="lack other.bin"):
        store.get_inputs("ab12cd34", tmp_path / "got", ["other.bin"])
    store.drop_inputs("ab12cd34")
    assert not (tmp_path / "store" / "ab12cd34" / "inputs").exists()
    # a store that cannot be written: one line naming the URL
    (tmp_path / "afile").write_text("")
    with pytest.raises(StoreError, match=r"result store file://.*/afile/store cannot be used"):
        ResultStore(f"file://{tmp_path}/afile/store").check()
    with pytest.raises(StoreError, match="Protocol not known: nosuch"):
        ResultStore("nosuch://bucket").check()
    with pytest.raises(StoreError, match="copying the job's result to the result store"):
        ResultStore(f"file://{tmp_path}/afile/store").put_result("ab12cd34", "k", src)


def test_the_result_store_needs_the_ray_executor_in_config_too(tmp_path):
    from backend.server.config import ServerConfig
    from backend.server.server import Server

    try:
        Server(ServerConfig(data_dir=tmp_path, result_store=f"file://{tmp_path}/s"))
    except Anim4DError as err:
        assert "--result-store needs --executor ray" in str(err)
    else:
        raise AssertionError("a result store without the Ray executor was accepted")
