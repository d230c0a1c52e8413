/* ecco view "top_neurons": the most active neurons for one token, as a ranked list of bars.
 * Bar length = |value| / max |value|; when some values are negative the bars diverge from a
 * centre line (negative to the left, in blue; positive to the right, in orange).
 * data: {token: {text, position}, neurons: [{layer, neuron, value}] (sorted by value, descending),
 *        title: string | null} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;

  var num = util.num;
  function fmt(v) {
    if (v === null) return "\u2013";
    if (v === 0) return "0";
    return String(Number(v.toPrecision(4)));
  }
  function present(x) { return x !== null && x !== undefined; }

  ecco.views.top_neurons = function (root, data) {
    var token = data.token && typeof data.token === "object" ? data.token : null;
    var neurons = Array.isArray(data.neurons) ? data.neurons.filter(function (n) { return n && typeof n === "object"; }) : [];
    var vals = neurons.map(function (n) { return num(n.value); });
    var maxAbs = vals.reduce(function (m, v) { return v !== null ? Math.max(m, Math.abs(v)) : m; }, 0);
    var diverging = vals.some(function (v) { return v !== null && v < 0; });

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    if (token) {
      root.appendChild(el("div", { class: "ecco-tn-header" }, [
        el("span", { class: "ecco-tn-key" }, "most active neurons for"),
        el("span", { class: "ecco-tn-chip" }, util.tokenNodes(present(token.text) ? String(token.text) : "")),
        present(token.position) ? el("span", { class: "ecco-tn-key" }, "position " + token.position) : null
      ]));
    }

    function name(n) {
      return (present(n.layer) ? "L" + n.layer : "L?") + " \u00b7 " + (present(n.neuron) ? "n" + n.neuron : "n?");
    }
    function width(v) { return v === null || maxAbs <= 0 ? "0%" : (100 * Math.abs(v) / maxAbs).toFixed(2) + "%"; }

    var list = el("ol", { class: "ecco-tn-list" + (diverging ? " ecco-tn-diverging" : "") });
    neurons.forEach(function (n, r) {
      var v = vals[r], sign = v === null ? "ecco-missing" : v < 0 ? "ecco-neg" : "ecco-pos";
      var bar = el("span", { class: "ecco-bar ecco-tn-bar " + sign, style: { width: width(v) } });
      var track = diverging
        ? el("span", { class: "ecco-tn-track" }, [
            el("span", { class: "ecco-tn-half ecco-tn-half-neg" }, v !== null && v < 0 ? bar : null),
            el("span", { class: "ecco-tn-half ecco-tn-half-pos" }, v === null || v >= 0 ? bar : null)
          ])
        : el("span", { class: "ecco-tn-track" }, el("span", { class: "ecco-tn-half ecco-tn-half-pos" }, bar));
      list.appendChild(el("li", {
        class: "ecco-top-neuron " + sign, "data-layer": n.layer, "data-neuron": n.neuron,
        "data-value": v === null ? null : String(v), "data-rank": r + 1
      }, [
        el("span", { class: "ecco-tn-rank" }, String(r + 1)),
        el("span", { class: "ecco-tn-label" }, name(n)),
        track,
        el("span", { class: "ecco-tn-value" }, fmt(v))
      ]));
    });
    root.appendChild(list);
    if (!neurons.length) root.appendChild(el("div", { class: "ecco-note" }, "no neurons to show"));
    else {
      root.appendChild(el("div", { class: "ecco-legend ecco-tn-legend" },
        "bar length = |value| / " + fmt(maxAbs) + (diverging ? " \u00b7 negative values to the left" : "")));
    }

    util.hoverTooltip(root, ".ecco-top-neuron", function (row) {
      var r = Number(row.dataset.rank) - 1, n = neurons[r];
      return [
        el("div", { class: "ecco-tooltip-title" }, "layer " + (present(n.layer) ? n.layer : "?") + ", neuron " + (present(n.neuron) ? n.neuron : "?")),
        util.tooltipRow("value", fmt(vals[r])),
        util.tooltipRow("rank", r + 1),
        token ? util.tooltipRow("token", JSON.stringify(String(token.text))) : null
      ];
    });
  };
})();
