"""3D Gaussian Splatting ``.ply`` files: one frame of splats.

The layout is the one written by the reference 3DGS code and read by the common splat viewers:
``format binary_little_endian 1.0``, one ``vertex`` element, float32 properties in this order::

    x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 f_rest_0 .. f_rest_{3K-1}
    opacity scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3

with ``K = (degree + 1)^2 - 1`` higher-order SH coefficients per colour channel. Semantics:

- ``opacity`` is a logit (opacity = sigmoid(value)), ``scale_*`` are natural logs of the axis
  lengths, ``rot_*`` a quaternion ``w x y z`` (not necessarily unit length on disk);
- ``f_dc_*`` are the SH DC coefficients: colour = 0.5 + C0 * f_dc with C0 = 0.28209479177387814;
- ``f_rest_*`` are stored channel-major: ``f_rest_{c*K + k}`` is coefficient ``k`` of channel
  ``c`` (all R, then all G, then all B); in memory ``sh_rest[:, k, c]``;
- normals are unused and written as zeros.

The reader accepts any property order, extra properties (dropped, or kept in
``GaussianFrame.extra`` with ``keep_extra=True``), ``float``/``double`` (``float32``/``float64``)
types and elements before or after ``vertex`` (skipped). Data read from ``double`` properties is
rounded to float32. ASCII and big-endian files are rejected with a :class:`FormatError`.

Blender's PLY importer turns every vertex property except ``x y z`` and the normals into a point
attribute of the same name, except a property named ``t``, which it drops: do not use that name
for an extra property meant for Blender.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FormatError

SH_C0 = 0.28209479177387814

#: PLY scalar type names (both spellings) -> little-endian numpy dtype strings.
PLY_TYPES: dict[str, str] = {
    "char": "<i1", "int8": "<i1", "uchar": "<u1", "uint8": "<u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}
_TYPE_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort",
               "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}
_FLOAT_DTYPES = ("<f4", "<f8")
_MAX_HEADER_LINES = 100_000
_MAX_LINE = 4096
_F_REST = re.compile(r"f_rest_(\d+)$")
_NAME = re.compile(r"[!-~]+")  # printable ASCII, no spaces

_MEANS = ("x", "y", "z")
_NORMALS = ("nx", "ny", "nz")
_DC = ("f_dc_0", "f_dc_1", "f_dc_2")
_SCALES = ("scale_0", "scale_1", "scale_2")
_ROTS = ("rot_0", "rot_1", "rot_2", "rot_3")
REQUIRED_PROPERTIES: tuple[str, ...] = _MEANS + _DC + ("opacity",) + _SCALES + _ROTS


def sh_rest_count(degree: int) -> int:
    """Higher-order SH coefficients per channel for ``degree``: ``(degree + 1)^2 - 1``."""
    if degree < 0:
        raise ValueError(f"SH degree must be >= 0, got {degree}")
    return (degree + 1) ** 2 - 1


def _degree_of(k: int) -> int | None:
    """SH degree with ``k`` rest coefficients per channel, or None if ``k`` matches no degree."""
    root = math.isqrt(k + 1)
    return root - 1 if root * root == k + 1 else None


def gsply_property_names(sh_degree: int) -> list[str]:
    """The standard property names, in file order, for splats of SH degree ``sh_degree``."""
    rest = [f"f_rest_{i}" for i in range(3 * sh_rest_count(sh_degree))]
    return [*_MEANS, *_NORMALS, *_DC, *rest, "opacity", *_SCALES, *_ROTS]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warning for large negative logits
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(x.dtype, copy=False)


@dataclass(eq=False)
class GaussianFrame:
    """One frame of ``N`` Gaussians, stored as on disk (pre-activation), float32.

    - ``means`` ``[N, 3]``: centres;
    - ``quats`` ``[N, 4]``: rotations ``w x y z`` (not necessarily normalised);
    - ``log_scales`` ``[N, 3]``: natural log of the axis lengths;
    - ``opacity_logits`` ``[N]``: opacity before the sigmoid;
    - ``sh_dc`` ``[N, 3]``: SH DC coefficient per channel (RGB);
    - ``sh_rest`` ``[N, K, 3]``: higher-order SH, ``K = (degree + 1)^2 - 1`` (``K`` may be 0);
    - ``extra``: optional per-Gaussian ``[N]`` arrays written after the standard properties;
    - ``comments``: PLY header comments (one line each).
    """

    means: np.ndarray
    quats: np.ndarray
    log_scales: np.ndarray
    opacity_logits: np.ndarray
    sh_dc: np.ndarray
    sh_rest: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        def f32(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a, dtype=np.float32)

        self.means = f32(self.means)
        self.quats = f32(self.quats)
        self.log_scales = f32(self.log_scales)
        self.opacity_logits = f32(self.opacity_logits)
        self.sh_dc = f32(self.sh_dc)
        n = self.means.shape[0] if self.means.ndim else 0
        self.sh_rest = f32(np.zeros((n, 0, 3)) if self.sh_rest is None else self.sh_rest)
        self.extra = {k: np.ascontiguousarray(v) for k, v in self.extra.items()}
        self.comments = [str(c) for c in self.comments]
        self.validate()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_activated(
        cls,
        means: np.ndarray,
        quats: np.ndarray,
        scales: np.ndarray,
        opacities: np.ndarray,
        rgb: np.ndarray,
        sh_rest: np.ndarray | None = None,
        eps: float = 1e-6,
    ) -> GaussianFrame:
        """Build a frame from activated values.

        ``means`` ``[N, 3]``; ``quats`` ``[N, 4]`` (w x y z, normalised here); ``scales``
        ``[N, 3]`` axis lengths, or ``[N]`` for isotropic splats (all > 0); ``opacities`` ``[N]``
        in [0, 1] (clipped to ``[eps, 1 - eps]`` before the logit); ``rgb`` ``[N, 3]`` colour
        (stored as SH DC: ``(rgb - 0.5) / C0``); ``sh_rest`` optional ``[N, K, 3]``.
        """
        means = np.asarray(means, dtype=np.float64)
        n = means.shape[0] if means.ndim else 0
        q = np.asarray(quats, dtype=np.float64)
        norm = np.linalg.norm(q, axis=-1, keepdims=True) if q.ndim == 2 else None
        if norm is None or np.any(norm == 0) or not np.all(np.isfinite(norm)):
            raise FormatError("quats must be [N, 4] non-zero finite quaternions (w x y z)")
        s = np.asarray(scales, dtype=np.float64)
        if s.ndim == 1 or (s.ndim == 2 and s.shape[1] == 1):
            s = np.repeat(s.reshape(-1, 1), 3, axis=1)
        if s.size and not np.all(s > 0):
            raise FormatError("scales must be positive")
        op = np.clip(np.asarray(opacities, dtype=np.float64).reshape(-1), eps, 1.0 - eps)
        rgb = np.asarray(rgb, dtype=np.float64)
        return cls(
            means=means,
            quats=q / norm,
            log_scales=np.log(s),
            opacity_logits=np.log(op) - np.log1p(-op),
            sh_dc=(rgb - 0.5) / SH_C0,
            sh_rest=np.zeros((n, 0, 3)) if sh_rest is None else sh_rest,
        )

    # -- derived values -----------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of Gaussians ``N``."""
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """SH degree (0 to 3 in practice) implied by ``sh_rest.shape[1]``."""
        deg = _degree_of(int(self.sh_rest.shape[1]))
        assert deg is not None  # checked by validate()
        return deg

    @property
    def scales(self) -> np.ndarray:
        """Axis lengths ``[N, 3]``: ``exp(log_scales)``."""
        return np.exp(self.log_scales)

    @property
    def opacities(self) -> np.ndarray:
        """Opacities ``[N]`` in [0, 1]: ``sigmoid(opacity_logits)``."""
        return _sigmoid(self.opacity_logits)

    @property
    def rgb(self) -> np.ndarray:
        """View-independent colour ``[N, 3]``: ``0.5 + C0 * sh_dc`` (not clipped to [0, 1])."""
        return (0.5 + SH_C0 * self.sh_dc).astype(np.float32)

    def unit_quats(self) -> np.ndarray:
        """Rotations ``[N, 4]`` (w x y z) normalised to unit length (zero ones become identity)."""
        norm = np.linalg.norm(self.quats, axis=1, keepdims=True)
        zero = norm[:, 0] == 0
        out = self.quats / np.where(zero[:, None], 1.0, norm)
        out[zero] = (1.0, 0.0, 0.0, 0.0)
        return out.astype(np.float32)

    def validate(self, where: str = "Gaussian frame") -> None:
        """Raise :class:`FormatError` naming the first inconsistency found."""
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        if self.means.ndim != 2 or self.means.shape[1] != 3:
            raise FormatError(f"{where}: means must be [N, 3], got {list(self.means.shape)}")
        for name, arr, shape in (
            ("quats", self.quats, (n, 4)),
            ("log_scales", self.log_scales, (n, 3)),
            ("opacity_logits", self.opacity_logits, (n,)),
            ("sh_dc", self.sh_dc, (n, 3)),
        ):
            if arr.shape != shape:
                raise FormatError(f"{where}: {name} must be {list(shape)}, got {list(arr.shape)}")
        r = self.sh_rest
        if r.ndim != 3 or r.shape[0] != n or r.shape[2] != 3 or _degree_of(r.shape[1]) is None:
            raise FormatError(
                f"{where}: sh_rest must be [N, K, 3] = [{n}, K, 3] with K = (degree + 1)^2 - 1 "
                f"(0, 3, 8, 15, ...), got {list(r.shape)}"
            )
        standard = set(gsply_property_names(self.sh_degree))
        for name, arr in self.extra.items():
            if not _NAME.fullmatch(name) or name in standard:
                raise FormatError(f"{where}: extra property name {name!r} is not allowed")
            if arr.shape != (n,) or f"{arr.dtype.kind}{arr.dtype.itemsize}" not in _TYPE_NAMES:
                raise FormatError(
                    f"{where}: extra property {name!r} must be a [N] = [{n}] array of a PLY "
                    f"scalar type, got {list(arr.shape)} {arr.dtype}"
                )
        for c in self.comments:
            if "\n" in c or "\r" in c:
                raise FormatError(f"{where}: header comments must be single lines, got {c!r}")


