/* ecco view "causal_trace": causal tracing (Meng et al. 2022) / activation patching.
 *
 * data (ecco.views.tracing.trace_data; every number may be null):
 *   {title, model, stack, tokens: [text per position], corrupted: [position],
 *    counterfactual: [text per position] | null, target: {id, text}, clean_prob, corrupt_prob,
 *    noise: number | null, seeds, window, layers,
 *    components: [{name: "residual" | "mlp" | "attention", label,
 *                  prob: [[number per position] per layer], indirect: [[...]], normalised: [[...]]}]}
 *
 * One heatmap per component, side by side (wrapping where the page is narrow): positions as rows
 * labelled by their token text (corrupted tokens bold and starred), layers as columns, as in Meng
 * et al.'s Fig. 1; token text reads best horizontally, and prompts are shorter than models are deep.
 * Each heatmap is coloured from 0 to its own max of the shown value (values <= 0 are not coloured);
 * buttons switch the value between the indirect effect, the normalised effect and the probability.
 * Hovering a cell shows all its numbers. */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el, num = util.num, list = util.list, obj = util.obj;
  // Per component, as the static rendering and the figure (Meng et al.: purple, green, red).
  var COLOURS = { residual: [106, 61, 154], mlp: [35, 139, 69], attention: [203, 24, 29] }, OTHER = [45, 112, 230];
  var VALUES = [["indirect", "indirect effect"], ["normalised", "normalised effect"], ["prob", "probability"]];
  var TOP = 0.85;  // the opacity of a heatmap's max

  var fmt = util.fmt;
  function at(grid, layer, position) {
    var row = list(grid)[layer];
    return Array.isArray(row) ? num(row[position]) : null;
  }
  function peak(grid) {
    var top = 0;
    list(grid).forEach(function (row) {
      list(row).forEach(function (v) { v = num(v); if (v !== null && v > top) top = v; });
    });
    return top;
  }
  function shade(colour, share) {
    return share > 0 ? "rgba(" + colour.join(", ") + ", " + (TOP * Math.min(1, share)).toFixed(3) + ")" : "";
  }
  function token(text, cls) { return el("span", { class: "ecco-ct-token" + (cls ? " " + cls : "") }, util.tokenNodes(text)); }

  function heatmap(component, index, tokens, corrupted, layers) {
    var stride = layers <= 16 ? 1 : layers <= 60 ? 5 : 10, colHeads = [], rowHeads = [], cells = [];
    var head = el("tr", {}, el("th", { class: "ecco-ct-corner" }, "layer"));
    for (var l = 0; l < layers; l++) {
      colHeads[l] = el("th", { class: "ecco-ct-layer", scope: "col", "data-col": l }, l % stride === 0 ? String(l) : "");
      head.appendChild(colHeads[l]);
    }
    var body = el("tbody");
    tokens.forEach(function (text, p) {
      var bad = corrupted[p] === true;
      rowHeads[p] = el("th", { class: "ecco-ct-row" + (bad ? " ecco-ct-corrupted" : ""), scope: "row", "data-row": p },
        [el("span", { class: "ecco-ct-text" }, util.tokenNodes(text)), bad ? el("span", { class: "ecco-ct-star" }, "*") : null]);
      var tr = el("tr", {}, rowHeads[p]);
      for (var layer = 0; layer < layers; layer++) {
        var cell = el("td", { class: "ecco-ct-cell", "data-row": p, "data-col": layer, "data-position": p, "data-layer": layer });
        cells.push(cell);
        tr.appendChild(cell);
      }
      body.appendChild(tr);
    });
    var table = el("table", { class: "ecco-ct-table" }, [el("thead", {}, head), body]);
    table.style.setProperty("--ecco-ct-cell", Math.max(8, Math.min(18, Math.floor(360 / Math.max(1, layers)))) + "px");
    util.headerHover(table, ".ecco-ct-cell", rowHeads, colHeads);
    var colour = COLOURS[component.name] || OTHER, max = el("span", { class: "ecco-ct-max" });
    var panel = el("div", { class: "ecco-ct-panel", "data-component": String(component.name), "data-index": index }, [
      el("div", { class: "ecco-ct-panel-title" }, String(component.label || component.name)),
      el("div", { class: "ecco-ct-scroll" }, table),
      el("div", { class: "ecco-ct-scale" }, ["0", el("span", { class: "ecco-ct-gradient",
        style: { backgroundImage: "linear-gradient(to right, " + shade(colour, 0.001) + ", " + shade(colour, 1) + ")" } }), max])
    ]);
    panel.paint = function (key) {
      var grid = component[key], top = peak(grid);
      max.textContent = fmt(top);
      cells.forEach(function (cell) {
        var v = at(grid, Number(cell.dataset.layer), Number(cell.dataset.position));
        cell.dataset.value = v === null ? "" : String(v);
        cell.classList.toggle("ecco-ct-missing", v === null);
        cell.style.backgroundColor = shade(colour, v !== null && top > 0 ? v / top : 0);
      });
    };
    return panel;
  }

  function corruption(data, corrupted) {
    if (Array.isArray(data.counterfactual)) {
      return ["counterfactual prompt "].concat(data.counterfactual.map(function (t, p) {
        return token(t, corrupted[p] ? "ecco-ct-corrupted" : "");
      }));
    }
    return "Gaussian noise \u03c3 " + fmt(data.noise) + " on the starred tokens, mean of " + data.seeds + " seeds";
  }

  ecco.views.causal_trace = function (root, data) {
    data = obj(data);
    root.textContent = "";
    var tokens = list(data.tokens), components = list(data.components).map(obj), target = obj(data.target);
    var corrupted = {}, layers = Math.max(0, num(data.layers) || 0);
    list(data.corrupted).forEach(function (p) { corrupted[p] = true; });
    var panels = components.map(function (c, i) { return heatmap(c, i, tokens, corrupted, layers); });
    var buttons = VALUES.map(function (v) {
      return el("button", { type: "button", class: "ecco-ct-mode", "data-value": v[0], onclick: function () { show(v[0]); } }, v[1]);
    });
    function show(key) {
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.value === key)); });
      panels.forEach(function (panel) { panel.paint(key); });
      view.dataset.value = key;
    }
    var view = el("div", { class: "ecco-ct" }, [
      el("div", { class: "ecco-title" }, String(data.title || "Causal tracing")),
      el("div", { class: "ecco-ct-model" }, String(data.model || "")),
      el("div", { class: "ecco-ct-header" }, [
        el("span", { class: "ecco-ct-target" }, ["target ", token(target.text), " (id " + target.id + ")"]),
        el("span", { class: "ecco-ct-probs" }, "p clean " + fmt(data.clean_prob) + " \u00b7 p corrupted " + fmt(data.corrupt_prob)),
        el("span", { class: "ecco-ct-corruption" }, corruption(data, corrupted)),
        el("span", { class: "ecco-ct-window" }, "window " + data.window + " \u00b7 " + data.stack + " stack")
      ]),
      el("div", { class: "ecco-ct-switch", role: "group", "aria-label": "value shown" }, buttons),
      el("div", { class: "ecco-ct-panels" }, panels.length ? panels : el("div", { class: "ecco-ct-model" }, "nothing to show")),
      el("div", { class: "ecco-legend" }, "Each cell: the target's probability with the clean state of that component restored " +
        "at that layer (MLP and attention: the window of layers around it) and token, in the corrupted run. Indirect effect = " +
        "restored \u2212 corrupted; normalised = indirect / (clean \u2212 corrupted). Values \u2264 0 are not coloured.")
    ]);
    root.appendChild(view);
    show("indirect");

    util.hoverTooltip(root, ".ecco-ct-cell", function (cell) {
      var component = components[Number(cell.closest(".ecco-ct-panel").dataset.index)];
      var l = Number(cell.dataset.layer), p = Number(cell.dataset.position);
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(tokens[p]))),
        util.tooltipRow("position", p + (corrupted[p] ? " (corrupted)" : "")),
        util.tooltipRow("layer", l),
        util.tooltipRow("component", String(component.label || component.name)),
        util.tooltipRow("p restored", fmt(at(component.prob, l, p))),
        util.tooltipRow("indirect effect", fmt(at(component.indirect, l, p))),
        util.tooltipRow("normalised effect", fmt(at(component.normalised, l, p)))
      ];
    });
  };
})();
