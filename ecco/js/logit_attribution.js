/* ecco view "logit_attribution": direct logit attribution of one prediction.
 *
 * data (ecco.views.causal.logit_attribution_data; every number may be null):
 *   {title, model, prompt: [token text], target: {id, text}, foil: {id, text} | null,
 *    logit, model_logit, bias, embeddings, softcap: number | null, norm_scale,
 *    layers: [{layer, attention, mlp, cross_attention: number | null,
 *              heads: [number], attention_bias, cross_heads: [number] | null, cross_attention_bias,
 *              mlp_bias, neurons_up: [{neuron, value, activation}], neurons_down: [...]}]}
 *
 * One signed horizontal bar per part of the residual stream, in model order: the embeddings,
 * then each layer's attention (cross-attention for encoder-decoder decoders) and MLP; the
 * total logit (= parts + bias) above. Click a layer's bar (or focus it and press Enter) for
 * that layer's heads and its top neurons pushing the logit up and down. */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el, num = util.num;
  var UP = "rgb(45, 112, 230)", DOWN = "rgb(240, 120, 20)";
  var ROW = 18, LABEL = 92, WIDTH = 420, VALUE = 70;

  var list = util.list, obj = util.obj, node = util.svg;
  var fmt = util.fmt;

  /* The bars in the view's order: {label, value, layer (null for the embeddings), part}. */
  function rows(data) {
    var out = [{ label: "embeddings", value: num(data.embeddings), layer: null, part: "embeddings" }];
    list(data.layers).forEach(function (layer) {
      layer = obj(layer);
      out.push({ label: "L" + layer.layer + " attn", value: num(layer.attention), layer: layer.layer, part: "attention" });
      if (num(layer.cross_attention) !== null) {
        out.push({ label: "L" + layer.layer + " cross", value: num(layer.cross_attention), layer: layer.layer, part: "cross" });
      }
      out.push({ label: "L" + layer.layer + " mlp", value: num(layer.mlp), layer: layer.layer, part: "mlp" });
    });
    return out;
  }

  function barChart(items, onSelect) {
    var extent = Math.max.apply(null, items.map(function (r) { return Math.abs(r.value || 0); }).concat([1e-12]));
    var span = WIDTH - LABEL - VALUE, zero = LABEL + span / 2;
    var svg = node("svg", { class: "ecco-la-chart", width: WIDTH, height: items.length * ROW + 4, role: "list" });
    svg.appendChild(node("line", { x1: zero, x2: zero, y1: 0, y2: items.length * ROW, stroke: "rgba(128,128,128,0.6)" }));
    items.forEach(function (r, i) {
      var v = r.value || 0, w = Math.abs(v) / extent * span / 2, y = i * ROW;
      var g = node("g", { class: "ecco-la-row", role: "listitem", tabindex: r.layer === null ? null : 0,
        "data-index": i, "data-layer": r.layer === null ? null : r.layer, "data-part": r.part });
      g.appendChild(node("rect", { class: "ecco-la-hit", x: 0, y: y, width: WIDTH, height: ROW, fill: "none",
        "pointer-events": "all" }));
      g.appendChild(node("text", { x: LABEL - 6, y: y + ROW - 5, "text-anchor": "end", "font-size": 11 }, r.label));
      g.appendChild(node("rect", { class: "ecco-la-bar", x: v >= 0 ? zero : zero - w, y: y + 3, width: w, height: ROW - 6,
        fill: v >= 0 ? UP : DOWN, "data-value": r.value === null ? "" : r.value }));
      g.appendChild(node("text", { class: "ecco-la-value", x: WIDTH - VALUE + 4, y: y + ROW - 5, "font-size": 11 }, fmt(r.value)));
      if (r.layer !== null) {
        g.style.cursor = "pointer";
        g.addEventListener("click", function () { onSelect(r.layer); });
        g.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); onSelect(r.layer); }
        });
      }
      svg.appendChild(g);
    });
    return svg;
  }

  function table(title, cls, entries) {
    return el("div", { class: "ecco-la-table" }, [
      el("div", { class: "ecco-la-subtitle" }, title),
      entries.length ? el("table", null, entries.map(function (e) {
        return el("tr", { class: cls, dataset: { value: e.value === null ? "" : String(e.value) } },
          [el("td", null, e.label), el("td", { style: { textAlign: "right", color: (e.value || 0) >= 0 ? UP : DOWN } }, fmt(e.value))]);
      })) : el("div", { class: "ecco-muted" }, "none")
    ]);
  }

  function detail(layer) {
    layer = obj(layer);
    var heads = list(layer.heads).map(function (v, h) { return { label: "head " + h, value: num(v) }; });
    var parts = [table("Layer " + layer.layer + " attention heads (bias " + fmt(layer.attention_bias) + ")", "ecco-la-head", heads)];
    if (layer.cross_heads) {
      var cross = list(layer.cross_heads).map(function (v, h) { return { label: "head " + h, value: num(v) }; });
      parts.push(table("Cross-attention heads (bias " + fmt(layer.cross_attention_bias) + ")", "ecco-la-cross-head", cross));
    }
    function neurons(entries) {
      return list(entries).map(function (n) {
        n = obj(n);
        return { label: "neuron " + n.neuron + " (activation " + fmt(n.activation) + ")", value: num(n.value) };
      });
    }
    parts.push(table("Top neurons up", "ecco-la-neuron", neurons(layer.neurons_up)));
    parts.push(table("Top neurons down (MLP bias " + fmt(layer.mlp_bias) + ")", "ecco-la-neuron", neurons(layer.neurons_down)));
    return parts;
  }

  ecco.views.logit_attribution = function (root, data) {
    data = obj(data);
    root.textContent = "";
    var target = obj(data.target), foil = data.foil ? obj(data.foil) : null;
    var what = "logit(" + JSON.stringify(String(target.text)) + ")" +
      (foil ? " \u2212 logit(" + JSON.stringify(String(foil.text)) + ")" : "");
    var total = what + " = " + fmt(data.logit) + " = parts + bias " + fmt(data.bias) +
      (data.softcap ? " (before soft-capping at " + fmt(data.softcap) + "; the model's: " + fmt(data.model_logit) + ")"
        : " (the model's: " + fmt(data.model_logit) + ")");
    var layers = list(data.layers), panel = el("div", { class: "ecco-la-detail" });
    var selected = null;
    function select(layer) {
      selected = layer;
      panel.textContent = "";
      var found = layers.filter(function (l) { return obj(l).layer === layer; })[0];
      if (found) detail(found).forEach(function (n) { panel.appendChild(n); });
      root.querySelectorAll(".ecco-la-row").forEach(function (g) {
        g.setAttribute("opacity", g.dataset.layer === undefined || Number(g.dataset.layer) === selected ? "1" : "0.55");
      });
    }
    root.appendChild(el("div", { class: "ecco-la" }, [
      el("div", { class: "ecco-title" }, String(data.title || "Direct logit attribution")),
      el("div", { class: "ecco-muted" }, String(data.model || "")),
      el("div", { class: "ecco-la-prompt" }, [el("span", { class: "ecco-muted" }, "prompt: ")].concat(
        list(data.prompt).map(function (t) { return el("span", { class: "ecco-la-token" }, util.tokenNodes(t)); }))),
      el("div", { class: "ecco-la-total" }, total),
      barChart(rows(data), select),
      el("div", { class: "ecco-muted" }, "Each part read through the final norm with its scale frozen at this run. " +
        "Click a layer for its heads and top neurons."),
      panel
    ]));
    if (layers.length) select(obj(layers[layers.length - 1]).layer);
  };
})();
