"""The faithfulness comparison view (ecco.views.faithfulness) without a browser: the data checks,
the verdict and best-method rule on a dataset built so the answer is known, the static rendering
(numbers, marks, error rows, hostile labels escaped) and the matplotlib figure (its artists read
back against the data)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from ecco.render import View, render_fragment
from ecco.render.static import render_body, static_html
from ecco.render.static.html import fmt
from ecco.views.faithfulness import comparison_figure, comparison_view, verdict

EVIL = '<script>window.__pwned=1</script><b>bold</b> & "q"'
METRICS = [
    {"key": "aopc_comprehensiveness", "label": "Comprehensiveness (AOPC)", "better": "higher"},
    {"key": "aopc_sufficiency", "label": "Sufficiency (AOPC)", "better": "lower"},
    {"key": "soft_nc", "label": "Soft-NC", "better": "higher"},
    {"key": "soft_ns", "label": "Soft-NS", "better": "higher"},
    {"key": "deletion_auc", "label": "Deletion AUC", "better": "lower"},
    {"key": "insertion_auc", "label": "Insertion AUC", "better": "higher"},
]
KEYS = [m["key"] for m in METRICS]
FRACTIONS = [i / 10 for i in range(11)]
HIGHER = [k for k in KEYS if k not in ("aopc_sufficiency", "deletion_auc")]

# Per method and metric: (mean, delta low, delta high). Built so the answer is known:
# ig beats random everywhere and is best on all but soft_ns, where lrp is; "grad" (hostile label)
# has the best mean everywhere but its difference from random includes 0; occ is worse than random.
SPEC = {
    "ig": {k: (0.30, 0.15, 0.25) if k in HIGHER else (0.10, -0.25, -0.15) for k in KEYS},
    "grad": {k: (0.40, -0.05, 0.65) if k in HIGHER else (0.05, -0.60, 0.05) for k in KEYS},
    "occ": {k: (0.05, -0.07, -0.03) if k in HIGHER else (0.50, 0.10, 0.30) for k in KEYS},
    "lrp": {**{k: (0.25, 0.02, 0.10) if k in HIGHER else (0.12, -0.20, -0.10) for k in KEYS}, "soft_ns": (0.35, 0.10, 0.30)},
}
LABELS = {"ig": "Integrated gradients", "grad": EVIL, "occ": "Occlusion", "lrp": "LRP"}
VERDICTS = {"ig": "better", "grad": "same", "occ": "worse", "lrp": "better"}
BEST = {k: ["lrp"] if k == "soft_ns" else ["ig"] for k in KEYS}
ERROR = f"KernelSHAP could not run on t5: {EVIL}"


def arrow(metric: dict) -> str:
    return "\u2193" if metric["better"] == "lower" else "\u2191"


def stat(mean: float | None, low: float | None, high: float | None) -> dict:
    return {"mean": mean, "low": low, "high": high}


def band(mean: list) -> dict:
    return {"mean": mean, "low": [None if v is None else v - 0.05 for v in mean],
            "high": [None if v is None else v + 0.05 for v in mean]}


def method_entry(name: str, index: int) -> dict:
    """One method's entry from SPEC: mean ± 0.05, random = mean − the delta's midpoint (± 0.02), and
    curves that fall (deletion) / rise (insertion) at a slope of its own; grad's deletion curve has a gap."""
    metrics, random, delta = {}, {}, {}
    for key, (mean, low, high) in SPEC[name].items():
        mid = (low + high) / 2
        metrics[key], random[key], delta[key] = stat(mean, mean - 0.05, mean + 0.05), stat(
            mean - mid, mean - mid - 0.02, mean - mid + 0.02), stat(mid, low, high)
    slope = 0.5 + 0.1 * index
    deletion = [round(1 - slope * f, 6) for f in FRACTIONS]
    if name == "grad":
        deletion[3] = None
    return {"name": name, "label": LABELS[name], "n_items": 20, "n_targets": 80 + index, "error": None,
            "metrics": metrics, "random": random, "delta": delta,
            "curves": {"deletion": band(deletion), "insertion": band([round(0.1 + slope * f * 0.8, 6) for f in FRACTIONS])},
            "random_curves": {"deletion": band([round(1 - 0.4 * f, 6) for f in FRACTIONS]),
                              "insertion": band([round(0.1 + 0.3 * f, 6) for f in FRACTIONS])}}


def view_data(model: str = "tiny-t5") -> dict:
    """The comparison data of four methods (see SPEC) and a failed KernelSHAP, as the core hands it."""
    methods = [method_entry(name, i) for i, name in enumerate(SPEC)]
    methods.append({"name": "kernel_shap", "label": "KernelSHAP", "n_items": 0, "n_targets": 0, "error": ERROR,
                    "metrics": {}, "random": {}, "delta": {}, "curves": {}, "random_curves": {}})
    return {"title": f"Faithfulness \u00b7 {model}", "model": model, "score": "prob", "removal": "zero", "n_items": 20,
            "confidence": 0.95, "levels": [0.1, 0.2, 0.3, 0.4, 0.5], "fractions": FRACTIONS,
            "metrics": copy.deepcopy(METRICS), "methods": methods, "random_seeds": 3}


