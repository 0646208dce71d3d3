"""Side-by-side figures of the study (PNG, over white): columns of frames, one row per strip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .metrics import object_box, over_white

LABEL_H = 14


def square_box(alphas: list[np.ndarray], pad: int = 6) -> tuple[int, int, int, int]:
    """A square (y0, y1, x0, x1) around the union of the masks over frames (whole image when
    empty), kept inside the image where it fits."""
    H, W = alphas[0].shape
    y0, y1, x0, x1 = object_box(*alphas, pad=pad)
    side = min(max(y1 - y0, x1 - x0), H, W)
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    y0 = int(np.clip(cy - side // 2, 0, H - side))
    x0 = int(np.clip(cx - side // 2, 0, W - side))
    return y0, y0 + side, x0, x0 + side


def tile(rgba: np.ndarray, box: tuple[int, int, int, int] | None, size: int) -> Image.Image:
    img = over_white(rgba)
    if box is not None:
        y0, y1, x0, x1 = box
        img = img[y0:y1, x0:x1]
    im = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return im.resize((size, size), Image.LANCZOS)


def strips(rows: list[tuple[str, list[Image.Image]]], path: Path, title: str = "") -> Path:
    """Rows of equal tiles with a label above each row; written to ``path``."""
    size = rows[0][1][0].size[0]
    n = max(len(r[1]) for r in rows)
    top = LABEL_H if title else 0
    out = Image.new("RGB", (n * size, top + len(rows) * (size + LABEL_H)), "white")
    d = ImageDraw.Draw(out)
    if title:
        d.text((2, 1), title, fill=(0, 0, 0))
    for i, (label, tiles) in enumerate(rows):
        y = top + i * (size + LABEL_H)
        d.text((2, y + 1), label, fill=(60, 60, 60))
        for j, t in enumerate(tiles):
            out.paste(t, (j * size, y + LABEL_H))
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path
