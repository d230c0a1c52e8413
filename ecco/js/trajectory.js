/* ecco view "trajectory": per-layer curves (entropy, KL to the final layer, probability...) of the
 * logit lens, one small line chart per series, one line per token. Click a legend entry to hide or
 * show its token; hover a line, point or legend entry to emphasise that token in every chart.
 * data: {layers: [int], tokens: [{text, position}],
 *        series: [{key, label, unit, values: [[number | null per layer] per token]}], title} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var W = 320, H = 210, M = { left: 50, right: 12, top: 12, bottom: 36 };
  var PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#8c8c8c"];

  var num = util.num;
  function color(i) { return i < PALETTE.length ? PALETTE[i] : "hsl(" + Math.round((i * 137.508) % 360) + ", 55%, 55%)"; }

  var svg = util.svg;

  /* Round tick step of about (hi - lo) / count; integer steps when `integer`. */
  function niceStep(lo, hi, count, integer) {
    var raw = (hi - lo) / Math.max(1, count), mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
    var step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    return integer ? Math.max(1, Math.round(step)) : step;
  }
  function ticks(lo, hi, step) {
    var out = [];
    for (var v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }
  function decimals(step) { return Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))); }
  function fmt(v) {
    if (Math.abs(v) >= 1000 || v === 0) return String(Math.round(v));
    return String(Number(v.toPrecision(4)));
  }

  ecco.views.trajectory = function (root, data) {
    var layers = Array.isArray(data.layers) ? data.layers : [];
    var tokens = Array.isArray(data.tokens) ? data.tokens : [];
    var series = Array.isArray(data.series) ? data.series : [];
    var hidden = tokens.map(function () { return false; });

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, data.title));

    var charts = el("div", { class: "ecco-traj-charts" });
    var xs = layers.map(num).filter(function (v) { return v !== null; });
    var xlo = xs.length ? Math.min.apply(null, xs) : 0, xhi = xs.length ? Math.max.apply(null, xs) : 1;
    if (xhi === xlo) { xlo -= 0.5; xhi += 0.5; }
    var pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    function x(layer) { return M.left + (layer - xlo) / (xhi - xlo) * pw; }
    var xstep = niceStep(xlo, xhi, 6, true);

    series.forEach(function (s) {
      var values = Array.isArray(s.values) ? s.values : [];
      var all = [];
      values.forEach(function (row) { (row || []).forEach(function (v) { if (num(v) !== null) all.push(v); }); });
      var lo = all.length ? Math.min(0, Math.min.apply(null, all)) : 0;
      var hi = all.length ? Math.max.apply(null, all) : 1;
      if (hi <= lo) hi = lo + 1;
      var ystep = niceStep(lo, hi, 5, false);
      lo = Math.floor(lo / ystep + 1e-9) * ystep;
      hi = Math.ceil(hi / ystep - 1e-9) * ystep;
      function y(v) { return M.top + ph - (v - lo) / (hi - lo) * ph; }
      var yd = decimals(ystep);

      var chart = svg("svg", {
        class: "ecco-traj-chart", "data-key": s.key, width: W, height: H, viewBox: "0 0 " + W + " " + H,
        role: "img", "aria-label": (s.label || s.key) + " by layer"
      });
      // Grid and axes.
      var axes = svg("g", { class: "ecco-traj-axes" });
      ticks(lo, hi, ystep).forEach(function (v) {
        axes.appendChild(svg("line", { class: "ecco-traj-grid", x1: M.left, x2: M.left + pw, y1: y(v), y2: y(v) }));
        axes.appendChild(svg("text", { class: "ecco-traj-tick ecco-traj-ytick", x: M.left - 6, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" }, v.toFixed(yd)));
      });
      ticks(xlo, xhi, xstep).forEach(function (v) {
        axes.appendChild(svg("line", { class: "ecco-traj-tickmark", x1: x(v), x2: x(v), y1: M.top + ph, y2: M.top + ph + 4 }));
        axes.appendChild(svg("text", { class: "ecco-traj-tick ecco-traj-xtick", x: x(v), y: M.top + ph + 15, "text-anchor": "middle" }, String(v)));
      });
      axes.appendChild(svg("line", { class: "ecco-traj-axis", x1: M.left, x2: M.left + pw, y1: M.top + ph, y2: M.top + ph }));
      axes.appendChild(svg("line", { class: "ecco-traj-axis", x1: M.left, x2: M.left, y1: M.top, y2: M.top + ph }));
      axes.appendChild(svg("text", { class: "ecco-traj-label", x: M.left + pw / 2, y: H - 4, "text-anchor": "middle" }, "layer"));
      axes.appendChild(svg("text", {
        class: "ecco-traj-label", x: 0, y: 0, "text-anchor": "middle",
        transform: "translate(11 " + (M.top + ph / 2) + ") rotate(-90)"
      }, s.unit || s.key));
      chart.appendChild(axes);

      // One group per token: the line, a wide invisible stroke to hover it, the points.
      tokens.forEach(function (tok, t) {
        var row = values[t] || [], d = "", pen = false, points = [];
        layers.forEach(function (layer, l) {
          var v = num(row[l]), lx = num(layer);
          if (v === null || lx === null) { pen = false; return; }
          d += (pen ? "L" : "M") + x(lx).toFixed(2) + "," + y(v).toFixed(2);
          pen = true;
          points.push(svg("circle", {
            class: "ecco-traj-point", cx: x(lx).toFixed(2), cy: y(v).toFixed(2), r: 2.6, fill: color(t),
            "data-token": t, "data-layer": layer, "data-value": String(v)
          }));
        });
        var group = svg("g", { class: "ecco-traj-series", "data-token": t }, [
          svg("path", { class: "ecco-traj-line", d: d || "M0,0", stroke: color(t), "data-token": t, visibility: d ? null : "hidden" }),
          svg("path", { class: "ecco-traj-hit", d: d || "M0,0", "data-token": t })
        ].concat(points));
        chart.appendChild(group);
      });

      var unit = s.unit ? el("span", { class: "ecco-traj-unit" }, " (" + s.unit + ")") : null;
      charts.appendChild(el("figure", { class: "ecco-traj-panel", "data-key": s.key }, [
        el("figcaption", { class: "ecco-traj-title" }, [s.label || s.key, unit]), chart
      ]));
    });
    root.appendChild(charts);
    if (!series.length || !tokens.length) root.appendChild(el("div", { class: "ecco-note" }, "nothing to show"));

    // Legend: one toggle button per token.
    var legend = el("div", { class: "ecco-legend ecco-traj-legend" });
    tokens.forEach(function (tok, t) {
      legend.appendChild(el("button", {
        type: "button", class: "ecco-traj-legend-item", "data-token": t, "aria-pressed": "true",
        title: "click to hide or show"
      }, [
        el("span", { class: "ecco-traj-swatch", style: { backgroundColor: color(t) } }),
        el("span", { class: "ecco-traj-legend-text" }, util.tokenNodes(tok.text)),
        tok.position !== null && tok.position !== undefined ? el("span", { class: "ecco-traj-legend-pos" }, "@" + tok.position) : null
      ]));
    });
    if (tokens.length) root.appendChild(legend);

    function tokenNodesOf(t) { return root.querySelectorAll('.ecco-traj-chart [data-token="' + t + '"], .ecco-traj-legend-item[data-token="' + t + '"]'); }
    function tokenOf(node) {
      var hit = node && node.closest ? node.closest(".ecco-traj-chart [data-token], .ecco-traj-legend-item") : null;
      return hit && root.contains(hit) ? Number(hit.getAttribute("data-token")) : null;
    }

    var emphasised = null;
    function emphasise(t) {
      if (t === emphasised) return;
      if (emphasised !== null) tokenNodesOf(emphasised).forEach(function (n) { n.classList.remove("ecco-emph"); });
      emphasised = t;
      if (t !== null) tokenNodesOf(t).forEach(function (n) { n.classList.add("ecco-emph"); });
      root.classList.toggle("ecco-traj-focus", t !== null && !hidden[t]);
    }
    root.addEventListener("mouseover", function (event) { emphasise(tokenOf(event.target)); });
    root.addEventListener("mouseout", function (event) {
      if (tokenOf(event.relatedTarget) === null) emphasise(null);
    });

    legend.addEventListener("click", function (event) {
      var item = event.target.closest(".ecco-traj-legend-item");
      if (!item || !legend.contains(item)) return;
      var t = Number(item.dataset.token);
      hidden[t] = !hidden[t];
      item.setAttribute("aria-pressed", String(!hidden[t]));
      item.classList.toggle("ecco-off", hidden[t]);
      root.querySelectorAll('.ecco-traj-chart [data-token="' + t + '"]').forEach(function (n) { n.classList.toggle("ecco-hidden", hidden[t]); });
      root.classList.toggle("ecco-traj-focus", emphasised !== null && !hidden[emphasised]);
    });

    util.hoverTooltip(root, ".ecco-traj-point", function (point) {
      var t = Number(point.getAttribute("data-token")), s = series[seriesIndex(point)] || {};
      var v = Number(point.getAttribute("data-value"));
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(tokens[t].text))),
        util.tooltipRow("layer", point.getAttribute("data-layer")),
        util.tooltipRow(s.label || s.key || "value", fmt(v) + (s.unit ? " " + s.unit : "")),
        tokens[t].position !== null && tokens[t].position !== undefined ? util.tooltipRow("position", tokens[t].position) : null
      ];
    });
    function seriesIndex(node) {
      var chart = node.closest(".ecco-traj-chart");
      return Array.prototype.indexOf.call(root.querySelectorAll(".ecco-traj-chart"), chart);
    }
  };
})();