# -- writing ----------------------------------------------------------------------------------


def _columns(frame: GaussianFrame) -> dict[str, np.ndarray]:
    """Property name -> ``[N]`` column, in file order (normals left out: they are zeros)."""
    n, k = frame.count, frame.sh_rest.shape[1]
    cols: dict[str, np.ndarray] = {}
    cols.update({nm: frame.means[:, i] for i, nm in enumerate(_MEANS)})
    cols.update({nm: frame.sh_dc[:, i] for i, nm in enumerate(_DC)})
    # channel-major: [N, K, 3] -> [N, 3, K] -> [N, 3K]
    rest = frame.sh_rest.transpose(0, 2, 1).reshape(n, 3 * k)
    cols.update({f"f_rest_{j}": rest[:, j] for j in range(3 * k)})
    cols["opacity"] = frame.opacity_logits
    cols.update({nm: frame.log_scales[:, i] for i, nm in enumerate(_SCALES)})
    cols.update({nm: frame.quats[:, i] for i, nm in enumerate(_ROTS)})
    return cols


def write_gsply(path: str | os.PathLike, frame: GaussianFrame) -> Path:
    """Write ``frame`` as a standard 3DGS ``.ply`` (atomically: temporary file, then rename).

    The body is one structured array written in one call; extra properties follow ``rot_3``.
    """
    frame.validate(str(path))
    path = Path(path)
    fields = [(nm, "<f4") for nm in gsply_property_names(frame.sh_degree)]
    fields += [(nm, arr.dtype.newbyteorder("<")) for nm, arr in frame.extra.items()]
    body = np.zeros(frame.count, dtype=np.dtype(fields))  # zeros: the normals stay 0
    for nm, col in _columns(frame).items():
        body[nm] = col
    for nm, arr in frame.extra.items():
        body[nm] = arr

    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" if c else "comment" for c in frame.comments]
    lines.append(f"element vertex {frame.count}")
    for nm, dt in fields:
        dt = np.dtype(dt)
        lines.append(f"property {_TYPE_NAMES[f'{dt.kind}{dt.itemsize}']} {nm}")
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.write(body.tobytes())
    os.replace(tmp, path)
    return path


