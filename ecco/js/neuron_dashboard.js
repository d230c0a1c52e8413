/* ecco view "neuron_dashboard": what one neuron (or corpus-fitted factor) does over a whole corpus
 * run, or the neurons a search found. data.kind picks the view:
 *
 * "neuron" / "factor" (a dashboard):
 *   {kind, title, name, column, stack, layer, neuron, factor?, method?, model, width, k,
 *    contexts: [context], count, mean, std, fraction_positive,
 *    histogram: {counts: [int] (len(edges) + 1), edges: [number]},
 *    effects: {up: [{id, text, value}], down: [...]} | null, effects_note: string | null}
 * "search":
 *   {kind, title, predicate, model, width,
 *    neurons: [{rank, column, stack, layer, neuron, auroc, precision_at_k, k, contexts: [context]}]}
 * context: {doc, document, position, first, peak, value, tokens: [string], values: [number | null]}
 *   (token i is at position first + i of document doc; tokens[peak] is the top token).
 *
 * Tokens are coloured by their value: orange positive, blue negative, intensity |v| / max |v| over
 * the contexts shown (one scale per dashboard, one per search row); the peak token is outlined.
 * Click a context or a histogram bar to read its details below it (each view on its own). */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el, num = util.num;
  var POSITIVE = "orange", NEGATIVE = "blue";

  function fmt(v) {
    if (v === null || v === undefined) return "\u2013";
    if (v === 0) return "0";
    return String(Number(v.toPrecision(4))).replace(/-/g, "\u2212");
  }
  function signed(v) { return v === null || v === undefined ? "\u2013" : (v > 0 ? "+" : "") + fmt(v); }
  function pct(p) { return p === null || p === undefined ? "\u2013" : (100 * p).toFixed(1) + "%"; }
  var list = util.list;
  function known(x) { return x === null || x === undefined ? "?" : String(x); }

  function shade(v, maxAbs) {
    return v === null || maxAbs <= 0 ? "transparent" : util.colorScale(Math.abs(v) / maxAbs, v < 0 ? NEGATIVE : POSITIVE);
  }

  function contextValues(ctx) {
    var tokens = list(ctx.tokens);
    return tokens.map(function (_, i) { return num(list(ctx.values)[i]); });
  }

  function maxAbsOf(contexts) {
    return contexts.reduce(function (m, ctx) {
      return contextValues(ctx).reduce(function (a, v) { return v === null ? a : Math.max(a, Math.abs(v)); }, m);
    }, 0);
  }

  /* One context: its peak value, the tokens coloured, and (unless compact) where it is. */
  function contextNode(ctx, index, maxAbs, compact) {
    var values = contextValues(ctx), tokens = list(ctx.tokens);
    var strip = el("span", { class: "ecco-nd-strip" }, tokens.map(function (text, i) {
      var v = values[i];
      return el("span", {
        class: "ecco-token ecco-nd-token" + (i === ctx.peak ? " ecco-nd-peak" : "") +
          (v === null ? " ecco-missing" : v > 0 ? " ecco-pos" : v < 0 ? " ecco-neg" : " ecco-zero"),
        "data-context": index, "data-offset": i, "data-value": v === null ? null : String(v),
        style: { backgroundColor: shade(v, maxAbs) }
      }, util.tokenNodes(text));
    }));
    var where = String(ctx.document) + " \u00b7 position " + ctx.position;
    return el("div", {
      class: "ecco-nd-context" + (compact ? " ecco-nd-compact" : ""), "data-index": index, tabindex: compact ? null : 0,
      title: compact ? where : null
    }, [
      el("span", { class: "ecco-nd-value" }, signed(num(ctx.value))),
      strip,
      compact ? null : el("span", { class: "ecco-nd-where" }, where)
    ]);
  }

  function tokenTooltip(root, contextsOf) {
    util.hoverTooltip(root, ".ecco-nd-token", function (span) {
      var ctx = contextsOf(span)[Number(span.dataset.context)], i = Number(span.dataset.offset);
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(list(ctx.tokens)[i]))),
        util.tooltipRow("value", signed(contextValues(ctx)[i])),
        util.tooltipRow("document", String(ctx.document)),
        util.tooltipRow("position", ctx.first + i + (i === ctx.peak ? " (top token)" : ""))
      ];
    });
  }

  function legend(maxAbs) {
    var stops = [util.colorScale(1, NEGATIVE) + " 0%", util.colorScale(0, NEGATIVE) + " 50%", util.colorScale(1, POSITIVE) + " 100%"];
    return el("div", { class: "ecco-legend ecco-nd-legend" }, [
      el("span", { class: "ecco-nd-scale" }, [
        "\u2212" + fmt(maxAbs), el("span", { class: "ecco-nd-gradient", style: { backgroundImage: "linear-gradient(to right, " + stops.join(", ") + ")" } }),
        "+" + fmt(maxAbs)
      ]),
      el("span", {}, [el("span", { class: "ecco-nd-peak-swatch" }), "top token"])
    ]);
  }

  /* The histogram: one bar per bin from the first to the last non-empty one (bins are log-spaced,
   * so bars have equal widths); click a bar to read its range and count. */
  function histogram(hist, readout) {
    var counts = list(hist && hist.counts), edges = list(hist && hist.edges);
    var first = counts.findIndex(function (c) { return c > 0; }), last = -1;
    counts.forEach(function (c, i) { if (c > 0) last = i; });
    if (first < 0) return el("div", { class: "ecco-note" }, "no histogram");
    var shown = counts.slice(first, last + 1), top = Math.max.apply(null, shown);
    var W = 260, H = 90, bw = W / shown.length, ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "ecco-nd-hist");
    svg.setAttribute("viewBox", "0 0 " + W + " " + (H + 1));
    svg.setAttribute("width", W);
    svg.setAttribute("height", H + 1);
    function lower(i) { return i === 0 ? null : edges[i - 1]; }
    function upper(i) { return i >= edges.length ? null : edges[i]; }
    function range(i) {
      return "[" + (lower(i) === null ? "\u2212\u221e" : fmt(lower(i))) + ", " + (upper(i) === null ? "+\u221e" : fmt(upper(i))) + ")";
    }
    var selected = null;
    shown.forEach(function (c, j) {
      var i = first + j, h = c > 0 ? Math.max(1, (H * c) / top) : 0;
      var negative = upper(i) !== null && upper(i) <= 0;
      var rect = document.createElementNS(ns, "rect");
      rect.setAttribute("class", "ecco-nd-bar " + (negative ? "ecco-neg" : "ecco-pos"));
      rect.setAttribute("x", (j * bw + 0.5).toFixed(2));
      rect.setAttribute("width", Math.max(1, bw - 1).toFixed(2));
      rect.setAttribute("y", (H - h).toFixed(2));
      rect.setAttribute("height", h.toFixed(2));
      rect.setAttribute("data-count", c);
      rect.setAttribute("data-bin", i);
      var title = document.createElementNS(ns, "title");
      title.textContent = range(i) + ": " + c;
      rect.appendChild(title);
      rect.addEventListener("click", function () {
        if (selected) selected.classList.remove("ecco-selected");
        selected = selected === rect ? null : rect;
        if (selected) selected.classList.add("ecco-selected");
        readout.textContent = selected ? "bin " + range(i) + ": " + c + " tokens" : "";
      });
      svg.appendChild(rect);
    });
    return el("div", { class: "ecco-nd-hist-box" }, [
      svg,
      el("div", { class: "ecco-nd-axis" }, [el("span", {}, range(first).split(",")[0].slice(1)), el("span", {}, range(last).split(", ")[1].slice(0, -1))])
    ]);
  }

  function effectList(entries, cls, label) {
    var top = entries.reduce(function (m, e) { return Math.max(m, Math.abs(num(e.value) || 0)); }, 0);
    return el("div", { class: "ecco-nd-effects-col " + cls }, [
      el("div", { class: "ecco-nd-subhead" }, label),
      el("ol", { class: "ecco-nd-effect-list" }, entries.map(function (e) {
        var v = num(e.value), w = top > 0 && v !== null ? (100 * Math.abs(v)) / top : 0;
        return el("li", { class: "ecco-nd-effect", "data-id": e.id, "data-value": v === null ? null : String(v) }, [
          el("span", { class: "ecco-token ecco-nd-effect-token" }, util.tokenNodes(e.text)),
          el("span", { class: "ecco-nd-track" }, el("span", { class: "ecco-nd-fill", style: { width: w.toFixed(1) + "%" } })),
          el("span", { class: "ecco-nd-num" }, signed(v))
        ]);
      }))
    ]);
  }

  function dashboard(root, data) {
    var contexts = list(data.contexts), maxAbs = maxAbsOf(contexts);
    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    root.appendChild(el("div", { class: "ecco-nd-header" }, [
      el("span", { class: "ecco-nd-name" }, String(data.name || "")),
      data.stack ? el("span", { class: "ecco-nd-chip" }, String(data.stack)) : null,
      el("span", { class: "ecco-nd-stats" }, [
        "mean " + fmt(num(data.mean)), " \u00b7 std " + fmt(num(data.std)),
        " \u00b7 active (> 0) on " + pct(num(data.fraction_positive)) + " of " + known(data.count) + " tokens"
      ])
    ]));
    var detail = el("div", { class: "ecco-nd-detail", "aria-live": "polite" });
    var list_ = el("div", { class: "ecco-nd-contexts" }, [
      el("div", { class: "ecco-nd-subhead" }, "Top activations (" + contexts.length + " of the " + known(data.k) + " kept), " + known(data.width) + " tokens each side")
    ].concat(contexts.map(function (ctx, i) { return contextNode(ctx, i, maxAbs, false); })));
    if (!contexts.length) list_.appendChild(el("div", { class: "ecco-note" }, "no tokens to show"));
    var selected = null;
    function select(node) {
      if (selected) selected.classList.remove("ecco-selected");
      selected = selected === node ? null : node;
      if (!selected) { detail.textContent = ""; return; }
      selected.classList.add("ecco-selected");
      var ctx = contexts[Number(node.dataset.index)];
      detail.textContent = "#" + (Number(node.dataset.index) + 1) + ": " + ctx.document + ", position " + ctx.position +
        ", value " + signed(num(ctx.value)) + " on " + JSON.stringify(String(list(ctx.tokens)[ctx.peak]));
    }
    list_.addEventListener("click", function (event) {
      var node = event.target.closest(".ecco-nd-context");
      if (node && list_.contains(node)) select(node);
    });
    list_.addEventListener("keydown", function (event) {
      var node = event.target.closest(".ecco-nd-context");
      if (node && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); select(node); }
    });
    var readout = el("div", { class: "ecco-nd-readout" });
    var effects = null;
    if (data.effects) {
      effects = el("div", { class: "ecco-nd-effects" }, [
        el("div", { class: "ecco-nd-subhead" }, "Direct effect on the output (logit change per unit of activation)"),
        el("div", { class: "ecco-nd-effects-cols" }, [
          effectList(list(data.effects.up), "ecco-nd-up", "pushes up"), effectList(list(data.effects.down), "ecco-nd-down", "pushes down")
        ])
      ]);
    } else if (data.effects_note) {
      effects = el("div", { class: "ecco-note ecco-nd-effects-note" }, String(data.effects_note));
    }
    root.appendChild(el("div", { class: "ecco-nd-body" }, [
      el("div", { class: "ecco-nd-main" }, [list_, detail]),
      el("div", { class: "ecco-nd-side" }, [
        el("div", { class: "ecco-nd-subhead" }, "Activation histogram (" + known(data.count) + " tokens)"),
        histogram(data.histogram, readout), readout, effects
      ])
    ]));
    root.appendChild(legend(maxAbs));
    tokenTooltip(root, function () { return contexts; });
  }

  function search(root, data) {
    var rows = list(data.neurons);
    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    root.appendChild(el("div", { class: "ecco-nd-caption" }, rows.length + " neurons, best first. AUROC: how often a matching token " +
      "activates the neuron more than a non-matching one (0.5 = chance); precision@k: the share of its top-k tokens that match."));
    var body = el("tbody");
    var scales = rows.map(function (row) { return maxAbsOf(list(row.contexts)); });
    var nodes = rows.map(function (row, r) {
      var auroc = num(row.auroc);
      return el("tr", { class: "ecco-ns-row", "data-row": r, "data-layer": row.layer, "data-neuron": row.neuron }, [
        el("td", { class: "ecco-nd-num" }, String(row.rank)),
        el("td", { class: "ecco-ns-name" }, "L" + row.layer + " \u00b7 n" + row.neuron),
        el("td", { class: "ecco-nd-num ecco-ns-auroc" }, [
          el("span", { class: "ecco-nd-track" }, el("span", { class: "ecco-nd-fill", style: { width: (auroc === null ? 0 : 100 * auroc).toFixed(1) + "%" } })),
          " " + (auroc === null ? "\u2013" : auroc.toFixed(3))
        ]),
        el("td", { class: "ecco-nd-num ecco-ns-precision" }, pct(num(row.precision_at_k)) + " of " + known(row.k)),
        el("td", { class: "ecco-ns-contexts" }, list(row.contexts).map(function (ctx, i) {
          var node = contextNode(ctx, i, scales[r], true);
          node.dataset.row = r;
          return node;
        }))
      ]);
    });
    nodes.forEach(function (n) { body.appendChild(n); });
    var order = { key: "auroc", down: true };
    function sortBy(key) {
      order = { key: key, down: order.key === key ? !order.down : true };
      var idx = rows.map(function (_, i) { return i; });
      idx.sort(function (a, b) {
        var x = num(rows[a][key]), y = num(rows[b][key]);
        return (order.down ? (y === null ? -Infinity : y) - (x === null ? -Infinity : x) : (x === null ? Infinity : x) - (y === null ? Infinity : y)) || a - b;
      });
      idx.forEach(function (i) { body.appendChild(nodes[i]); });
      heads.forEach(function (h) { h.setAttribute("aria-sort", h.dataset.key === order.key ? (order.down ? "descending" : "ascending") : "none"); });
    }
    var heads = [["auroc", "AUROC"], ["precision_at_k", "precision@k"]].map(function (pair) {
      return el("th", { class: "ecco-nd-num ecco-ns-sort", "data-key": pair[0], "aria-sort": pair[0] === "auroc" ? "descending" : "none" },
        el("button", { type: "button", onclick: function () { sortBy(pair[0]); } }, pair[1]));
    });
    var table = el("table", { class: "ecco-ns-table" }, [
      el("thead", {}, el("tr", {}, [el("th", {}, "#"), el("th", {}, "neuron"), heads[0], heads[1], el("th", {}, "top contexts (peak outlined)")])),
      body
    ]);
    root.appendChild(el("div", { class: "ecco-ns-scroll" }, table));
    if (!rows.length) root.appendChild(el("div", { class: "ecco-note" }, "no neurons to show"));
    root.appendChild(el("div", { class: "ecco-legend ecco-nd-legend" },
      "each row coloured on its own scale: orange positive, blue negative, intensity = |value| / the row's max |value|"));
    tokenTooltip(root, function (span) { return list(rows[Number(span.closest(".ecco-nd-context").dataset.row)].contexts); });
  }

  ecco.views.neuron_dashboard = function (root, data) {
    if (data.kind === "search") search(root, data);
    else dashboard(root, data);
  };
})();
