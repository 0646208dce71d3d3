"""shared.gsply: 3DGS .ply writing and reading, cross-checked with the plyfile package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from shared.errors import FormatError
from shared.gsply import (
    SH_C0,
    GaussianFrame,
    gsply_property_names,
    read_gsply,
    read_gsply_header,
    write_gsply,
)


def bits(a: np.ndarray) -> np.ndarray:
    """Raw bits of a float32 array (so NaN and -0.0 compare exactly)."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def assert_same_bits(a: GaussianFrame, b: GaussianFrame) -> None:
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert x.dtype == y.dtype == np.float32, name
        assert np.array_equal(bits(x), bits(y)), name


def header_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end].decode("ascii").splitlines()


def write_with_plyfile(path: Path, fields: dict[str, np.ndarray], **kw) -> Path:
    """Write one ``vertex`` element with ``fields`` in the given order (their own dtypes)."""
    n = len(next(iter(fields.values())))
    arr = np.empty(n, dtype=[(k, v.dtype.str) for k, v in fields.items()])
    for k, v in fields.items():
        arr[k] = v
    PlyData([PlyElement.describe(arr, "vertex")], **kw).write(str(path))
    return path


def standard_fields(frame: GaussianFrame) -> dict[str, np.ndarray]:
    """Column per standard property name, as the reference code lays them out."""
    n, k = frame.count, frame.sh_rest.shape[1]
    rest = frame.sh_rest.transpose(0, 2, 1).reshape(n, 3 * k)
    cols = {"x": frame.means[:, 0], "y": frame.means[:, 1], "z": frame.means[:, 2]}
    cols |= {f"f_dc_{i}": frame.sh_dc[:, i] for i in range(3)}
    cols |= {f"f_rest_{j}": rest[:, j] for j in range(3 * k)}
    cols["opacity"] = frame.opacity_logits
    cols |= {f"scale_{i}": frame.log_scales[:, i] for i in range(3)}
    cols |= {f"rot_{i}": frame.quats[:, i] for i in range(4)}
    return cols


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_is_bit_exact(tmp_path: Path, make_frame, degree: int) -> None:
    frame = make_frame(257, degree, seed=degree)
    frame.means[0] = (-0.0, np.nan, np.inf)  # odd values must survive too
    frame.means[1, 0] = np.float32(1e-45)  # a denormal
    path = write_gsply(tmp_path / "f.ply", frame)
    back = read_gsply(path)
    assert back.sh_degree == degree
    assert_same_bits(frame, back)
    n_props = len(gsply_property_names(degree))
    assert path.stat().st_size == len("\n".join(header_lines(path))) + 1 + 257 * 4 * n_props
    assert not list(tmp_path.glob("*.tmp"))


def test_round_trip_empty_frame(tmp_path: Path, make_frame) -> None:
    back = read_gsply(write_gsply(tmp_path / "e.ply", make_frame(0, 2)))
    assert back.count == 0 and back.sh_degree == 2 and back.sh_rest.shape == (0, 8, 3)


def test_extra_properties_and_comments_round_trip(tmp_path: Path, make_frame) -> None:
    frame = make_frame(20, 1)
    frame.extra = {
        "t_birth": np.arange(20, dtype=np.float64) / 3,
        "label": np.arange(20, dtype=np.uint8),
    }
    frame.comments = ["Anim4D test", "second line"]
    frame.validate()
    path = write_gsply(tmp_path / "x.ply", frame)
    assert header_lines(path)[-3:] == [
        "property double t_birth", "property uchar label", "end_header"
    ]
    back = read_gsply(path, keep_extra=True)
    assert_same_bits(frame, back)
    assert back.comments == frame.comments
    assert set(back.extra) == {"t_birth", "label"}
    assert back.extra["t_birth"].dtype == np.float64 and back.extra["label"].dtype == np.uint8
    assert np.array_equal(back.extra["t_birth"], frame.extra["t_birth"])
    assert np.array_equal(back.extra["label"], frame.extra["label"])
    assert read_gsply(path).extra == {}


def test_crlf_header_and_type_aliases(tmp_path: Path, make_frame) -> None:
    frame = make_frame(9, 1)
    data = write_gsply(tmp_path / "a.ply", frame).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    head = data[:end].replace(b"property float ", b"property float32 ").replace(b"\n", b"\r\n")
    path = tmp_path / "b.ply"
    path.write_bytes(head + data[end:])
    assert_same_bits(frame, read_gsply(path))


# -- layout ---------------------------------------------------------------------------------------


