/* ecco view "attention_neuron": how one head's attention weights arise. For the selected query
 * token: its query vector q, every key vector k, the element-wise products q∘k, the score
 * q·k × scale + bias and its softmax, computed here from the vectors and shown next to the
 * model's own weights. Hover a query token to preview it, click to select it. Vector cells: orange
 * positive, blue negative, opacity = |value| / max.
 * data: {queries: [{text, position}], keys: [...], layer, head, set: string,
 *        query: [[number]] (Q x d), key: [[number]] (K x d), scale: number,
 *        bias: [[number | null]] | null (Q x K; null = masked), weights: [[number]] (Q x K),
 *        selected: int, title: string | null} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var POS = [240, 120, 20], NEG = [45, 112, 230];

  var num = util.num;
  function fmt(v) {
    if (v === null) return "\u2013";
    if (v === -Infinity) return "\u2212\u221e";
    var a = Math.abs(v);
    return (a !== 0 && (a >= 1e4 || a < 1e-3) ? v.toExponential(2) : v.toFixed(3)).replace(/-/g, "\u2212");
  }
  /* Diverging colour of v in [-max, max]: translucent, so it reads on light and dark themes. */
  function diverging(v, max) {
    if (!max || !v) return "transparent";
    var a = Math.min(1, Math.abs(v) / max) * 0.9, c = v > 0 ? POS : NEG;
    return "rgba(" + c.join(", ") + ", " + a.toFixed(3) + ")";
  }
  function row(matrix, i) { return Array.isArray(matrix) && Array.isArray(matrix[i]) ? matrix[i] : []; }
  function present(x) { return x !== null && x !== undefined && x !== ""; }

  ecco.views.attention_neuron = function (root, data) {
    var queries = Array.isArray(data.queries) ? data.queries : [];
    var keys = Array.isArray(data.keys) ? data.keys : [];
    var qv = queries.map(function (_, i) { return row(data.query, i).map(Number); });
    var kv = keys.map(function (_, j) { return row(data.key, j).map(Number); });
    var d = Math.max(0, Math.min.apply(null, qv.concat(kv).map(function (v) { return v.length; }).concat([Infinity])));
    if (!isFinite(d)) d = 0;
    var scale = num(data.scale) === null ? 1 : data.scale;
    var hasBias = Array.isArray(data.bias);
    // A bias column only when the bias is more than the mask (0 or null).
    var showBias = hasBias && data.bias.some(function (r) { return Array.isArray(r) && r.some(function (v) { return !!num(v); }); });
    var vecMax = 0;
    qv.concat(kv).forEach(function (v) { for (var i = 0; i < d; i++) vecMax = Math.max(vecMax, Math.abs(v[i]) || 0); });
    var cw = Math.max(2, Math.min(12, Math.round(192 / Math.max(1, d))));

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    root.appendChild(el("div", { class: "ecco-nv-header" }, [
      el("span", { class: "ecco-nv-name" }, [present(data.layer) ? "layer " + data.layer : null, present(data.layer) && present(data.head) ? " \u00b7 " : null,
        present(data.head) ? "head " + data.head : null]),
      present(data.set) ? el("span", { class: "ecco-nv-set" }, String(data.set)) : null,
      el("span", { class: "ecco-nv-formula" }, "score = q\u00b7k \u00d7 " + fmt(scale) + (showBias ? " + bias" : "") + ",  weight = softmax(score)" + (hasBias && !showBias ? ",  masked keys: \u2212\u221e" : "")),
      el("span", { class: "ecco-nv-dim" }, "d = " + d)
    ]));

    if (!queries.length || !keys.length) { root.appendChild(el("div", { class: "ecco-note" }, "nothing to show")); return; }

    // Query tokens.
    var qlist = el("div", { class: "ecco-nv-queries", role: "listbox", "aria-label": "query token" },
      el("span", { class: "ecco-nv-queries-key" }, "query"));
    queries.forEach(function (tok, i) {
      qlist.appendChild(el("button", {
        type: "button", class: "ecco-nv-query", "data-index": i, "data-position": tok.position, role: "option",
        title: "position " + tok.position
      }, util.tokenNodes(tok.text)));
    });
    root.appendChild(qlist);

    function vector(cls) {
      var strip = el("div", { class: "ecco-nv-vec " + cls }), cells = [];
      for (var i = 0; i < d; i++) {
        cells.push(el("span", { class: "ecco-nv-cell", "data-dim": i, style: { width: cw + "px" } }));
        strip.appendChild(cells[i]);
      }
      strip.cells = cells;
      return strip;
    }

    // Table: the query row, then one row per key.
    var qChip = el("span", { class: "ecco-nv-chip" });
    var qVec = vector("ecco-nv-qvec");
    var thead = el("thead", {}, el("tr", {}, [
      el("th", { class: "ecco-nv-th-token" }, "key"),
      el("th", {}, "key vector k"), el("th", {}, "q \u2218 k"), el("th", { class: "ecco-nv-num" }, "q\u00b7k"),
      showBias ? el("th", { class: "ecco-nv-num" }, "bias") : null,
      el("th", { class: "ecco-nv-num" }, "score"), el("th", {}, "softmax"), el("th", { class: "ecco-nv-num", title: "the weight the model computed" }, "model")
    ]));
    var qrow = el("tr", { class: "ecco-nv-qrow" }, [
      el("th", { class: "ecco-nv-th-token", scope: "row" }, qChip),
      el("td", {}, [el("div", { class: "ecco-nv-vec-key" }, "query vector q"), qVec]),
      el("td", { colspan: showBias ? 6 : 5, class: "ecco-nv-qnote" })
    ]);
    var tbody = el("tbody", {}, qrow), rows = [];
    keys.forEach(function (tok, j) {
      var kVec = vector("ecco-nv-kvec"), pVec = vector("ecco-nv-pvec");
      for (var i = 0; i < d; i++) kVec.cells[i].style.backgroundColor = diverging(kv[j][i], vecMax);
      var r = {
        tr: null, kVec: kVec, pVec: pVec, dot: el("td", { class: "ecco-nv-num ecco-nv-dot" }),
        bias: showBias ? el("td", { class: "ecco-nv-num ecco-nv-bias" }) : null, score: el("td", { class: "ecco-nv-num ecco-nv-score" }),
        bar: el("span", { class: "ecco-nv-bar" }), weight: el("span", { class: "ecco-nv-weight" }),
        model: el("td", { class: "ecco-nv-num ecco-nv-model" })
      };
      r.tr = el("tr", { class: "ecco-nv-key", "data-index": j, "data-position": tok.position }, [
        el("th", { class: "ecco-nv-th-token", scope: "row" }, el("span", { class: "ecco-nv-chip", title: "position " + tok.position }, util.tokenNodes(tok.text))),
        el("td", {}, kVec), el("td", {}, pVec), r.dot, r.bias, r.score,
        el("td", { class: "ecco-nv-softmax" }, [el("span", { class: "ecco-nv-track" }, r.bar), r.weight]),
        r.model
      ]);
      rows.push(r);
      tbody.appendChild(r.tr);
    });
    var table = el("table", { class: "ecco-nv-table" }, [thead, tbody]);
    root.appendChild(el("div", { class: "ecco-nv-scroll" }, table));

    var productLegend = el("span", { class: "ecco-nv-scale-range" });
    var agree = el("span", { class: "ecco-nv-agree" });
    function gradient(label, range) {
      return el("span", { class: "ecco-nv-scale" }, [
        label, el("span", { class: "ecco-nv-gradient", style: {
          backgroundImage: "linear-gradient(to right, " + diverging(-1, 1) + ", transparent, " + diverging(1, 1) + ")"
        } }), range
      ]);
    }
    root.appendChild(el("div", { class: "ecco-legend ecco-nv-legend" }, [
      gradient("q, k", el("span", { class: "ecco-nv-scale-range" }, "\u00b1" + fmt(vecMax))),
      gradient("q\u2218k", productLegend),
      el("span", { class: "ecco-nv-masked-key" }, [el("span", { class: "ecco-nv-masked-swatch" }), "masked key"]),
      agree
    ]));

    var shown = -1, pinned = Math.max(0, Math.min(queries.length - 1, data.selected | 0));

    function show(qi) {
      if (qi === shown) return;
      shown = qi;
      qlist.querySelectorAll(".ecco-nv-query").forEach(function (b) {
        var on = Number(b.dataset.index) === qi;
        b.classList.toggle("ecco-selected", on);
        b.setAttribute("aria-selected", String(on));
      });
      qChip.textContent = "";
      qChip.appendChild(el("span", { class: "ecco-nv-chip-text" }, util.tokenNodes(queries[qi].text)));
      qChip.title = "query " + qi + ", position " + queries[qi].position;
      var q = qv[qi];
      for (var i = 0; i < d; i++) qVec.cells[i].style.backgroundColor = diverging(q[i], vecMax);

      // Scores, then the softmax over the unmasked keys.
      var biasRow = hasBias ? row(data.bias, qi) : null, modelRow = row(data.weights, qi);
      var products = [], scores = [], pMax = 0;
      rows.forEach(function (r, j) {
        var p = [], dot = 0;
        for (var i = 0; i < d; i++) { p.push(q[i] * kv[j][i]); dot += p[i]; pMax = Math.max(pMax, Math.abs(p[i])); }
        products.push(p);
        var b = hasBias ? num(biasRow[j]) : 0;
        scores.push({ dot: dot, bias: b, score: b === null ? -Infinity : dot * scale + b });
      });
      var top = Math.max.apply(null, scores.map(function (s) { return s.score; }));
      var exps = scores.map(function (s) { return s.score === -Infinity ? 0 : Math.exp(s.score - top); });
      var total = exps.reduce(function (a, b) { return a + b; }, 0);
      var maxDiff = 0;
      rows.forEach(function (r, j) {
        var s = scores[j], masked = s.score === -Infinity, w = total > 0 ? exps[j] / total : 0, m = num(modelRow[j]);
        for (var i = 0; i < d; i++) r.pVec.cells[i].style.backgroundColor = diverging(products[j][i], pMax);
        r.tr.classList.toggle("ecco-masked", masked);
        r.tr.setAttribute("data-score", masked ? "-Infinity" : s.score.toFixed(4));
        r.tr.setAttribute("data-weight", w.toFixed(4));
        r.tr.setAttribute("data-model-weight", m === null ? "" : String(m));
        r.dot.textContent = fmt(s.dot);
        if (r.bias) r.bias.textContent = masked ? "masked" : fmt(s.bias);
        r.score.textContent = masked ? "\u2212\u221e" : fmt(s.score);
        r.bar.style.width = (w * 100).toFixed(2) + "%";
        r.weight.textContent = w.toFixed(3);
        r.model.textContent = m === null ? "\u2013" : m.toFixed(3);
        if (m !== null) maxDiff = Math.max(maxDiff, Math.abs(m - w));
      });
      productLegend.textContent = "\u00b1" + fmt(pMax);
      agree.textContent = "max |softmax \u2212 model| = " + maxDiff.toFixed(4);
      agree.setAttribute("data-max-diff", maxDiff.toFixed(6));
      agree.classList.toggle("ecco-warn", maxDiff > 0.01);
    }

    function queryOf(node) {
      var b = node && node.closest ? node.closest(".ecco-nv-query") : null;
      return b && qlist.contains(b) ? Number(b.dataset.index) : null;
    }
    qlist.addEventListener("mouseover", function (event) { var qi = queryOf(event.target); if (qi !== null) show(qi); });
    qlist.addEventListener("mouseout", function (event) { if (queryOf(event.relatedTarget) === null) show(pinned); });
    qlist.addEventListener("click", function (event) {
      var qi = queryOf(event.target);
      if (qi === null) return;
      pinned = qi;
      qlist.querySelectorAll(".ecco-nv-query").forEach(function (b) { b.classList.toggle("ecco-pinned", Number(b.dataset.index) === qi); });
      show(qi);
    });
    qlist.querySelector('.ecco-nv-query[data-index="' + pinned + '"]').classList.add("ecco-pinned");

    util.hoverTooltip(root, ".ecco-nv-cell", function (cell) {
      var i = Number(cell.dataset.dim), tr = cell.closest("tr"), q = qv[shown][i];
      if (tr.classList.contains("ecco-nv-qrow")) return [el("div", { class: "ecco-tooltip-title" }, "query \u00b7 dim " + i), util.tooltipRow("q", fmt(q))];
      var j = Number(tr.dataset.index), k = kv[j][i];
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(keys[j].text)) + " \u00b7 dim " + i),
        util.tooltipRow("q", fmt(q)), util.tooltipRow("k", fmt(k)), util.tooltipRow("q\u00d7k", fmt(q * k))
      ];
    });

    show(pinned);
  };
})();
