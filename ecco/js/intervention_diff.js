/* ecco view "intervention_diff": what interventions changed in a generation.
 *
 * data (ecco.views.interventions.intervention_diff_data; every number may be null):
 *   {title, model, prompt: [text], interventions: [description],
 *    clean: [{id, text, prob}], intervened: [{id, text, prob, clean_prob, change}],
 *    ops: [[tag, clean start, clean end, intervened start, intervened end]] (difflib opcodes,
 *          tag "equal" | "replace" | "delete" | "insert"),
 *    changed: number of intervened tokens not in an "equal" op}
 *
 * The interventions, the prompt (muted) and a summary line; then the clean continuation over the
 * intervened one, segment by segment (each token of an "equal" op alone, every other op as one
 * highlighted block): clean tokens that went are struck through, intervened tokens that came are
 * marked. Under each intervened token a signed bar of its probability change (intervened − clean
 * after the same prefix; blue up, orange down), scaled to the largest change. Hovering a token
 * shows its numbers. */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el, num = util.num, list = util.list, obj = util.obj;
  var HALF = 10;  // px of the largest change's bar

  var fmt = util.fmt;
  function signed(v) { return (num(v) > 0 ? "+" : "") + fmt(v); }

  /* The well-formed opcodes, every "equal" op split into one segment per token. */
  function segments(ops) {
    var out = [];
    list(ops).forEach(function (op) {
      if (!Array.isArray(op) || op.length !== 5 || !op.slice(1).every(function (x) { return num(x) !== null; })) return;
      var tag = String(op[0]);
      if (tag !== "equal") { out.push({ tag: tag, a: op[1], b: op[2], c: op[3], d: op[4] }); return; }
      for (var k = 0; op[1] + k < op[2]; k++) out.push({ tag: tag, a: op[1] + k, b: op[1] + k + 1, c: op[3] + k, d: op[3] + k + 1 });
    });
    return out;
  }

  function bar(change, extent) {
    var v = num(change), h = v === null || v === 0 ? 0 : Math.max(1, Math.abs(v) / extent * HALF);
    return el("span", { class: "ecco-diff-barbox" }, el("span", {
      class: "ecco-diff-bar " + (v !== null && v < 0 ? "ecco-diff-down" : "ecco-diff-up"),
      "data-change": v === null ? "" : String(v), style: { height: h + "px" }
    }));
  }

  function summary(data, segs) {
    var n = list(data.intervened).length;
    var first = segs.filter(function (s) { return s.tag !== "equal"; })[0];
    if (!first) return "nothing changed: the two continuations are the same " + n + " tokens";
    return data.changed + " of " + n + " tokens changed; first change at token " + first.c;
  }

  ecco.views.intervention_diff = function (root, data) {
    data = obj(data);
    root.textContent = "";
    var clean = list(data.clean).map(obj), intervened = list(data.intervened).map(obj), segs = segments(data.ops);
    var extent = Math.max.apply(null, intervened.map(function (t) { return Math.abs(num(t.change) || 0); }).concat([1e-12]));

    function token(side, t, i, changed) {
      return el("span", { class: "ecco-diff-token" + (changed ? (side === "clean" ? " ecco-diff-removed" : " ecco-diff-added") : ""),
        "data-side": side, "data-index": i }, util.tokenNodes(t.text));
    }
    var rows = el("div", { class: "ecco-diff-rows" }, el("div", { class: "ecco-diff-seg ecco-diff-labels" }, [
      el("div", { class: "ecco-diff-line" }, "clean"), el("div", { class: "ecco-diff-line" }, "intervened")]));
    segs.forEach(function (s) {
      var changed = s.tag !== "equal", top = [], bottom = [];
      for (var i = s.a; i < s.b && i < clean.length; i++) top.push(token("clean", clean[i], i, changed));
      for (var j = s.c; j < s.d && j < intervened.length; j++) {
        bottom.push(el("span", { class: "ecco-diff-item" }, [token("intervened", intervened[j], j, changed), bar(intervened[j].change, extent)]));
      }
      rows.appendChild(el("div", { class: "ecco-diff-seg" + (changed ? " ecco-diff-changed" : ""), "data-tag": s.tag }, [
        el("div", { class: "ecco-diff-line ecco-diff-clean" }, top), el("div", { class: "ecco-diff-line ecco-diff-intervened" }, bottom)]));
    });

    root.appendChild(el("div", { class: "ecco-diff" }, [
      el("div", { class: "ecco-title" }, String(data.title || "Generation with interventions")),
      el("div", { class: "ecco-diff-muted" }, String(data.model || "")),
      el("ul", { class: "ecco-diff-interventions" }, list(data.interventions).map(function (d) { return el("li", {}, String(d)); })),
      el("div", { class: "ecco-diff-prompt" }, [el("span", {}, "prompt ")].concat(list(data.prompt).map(function (t) {
        return el("span", { class: "ecco-diff-prompt-token" }, util.tokenNodes(t));
      }))),
      el("div", { class: "ecco-diff-summary" }, summary(data, segs)),
      rows,
      el("div", { class: "ecco-legend" }, "Top: the continuation without the interventions (clean); bottom: with them. " +
        "Struck through: clean tokens that went; marked: intervened tokens that came. Bars: the intervened model's " +
        "probability of each token minus the clean model's after the same prefix (blue up, orange down; full bar: " +
        fmt(intervened.length ? extent : null) + ").")
    ]));

    util.hoverTooltip(root, ".ecco-diff-token", function (node) {
      var i = Number(node.dataset.index), t = node.dataset.side === "clean" ? clean[i] : intervened[i];
      var rows = [el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(t.text))),
        util.tooltipRow(node.dataset.side, "token " + i), util.tooltipRow("id", t.id)];
      if (node.dataset.side === "clean") return rows.concat([util.tooltipRow("p clean", fmt(t.prob))]);
      return rows.concat([util.tooltipRow("p intervened", fmt(t.prob)), util.tooltipRow("p clean, same prefix", fmt(t.clean_prob)),
        util.tooltipRow("change", signed(t.change))]);
    });
  };
})();
