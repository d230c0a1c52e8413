/* ecco view "faithfulness": which attribution method is faithful to the model, over a dataset.
 *
 * data (ecco.views.faithfulness.comparison_view; every number may be null):
 *   {title, model, score, removal, n_items, confidence, levels: [number], fractions: [number],
 *    random_seeds,
 *    metrics: [{key, label, better: "higher" | "lower", description}],
 *    methods: [{name, label, n_items, n_targets, error: string | null,
 *               metrics: {key: stat}, random: {key: stat}, delta: {key: stat},
 *               curves: {deletion: band, insertion: band}, random_curves: {deletion: band, insertion: band},
 *               verdicts: {key: "better" | "same" | "worse"}}],
 *    best: {key: [method name]}, notes: {ci, best, random, removal}}
 *   stat: {mean, low, high}; band: {mean: [number per fraction], low: [...], high: [...]}.
 *
 * A table, one row per method and one column per metric: the method's mean and interval as a dot
 * and whisker on a scale shared by the column, its random baseline's interval as a grey band and
 * mean as a grey tick, and the numbers. The verdicts and the best methods are decided in Python
 * (the rule is in data.notes); a hollow dot means "not distinguishable from random". Failed
 * methods show their error. Below, the deletion and insertion curves of the selected method
 * (click a row) with its band, against its random baseline's; hover a cell or a curve for the
 * numbers. Each view keeps its state to itself. */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el, num = util.num;
  var METHOD = "rgb(45, 112, 230)", RANDOM = "rgb(128, 128, 128)", BEST = "rgb(240, 120, 20)";
  var CELL = { w: 90, h: 16, pad: 5 };
  var CHART = { w: 340, h: 220, left: 46, right: 12, top: 10, bottom: 34 };
  var KINDS = [["deletion", "Deletion", "fraction of tokens removed (top-ranked first)"],
    ["insertion", "Insertion", "fraction of tokens restored (top-ranked first)"]];
  var MARKS = { better: null, same: "\u2248 random", worse: "\u2717 worse" };
  var VERDICTS = { better: "better than random", same: "not distinguishable from random", worse: "worse than random" };

  var list = util.list, obj = util.obj, node = util.svg;
  function fmt(v) { return util.fmt(v, 3); }
  function range(s) { s = obj(s); return "[" + fmt(s.low) + ", " + fmt(s.high) + "]"; }
  function interval(s) { return fmt(obj(s).mean) + " " + range(s); }
  function arrow(metric) { return metric.better === "lower" ? "\u2193" : "\u2191"; }


  /* The values a scale must hold: mean, low and high of every stat given. */
  function extent(stats) {
    var values = [];
    stats.forEach(function (s) { ["mean", "low", "high"].forEach(function (k) { if (num(obj(s)[k]) !== null) values.push(s[k]); }); });
    return values.length ? [Math.min.apply(null, values), Math.max.apply(null, values)] : null;
  }

  /* The column's scale: every method's and random baseline's mean and interval, padded. */
  function columnScale(methods, key) {
    var found = extent([].concat.apply([], methods.map(function (m) { return [obj(m.metrics)[key], obj(m.random)[key]]; })));
    if (!found) return null;
    var pad = found[1] > found[0] ? 0.06 * (found[1] - found[0]) : Math.max(0.1 * Math.abs(found[0]), 0.5);
    return { lo: found[0] - pad, hi: found[1] + pad };
  }

  function dotWhisker(stat, random, scale, verdict) {
    var pic = node("svg", {
      class: "ecco-fa-dot", width: CELL.w, height: CELL.h, viewBox: "0 0 " + CELL.w + " " + CELL.h,
      "data-lo": scale.lo, "data-hi": scale.hi, "data-pad": CELL.pad, "aria-hidden": "true"
    });
    pic.style.flex = "none";
    pic.style.color = "inherit";
    function x(v) { return (CELL.pad + ((v - scale.lo) / (scale.hi - scale.lo)) * (CELL.w - 2 * CELL.pad)).toFixed(2); }
    var mid = CELL.h / 2, r = obj(random), s = obj(stat);
    pic.appendChild(node("line", { x1: 0, x2: CELL.w, y1: mid, y2: mid, stroke: "currentColor", "stroke-opacity": 0.12 }));
    if (num(r.low) !== null && num(r.high) !== null) {
      pic.appendChild(node("rect", {
        class: "ecco-fa-rband", x: x(r.low), width: Math.max(1, x(r.high) - x(r.low)), y: 2, height: CELL.h - 4,
        fill: RANDOM, "fill-opacity": 0.28
      }));
    }
    if (num(r.mean) !== null) {
      pic.appendChild(node("line", { class: "ecco-fa-rtick", x1: x(r.mean), x2: x(r.mean), y1: 1, y2: CELL.h - 1, stroke: RANDOM, "stroke-width": 2 }));
    }
    if (num(s.low) !== null && num(s.high) !== null) {
      pic.appendChild(node("line", { class: "ecco-fa-whisker", x1: x(s.low), x2: x(s.high), y1: mid, y2: mid, stroke: METHOD, "stroke-width": 1.6 }));
    }
    if (num(s.mean) !== null) {
      pic.appendChild(node("circle", {
        class: "ecco-fa-mean", cx: x(s.mean), cy: mid, r: 3.6, stroke: METHOD, "stroke-width": 1.6,
        fill: verdict === "better" ? METHOD : "none"
      }));
    }
    return pic;
  }

  function cell(method, metric, row, col, scale, best) {
    var key = metric.key, stat = obj(obj(method.metrics)[key]), verdict = obj(method.verdicts)[key] || null;
    var mark = best ? "\u2605 best" : MARKS[verdict] || null;
    return el("td", {
      class: "ecco-fa-cell", "data-key": key, "data-row": row, "data-col": col, "data-verdict": verdict, "data-best": best ? "true" : null,
      style: { padding: "2px 8px", borderTop: "1px solid var(--ecco-border)", whiteSpace: "nowrap", verticalAlign: "middle" }
    }, el("div", { style: { display: "flex", alignItems: "center", gap: "6px", opacity: verdict === "better" || !verdict ? 1 : 0.75 } }, [
      scale ? dotWhisker(stat, obj(method.random)[key], scale, verdict) : null,
      el("div", { style: { lineHeight: 1.25 } }, [
        el("div", {}, [
          el("span", { class: "ecco-fa-num", style: { fontFamily: "var(--ecco-mono)", fontSize: "12px", fontWeight: best ? 700 : 400 } }, fmt(stat.mean)),
          mark ? el("span", {
            class: "ecco-fa-mark", title: best ? "best among the methods that beat random" : VERDICTS[verdict],
            style: { marginLeft: "5px", fontSize: "11px", color: best ? BEST : "var(--ecco-muted)", fontWeight: best ? 700 : 400 }
          }, mark) : null
        ]),
        el("div", { class: "ecco-fa-ci", style: { fontFamily: "var(--ecco-mono)", fontSize: "11px", color: "var(--ecco-muted)" } }, range(stat))
      ])
    ]));
  }

  function methodHead(method) {
    return el("th", { class: "ecco-fa-method", scope: "row", style: { textAlign: "left", padding: "2px 8px", borderTop: "1px solid var(--ecco-border)", fontWeight: 600, minWidth: "10em", maxWidth: "16em", overflowWrap: "anywhere" } }, [
      el("div", { class: "ecco-fa-label" }, String(method.label)),
      el("div", { style: { fontWeight: 400, fontSize: "11px", color: "var(--ecco-muted)" } },
        String(method.n_items) + " items \u00b7 " + String(method.n_targets) + " targets")
    ]);
  }

  function table(data, methods, metrics) {
    var scales = metrics.map(function (m) { return columnScale(methods.filter(function (x) { return !x.error; }), m.key); });
    var best = obj(data.best);
    var heads = metrics.map(function (m) {
      return el("th", { class: "ecco-fa-metric", scope: "col", "data-key": m.key, title: m.description ? String(m.description) : null,
        style: { textAlign: "left", padding: "2px 8px", fontWeight: 600, whiteSpace: "nowrap" } },
      String(m.label) + " " + arrow(m));
    });
    var rows = methods.map(function (method, r) {
      var tr = el("tr", { class: "ecco-fa-row" + (method.error ? " ecco-fa-failed" : ""), "data-method": String(method.name), "data-index": r,
        tabindex: method.error ? null : 0, "aria-selected": method.error ? null : "false", style: { cursor: method.error ? "default" : "pointer" } },
      [methodHead(method)]);
      if (method.error) {
        tr.appendChild(el("td", { class: "ecco-fa-error", colspan: Math.max(1, metrics.length),
          style: { padding: "2px 8px", borderTop: "1px solid var(--ecco-border)", color: "rgb(214, 39, 40)", fontSize: "12px" } },
        "failed: " + String(method.error)));
      } else {
        metrics.forEach(function (m, c) { tr.appendChild(cell(method, m, r, c, scales[c], list(best[m.key]).indexOf(method.name) >= 0)); });
      }
      return tr;
    });
    var t = el("table", { class: "ecco-fa-table", style: { borderCollapse: "collapse", fontSize: "13px" } }, [
      el("thead", {}, el("tr", {}, [el("th", { style: { textAlign: "left", padding: "2px 8px" } }, "method")].concat(heads))),
      el("tbody", {}, rows)
    ]);
    util.headerHover(t, ".ecco-fa-cell", rows.map(function (tr) { return tr.firstChild; }), heads);
    return { element: el("div", { style: { overflowX: "auto", maxWidth: "100%" } }, t), rows: rows };
  }

  /* Round ticks between lo and hi, about `count` of them. */
  function ticks(lo, hi, count) {
    var raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
    var step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag, out = [];
    for (var k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(k * step);
    return out;
  }

  /* The path through (xs[i], ys[i]); a null breaks it. */
  function linePath(xs, ys, px, py) {
    var d = "", pen = false;
    xs.forEach(function (xv, i) {
      var yv = num(list(ys)[i]);
      if (yv === null || num(xv) === null) { pen = false; return; }
      d += (pen ? "L" : "M") + px(xv).toFixed(2) + "," + py(yv).toFixed(2);
      pen = true;
    });
    return d;
  }

  /* The area between band.low and band.high, one closed piece per run of known values. */
  function bandPath(xs, band, px, py) {
    var d = "", run = [];
    function close() {
      if (run.length) {
        d += run.map(function (i, j) { return (j ? "L" : "M") + px(xs[i]).toFixed(2) + "," + py(band.high[i]).toFixed(2); }).join("") +
          run.slice().reverse().map(function (i) { return "L" + px(xs[i]).toFixed(2) + "," + py(band.low[i]).toFixed(2); }).join("") + "Z";
      }
      run = [];
    }
    xs.forEach(function (xv, i) {
      if (num(xv) !== null && num(list(band.low)[i]) !== null && num(list(band.high)[i]) !== null) run.push(i);
      else close();
    });
    close();
    return d;
  }

  /* One curve chart: the y scale covers every method's and baseline's curves of this kind, so it
   * stays put when another method is selected. */
  function curveChart(kind, xs, methods, method) {
    var bands = [];
    methods.forEach(function (m) { if (!m.error) bands.push(obj(obj(m.curves)[kind]), obj(obj(m.random_curves)[kind])); });
    var values = [];
    bands.forEach(function (b) { ["mean", "low", "high"].forEach(function (k) { list(b[k]).forEach(function (v) { if (num(v) !== null) values.push(v); }); }); });
    var lo = Math.min.apply(null, [0].concat(values)), hi = values.length ? Math.max.apply(null, values) : 1;
    if (hi <= lo) hi = lo + 1;
    var known = xs.filter(function (v) { return num(v) !== null; });
    var x0 = known.length ? Math.min.apply(null, known) : 0, x1 = known.length ? Math.max.apply(null, known) : 1;
    if (x1 <= x0) x1 = x0 + 1;
    var pw = CHART.w - CHART.left - CHART.right, ph = CHART.h - CHART.top - CHART.bottom;
    function px(v) { return CHART.left + ((v - x0) / (x1 - x0)) * pw; }
    function py(v) { return CHART.top + ph - ((v - lo) / (hi - lo)) * ph; }
    var chart = node("svg", {
      class: "ecco-fa-curve", "data-kind": kind, "data-method": method ? method.name : null, width: CHART.w, height: CHART.h,
      viewBox: "0 0 " + CHART.w + " " + CHART.h, role: "img", "aria-label": kind + " curve",
      "data-x0": x0, "data-x1": x1, "data-y0": lo, "data-y1": hi, "data-plot": [CHART.left, CHART.top, pw, ph].join(" ")
    });
    chart.style.color = "inherit";
    chart.style.maxWidth = "100%";
    var text = { fill: "currentColor", "fill-opacity": 0.75, "font-size": 10.5 };
    ticks(lo, hi, 5).forEach(function (v) {
      chart.appendChild(node("line", { x1: CHART.left, x2: CHART.left + pw, y1: py(v), y2: py(v), stroke: "currentColor", "stroke-opacity": 0.12 }));
      chart.appendChild(node("text", Object.assign({ x: CHART.left - 5, y: py(v) + 3.5, "text-anchor": "end" }, text), fmt(v)));
    });
    ticks(x0, x1, 5).forEach(function (v) {
      chart.appendChild(node("text", Object.assign({ x: px(v), y: CHART.top + ph + 14, "text-anchor": "middle" }, text), fmt(v)));
    });
    chart.appendChild(node("path", { d: "M" + CHART.left + "," + CHART.top + "V" + (CHART.top + ph) + "H" + (CHART.left + pw), fill: "none", stroke: "currentColor", "stroke-opacity": 0.5 }));
    chart.appendChild(node("text", Object.assign({ x: CHART.left + pw / 2, y: CHART.h - 4, "text-anchor": "middle" }, text), KINDS[kind === "deletion" ? 0 : 1][2]));
    chart.appendChild(node("text", Object.assign({ transform: "translate(11 " + (CHART.top + ph / 2) + ") rotate(-90)", "text-anchor": "middle" }, text), "score"));
    if (!method) return chart;
    var own = obj(obj(method.curves)[kind]), random = obj(obj(method.random_curves)[kind]);
    chart.appendChild(node("path", { class: "ecco-fa-random-band", d: bandPath(xs, random, px, py) || "M0,0", fill: RANDOM, "fill-opacity": 0.2, stroke: "none" }));
    chart.appendChild(node("path", { class: "ecco-fa-band", d: bandPath(xs, own, px, py) || "M0,0", fill: METHOD, "fill-opacity": 0.2, stroke: "none" }));
    chart.appendChild(node("path", { class: "ecco-fa-random-line", d: linePath(xs, random.mean, px, py) || "M0,0", fill: "none", stroke: RANDOM, "stroke-width": 1.6, "stroke-dasharray": "5 3" }));
    chart.appendChild(node("path", { class: "ecco-fa-line", d: linePath(xs, own.mean, px, py) || "M0,0", fill: "none", stroke: METHOD, "stroke-width": 2 }));
    xs.forEach(function (xv, i) {
      var v = num(list(own.mean)[i]);
      if (num(xv) === null) return;
      if (v !== null) chart.appendChild(node("circle", { class: "ecco-fa-point", cx: px(xv).toFixed(2), cy: py(v).toFixed(2), r: 2.4, fill: METHOD, "data-index": i, "data-value": v }));
      var left = i > 0 && num(xs[i - 1]) !== null ? (px(xs[i - 1]) + px(xv)) / 2 : px(xv) - 4;
      var right = i < xs.length - 1 && num(xs[i + 1]) !== null ? (px(xs[i + 1]) + px(xv)) / 2 : px(xv) + 4;
      chart.appendChild(node("rect", { class: "ecco-fa-hit", x: left.toFixed(2), width: Math.max(1, right - left).toFixed(2), y: CHART.top, height: ph, fill: "transparent", "data-index": i }));
    });
    return chart;
  }

  function swatch(dashed, colour) {
    var pic = node("svg", { width: 22, height: 8, "aria-hidden": "true" });
    pic.appendChild(node("line", { x1: 1, x2: 21, y1: 4, y2: 4, stroke: colour, "stroke-width": 2, "stroke-dasharray": dashed ? "5 3" : null }));
    return pic;
  }

  function curves(data, methods, fractions) {
    var box = el("div", { class: "ecco-fa-curves", style: { marginTop: "0.8em" } });
    return {
      element: box,
      draw: function (method) {
        box.textContent = "";
        box.appendChild(el("div", { class: "ecco-fa-curves-title", style: { fontWeight: 600, fontSize: "13px" } },
          method ? "Deletion and insertion curves: " + String(method.label) + " against random (click a row for another method)" : "no method to show"));
        var panels = el("div", { style: { display: "flex", flexWrap: "wrap", gap: "0.4em 1.4em" } });
        KINDS.forEach(function (kind) {
          var auc = method ? obj(obj(method.metrics)[kind[0] + "_auc"]) : {}, rauc = method ? obj(obj(method.random)[kind[0] + "_auc"]) : {};
          panels.appendChild(el("figure", { class: "ecco-fa-panel", "data-kind": kind[0], style: { margin: 0 } }, [
            el("figcaption", { style: { fontSize: "12px" } }, kind[1] + (method && num(auc.mean) !== null ? " \u00b7 AUC " + interval(auc) + ", random " + interval(rauc) : "")),
            curveChart(kind[0], fractions, methods, method)
          ]));
        });
        box.appendChild(panels);
        if (method) {
          box.appendChild(el("div", { class: "ecco-legend" }, [
            swatch(false, METHOD), " " + String(method.label) + " (band: its interval)   ", swatch(true, RANDOM), " random order (band: its interval)"
          ]));
        }
      }
    };
  }

  function captions(data, metrics) {
    var notes = obj(data.notes);
    return el("div", { class: "ecco-fa-caption ecco-legend" }, [
      el("ul", { style: { margin: "0.2em 0", paddingLeft: "1.2em" } }, metrics.map(function (m) {
        return el("li", { "data-key": m.key }, [
          el("b", {}, String(m.label)), " (" + arrow(m) + " " + (m.better === "lower" ? "lower" : "higher") + " is better): ",
          m.description ? String(m.description) : ""
        ]);
      })),
      notes.removal ? el("div", {}, String(notes.removal)) : null
    ]);
  }

  ecco.views.faithfulness = function (root, data) {
    var metrics = list(data.metrics).map(obj), methods = list(data.methods).map(obj), fractions = list(data.fractions);
    var notes = obj(data.notes);
    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    root.appendChild(el("div", { class: "ecco-fa-meta ecco-legend", style: { marginTop: 0 } },
      String(data.n_items) + " items \u00b7 score: " + String(data.score) + " \u00b7 removal: " + String(data.removal) +
      " \u00b7 " + String(data.random_seeds) + " random seeds"));
    var grid = table(data, methods, metrics);
    root.appendChild(grid.element);
    if (!methods.length) root.appendChild(el("div", { class: "ecco-note" }, "no methods to show"));
    root.appendChild(el("div", { class: "ecco-fa-rules ecco-legend" }, ["ci", "best", "random"].map(function (k) {
      return notes[k] ? el("div", {}, String(notes[k])) : null;
    })));
    var chart = curves(data, methods, fractions);
    root.appendChild(chart.element);
    root.appendChild(captions(data, metrics));

    var selected = null;
    function select(index) {
      if (!methods[index] || methods[index].error) return;
      selected = index;
      grid.rows.forEach(function (tr, r) {
        if (methods[r].error) return;
        tr.setAttribute("aria-selected", String(r === index));
        tr.classList.toggle("ecco-selected", r === index);
        tr.style.background = r === index ? "rgba(45, 112, 230, 0.1)" : "";
        tr.style.outline = r === index ? "1px solid " + METHOD : "";
      });
      chart.draw(methods[index]);
    }
    function rowOf(target) {
      var tr = target && target.closest ? target.closest(".ecco-fa-row") : null;
      return tr && root.contains(tr) ? Number(tr.dataset.index) : null;
    }
    grid.element.addEventListener("click", function (event) {
      var r = rowOf(event.target);
      if (r !== null) select(r);
    });
    grid.element.addEventListener("keydown", function (event) {
      var r = rowOf(event.target);
      if (r !== null && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); select(r); }
    });
    var first = methods.findIndex(function (m) { return !m.error; });
    if (first >= 0) select(first);
    else chart.draw(null);

    util.hoverTooltip(root, ".ecco-fa-cell", function (td) {
      var method = methods[Number(td.dataset.row)], metric = metrics[Number(td.dataset.col)], key = metric.key;
      var verdict = obj(method.verdicts)[key];
      return [
        el("div", { class: "ecco-tooltip-title" }, String(method.label) + " \u00b7 " + String(metric.label)),
        util.tooltipRow("mean", interval(obj(method.metrics)[key])),
        util.tooltipRow("random", interval(obj(method.random)[key])),
        util.tooltipRow("\u2212 random", interval(obj(method.delta)[key])),
        verdict ? util.tooltipRow("verdict", VERDICTS[verdict] + (td.dataset.best ? ", best" : "")) : null
      ];
    });
    util.hoverTooltip(root, ".ecco-fa-hit", function (rect) {
      var method = methods[selected], kind = rect.closest(".ecco-fa-curve").dataset.kind, i = Number(rect.dataset.index);
      function at(band) { band = obj(band); return { mean: list(band.mean)[i], low: list(band.low)[i], high: list(band.high)[i] }; }
      return [
        el("div", { class: "ecco-tooltip-title" }, kind + " \u00b7 fraction " + fmt(fractions[i])),
        util.tooltipRow(String(method.label), interval(at(obj(method.curves)[kind]))),
        util.tooltipRow("random", interval(at(obj(method.random_curves)[kind])))
      ];
    });
  };
})();
