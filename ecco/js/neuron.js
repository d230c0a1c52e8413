/* ecco view "neuron": one neuron's activation over the text (Karpathy-style). Each token's
 * background shows the value: orange for positive, blue for negative, intensity = |v| / max|v|.
 * data: {tokens: [{text, position, sequence, is_input, continues_word, special}],
 *        values: [number | null per token], layer: int, neuron: int, stack: string,
 *        title: string | null} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var POSITIVE = "orange", NEGATIVE = "blue";

  var num = util.num;
  function fmt(v) {
    if (v === null) return "\u2013";
    if (v === 0) return "0";
    return String(Number(v.toPrecision(4)));
  }
  function signed(v) { return v === null ? "\u2013" : (v > 0 ? "+" : "") + fmt(v); }
  function present(x) { return x !== null && x !== undefined && x !== ""; }

  ecco.views.neuron = function (root, data) {
    var tokens = Array.isArray(data.tokens) ? data.tokens : [];
    var values = tokens.map(function (_, i) { return Array.isArray(data.values) ? num(data.values[i]) : null; });
    var maxAbs = values.reduce(function (m, v) { return v !== null ? Math.max(m, Math.abs(v)) : m; }, 0);
    var sequences = [];
    tokens.forEach(function (tok) { if (sequences.indexOf(tok.sequence) < 0) sequences.push(tok.sequence); });
    var name = (present(data.layer) ? "layer " + data.layer : "") + (present(data.layer) && present(data.neuron) ? " \u00b7 " : "") +
      (present(data.neuron) ? "neuron " + data.neuron : "");

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    if (name || present(data.stack)) {
      root.appendChild(el("div", { class: "ecco-neuron-header" }, [
        name ? el("span", { class: "ecco-neuron-name" }, name) : null,
        present(data.stack) ? el("span", { class: "ecco-neuron-stack" }, String(data.stack)) : null
      ]));
    }

    var text = el("div", { class: "ecco-neuron-text" }), line = null, word = null, lastSeq;
    tokens.forEach(function (tok, i) {
      if (!line || tok.sequence !== lastSeq) {
        lastSeq = tok.sequence;
        line = el("div", { class: "ecco-tokens ecco-neuron-tokens" });
        text.appendChild(el("div", { class: "ecco-neuron-seq", "data-sequence": tok.sequence }, [
          sequences.length > 1 ? el("div", { class: "ecco-neuron-seq-label" }, "sequence " + tok.sequence) : null, line
        ]));
        word = null;
      }
      var v = values[i], sign = v === null ? "ecco-missing" : v > 0 ? "ecco-pos" : v < 0 ? "ecco-neg" : "ecco-zero";
      var shade = v === null || maxAbs <= 0 ? 0 : Math.abs(v) / maxAbs;
      if (!word || !tok.continues_word) line.appendChild((word = el("span", { class: "ecco-word" })));
      word.appendChild(el("span", {
        class: "ecco-token ecco-neuron-token " + sign + (tok.special ? " ecco-special" : ""),
        "data-position": tok.position, "data-sequence": tok.sequence, "data-index": i,
        "data-value": v === null ? null : String(v),
        style: v === null ? null : { backgroundColor: util.colorScale(shade, v < 0 ? NEGATIVE : POSITIVE) }
      }, util.tokenNodes(tok.text)));
    });
    if (!tokens.length) text.appendChild(el("div", { class: "ecco-note" }, "no tokens to show"));
    root.appendChild(text);

    var stops = [
      util.colorScale(1, NEGATIVE) + " 0%", util.colorScale(0, NEGATIVE) + " 50%", util.colorScale(1, POSITIVE) + " 100%"
    ];
    root.appendChild(el("div", { class: "ecco-legend ecco-neuron-legend" }, [
      el("span", { class: "ecco-neuron-scale" }, [
        el("span", { class: "ecco-neuron-tick" }, maxAbs > 0 ? "\u2212" + fmt(maxAbs) : "0"),
        el("span", { class: "ecco-neuron-gradient", style: { backgroundImage: "linear-gradient(to right, " + stops.join(", ") + ")" } }),
        el("span", { class: "ecco-neuron-tick" }, maxAbs > 0 ? "+" + fmt(maxAbs) : "0")
      ]),
      el("span", { class: "ecco-neuron-max" }, "max |value| " + fmt(maxAbs)),
      values.some(function (v) { return v === null; }) ? el("span", { class: "ecco-neuron-missing-note" }, [
        el("span", { class: "ecco-neuron-missing-swatch" }), "no value"
      ]) : null
    ]));

    util.hoverTooltip(root, ".ecco-neuron-token", function (span) {
      var i = Number(span.dataset.index), tok = tokens[i];
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(tok.text))),
        util.tooltipRow("value", signed(values[i])),
        util.tooltipRow("position", tok.position + (sequences.length > 1 ? " (sequence " + tok.sequence + ")" : "")),
        present(data.layer) ? util.tooltipRow("layer", data.layer) : null,
        present(data.neuron) ? util.tooltipRow("neuron", data.neuron) : null
      ];
    });
  };
})();
