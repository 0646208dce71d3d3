"""A small shaded orthographic mesh render with numpy and PIL (no Blender): for results pages.

Vertices are rotated (``yaw`` about +y, then ``pitch`` about +x), projected orthographically
along -z onto a square image (a given square of the view plane); faces turned away from the
viewer are culled (outward faces), the rest are filled back to front (painter's order by mean
depth) with a Lambert shade of a fixed light. Good enough to see shapes and poses; headless
Blender rendering is the proper one.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rx @ ry


def view_box(verts: np.ndarray, yaw: float = -35.0, pitch: float = 20.0,
             margin: float = 1.15) -> tuple[np.ndarray, float]:
    """(centre ``[2]``, half side) of a square framing ``verts`` ``[V, 3]`` in the view."""
    xy = (np.asarray(verts, np.float64) @ _rotation(yaw, pitch).T)[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    return (lo + hi) / 2, margin * float((hi - lo).max()) / 2


def render_mesh(verts: np.ndarray, faces: np.ndarray, size: int = 192,
                box: tuple[np.ndarray, float] = (np.zeros(2), 1.2), yaw: float = -35.0,
                pitch: float = 20.0,
                color: tuple[int, int, int] = (200, 160, 110)) -> Image.Image:
    """RGB image ``size`` x ``size`` of the mesh ``verts`` ``[V, 3]``, ``faces`` ``[F, 3]``
    (y up) on white; ``box``: (centre ``[2]``, half side) of the view square
    (:func:`view_box`)."""
    img = Image.new("RGB", (size, size), (255, 255, 255))
    if len(faces) == 0:
        return img
    v = np.asarray(verts, np.float64) @ _rotation(yaw, pitch).T
    tri = v[np.asarray(faces)]  # [F, 3, 3]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    visible = n[:, 2] > 0  # the viewer looks along -z from +z
    light = np.array([0.3, 0.6, 0.75]) / np.linalg.norm([0.3, 0.6, 0.75])
    shade = 0.25 + 0.75 * np.clip(n @ light, 0.0, 1.0)
    order = np.argsort(tri[:, :, 2].mean(1))  # far (low z) first
    order = order[visible[order]]
    centre, half = box
    xy = ((tri[:, :, :2] - centre) / (2 * half) + 0.5) * size
    xy[:, :, 1] = size - xy[:, :, 1]
    draw = ImageDraw.Draw(img)
    base = np.asarray(color, np.float64)
    for f in order:
        c = tuple(int(x) for x in np.clip(base * shade[f], 0, 255))
        draw.polygon([tuple(p) for p in xy[f]], fill=c)
    return img


def grid(images: list[list[Image.Image]], labels: list[str] | None = None,
         col_labels: list[str] | None = None) -> Image.Image:
    """Rows of equal-sized images -> one image, with optional row and column labels."""
    h, w = images[0][0].height, images[0][0].width
    left = 110 if labels else 0
    top = 18 if col_labels else 0
    out = Image.new("RGB", (left + w * max(len(r) for r in images), top + h * len(images)),
                    (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for i, row in enumerate(images):
        for j, im in enumerate(row):
            out.paste(im, (left + j * w, top + i * h))
        if labels:
            draw.text((4, top + i * h + h // 2 - 6), labels[i], fill=(0, 0, 0))
    for j, text in enumerate(col_labels or []):
        draw.text((left + j * w + 4, 3), text, fill=(0, 0, 0))
    return out