def test_header_names_types_and_order(tmp_path: Path, make_frame) -> None:
    path = write_gsply(tmp_path / "h.ply", make_frame(7, 1))
    rest = [f"f_rest_{i}" for i in range(9)]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *rest,
                "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert gsply_property_names(1) == expected
    assert header_lines(path) == [
        "ply", "format binary_little_endian 1.0", "element vertex 7",
        *(f"property float {nm}" for nm in expected), "end_header",
    ]
    assert len(gsply_property_names(3)) == 62
    hdr = read_gsply_header(path)
    assert hdr.vertex_count == 7 and hdr.sh_degree == 1


@pytest.mark.parametrize("degree", [0, 3])
def test_plyfile_reads_what_we_write(tmp_path: Path, make_frame, degree: int) -> None:
    frame = make_frame(64, degree, seed=7)
    ply = PlyData.read(str(write_gsply(tmp_path / "p.ply", frame)))
    assert ply.byte_order == "<" and not ply.text
    (vertex,) = ply.elements
    assert vertex.name == "vertex" and vertex.count == 64
    assert [p.name for p in vertex.properties] == gsply_property_names(degree)
    k = frame.sh_rest.shape[1]
    for c in range(3):  # channel-major f_rest, as the reference code writes it
        for j in range(k):
            assert np.array_equal(vertex[f"f_rest_{c * k + j}"], frame.sh_rest[:, j, c])
    for name, col in standard_fields(frame).items():
        assert vertex[name].dtype == np.float32
        assert np.array_equal(vertex[name], col), name
    for name in ("nx", "ny", "nz"):
        assert not np.any(vertex[name])


def test_reads_other_order_extra_properties_and_doubles(tmp_path: Path, make_frame) -> None:
    frame = make_frame(40, 3, seed=3)
    cols = standard_fields(frame)
    names = list(cols)
    order = np.random.default_rng(1).permutation(len(names))
    fields = {names[i]: cols[names[i]] for i in order}
    fields["x"] = fields["x"].astype(np.float64)  # a double property
    fields["red"] = np.arange(40, dtype=np.uint8)  # extras of other types, in between
    fields["density"] = np.linspace(0, 1, 40)
    fields = dict(list(fields.items())[::-1])
    camera = np.zeros(2, dtype=[("fx", "f4"), ("id", "i4")])  # an element before vertex
    path = tmp_path / "other.ply"
    arr = np.empty(40, dtype=[(k, v.dtype.str) for k, v in fields.items()])
    for k, v in fields.items():
        arr[k] = v
    vertex = PlyElement.describe(arr, "vertex")
    PlyData([PlyElement.describe(camera, "camera"), vertex],
            comments=["made by plyfile"]).write(str(path))

    back = read_gsply(path, keep_extra=True)
    assert_same_bits(frame, back)
    assert back.comments == ["made by plyfile"]
    assert set(back.extra) == {"red", "density"}
    assert np.array_equal(back.extra["red"], fields["red"])


def test_reads_all_double_file(tmp_path: Path, make_frame) -> None:
    frame = make_frame(30, 1)
    fields = {k: v.astype(np.float64) + 1e-9 for k, v in standard_fields(frame).items()}
    back = read_gsply(write_with_plyfile(tmp_path / "d.ply", fields))
    assert np.array_equal(back.means[:, 1], fields["y"].astype(np.float32))
    assert back.sh_degree == 1 and back.means.dtype == np.float32


# -- derived values -------------------------------------------------------------------------------


def test_from_activated_and_properties(make_frame) -> None:
    rng = np.random.default_rng(5)
    n = 100
    quats = rng.normal(size=(n, 4))
    scales = rng.uniform(0.01, 0.5, size=(n, 3))
    opac = rng.uniform(0, 1, size=n)
    opac[:2] = (0.0, 1.0)
    rgb = rng.uniform(0, 1, size=(n, 3))
    f = GaussianFrame.from_activated(rng.normal(size=(n, 3)), quats, scales, opac, rgb)
    assert f.sh_degree == 0 and f.sh_rest.shape == (n, 0, 3)
    np.testing.assert_allclose(f.scales, scales, rtol=1e-5)
    np.testing.assert_allclose(f.opacities, np.clip(opac, 1e-6, 1 - 1e-6), atol=1e-6)
    np.testing.assert_allclose(f.rgb, rgb, atol=1e-6)
    np.testing.assert_allclose(f.sh_dc, (rgb - 0.5) / SH_C0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(f.quats, axis=1), 1, rtol=1e-6)
    iso = GaussianFrame.from_activated(np.zeros((2, 3)), np.eye(4)[:2], [0.1, 0.2], [0.5, 0.5],
                                       np.zeros((2, 3)))
    np.testing.assert_allclose(iso.scales, [[0.1] * 3, [0.2] * 3], rtol=1e-6)
    big = make_frame(3)
    big.opacity_logits[:] = (-200, 0, 200)
    assert np.array_equal(big.opacities, np.array([0, 0.5, 1], np.float32))
    big.quats[0] = 0
    u = big.unit_quats()
    assert np.array_equal(u[0], [1, 0, 0, 0]) and np.allclose(np.linalg.norm(u, axis=1), 1)
    with pytest.raises(FormatError, match="positive"):
        GaussianFrame.from_activated(np.zeros((1, 3)), [[1, 0, 0, 0]], [[0, 1, 1]], [1], [[0] * 3])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"means": np.zeros((4, 2))}, "means must be"),
        ({"quats": np.zeros((3, 4))}, "quats must be"),
        ({"opacity_logits": np.zeros((4, 1))}, "opacity_logits must be"),
        ({"sh_rest": np.zeros((4, 4, 3))}, "sh_rest must be"),
        ({"extra": {"x": np.zeros(4)}}, "not allowed"),
        ({"extra": {"bad name": np.zeros(4)}}, "not allowed"),
        ({"extra": {"e": np.zeros(4, np.int64)}}, "PLY scalar type"),
        ({"comments": ["two\nlines"]}, "single lines"),
    ],
)
def test_invalid_frames_are_rejected(change: dict, match: str) -> None:
    args = {"means": np.zeros((4, 3)), "quats": np.zeros((4, 4)), "log_scales": np.zeros((4, 3)),
            "opacity_logits": np.zeros(4), "sh_dc": np.zeros((4, 3))}
    with pytest.raises(FormatError, match=match):
        GaussianFrame(**(args | change))


