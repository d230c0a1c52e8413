/* ecco view "layer_predictions": the logit lens at one position. One column per layer holds that
 * layer's top-k candidate tokens, shaded by probability; the token that actually came next is
 * outlined wherever it makes the top-k, and each column's footer gives its rank at that layer.
 * Hovering a candidate shows its numbers and marks the same token in every column.
 * data: {position, context: [{text, position}], actual: {text, id} | null,
 *        layers: [{layer, candidates: [{text, id, prob, rank}]}],
 *        actual_by_layer: [{layer, prob, rank}] | null, title: string | null} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var SCHEME = "blue";
  var CONTEXT_SHOWN = 12;

  var num = util.num;
  function pct(p, digits) {
    if (p === null) return "\u2013";
    var floor = Math.pow(10, -digits);
    if (p > 0 && p * 100 < floor) return "<" + floor.toFixed(digits) + "%";
    return (p * 100).toFixed(digits) + "%";
  }

  function chip(text, cls) {
    return el("span", { class: "ecco-lp-chip" + (cls ? " " + cls : "") }, util.tokenNodes(text));
  }

  function caption(data) {
    var context = Array.isArray(data.context) ? data.context : [];
    var shown = context.slice(-CONTEXT_SHOWN);
    var parts = [el("span", { class: "ecco-lp-key" }, "position"), " ",
                 el("span", { class: "ecco-lp-position" }, String(data.position))];
    if (context.length) {
      var line = el("span", { class: "ecco-lp-context" });
      if (context.length > shown.length) line.appendChild(el("span", { class: "ecco-lp-ellipsis", title: (context.length - shown.length) + " earlier tokens" }, "\u2026"));
      shown.forEach(function (tok) {
        line.appendChild(el("span", { class: "ecco-lp-context-token", "data-position": tok.position }, util.tokenNodes(tok.text)));
      });
      line.appendChild(el("span", { class: "ecco-lp-slot", title: "the predicted position" }, "?"));
      parts.push(" ", el("span", { class: "ecco-lp-key" }, "after"), " ", line);
    }
    var actual = data.actual;
    parts.push(el("span", { class: "ecco-lp-actual-label" }, [
      el("span", { class: "ecco-lp-key" }, "actual"), " ",
      actual ? chip(actual.text, "ecco-lp-actual-chip") : el("span", { class: "ecco-lp-none" }, "none")
    ]));
    return el("div", { class: "ecco-lp-caption" }, parts);
  }

  ecco.views.layer_predictions = function (root, data) {
    var layers = Array.isArray(data.layers) ? data.layers : [];
    var actual = data.actual || null;
    var actualId = actual && actual.id !== null && actual.id !== undefined ? String(actual.id) : null;
    var byLayer = {};
    var hasFooter = Array.isArray(data.actual_by_layer);
    if (hasFooter) data.actual_by_layer.forEach(function (r) { if (r) byLayer[r.layer] = r; });
    var lastLayer = layers.length ? layers[layers.length - 1].layer : null;

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, data.title));
    root.appendChild(caption(data));

    var candidates = [];  // flat list; each box's data-index points here
    var grid = el("div", { class: "ecco-lp-grid" });
    layers.forEach(function (entry) {
      var column = el("div", { class: "ecco-lp-column", "data-layer": entry.layer }, el("div", {
        class: "ecco-lp-head", title: entry.layer === 0 ? "embeddings" : entry.layer === lastLayer ? "last layer (model output)" : null
      }, [el("span", { class: "ecco-lp-head-key" }, "layer "), String(entry.layer)]));
      (entry.candidates || []).forEach(function (cand) {
        var p = num(cand.prob), isActual = actualId !== null && String(cand.id) === actualId;
        candidates.push({ cand: cand, layer: entry.layer });
        column.appendChild(el("div", {
          class: "ecco-lp-candidate" + (isActual ? " ecco-lp-actual" : ""),
          "data-token-id": cand.id, "data-rank": cand.rank, "data-prob": p === null ? null : String(p),
          "data-layer": entry.layer, "data-index": candidates.length - 1,
          style: { backgroundColor: p === null ? "" : util.colorScale(p, SCHEME) }
        }, [
          el("span", { class: "ecco-lp-text" }, util.tokenNodes(cand.text)),
          el("span", { class: "ecco-lp-prob" }, pct(p, 1))
        ]));
      });
      if (!(entry.candidates || []).length) column.appendChild(el("div", { class: "ecco-lp-empty" }, "no candidates"));
      if (hasFooter) {
        var r = byLayer[entry.layer], rank = r ? num(r.rank) : null, prob = r ? num(r.prob) : null;
        column.appendChild(el("div", {
          class: "ecco-lp-rank" + (rank === 1 ? " ecco-lp-top" : ""), "data-layer": entry.layer,
          "data-rank": rank, "data-prob": prob === null ? null : String(prob),
          title: prob === null ? null : "probability of the actual token: " + pct(prob, 2)
        }, "rank " + (rank === null ? "\u2013" : rank)));
      }
      grid.appendChild(column);
    });
    var scroll = el("div", { class: "ecco-lp-scroll" }, grid);
    root.appendChild(scroll);
    if (!layers.length) scroll.appendChild(el("div", { class: "ecco-lp-empty" }, "no layers"));

    root.appendChild(el("div", { class: "ecco-legend ecco-lp-legend" }, [
      el("span", { class: "ecco-lp-scale" }, [
        "0%", el("span", { class: "ecco-lp-gradient", style: { backgroundImage: gradient() } }), "100%"
      ]),
      actual ? el("span", {}, [el("span", { class: "ecco-lp-swatch-actual" }), "actual next token"]) : null,
      hasFooter ? el("span", {}, "footer: rank of the actual token at each layer") : null
    ]));

    function gradient() {
      return "linear-gradient(to right, " + [0, 0.25, 0.5, 0.75, 1].map(function (v) {
        return util.colorScale(v, SCHEME) + " " + v * 100 + "%";
      }).join(", ") + ")";
    }

    // Same-token highlight across columns.
    var boxes = grid.querySelectorAll(".ecco-lp-candidate");
    function highlight(id) {
      for (var i = 0; i < boxes.length; i++) boxes[i].classList.toggle("ecco-lp-same", id !== null && boxes[i].dataset.tokenId === id);
    }
    grid.addEventListener("mouseover", function (event) {
      var box = event.target.closest(".ecco-lp-candidate");
      if (box && grid.contains(box)) highlight(box.dataset.tokenId);
    });
    grid.addEventListener("mouseout", function (event) {
      var box = event.target.closest(".ecco-lp-candidate");
      if (box && !box.contains(event.relatedTarget)) {
        var next = event.relatedTarget && event.relatedTarget.closest ? event.relatedTarget.closest(".ecco-lp-candidate") : null;
        if (!next || !grid.contains(next)) highlight(null);
      }
    });

    util.hoverTooltip(root, ".ecco-lp-candidate", function (box) {
      var item = candidates[Number(box.dataset.index)], cand = item.cand;
      var count = grid.querySelectorAll(".ecco-lp-candidate.ecco-lp-same").length;
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(cand.text))),
        util.tooltipRow("id", cand.id),
        util.tooltipRow("prob", pct(num(cand.prob), 2)),
        util.tooltipRow("rank", cand.rank),
        util.tooltipRow("layer", item.layer),
        actualId !== null && String(cand.id) === actualId ? el("div", { class: "ecco-tooltip-hint" }, "the actual next token") : null,
        count > 1 ? el("div", { class: "ecco-tooltip-hint" }, "among the top candidates at " + count + " layers") : null
      ];
    });
  };
})();
