"""The HTML sanitiser of WAS: what may remain of an untrusted message's HTML
(inbound mail) and of what a user writes in the composer.

HTML goes through nh3 (no scripts, no event handlers, no forms, frames or
``<style>`` blocks, no ``javascript:`` or ``data:`` links). Inline styles are
kept, each declaration parsed by tinycss2 — a CSS tokenizer, not a regular
expression — and kept only when its property is in :data:`CSS_PROPERTIES`
(colours, fonts, spacing, borders, sizes, alignment: what newsletters are made
of; nothing that positions over the page) and its value holds no ``url()``,
no function but colour functions, and no ``expression``. So a newsletter keeps
its colours and layout while nothing in it can load, run or cover the page.

Links may go to http, https, mailto or a fragment; images may come from an
inline part (``cid:``, turned into a ``data:`` URL of the part by the
caller's ``inline_image_url``), a raster ``data:image/…``, or a remote host only when
the reader asks (else counted as held back). The body is then served in a
sandboxed frame under a Content-Security-Policy that forbids scripts and remote
loads anyway (:mod:`was.pages.inbox`).
"""

from __future__ import annotations

import re
from typing import Callable

import nh3
import tinycss2

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "col", "colgroup", "dd", "del", "div",
    "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol", "p",
    "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "*": {"align", "bgcolor", "color", "dir", "lang", "title", "width", "height", "valign", "style"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "font": {"face", "size", "color"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "table": {"border", "cellpadding", "cellspacing"},
}
_SIDES = ("", "-top", "-right", "-bottom", "-left")
CSS_PROPERTIES = frozenset({
    "color", "background", "background-color", "opacity",
    "font", "font-family", "font-size", "font-style", "font-variant", "font-weight", "line-height",
    "letter-spacing", "word-spacing", "text-align", "text-decoration", "text-indent", "text-transform",
    "vertical-align", "white-space", "word-break", "word-wrap", "overflow-wrap", "direction",
    "width", "min-width", "max-width", "height", "min-height", "max-height", "display", "float", "clear",
    "table-layout", "border-collapse", "border-spacing", "caption-side", "empty-cells", "list-style",
    "list-style-type", "list-style-position", "border-radius", "box-sizing", "overflow", "overflow-x",
    "overflow-y", "visibility",
    *(f"margin{side}" for side in _SIDES), *(f"padding{side}" for side in _SIDES),
    *(f"border{side}{part}" for side in _SIDES for part in ("", "-color", "-style", "-width")),
})
#: the only functions a kept CSS value may call
CSS_FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla"})
#: ``display`` values that cannot take an element out of the message's flow
CSS_DISPLAY = frozenset({"block", "inline", "inline-block", "none", "table", "table-row", "table-cell",
                         "list-item", "flex", "inline-table"})
REMOTE_SCHEMES = ("http:", "https:", "//")
LINK_SCHEMES = ("http:", "https:", "mailto:", "#")
DATA_IMAGE = re.compile(r"data:image/(png|gif|jpeg|webp);base64,", re.IGNORECASE)
#: control characters and spaces a browser ignores inside a URL scheme ("java\tscript:")
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")


def clean_style(style: str) -> str | None:
    """The declarations of an inline ``style`` that may stay, re-serialised (None if none may)."""
    kept = []
    for declaration in tinycss2.parse_blocks_contents(style, skip_comments=True, skip_whitespace=True):
        if declaration.type != "declaration":
            continue
        name = declaration.lower_name
        if name not in CSS_PROPERTIES or not _safe_value(declaration.value):
            continue
        value = tinycss2.serialize(declaration.value).strip()
        if name == "display" and value.lower() not in CSS_DISPLAY:
            continue
        kept.append(f"{name}:{value}{' !important' if declaration.important else ''}")
    return "; ".join(kept) or None


def _safe_value(tokens) -> bool:
    for token in tokens:
        if token.type in ("url", "error", "at-keyword", "{} block"):
            return False
        if token.type == "ident" and "expression" in token.lower_value:
            return False
        if token.type == "function":
            if token.lower_name not in CSS_FUNCTIONS or not _safe_value(token.arguments):
                return False
        if token.type in ("() block", "[] block") and not _safe_value(token.content):
            return False
    return True


def _scheme_text(value: str) -> str:
    return _URL_NOISE.sub("", value).lower()


def sanitize_html(markup: str, allow_remote_images: bool = False,
                  inline_image_url: Callable[[str], str | None] | None = None) -> tuple[str, int]:
    """Clean untrusted HTML; returns the safe markup and how many remote images
    were held back. ``inline_image_url`` maps a ``cid:`` reference (without
    the scheme) to the URL that shows it, or None (the image is dropped)."""
    held_back = 0

    def keep(tag: str, attribute: str, value: str):
        nonlocal held_back
        if attribute == "style":
            return clean_style(value)
        lowered = _scheme_text(value)
        if tag == "a" and attribute == "href":
            return value if lowered.startswith(LINK_SCHEMES) else None
        if tag == "img" and attribute == "src":
            if lowered.startswith(REMOTE_SCHEMES):
                if allow_remote_images:
                    return value
                held_back += 1
                return None
            if lowered.startswith("cid:"):
                return inline_image_url(value.strip()[4:]) if inline_image_url else None
            return value if DATA_IMAGE.match(lowered) else None
        return value

    cleaned = nh3.clean(
        markup, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, clean_content_tags={"script", "style"},
        url_schemes={"http", "https", "mailto", "cid", "data"}, link_rel="noopener noreferrer nofollow",
        attribute_filter=keep, strip_comments=True,
    )
    return cleaned, held_back


def sanitize_composed(markup: str) -> str:
    """Clean what a user wrote in the composer (remote images allowed: it is outbound mail)."""
    return sanitize_html(markup, allow_remote_images=True)[0]