# -- reading ----------------------------------------------------------------------------------


@dataclass
class PlyElement:
    """A header element: ``properties`` are ``(name, dtype)``; dtype None marks a list."""

    name: str
    count: int
    properties: list[tuple[str, str | None]]

    @property
    def stride(self) -> int | None:
        """Bytes per item, or None when a list property makes items variable-sized."""
        if any(dt is None for _, dt in self.properties):
            return None
        return sum(np.dtype(dt).itemsize for _, dt in self.properties)


@dataclass
class GsplyHeader:
    """A parsed PLY header: ``data_offset`` is the byte where the body starts."""

    path: Path
    elements: list[PlyElement]
    comments: list[str]
    data_offset: int

    @property
    def vertex(self) -> PlyElement:
        for el in self.elements:
            if el.name == "vertex":
                return el
        raise FormatError(f"{self.path}: no 'vertex' element in the PLY header")

    @property
    def vertex_count(self) -> int:
        return self.vertex.count

    @property
    def sh_degree(self) -> int:
        """SH degree implied by the ``f_rest_*`` properties (checked by the reader)."""
        k = sum(1 for nm, _ in self.vertex.properties if _F_REST.match(nm)) // 3
        return _degree_of(k) or 0


def read_gsply_header(path: str | os.PathLike) -> GsplyHeader:
    """Parse the header of a PLY file without reading its body."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _parse_header(fh, path)
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err.strerror or err})") from None


def _parse_header(fh, path: Path) -> GsplyHeader:
    def bad(msg: str) -> FormatError:
        return FormatError(f"{path}: {msg}")

    def line() -> str:
        raw = fh.readline(_MAX_LINE)
        if not raw:
            raise bad("not a complete PLY file (the header has no 'end_header' line)")
        try:
            return raw.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError:
            raise bad("not a PLY file (the header is not ASCII text)") from None

    magic = fh.readline(8)
    if magic.strip() != b"ply":
        raise bad("not a PLY file (it does not start with the line 'ply')")
    fmt: str | None = None
    elements: list[PlyElement] = []
    comments: list[str] = []
    for _ in range(_MAX_HEADER_LINES):
        text = line()
        tok = text.split()
        if not tok:
            continue
        key = tok[0]
        if key == "end_header":
            break
        if key == "comment":
            comments.append(text.split(None, 1)[1] if len(tok) > 1 else "")
        elif key == "obj_info":
            continue
        elif key == "format":
            if len(tok) != 3:
                raise bad(f"malformed format line {text!r}")
            fmt = tok[1]
            if fmt in ("ascii", "binary_big_endian"):
                raise bad(
                    f"PLY format {fmt!r} is not supported: Gaussian splat files must be "
                    "'binary_little_endian' (re-save it as binary little-endian)"
                )
            if fmt != "binary_little_endian":
                raise bad(f"unknown PLY format {fmt!r}; expected 'binary_little_endian'")
            if not tok[2].startswith("1"):
                raise bad(f"unsupported PLY version {tok[2]!r}; expected 1.0")
        elif key == "element":
            if len(tok) != 3 or not tok[2].isdigit():
                raise bad(f"malformed element line {text!r}; expected 'element NAME COUNT'")
            elements.append(PlyElement(tok[1], int(tok[2]), []))
        elif key == "property":
            if not elements:
                raise bad(f"property before any element: {text!r}")
            props = elements[-1].properties
            if len(tok) == 5 and tok[1] == "list":
                if tok[2] not in PLY_TYPES or tok[3] not in PLY_TYPES:
                    raise bad(f"unknown type in {text!r}; known: {sorted(set(PLY_TYPES))}")
                props.append((tok[4], None))
            elif len(tok) == 3:
                if tok[1] not in PLY_TYPES:
                    raise bad(f"unknown type in {text!r}; known: {sorted(set(PLY_TYPES))}")
                props.append((tok[2], PLY_TYPES[tok[1]]))
            else:
                raise bad(f"malformed property line {text!r}")
            names = [nm for nm, _ in props]
            if names.count(names[-1]) > 1:
                raise bad(f"property {names[-1]!r} appears twice in element {elements[-1].name!r}")
        else:
            raise bad(f"unexpected header line {text!r}")
    else:
        raise bad(f"header longer than {_MAX_HEADER_LINES} lines")
    if fmt is None:
        raise bad("PLY header has no 'format' line")
    return GsplyHeader(path, elements, comments, fh.tell())


def read_gsply(path: str | os.PathLike, keep_extra: bool = False) -> GaussianFrame:
    """Read a 3DGS ``.ply``; errors are :class:`FormatError` naming the file and the problem.

    Properties may come in any order; ``nx ny nz`` and unknown properties are ignored, or kept in
    ``GaussianFrame.extra`` (their own dtype) with ``keep_extra=True``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            header = _parse_header(fh, path)
            dtype, body_offset, count = _vertex_layout(header)
            size = os.fstat(fh.fileno()).st_size
            need = count * dtype.itemsize
            have = max(size - body_offset, 0)
            if have < need:
                raise FormatError(
                    f"{path}: truncated: the header declares {count} vertices x "
                    f"{dtype.itemsize} bytes = {need} bytes of vertex data, but only {have} "
                    "bytes follow"
                )
            fh.seek(body_offset)
            body = np.fromfile(fh, dtype=dtype, count=count) if count else np.zeros(0, dtype)
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(body) != count:
        raise FormatError(f"{path}: truncated: expected {count} vertices, read {len(body)}")
    return _frame_from_body(body, header, keep_extra)