# ---------------------------------------------------------------- checks
@pytest.mark.parametrize("path, needle", [
    ((), "'random_seeds'"),
    (("methods", 0), "'delta'"),
    (("metrics", 2), "'better'"),
    (("methods", 1, "metrics", "soft_nc"), "'low'"),
    (("methods", 0, "random"), "'deletion_auc'"),
    (("methods", 2, "curves", "insertion"), "'high'"),
    (("methods", 3, "random_curves"), "'deletion'"),
])
def test_a_missing_key_is_named(path: tuple, needle: str) -> None:
    data = view_data()
    holder = data
    for step in path:
        holder = holder[step]
    del holder[needle.strip("'")]
    with pytest.raises(ValueError, match=needle) as error:
        comparison_view(data)
    assert "faithfulness view data" in str(error.value)
    if path[:1] == ("methods",):
        assert f"methods[{path[1]}]" in str(error.value)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["metrics"][0].update(better="up"), "must be 'higher' or 'lower'"),
    (lambda d: d["methods"][0]["curves"]["deletion"]["mean"].pop(), "10 values but there are 11 fractions"),
    (lambda d: d["methods"][0]["metrics"]["soft_nc"].update(mean="0.3"), "must be a number or null, got '0.3'"),
    (lambda d: d["methods"][0]["metrics"]["soft_nc"].update(mean=True), "must be a number or null, got True"),
    (lambda d: d["methods"][1].update(name="ig"), "method names must be unique; repeated: ig"),
    (lambda d: d.update(methods={"ig": 1}), "methods must be a list"),
    (lambda d: d["methods"].__setitem__(0, "ig"), r"methods\[0\] must be a dict"),
])
def test_wrong_values_are_clear_errors(change, message: str) -> None:
    data = view_data()
    change(data)
    with pytest.raises(ValueError, match=message):
        comparison_view(data)


def test_not_a_dict_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="the data must be a dict"):
        comparison_view([1, 2])


def test_nulls_and_nan_are_accepted_and_a_failed_method_needs_no_numbers() -> None:
    data = view_data()
    data["methods"][0]["metrics"]["soft_nc"] = stat(float("nan"), None, np.float32(0.4))
    data["methods"][0]["curves"]["insertion"]["low"] = np.array([math.inf] + [0.0] * 10)
    checked = comparison_view(data, printJson=True)
    assert checked["methods"][0]["metrics"]["soft_nc"] == {"mean": None, "low": None, "high": pytest.approx(0.4)}
    assert checked["methods"][0]["curves"]["insertion"]["low"][:2] == [None, 0.0]
    assert checked["methods"][-1]["error"] == ERROR and checked["methods"][-1]["verdicts"] == {}
    render_fragment("faithfulness", checked)  # strict JSON: no NaN left
    assert isinstance(comparison_view(data), View)


# ---------------------------------------------------------------- the rule
def test_verdicts_and_best_follow_the_rule() -> None:
    data = comparison_view(view_data(), printJson=True)
    for method in data["methods"][:4]:
        assert method["verdicts"] == {k: VERDICTS[method["name"]] for k in KEYS}, method["name"]
    assert data["best"] == BEST
    # grad has the best mean everywhere, yet is never best: its difference from random includes 0.
    for key in KEYS:
        means = {m["name"]: m["metrics"][key]["mean"] for m in data["methods"][:4]}
        better = next(m["better"] for m in METRICS if m["key"] == key)
        assert (max if better == "higher" else min)(means, key=means.get) == "grad"


def test_verdict_by_hand() -> None:
    assert verdict(stat(0.1, 0.01, 0.2), "higher") == "better"
    assert verdict(stat(0.1, 0.01, 0.2), "lower") == "worse"
    assert verdict(stat(-0.1, -0.2, -0.01), "lower") == "better"
    assert verdict(stat(0.1, 0.0, 0.2), "higher") == "same"  # touching 0 is not excluding it
    assert verdict(stat(0.1, None, 0.2), "higher") == "same"


def test_no_best_when_no_method_beats_random_and_ties_are_all_best() -> None:
    data = view_data()
    for m in data["methods"][:4]:
        m["delta"]["soft_nc"] = stat(0.0, -0.1, 0.1)
    for name in ("ig", "lrp"):
        entry = next(m for m in data["methods"] if m["name"] == name)
        entry["metrics"]["insertion_auc"]["mean"] = 0.7
    best = comparison_view(data, printJson=True)["best"]
    assert best["soft_nc"] == [] and best["insertion_auc"] == ["ig", "lrp"]


def test_captions_state_the_rules_and_the_metrics() -> None:
    data = comparison_view(view_data(), printJson=True)
    assert "excluding 0 on the good side" in data["notes"]["best"]
    assert "includes 0" in data["notes"]["random"]
    assert "zero vector" in data["notes"]["removal"] and "probability" in data["notes"]["removal"]
    assert "95 % confidence" in data["notes"]["ci"] and "20 items" in data["notes"]["ci"]
    assert "top 10\u201350 %" in data["metrics"][0]["description"]


