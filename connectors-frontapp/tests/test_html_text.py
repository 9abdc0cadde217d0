from __future__ import annotations

import pytest

from apex_connector_frontapp.html_text import clean_text, html_to_text


def test_blocks_become_lines_and_entities_are_decoded() -> None:
    html = "<div>Load&nbsp;4471823</div><p>PRO 0286&#8209;55431 &amp; BOL</p><ul><li>one</li><li>two</li></ul>"
    assert html_to_text(html) == "Load 4471823\n\nPRO 0286\u201155431 & BOL\n\none\n\ntwo"


def test_scripts_styles_and_head_are_dropped() -> None:
    html = "<html><head><title>t</title><style>p{}</style></head><body><script>alert(1)</script>Hi</body></html>"
    assert html_to_text(html) == "Hi"


def test_br_breaks_lines() -> None:
    assert html_to_text("Thanks,<br>Dana<br/>Acme") == "Thanks,\nDana\nAcme"


@pytest.mark.parametrize("html", ["<![if !supportLists]>x<![endif]>", "<a href='x", "<<>>", "</p></div>text"])
def test_broken_markup_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


def test_clean_text_removes_controls_and_lone_surrogates() -> None:
    assert clean_text("a\x00b\x07c\ud800d\r\ne") == "abc?d\ne"
