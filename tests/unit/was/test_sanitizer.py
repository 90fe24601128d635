"""The CSS half of WAS's sanitiser: inline styles a newsletter is made of stay,
anything that loads, runs or covers the page goes; data: and relative links go."""

from __future__ import annotations

import pytest

from was.sanitizer import clean_style, sanitize_html


@pytest.mark.parametrize("style, kept", [
    ("color:#c00; background-color: rgb(11, 95, 255); font-size:14px", "color:#c00; background-color:rgb(11, 95, 255); font-size:14px"),
    ("border: 1px solid #ccc !important; padding:0 4px", "border:1px solid #ccc !important; padding:0 4px"),
    ("background: #fff url(https://tracker.example/p.gif)", None),
    ("background-image: url('x.png'); color: red", "color:red"),
    ("color: expression(alert(1))", None),
    ("width: calc(100% - 1px); height: 10px", "height:10px"),
    ("position: fixed; top: 0; z-index: 9", None),
    ("display: grid; display: none", "display:none"),
    ("color: red; } body { background: red", "color:red"),
    ("@import 'x.css'; color: blue", "color:blue"),
    ("color: \\72 ed; behavior: url(x.htc)", "color:red"),  # escapes read as CSS reads them
    ("", None),
])
def test_inline_styles(style, kept):
    assert clean_style(style) == kept


def test_a_styled_table_keeps_its_colours():
    markup, held = sanitize_html('<table style="background-color:#0b5fff"><tr><td style="color:#fff;'
                                 'position:absolute">Hi</td></tr></table>')
    assert 'style="background-color:#0b5fff"' in markup and 'style="color:#fff"' in markup and held == 0


@pytest.mark.parametrize("href", ["data:text/html,<script>alert(1)</script>", " DATA:text/html,x",
                                  "java\tscript:alert(1)", "/logout", "cid:part@x", "vbscript:x"])
def test_links_that_are_not_web_or_mail_lose_their_target(href):
    markup, _ = sanitize_html(f'<a href="{href}">x</a>')
    assert "href" not in markup


def test_cid_images_take_the_callers_url_and_unknown_ones_go():
    markup, held = sanitize_html('<img src="cid:logo@x"><img src="cid:other@x"><img src="data:image/svg+xml,<svg/>">'
                                 '<img src="data:image/png;base64,AAAA"><img src="https://t.example/p.gif">',
                                 inline_image_url=lambda cid: "data:image/png;base64,BBBB" if cid == "logo@x" else None)
    assert markup.count("<img") == 5 and held == 1
    assert 'src="data:image/png;base64,BBBB"' in markup and 'src="data:image/png;base64,AAAA"' in markup
    assert "svg" not in markup and "t.example" not in markup and "cid:" not in markup


def test_style_blocks_and_scripts_go_with_their_content():
    markup, _ = sanitize_html("<style>p{color:red}</style><script>alert(1)</script><p>text</p>")
    assert markup == "<p>text</p>"