# -- broken files ---------------------------------------------------------------------------------


def error_for(path: Path) -> str:
    with pytest.raises(FormatError) as info:
        read_gsply(path)
    msg = str(info.value)
    assert str(path) in msg
    assert info.value.code == "bad_file"
    return msg


def test_truncated_file(tmp_path: Path, make_frame) -> None:
    path = write_gsply(tmp_path / "t.ply", make_frame(10, 0))
    data = path.read_bytes()
    path.write_bytes(data[:-9])
    msg = error_for(path)
    assert "truncated" in msg and "10 vertices x 68 bytes = 680 bytes" in msg
    assert "only 671 bytes" in msg
    path.write_bytes(data[: data.index(b"end_header")])
    assert "end_header" in error_for(path)


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "g.ply"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    assert "not a PLY file" in error_for(path)
    path.write_bytes(b"")
    assert "not a PLY file" in error_for(path)
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n\xff\xfe\n")
    assert "not ASCII" in error_for(path)
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nbogus\nend_header\n")
    assert "unexpected header line" in error_for(path)
    path.write_bytes(b"ply\nelement vertex 0\nend_header\n")
    assert "no 'format' line" in error_for(path)
    assert "cannot read" in error_for(tmp_path / "missing.ply")
    assert "cannot read" in error_for(tmp_path)


@pytest.mark.parametrize(("kw", "fmt"), [({"byte_order": ">"}, "binary_big_endian"),
                                          ({"text": True}, "ascii")])
def test_big_endian_and_ascii_are_rejected(tmp_path: Path, make_frame, kw: dict, fmt: str) -> None:
    path = write_with_plyfile(tmp_path / "f.ply", standard_fields(make_frame(5)), **kw)
    msg = error_for(path)
    assert fmt in msg and "binary_little_endian" in msg


def test_missing_properties_are_listed(tmp_path: Path, make_frame) -> None:
    fields = standard_fields(make_frame(5))
    del fields["opacity"], fields["rot_0"], fields["scale_2"]
    msg = error_for(write_with_plyfile(tmp_path / "m.ply", fields))
    assert "missing required vertex properties ['opacity', 'scale_2', 'rot_0']" in msg


def test_bad_sh_and_types_are_rejected(tmp_path: Path, make_frame) -> None:
    fields = standard_fields(make_frame(5, 1))
    del fields["f_rest_8"]
    assert "f_rest_" in error_for(write_with_plyfile(tmp_path / "a.ply", fields))
    fields = standard_fields(make_frame(5))
    fields["opacity"] = np.full(5, 200, np.uint8)
    assert "float or double" in error_for(write_with_plyfile(tmp_path / "b.ply", fields))


def test_list_properties_and_no_vertex(tmp_path: Path) -> None:
    path = tmp_path / "l.ply"
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
                     b"property list uchar int idx\nend_header\n\x01\x00\x00\x00\x00")
    assert "list properties" in error_for(path)
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement face 0\n"
                     b"property list uchar int vertex_indices\nend_header\n")
    assert "list properties" in error_for(path)
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement face 0\n"
                     b"property float a\nend_header\n")
    assert "no 'vertex' element" in error_for(path)
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 0\n"
                     b"property float a\nproperty float a\nend_header\n")
    assert "appears twice" in error_for(path)
