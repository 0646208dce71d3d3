"""Shared by the batch tests: the files an HTML page links to."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import pytest


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href", "poster")]


@pytest.fixture
def html_links() -> Callable[[str], list[str]]:
    """``html_links(page)``: every ``src``, ``href`` and ``poster`` of ``page``, in order."""

    def links(page: str) -> list[str]:
        parser = _Links()
        parser.feed(page)
        return parser.links

    return links
