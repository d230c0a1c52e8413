"""The "attribution" view (input saliency) in headless Chromium: selection, pinning, hidden
tokens, word sums, detailed bars, escaping, independence of several views."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

from ecco.render import View, save_report

pytestmark = pytest.mark.browser

EVIL = " </script><b>x</b>"
# (text, continues_word, special, hidden)
INPUT = [
    ("<|endoftext|>", False, True, True),  # 0: hidden
    ("The", False, False, False),  # 1
    (" capital", False, False, False),  # 2
    (" of", False, False, False),  # 3
    (" Fr", False, False, False),  # 4: word " France" = 4..5
    ("ance", True, False, False),  # 5
    (EVIL, False, False, False),  # 6
    (" is", False, False, False),  # 7
]
OUTPUT = [
    (" Par", False, False, False),  # 8: target 0
    ("is", True, False, False),  # 9: target 1 (continues " Par")
    (".", False, False, False),  # 10: target 2
    ("\n", False, False, False),  # 11: not a target
    (" It", False, False, False),  # 12: target 3
]
TARGETS = [8, 9, 10, 12]
# Unnormalised weights per target over positions 0..t-1 (position 0 is the hidden token).
WEIGHTS = {
    8: [3, 1, 5, 1, 8, 2, 4, 6],
    9: [2, 2, 1, 1, 3, 9, 1, 2, 7],
    10: [1, 4, 2, 2, 1, 1, 6, 3, 2, 5],
    12: [5, 1, 1, 1, 2, 2, 1, 1, 3, 4, 2, 6],
}


def attribution_data(style: str = "minimal", foil: str | None = None, title: str | None = None,
                     raw: bool = True, completeness: list | None = None) -> dict:
    rows = [(*t, True) for t in INPUT] + [(*t, False) for t in OUTPUT]
    tokens = [
        {"text": text, "id": 100 + pos, "position": pos, "is_input": is_input,
         "continues_word": cont, "special": special, "hidden": hidden}
        for pos, (text, cont, special, hidden, is_input) in enumerate(rows)
    ]
    words, start = [], 0
    for pos in range(1, len(tokens) + 1):
        if pos == len(tokens) or not tokens[pos]["continues_word"]:
            words.append([start, pos])
            start = pos
    attributions = [[w / sum(WEIGHTS[t]) for w in WEIGHTS[t]] for t in TARGETS]
    raws = [[(-1) ** i * w * 0.0123 for i, w in enumerate(WEIGHTS[t])] for t in TARGETS] if raw else None
    return {
        "tokens": tokens,
        "n_input_tokens": len(INPUT),
        "targets": TARGETS,
        "attributions": attributions,
        "raw": raws,
        "words": words,
        "method": "ig",
        "method_label": "Integrated gradients",
        "style": style,
        "probs": [0.4213, 0.97, None, 0.0001],
        "entropy": [2.3456, 0.12, None, 5.5],
        "completeness": completeness if completeness is not None else [0.008, 0.071, None, 0.02],
        "foil": foil,
        "title": title,
    }


def open_view(open_html, tmp_path: Path, data: dict):
    path = View("attribution", data).save_html(tmp_path / "attribution.html")
    return open_html(path.read_text(encoding="utf-8"))


def values(root) -> dict[int, float]:
    """{position: float(data-value)} of the token nodes carrying a value."""
    pairs = root.locator(".ecco-token[data-value]").evaluate_all(
        "els => els.map(e => [Number(e.dataset.position), e.dataset.value])")
    return {p: float(v) for p, v in pairs}


def expected(k: int, skip_hidden: bool = True) -> dict[int, float]:
    data = attribution_data()
    hidden = {p for p, t in enumerate(data["tokens"]) if t["hidden"]}
    return {p: v for p, v in enumerate(data["attributions"][k]) if not (skip_hidden and p in hidden)}


def selected(root) -> list[int]:
    return [int(p) for p in root.locator(".ecco-selected").evaluate_all("els => els.map(e => e.dataset.position)")]


def bg_alpha(locator) -> float:
    color = locator.evaluate("e => getComputedStyle(e).backgroundColor")
    if color == "transparent":
        return 0.0
    parts = color[color.index("(") + 1:-1].split(",")
    return float(parts[3]) if len(parts) == 4 else 1.0


def test_initial_selection_values_and_colours(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, attribution_data())
    root = page.locator(".ecco-view-attribution")
    assert selected(root) == [8]
    target = root.locator('.ecco-token[data-position="8"]')
    assert "ecco-target" in target.get_attribute("class") and "ecco-output" in target.get_attribute("class")
    assert target.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
    assert root.locator(".ecco-target").count() == len(TARGETS)
    assert root.locator(".ecco-output").count() == len(OUTPUT)
    got = values(root)
    assert got == expected(0)  # exact numbers, hidden position 0 excluded
    # The strongest visible source is fully coloured; colour intensity follows the values.
    alphas = {p: bg_alpha(root.locator(f'.ecco-token[data-position="{p}"]')) for p in got}
    strongest = max(got, key=got.get)
    assert strongest == 4 and alphas[4] == pytest.approx(0.85, abs=0.01)
    order = sorted(got, key=got.get)
    assert [alphas[p] for p in order] == sorted(alphas.values())
    assert alphas[1] == pytest.approx(0.85 * got[1] / got[4], abs=0.01)
    # Tokens after the target are dimmed and carry no value.
    for p in (9, 10, 11, 12):
        tok = root.locator(f'.ecco-token[data-position="{p}"]')
        assert "ecco-dimmed" in tok.get_attribute("class") and tok.get_attribute("data-value") is None
        assert float(tok.evaluate("e => getComputedStyle(e).opacity")) < 0.6


def test_hover_changes_selection(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, attribution_data())
    root = page.locator(".ecco-view-attribution")
    root.locator('.ecco-token[data-position="12"]').hover()
    assert selected(root) == [12]
    assert values(root) == expected(3)
    assert root.locator('.ecco-token[data-position="8"]').get_attribute("data-value") == str(expected(3)[8])
    root.locator('.ecco-token[data-position="9"]').hover()
    assert selected(root) == [9] and values(root) == expected(1)
    # Leaving the target keeps the selection (hover-previews are sticky); a non-target does nothing.
    root.locator('.ecco-token[data-position="2"]').hover()
    page.mouse.move(0, 0)
    assert selected(root) == [9]


def test_click_pins_and_unpins(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, attribution_data())
    root = page.locator(".ecco-view-attribution")
    root.locator('.ecco-token[data-position="10"]').click()
    assert selected(root) == [10]
    assert "ecco-pinned" in root.locator(".ecco-selected").get_attribute("class")
    assert root.locator(".ecco-selected").get_attribute("aria-pressed") == "true"
    root.locator('.ecco-token[data-position="12"]').hover()
    assert selected(root) == [10] and values(root) == expected(2)
    # Clicking another target moves the pin.
    root.locator('.ecco-token[data-position="9"]').click()
    assert selected(root) == [9] and values(root) == expected(1)
    root.locator('.ecco-token[data-position="8"]').hover()
    assert selected(root) == [9]
    # Clicking the pinned target again unpins: hover previews again.
    root.locator('.ecco-token[data-position="9"]').click()
    assert root.locator(".ecco-pinned").count() == 0
    root.locator('.ecco-token[data-position="12"]').hover()
    assert selected(root) == [12] and values(root) == expected(3)


def test_keyboard_pins(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, attribution_data())
    root = page.locator(".ecco-view-attribution")
    root.locator('.ecco-token[data-position="10"]').focus()
    assert selected(root) == [10]
    page.keyboard.press("Enter")
    assert root.locator(".ecco-pinned").count() == 1
    page.keyboard.press("Enter")
    assert root.locator(".ecco-pinned").count() == 0


def test_hidden_tokens_and_escaping(open_html, tmp_path: Path) -> None:
    data = attribution_data(title="<i>title</i>", foil="<b>London</b>")
    page = open_view(open_html, tmp_path, data)
    root = page.locator(".ecco-view-attribution")
    visible = [t for t in data["tokens"] if not t["hidden"]]
    tokens = root.locator(".ecco-token")
    assert tokens.all_text_contents() == [t["text"] for t in visible]
    assert [int(p) for p in tokens.evaluate_all("els => els.map(e => e.dataset.position)")] == [
        t["position"] for t in visible]
    assert "endoftext" not in root.inner_text()
    assert root.locator('[data-position="0"]').count() == 0
    assert root.locator("b, i, script").count() == 0
    assert root.locator(".ecco-title").text_content() == "<i>title</i>"
    assert root.locator(".ecco-attr-method").text_content() == "Integrated gradients"
    assert root.locator(".ecco-attr-foil").text_content() == "why \u201c Par\u201d rather than \u201c<b>London</b>\u201d"
    root.locator('.ecco-token[data-position="12"]').hover()
    assert root.locator(".ecco-attr-foil").text_content() == "why \u201c It\u201d rather than \u201c<b>London</b>\u201d"


def test_word_toggle_sums_values(open_html, tmp_path: Path) -> None:
    data = attribution_data()
    page = open_view(open_html, tmp_path, data)
    root = page.locator(".ecco-view-attribution")
    root.locator(".ecco-words-toggle").check()
    got = values(root)
    a = data["attributions"][0]
    france = a[4] + a[5]
    assert got[4] == got[5] == pytest.approx(france, rel=1e-12)
    assert got[3] == a[3] and got[6] == a[6]
    alphas = {p: bg_alpha(root.locator(f'.ecco-token[data-position="{p}"]')) for p in (4, 5, 2)}
    assert alphas[4] == alphas[5] == pytest.approx(0.85, abs=0.01)  # the word is now the strongest
    # A target that continues a word: only the word's pieces before it are summed.
    root.locator('.ecco-token[data-position="12"]').hover()
    b = data["attributions"][3]
    got = values(root)
    assert got[8] == got[9] == pytest.approx(b[8] + b[9], rel=1e-12)
    root.locator('.ecco-token[data-position="9"]').hover()
    got = values(root)
    assert got[8] == data["attributions"][1][8]  # " Par" alone: "is" is the target
    root.locator(".ecco-words-toggle").uncheck()
    root.locator('.ecco-token[data-position="8"]').hover()
    assert values(root) == expected(0)


def test_detailed_bars_and_stats(open_html, tmp_path: Path) -> None:
    data = attribution_data(style="detailed")
    page = open_view(open_html, tmp_path, data)
    root = page.locator(".ecco-view-attribution")
    bars = root.locator(".ecco-bar")
    want = expected(0)
    assert bars.count() == len(want)
    positions = [int(p) for p in bars.evaluate_all("els => els.map(e => e.dataset.position)")]
    assert positions == sorted(want)
    widths = bars.evaluate_all("els => els.map(e => parseFloat(e.style.width))")
    assert widths[positions.index(4)] == pytest.approx(100)
    for (p1, w1) in zip(positions, widths):
        for (p2, w2) in zip(positions, widths):
            if want[p1] < want[p2]:
                assert w1 < w2
    rendered = [b.bounding_box()["width"] for b in bars.all()]
    assert rendered[positions.index(4)] == max(rendered)
    values_text = root.locator(".ecco-bar-value").all_text_contents()
    assert values_text == [f"{want[p] * 100:.1f}%" for p in positions]
    raw_text = root.locator(".ecco-bar-raw").all_text_contents()
    raw0 = data["raw"][0]
    assert raw_text == [("+" if raw0[p] > 0 else "") + f"{raw0[p]:#.3g}" for p in positions]
    assert root.locator(".ecco-bar-label").all_text_contents() == [data["tokens"][p]["text"] for p in positions]
    stats = root.locator(".ecco-attr-stats").text_content()
    assert "probability 42.1%" in stats and "entropy 2.35 nats" in stats
    completeness = root.locator(".ecco-attr-completeness")
    assert completeness.text_content() == "IG completeness error 0.8%"
    assert "ecco-warn" not in completeness.get_attribute("class")
    # Second target: large completeness error is flagged; bars follow the selection.
    root.locator('.ecco-token[data-position="9"]').click()
    assert completeness.text_content() == "IG completeness error 7.1%"
    assert "ecco-warn" in completeness.get_attribute("class")
    assert bars.count() == len(expected(1))
    assert "probability 97.0%" in root.locator(".ecco-attr-stats").text_content()
    # Third target: no probability, entropy or completeness.
    root.locator('.ecco-token[data-position="10"]').click()
    assert root.locator(".ecco-attr-completeness").count() == 0
    assert "probability" not in root.locator(".ecco-attr-stats").text_content()
    # Word mode: one row per word.
    root.locator('.ecco-token[data-position="8"]').click()
    root.locator(".ecco-words-toggle").check()
    assert bars.count() == len(want) - 1
    france = root.locator('.ecco-bar[data-position="4"]')
    assert float(france.get_attribute("data-value")) == pytest.approx(want[4] + want[5])
    assert root.locator('.ecco-bar-row[data-position="4"] .ecco-bar-label').text_content() == " France"


def test_detailed_without_raw_or_completeness(open_html, tmp_path: Path) -> None:
    data = attribution_data(style="detailed", raw=False)
    data["completeness"] = None
    data["method"], data["method_label"] = "grad_x_input", "Gradient \u00d7 input"
    page = open_view(open_html, tmp_path, data)
    root = page.locator(".ecco-view-attribution")
    assert root.locator(".ecco-bar").count() == len(expected(0))
    assert root.locator(".ecco-bar-raw").count() == 0
    assert root.locator(".ecco-attr-completeness").count() == 0
    assert root.locator(".ecco-token[data-raw]").count() == 0


def test_minimal_tooltip(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, attribution_data())
    root = page.locator(".ecco-view-attribution")
    tip = root.locator(".ecco-tooltip")
    assert root.locator(".ecco-bar").count() == 0
    root.locator('.ecco-token[data-position="4"]').hover()
    assert tip.is_visible()
    assert f"attribution {expected(0)[4] * 100:.1f}%" in tip.text_content()
    root.locator('.ecco-token[data-position="8"]').hover()
    assert "probability 42.1%" in tip.text_content()
    page.mouse.move(0, 0)
    assert tip.is_hidden()


def test_two_views_are_independent(open_html, tmp_path: Path) -> None:
    first, second = View("attribution", attribution_data()), View("attribution", attribution_data(style="detailed"))
    page = open_html(save_report([first, second], tmp_path / "two.html").read_text(encoding="utf-8"))
    roots = page.locator(".ecco-view-attribution")
    a, b = roots.nth(0), roots.nth(1)
    assert selected(a) == [8] and selected(b) == [8]
    a.locator('.ecco-token[data-position="12"]').click()
    assert selected(a) == [12] and selected(b) == [8]
    assert values(b) == expected(0)
    b.locator(".ecco-words-toggle").check()
    assert values(a) == expected(3)
    b.locator('.ecco-token[data-position="10"]').hover()
    assert selected(a) == [12] and selected(b) == [10]
    assert a.locator(".ecco-pinned").count() == 1 and b.locator(".ecco-pinned").count() == 0


def test_empty_targets(open_html, tmp_path: Path) -> None:
    data = attribution_data(style="detailed", foil="x")
    data.update(targets=[], attributions=[], raw=[], probs=[], entropy=[], completeness=None)
    page = open_view(open_html, tmp_path, data)
    root = page.locator(".ecco-view-attribution")
    assert root.locator(".ecco-token").count() == len(INPUT) + len(OUTPUT) - 1
    assert root.locator(".ecco-selected, .ecco-target, [data-value], .ecco-bar").count() == 0
    assert "no generated tokens to explain" in root.inner_text()
    root.locator('.ecco-token[data-position="9"]').hover()
    root.locator('.ecco-token[data-position="9"]').click()
    assert root.locator("[data-value]").count() == 0


def test_robust_to_missing_values_and_long_text(open_html, tmp_path: Path) -> None:
    data = attribution_data(style="detailed")
    data["attributions"] = copy.deepcopy(data["attributions"])
    data["attributions"][0][3] = None
    data["attributions"][0] = data["attributions"][0][:-1]  # shorter than its target
    data["probs"], data["entropy"] = None, None
    long_token = {"text": " " + "x" * 600, "id": 1, "position": 13, "is_input": False,
                  "continues_word": False, "special": False, "hidden": False}
    data["tokens"] = data["tokens"] + [long_token] + [
        {**long_token, "text": " word", "position": 14 + i} for i in range(300)]
    data["words"] = data["words"] + [[p, p + 1] for p in range(13, 14 + 300)]
    page = open_view(open_html, tmp_path, data)
    page.set_viewport_size({"width": 700, "height": 600})
    root = page.locator(".ecco-view-attribution")
    assert "NaN" not in root.inner_text() and "undefined" not in root.inner_text()
    got = values(root)
    assert 3 not in got and 7 not in got and got[4] == data["attributions"][0][4]
    assert root.locator('.ecco-bar[data-position="3"]').get_attribute("style") == "width: 0%;"
    overflow = root.evaluate("e => e.scrollWidth - e.clientWidth")
    assert overflow <= 0
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    box = root.locator('.ecco-token[data-position="13"]').bounding_box()
    assert box["height"] > 40  # the 600-character token wraps inside the view


@pytest.mark.parametrize("style", ["minimal", "detailed"])
def test_screenshot(open_html, tmp_path: Path, style: str) -> None:
    data = attribution_data(style=style, foil=" London", title="The capital of France")
    page = open_view(open_html, tmp_path, data)
    page.set_viewport_size({"width": 900, "height": 560 if style == "detailed" else 260})
    page.screenshot(path=tmp_path / f"attr_{style}.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    page.locator('.ecco-token[data-position="12"]').click()
    page.screenshot(path=tmp_path / f"attr_{style}_dark.png", full_page=True)
    assert not math.isnan(bg_alpha(page.locator(".ecco-selected")))
