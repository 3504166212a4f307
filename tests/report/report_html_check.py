"""A strict well-formedness check of the report's HTML, built on :mod:`html.parser`.

The report is written with every non-void element closed explicitly, so the check can demand
exact nesting: each end tag closes the element opened last, nothing is left open, void elements
have no end tag, ids are unique, and nothing refers to a resource outside the file.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}
#: Elements the report uses; anything else is a typo.
KNOWN = VOID | {
    "html",
    "head",
    "body",
    "title",
    "style",
    "header",
    "main",
    "nav",
    "section",
    "h1",
    "h2",
    "h3",
    "p",
    "b",
    "i",
    "code",
    "span",
    "a",
    "ol",
    "ul",
    "li",
    "div",
    "table",
    "caption",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "figure",
    "figcaption",
}


@dataclass
class Parsed:
    """What the checker collected."""

    errors: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    doctype: str | None = None


class StrictParser(HTMLParser):
    """Collects errors, ids, images and the cell texts of tables that have an id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = Parsed()
        self.stack: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_decl(self, decl: str) -> None:
        self.out.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag not in KNOWN:
            self.out.errors.append(f"unknown element <{tag}>")
        if "id" in a:
            self.out.ids.append(str(a["id"]))
        for key in ("src", "href"):
            v = a.get(key)
            if v is not None and not (v.startswith("data:") or v.startswith("#")):
                self.out.errors.append(f"external reference {key}={v[:60]!r}")
        if tag == "img":
            self.out.images.append({k: v or "" for k, v in a.items()})
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.out.tables[self._table] = []
        if tag == "tr" and self._table:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.out.errors.append(f"self-closing non-void element <{tag}/>")
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.out.errors.append(f"end tag of void element </{tag}>")
            return
        if not self.stack or self.stack[-1] != tag:
            self.out.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None and self._table:
            self.out.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def check_html(text: str) -> Parsed:
    """Parse ``text`` and return what was found; ``Parsed.errors`` lists every problem."""
    p = StrictParser()
    p.feed(text)
    p.close()
    out = p.out
    if p.stack:
        out.errors.append(f"elements left open: {p.stack}")
    if (out.doctype or "").lower() != "doctype html":
        out.errors.append(f"doctype is {out.doctype!r}, not 'DOCTYPE html'")
    dup = {i for i in out.ids if out.ids.count(i) > 1}
    if dup:
        out.errors.append(f"duplicate ids: {sorted(dup)}")
    return out


def decode_png(src: str) -> tuple[int, int]:
    """Decode a ``data:image/png;base64,...`` URI and return the image size (PIL verifies it)."""
    from PIL import Image

    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    raw = base64.b64decode(src[len(prefix) :], validate=True)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(raw)) as im:
        im.verify()
    with Image.open(io.BytesIO(raw)) as im:
        im.load()
        return im.size