# ---------------------------------------------------------------- static rendering
def test_static_table_numbers_marks_and_error_row() -> None:
    from tests.test_static_render import table_rows

    data = comparison_view(view_data(), printJson=True)
    html = str(render_body("faithfulness", data))
    rows = table_rows(html, "ecco-s-faithfulness")
    assert [c[0] for c in rows[0]] == ["method"] + [f"{m['label']} {arrow(m)}" for m in METRICS]
    body = rows[1:]
    assert len(body) == 5
    for row, method in zip(body, data["methods"][:4]):
        assert row[0][0] == method["label"] + f"20 items \u00b7 {method['n_targets']} targets"
        for (text, _), key in zip(row[1:], KEYS):
            s, r = method["metrics"][key], method["random"][key]
            shown = f"{fmt(s['mean'], 3)} [{fmt(s['low'], 3)}, {fmt(s['high'], 3)}]"
            assert text.startswith(shown + f"random {fmt(r['mean'], 3)} [{fmt(r['low'], 3)}, {fmt(r['high'], 3)}]")
            mark = text[len(shown):].split("]", 1)[1]
            expected = {"same": "\u2248 random", "worse": "\u2717 worse than random", "better": ""}[VERDICTS[method["name"]]]
            assert mark == ("\u2605 best" if method["name"] in BEST[key] else expected)
    assert body[4][0][0].startswith("KernelSHAP") and body[4][1][0] == f"failed: {ERROR}"
    assert body[4][1][1]["colspan"] == "6"


def test_static_html_escapes_hostile_labels_and_errors() -> None:
    html = str(static_html("faithfulness", comparison_view(view_data(), printJson=True)))
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp; &#34;q&#34;" in html
    assert html.count("&lt;script&gt;window.__pwned=1") >= 2  # the label and the error text
    fragment = render_fragment("faithfulness", comparison_view(view_data(), printJson=True))
    assert "</script><b>" not in fragment.split("<script type=")[0]


def test_static_rendering_of_odd_data_is_empty_not_an_error() -> None:
    for data in ({}, {"methods": [None, {"error": None}], "metrics": "x"}, {"methods": [{"name": "a"}], "metrics": [{}]}):
        render_body("faithfulness", data)


# ---------------------------------------------------------------- figure
def _artist(ax, gid: str):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def test_figure_points_are_the_data() -> None:
    import matplotlib

    matplotlib.use("Agg")
    data = view_data()
    fig = comparison_figure(data)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [
        f"{m['label']} ({arrow(m)} better)" for m in METRICS
    ] + ["Deletion curve", "Insertion curve"]
    for ax, metric in zip(axes, METRICS):
        key = metric["key"]
        assert [t.get_text() for t in ax.get_yticklabels()] == [
            "Integrated gradients", '<script>window.__pwned=\u2026', "Occlusion", "LRP", "KernelSHAP"]
        for y, method in enumerate(data["methods"][:4]):
            s, r = method["metrics"][key], method["random"][key]
            mean = _artist(ax, f"mean:{method['name']}")
            assert list(mean.get_xdata()) == [s["mean"]] and list(mean.get_ydata()) == [y]
            filled = mean.get_markerfacecolor() == mean.get_color()
            assert filled == (VERDICTS[method["name"]] == "better")
            assert list(_artist(ax, f"ci:{method['name']}").get_xdata()) == [s["low"], s["high"]]
            assert list(_artist(ax, f"random:{method['name']}").get_xdata()) == [r["mean"]]
            xs = _artist(ax, f"band:{method['name']}").get_paths()[0].vertices[:, 0]
            assert min(xs) == pytest.approx(r["low"]) and max(xs) == pytest.approx(r["high"])
        assert not [a for a in ax.get_children() if a.get_gid() == "mean:kernel_shap"]
    for ax, kind in zip(axes[6:], ("deletion", "insertion")):
        for method in data["methods"][:4]:
            line = _artist(ax, f"curve:{method['name']}")
            want = np.array([np.nan if v is None else v for v in method["curves"][kind]["mean"]])
            np.testing.assert_array_equal(line.get_ydata(), want)
            np.testing.assert_array_equal(line.get_xdata(), FRACTIONS)
        random = _artist(ax, "random_curve:ig")  # the four share one random curve: drawn once
        assert random.get_linestyle() == "--" and random.get_color() == "grey"
        np.testing.assert_array_equal(random.get_ydata(), data["methods"][0]["random_curves"][kind]["mean"])
        assert len([a for a in ax.get_children() if str(a.get_gid()).startswith("random_curve:")]) == 1
    fig.savefig(__import__("io").BytesIO(), format="png")


def test_figure_metric_subset_and_unknown_metric() -> None:
    fig = comparison_figure(view_data(), metrics=["soft_ns", "deletion_auc"])
    assert [ax.get_title() for ax in fig.axes] == ["Soft-NS (\u2191 better)", "Deletion AUC (\u2193 better)",
                                                  "Deletion curve", "Insertion curve"]
    with pytest.raises(ValueError, match="unknown metrics 'auroc'; the data has aopc_comprehensiveness"):
        comparison_figure(view_data(), metrics=["auroc"])
