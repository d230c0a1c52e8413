"""The "tokens" view in headless Chromium: exact escaped text, tooltips, independent views."""

import json
from pathlib import Path

import pytest

from ecco.render import View, save_report

pytestmark = pytest.mark.browser

EVIL = "</script><script>window.__pwned=1</script>"
# (text, id, continues_word, special)
INPUT = [
    ("<|endoftext|>", 50256, False, True),
    ("Hello", 15496, False, False),
    (" wor", 995, False, False),
    ("ld", 335, True, False),
    (" " + EVIL, 4242, False, False),
]
OUTPUT = [
    (" <b>x</b>", 1111, False, False),
    (" &amp;", 2222, False, False),
    ("\n", 198, False, False),
    (" naïve 日本 🙂", 3333, False, False),
    ("ing", 278, True, False),
]


def tokens_data(title: str | None = None, inputs=INPUT, outputs=OUTPUT) -> dict:
    rows = [(*t, True) for t in inputs] + [(*t, False) for t in outputs]
    return {
        "tokens": [
            {"text": text, "id": tid, "position": pos, "is_input": is_input,
             "continues_word": cont, "special": special}
            for pos, (text, tid, cont, special, is_input) in enumerate(rows)
        ],
        "n_input_tokens": len(inputs),
        "title": title,
    }


def open_saved(open_html, html_path: Path):
    return open_html(html_path.read_text(encoding="utf-8"))


def test_tokens_render_as_exact_text(open_html, tmp_path: Path) -> None:
    data = tokens_data(title="<i>not italic</i>")
    page = open_saved(open_html, View("tokens", data).save_html(tmp_path / "tokens.html"))
    tokens = page.locator(".ecco-token")
    assert tokens.all_text_contents() == [t["text"] for t in data["tokens"]]
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator(".ecco-view b, .ecco-view i, .ecco-view script").count() == 0
    assert page.locator(".ecco-title").text_content() == "<i>not italic</i>"
    assert page.locator(".ecco-output").count() == len(OUTPUT)
    assert page.locator(".ecco-input").count() == len(INPUT)
    assert page.locator(".ecco-special").count() == 1
    for i, tok in enumerate(data["tokens"]):
        assert tokens.nth(i).get_attribute("data-position") == str(tok["position"])
        assert tokens.nth(i).get_attribute("data-token-id") == str(tok["id"])


def test_layout_newline_marker_and_word_gaps(open_html, tmp_path: Path) -> None:
    page = open_saved(open_html, View("tokens", tokens_data()).save_html(tmp_path / "tokens.html"))
    newline = page.locator('.ecco-token[data-token-id="198"]')
    assert newline.evaluate("e => getComputedStyle(e.querySelector('.ecco-ctrl'), '::before').content") == '"\\\\n"'
    assert newline.bounding_box()["height"] == page.locator(".ecco-token").nth(1).bounding_box()["height"]
    wor, ld, evil = (page.locator(f'.ecco-token[data-token-id="{i}"]').bounding_box() for i in (995, 335, 4242))
    assert ld["x"] == pytest.approx(wor["x"] + wor["width"], abs=0.5)  # sub-word piece: flush
    assert evil["x"] > ld["x"] + ld["width"] + 2  # new word: a gap


def test_hover_shows_tooltip(open_html, tmp_path: Path) -> None:
    page = open_saved(open_html, View("tokens", tokens_data()).save_html(tmp_path / "tokens.html"))
    tooltip = page.locator(".ecco-tooltip")
    assert tooltip.count() == 1 and tooltip.is_hidden()
    page.hover('.ecco-token[data-token-id="4242"]')
    assert tooltip.is_visible()
    text = tooltip.text_content()
    assert "id 4242" in text and "position 4" in text and "input" in text
    assert json.dumps(" " + EVIL) in text  # the token as a quoted string, shown as text
    page.hover('.ecco-token[data-token-id="198"]')
    assert "id 198" in tooltip.text_content() and "generated" in tooltip.text_content()
    page.mouse.move(0, 0)
    assert tooltip.is_hidden()


def test_two_views_on_one_page_are_independent(open_html, tmp_path: Path) -> None:
    first = View("tokens", tokens_data(title="first"))
    second = View("tokens", tokens_data(title="second", inputs=[("Bonjour", 7, False, False)], outputs=[]))
    page = open_saved(open_html, save_report([first, second], tmp_path / "report.html", title="two"))
    roots = page.locator(".ecco-view-tokens")
    assert roots.count() == 2
    a, b = roots.nth(0), roots.nth(1)
    assert a.get_attribute("id") != b.get_attribute("id")
    assert a.locator(".ecco-token").count() == len(INPUT) + len(OUTPUT)
    assert b.locator(".ecco-token").all_text_contents() == ["Bonjour"]
    tip_a, tip_b = a.locator(".ecco-tooltip"), b.locator(".ecco-tooltip")
    assert tip_a.count() == 1 and tip_b.count() == 1

    a.locator('.ecco-token[data-token-id="995"]').hover()
    assert tip_a.is_visible() and "id 995" in tip_a.text_content()
    assert tip_b.is_hidden() and tip_b.text_content() == ""

    b.locator(".ecco-token").hover()
    assert tip_b.is_visible() and "id 7" in tip_b.text_content() and "position 0" in tip_b.text_content()
    assert tip_a.is_hidden() and "id 995" in tip_a.text_content()


def test_common_util_helpers(open_html, tmp_path: Path) -> None:
    page = open_saved(open_html, save_report([View("tokens", tokens_data())] * 2, tmp_path / "twice.html"))
    u = "window.ecco.util"
    assert page.evaluate(f"[{u}.colorScale(0), {u}.colorScale(1), {u}.colorScale(2), {u}.colorScale(NaN)]") == [
        "rgb(68, 1, 84)", "rgb(253, 231, 37)", "rgb(253, 231, 37)", "transparent"]
    assert page.evaluate(f"[{u}.textColor(0), {u}.textColor(1), {u}.colorScale(0.5, 'blue')]") == [
        "#fff", "#000", "rgba(45, 112, 230, 0.425)"]
    assert page.evaluate(f"{u}.el('p', {{class: 'x', title: '<b>'}}, ['<b>', null, 'y']).outerHTML") == (
        '<p class="x" title="&lt;b&gt;">&lt;b&gt;y</p>')
