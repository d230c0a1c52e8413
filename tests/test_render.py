"""Fast checks of ecco.render's HTML output (no browser)."""

import json
import re

import pytest

from ecco.render import View, render_fragment, save_report, standalone_page, view_names

EVIL = "</script><script>window.__pwned=1</script>"
DATA = {
    "tokens": [
        {"text": t, "id": i, "position": i, "is_input": i < 3, "continues_word": False, "special": False}
        for i, t in enumerate(["Hello", EVIL, "<!-- <b>x</b> &amp;", "\u2028\u2029 naïve 日本 🙂", "\n"])
    ],
    "n_input_tokens": 3,
    "title": "a </title> & <b>title</b>",
}


def data_block(html: str) -> str:
    match = re.search(r'<script type="application/json" id="[^"]*-data">(.*?)</script>', html, re.S)
    assert match, "no JSON data block"
    return match.group(1)


def test_json_block_round_trips_and_cannot_close_the_script() -> None:
    html = render_fragment("tokens", DATA)
    block = data_block(html)
    assert json.loads(block) == DATA
    for unsafe in ("<", ">", "&", "\u2028", "\u2029"):
        assert unsafe not in block
    assert html.count(EVIL) == 0


def test_fragment_structure() -> None:
    html = render_fragment("tokens", DATA)
    root_id = re.search(r'<div class="ecco-view ecco-view-tokens" id="(ecco-[0-9a-f]{32})">', html).group(1)
    assert f'id="{root_id}-data"' in html
    assert "<style>" in html and "window.ecco.views[\"tokens\"]" in html
    assert "<style>" not in render_fragment("tokens", DATA, css=False)


def test_ids_are_unique() -> None:
    ids = [re.search(r'id="(ecco-[0-9a-f]+)"', render_fragment("tokens", DATA)).group(1) for _ in range(2)]
    assert ids[0] != ids[1]


def test_view_html_is_stable_but_each_display_gets_its_own_id() -> None:
    view = View("tokens", DATA)
    assert view.html == view.html
    assert view._repr_html_() != view.html


def test_unknown_view_lists_valid_ones() -> None:
    assert "tokens" in view_names() and "common" not in view_names()
    with pytest.raises(ValueError, match="tokens"):
        render_fragment("nope", {})
    with pytest.raises(ValueError, match="valid views"):
        View("../tokens", {})


def test_standalone_page_is_offline_and_escapes_the_title(tmp_path) -> None:
    path = save_report([View("tokens", DATA), View("tokens", DATA)], tmp_path / "r.html", title="<x> & y")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<title>&lt;x&gt; &amp; y</title>" in page
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert page.count('class="ecco-view ecco-view-tokens"') == 2
    assert standalone_page([]).count("<section") == 0
