"""Protocol 1.1's resample fields: ``KindSpec.resample_kind`` in hello and ``manifest.resample``,
both optional and invisible to a reader that predates them."""

from __future__ import annotations

import json

import pytest

from shared.errors import FormatError
from shared.manifest import Manifest, read_manifest, write_manifest
from shared.params import KindSpec
from shared.resample import ResampleInfo, manifest_field


def test_kind_spec_field_is_optional_both_ways():
    plain = KindSpec("a.make", "Make", "", "mesh_sequence")
    assert "resample_kind" not in plain.to_json()  # a 1.0 hello is unchanged
    able = KindSpec("a.make", "Make", "", "mesh_sequence", resample_kind="a.resample")
    d = able.to_json()
    assert d["resample_kind"] == "a.resample"
    assert KindSpec.from_json(json.loads(json.dumps(d))) == able
    old = {k: v for k, v in d.items() if k != "resample_kind"}  # from a server before 1.1
    assert KindSpec.from_json(old).resample_kind == ""
    assert able.protocol_minor == 0  # the field alone does not hide a kind from 1.0 clients


def _manifest(**kw) -> Manifest:
    return Manifest(kind="a.make", representation="mesh_sequence", frame_times=[0.0, 0.5],
                    fps=2.0, files={"sequence": "sequence.npz"}, job_id="ab" * 8, **kw)


def test_manifest_field_round_trips_and_is_checked(tmp_path):
    m = _manifest(resample=manifest_field("a.resample", 0.5))
    write_manifest(tmp_path, m)
    back = read_manifest(tmp_path)
    assert back.resample == {"kind": "a.resample", "source": "", "end": 0.5}
    assert ResampleInfo.from_manifest(back) == ResampleInfo("a.resample", "ab" * 8, 0.5)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    del raw["resample"]  # a result written before the field existed
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    old = read_manifest(tmp_path)
    assert old.resample == {} and ResampleInfo.from_manifest(old) is None
    with pytest.raises(FormatError, match="resample must name its kind"):
        _manifest(resample={"source": "x"}).validate()
    field = manifest_field("a.resample", None, source="cd" * 8, times=[2.0, 3.0])
    info = ResampleInfo.from_manifest(_manifest(resample=field))
    assert info == ResampleInfo("a.resample", "cd" * 8, None, (2.0, 3.0))
    assert info.source_times([0.0, 0.5]).tolist() == [2.0, 3.0]