def _vertex_layout(header: GsplyHeader) -> tuple[np.dtype, int, int]:
    """The vertex element's structured dtype, its body offset and its count; checks names."""
    path = header.path
    offset = header.data_offset
    for el in header.elements:
        if el.name == "vertex":
            break
        if el.stride is None:
            raise FormatError(
                f"{path}: element {el.name!r} before 'vertex' has list properties; such files "
                "are not Gaussian splat files"
            )
        offset += el.count * el.stride
    vertex = header.vertex
    if vertex.stride is None:
        lists = [nm for nm, dt in vertex.properties if dt is None]
        raise FormatError(f"{path}: the vertex element has list properties {lists}")
    types = dict(vertex.properties)
    missing = [nm for nm in REQUIRED_PROPERTIES if nm not in types]
    if missing:
        found = [nm for nm in types if not _F_REST.match(nm)]
        raise FormatError(
            f"{path}: not a Gaussian splat file: missing required vertex properties {missing} "
            f"(found {found})"
        )
    rest = sorted(int(m.group(1)) for nm in types if (m := _F_REST.match(nm)))
    if rest != list(range(len(rest))) or len(rest) % 3 or _degree_of(len(rest) // 3) is None:
        raise FormatError(
            f"{path}: f_rest_* properties must be f_rest_0 .. f_rest_{{3K-1}} with "
            f"K = (degree + 1)^2 - 1 (0, 9, 24 or 45 in all), found {len(rest)} "
            f"(indices {rest[:4]}{'...' if len(rest) > 4 else ''})"
        )
    float_names = [*REQUIRED_PROPERTIES, *(f"f_rest_{i}" for i in rest)]
    not_float = [f"{nm}: {_TYPE_NAMES[types[nm][1:]]}" for nm in float_names
                 if types[nm] not in _FLOAT_DTYPES]
    if not_float:
        raise FormatError(
            f"{path}: Gaussian properties must be float or double, found {not_float} "
            "(compressed splat formats are not supported)"
        )
    dtype = np.dtype([(nm, dt) for nm, dt in vertex.properties])
    return dtype, offset, vertex.count


def _gather(body: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Columns ``names`` of the structured ``body`` as a float32 ``[N, len(names)]`` array."""
    out = np.empty((len(body), len(names)), dtype=np.float32)
    for i, nm in enumerate(names):
        out[:, i] = body[nm]
    return out


def _frame_from_body(body: np.ndarray, header: GsplyHeader, keep_extra: bool) -> GaussianFrame:
    n = len(body)
    names = body.dtype.names or ()
    k = sum(1 for nm in names if _F_REST.match(nm)) // 3
    rest = _gather(body, [f"f_rest_{j}" for j in range(3 * k)])
    extra: dict[str, np.ndarray] = {}
    if keep_extra:
        standard = set(gsply_property_names(_degree_of(k) or 0))
        for nm in names:
            if nm not in standard:
                arr = body[nm]
                extra[nm] = arr.astype(arr.dtype.newbyteorder("="))
    return GaussianFrame(
        means=_gather(body, _MEANS),
        quats=_gather(body, _ROTS),
        log_scales=_gather(body, _SCALES),
        opacity_logits=_gather(body, ("opacity",))[:, 0],
        sh_dc=_gather(body, _DC),
        sh_rest=rest.reshape(n, 3, k).transpose(0, 2, 1),
        extra=extra,
        comments=list(header.comments),
    )
