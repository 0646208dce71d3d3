"""A batch's index: ``index.json`` (for pipelines) and ``index.html`` (a contact sheet).

Each entry names its job, state, seed and parameters, the one command that remakes it, and its
files relative to the batch folder (result folder, still, video), so the folder can be moved.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from backend.batch.plan import BatchItem

INDEX_VERSION = 1


@dataclass
class BatchEntry:
    """What became of one item. Paths are relative to the batch folder (None: not made)."""

    name: str
    kind: str
    seed: int | None
    params: dict[str, str]
    inputs: list[str]
    remake: str
    job_id: str | None = None
    state: str = "not_submitted"
    error: str | None = None
    result: str | None = None
    still: str | None = None
    video: str | None = None
    frames: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    @classmethod
    def for_item(cls, item: BatchItem) -> BatchEntry:
        return cls(item.name, item.kind, item.seed, dict(item.params), list(item.inputs),
                   item.remake_command())


def relative(path: Path | None, root: Path) -> str | None:
    return None if path is None else os.path.relpath(path, root)


def write_index(root: Path, kind: str, entries: list[BatchEntry], render: dict | None
                ) -> tuple[Path, Path]:
    """Write ``root/index.json`` and ``root/index.html``; returns both paths."""
    root.mkdir(parents=True, exist_ok=True)
    doc = {"version": INDEX_VERSION, "kind": kind, "render": render,
           "done": sum(e.state == "done" for e in entries), "total": len(entries),
           "items": [asdict(e) for e in entries]}
    json_path, html_path = root / "index.json", root / "index.html"
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    html_path.write_text(contact_sheet(kind, entries))
    return json_path, html_path


def contact_sheet(kind: str, entries: list[BatchEntry]) -> str:
    """An HTML page: per item its still (the video plays on hover), state and remake command."""
    cards = "\n".join(_card(e) for e in entries)
    ok = sum(e.state == "done" for e in entries)
    title = html.escape(f"anim4d batch: {kind} ({ok} of {len(entries)} done)")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; background: #222; color: #ddd; margin: 1em; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 1em; }}
.card {{ background: #333; padding: .5em; border-radius: 6px; }}
.card img, .card video {{ width: 100%; background: #111; display: block; }}
.card.failed {{ outline: 2px solid #c44; }}
code {{ font-size: 11px; word-break: break-all; color: #9cf; }}
.err {{ color: #f88; }}
</style></head><body>
<h1>{title}</h1>
<div class="grid">
{cards}
</div></body></html>
"""


def _card(e: BatchEntry) -> str:
    esc = html.escape
    media = ""
    if e.video:
        poster = f' poster="{esc(e.still)}"' if e.still else ""
        media = (f'<video src="{esc(e.video)}"{poster} muted loop playsinline controls '
                 'onmouseover="this.play()" onmouseout="this.pause()"></video>')
    elif e.still:
        media = f'<img src="{esc(e.still)}" alt="{esc(e.name)}">'
    lines = [f"<b>{esc(e.name)}</b> &middot; {esc(e.state)}"]
    if e.seed is not None:
        lines.append(f"seed {e.seed}")
    if e.params:
        lines.append(esc(", ".join(f"{k}={v}" for k, v in e.params.items())))
    if e.error:
        lines.append(f'<span class="err">{esc(e.error)}</span>')
    if e.result:
        lines.append(f'<a href="{esc(e.result)}">result folder</a>')
    lines.append(f"<code>{esc(e.remake)}</code>")
    cls = "card" if e.state == "done" and not e.error else "card failed"
    return f'<div class="{cls}">{media}<div>{"<br>".join(lines)}</div></div>'
