/* ecco: shared helpers for every view. Safe to include any number of times on one page. */
(function () {
  "use strict";
  var ecco = (window.ecco = window.ecco || {});
  ecco.views = ecco.views || {};
  var util = (ecco.util = ecco.util || {});

  function define(name, value) {
    if (!(name in util)) util[name] = value;
  }

  function append(node, children) {
    if (children === null || children === undefined) return;
    if (Array.isArray(children)) children.forEach(function (c) { append(node, c); });
    else if (children instanceof Node) node.appendChild(children);
    else node.appendChild(document.createTextNode(String(children)));
  }

  /* el(tag, attrs, children) -> Element.
   * attrs: "class" (string), "style" (object), "dataset" (object), "on<event>" (function),
   * anything else is an attribute (true -> present, null/undefined/false -> absent).
   * children: a string, a Node, null, or an array of those; strings become text, never HTML. */
  define("el", function (tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "class") node.className = value;
      else if (key === "style") Object.assign(node.style, value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.slice(0, 2) === "on" && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    append(node, children);
    return node;
  });

  /* tokenNodes(text) -> Node[]: token text for display. Newlines, tabs and carriage returns show
   * as "\n", "\t", "\r" markers; the element's textContent is still exactly `text`. */
  var CONTROL = { "\n": "\\n", "\t": "\\t", "\r": "\\r" };
  define("tokenNodes", function (text) {
    var nodes = [], run = "";
    text = String(text);
    for (var i = 0; i < text.length; i++) {
      var glyph = CONTROL[text[i]];
      if (!glyph) { run += text[i]; continue; }
      if (run) nodes.push(document.createTextNode(run));
      run = "";
      nodes.push(util.el("span", { class: "ecco-ctrl", "data-glyph": glyph }, util.el("span", { hidden: true }, text[i])));
    }
    if (run) nodes.push(document.createTextNode(run));
    return nodes;
  });

  /* Put a position:fixed element next to `anchor` (below it, or above when there is no room),
   * correcting for ancestors that become the containing block of fixed elements. The tooltip
   * keeps its natural width (CSS width: max-content), so near the right edge it is not squeezed:
   * it flips to end at the anchor's right edge, and shifts left if it still does not fit. */
  function place(tip, anchor) {
    var a = anchor.getBoundingClientRect(), gap = 6, margin = 4;
    var vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
    tip.style.left = "0px";
    tip.style.top = "0px";
    var origin = tip.getBoundingClientRect(), w = origin.width, h = origin.height;
    var x = a.left + w + margin > vw ? a.right - w : a.left;
    x = Math.max(margin, Math.min(x, vw - w - margin));
    var y = a.bottom + gap + h > vh && a.top - gap - h >= 0 ? a.top - gap - h : a.bottom + gap;
    tip.style.left = x - origin.left + "px";
    tip.style.top = y - origin.top + "px";
  }

  /* tooltip(root) -> {element, show(anchor, content), hide()}: the one tooltip of a view root.
   * content is anything el() accepts as children. */
  define("tooltip", function (root) {
    if (root.eccoTooltip && root.contains(root.eccoTooltip.element)) return root.eccoTooltip;
    var tip = util.el("div", { class: "ecco-tooltip", role: "tooltip", hidden: true });
    root.appendChild(tip);
    root.eccoTooltip = {
      element: tip,
      show: function (anchor, content) {
        tip.textContent = "";
        append(tip, content);
        tip.hidden = false;
        place(tip, anchor);
      },
      hide: function () { tip.hidden = true; }
    };
    return root.eccoTooltip;
  });

  /* hoverTooltip(root, selector, content) -> tooltip: while the pointer is over an element of
   * `root` matching `selector`, show content(element) in the root's tooltip. */
  define("hoverTooltip", function (root, selector, content) {
    var tip = util.tooltip(root);
    root.addEventListener("mouseover", function (event) {
      var target = event.target.closest(selector);
      if (target && root.contains(target)) tip.show(target, content(target));
    });
    root.addEventListener("mouseout", function (event) {
      var target = event.target.closest(selector);
      if (target && !target.contains(event.relatedTarget)) tip.hide();
    });
    return tip;
  });

  /* tooltipRow(key, value) -> Element: one "key value" line for tooltip content. */
  /* Hovering a cell (data-row, data-col) of a table marks its row and column headers. */
  define("headerHover", function (table, selector, rowHeads, colHeads) {
    var active = [];
    function activate(cell) {
      active.forEach(function (h) { h.classList.remove("ecco-active"); });
      active = cell ? [rowHeads[Number(cell.dataset.row)], colHeads[Number(cell.dataset.col)]] : [];
      active.forEach(function (h) { if (h) h.classList.add("ecco-active"); });
    }
    table.addEventListener("mouseover", function (event) {
      var cell = event.target && event.target.closest ? event.target.closest(selector) : null;
      activate(cell && table.contains(cell) ? cell : null);
    });
    table.addEventListener("mouseleave", function () { activate(null); });
  });

  /* A finite number, else null. */
  define("num", function (x) { return typeof x === "number" && isFinite(x) ? x : null; });

  /* A number for reading: "\u2013" for a non-number, else `digits` significant digits (4) with a
   * true minus sign. */
  define("fmt", function (v, digits) {
    v = util.num(v);
    if (v === null) return "\u2013";
    return v === 0 ? "0" : String(Number(v.toPrecision(digits || 4))).replace(/-/g, "\u2212");
  });
  define("list", function (x) { return Array.isArray(x) ? x : []; });
  define("obj", function (x) { return x && typeof x === "object" && !Array.isArray(x) ? x : {}; });

  /* svg(tag, attrs, children) -> SVG element, like el: attributes that are null, undefined or false
   * are left out, "dataset" sets data-* attributes; children are strings (text, never markup) or Nodes. */
  var SVG_NS = "http://www.w3.org/2000/svg";
  define("svg", function (tag, attrs, children) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "dataset") Object.keys(value).forEach(function (k) { node.setAttribute("data-" + k, String(value[k])); });
      else node.setAttribute(key, String(value));
    });
    append(node, children);
    return node;
  });

  define("tooltipRow", function (key, value) {
    return util.el("div", { class: "ecco-tooltip-row" }, [
      util.el("span", { class: "ecco-tooltip-key" }, key), " ", util.el("span", {}, String(value))
    ]);
  });

  /* Colour schemes for colorScale: "stops" are opaque sequential RGB stops; a "tint" is one RGB
   * colour whose opacity grows with the value (reads well on light and dark backgrounds). */
  define("schemes", {
    viridis: { stops: [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]] },
    blue: { tint: [45, 112, 230] },
    orange: { tint: [240, 120, 20] }
  });

  function rgbAt(stops, v) {
    var pos = v * (stops.length - 1), i = Math.min(Math.floor(pos), stops.length - 2), f = pos - i;
    return [0, 1, 2].map(function (k) { return Math.round(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f); });
  }

  function scheme(name) {
    var s = util.schemes[name || "viridis"];
    if (!s) throw new Error("ecco: unknown colour scheme " + name);
    return s;
  }

  function clamp01(value) { return Math.min(1, Math.max(0, value)); }

  /* colorScale(value, scheme = "viridis") -> CSS colour for value in [0, 1] (clamped);
   * "transparent" for NaN or a non-number. */
  define("colorScale", function (value, name) {
    var s = scheme(name);
    if (typeof value !== "number" || isNaN(value)) return "transparent";
    var v = clamp01(value);
    if (s.tint) return "rgba(" + s.tint.join(", ") + ", " + (0.85 * v).toFixed(3) + ")";
    return "rgb(" + rgbAt(s.stops, v).join(", ") + ")";
  });

  /* textColor(value, scheme = "viridis") -> "#000" or "#fff", whichever reads better on
   * colorScale(value, scheme); "" (inherit the theme's colour) for tints and non-numbers. */
  define("textColor", function (value, name) {
    var s = scheme(name);
    if (s.tint || typeof value !== "number" || isNaN(value)) return "";
    var c = rgbAt(s.stops, clamp01(value));
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 150 ? "#000" : "#fff";
  });

  /* headColor(h) -> [r, g, b]: a qualitative palette for attention heads, then golden-angle hues. */
  var HEAD_PALETTE = [[78, 121, 167], [242, 142, 43], [225, 87, 89], [89, 161, 79], [176, 122, 161],
    [118, 183, 178], [237, 201, 72], [255, 157, 167], [156, 117, 95], [140, 140, 140]];
  define("headColor", function (h) {
    if (h < HEAD_PALETTE.length) return HEAD_PALETTE[h];
    var hue = (h * 137.508) % 360, f = function (n) {
      var k = (n + hue / 30) % 12;
      return Math.round(255 * (0.55 - 0.3 * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
    };
    return [f(0), f(8), f(4)];
  });

  /* unpackAttention(set) -> Uint8Array: a packed attention set's weights (byte / 255 = weight),
   * checked against its [layers, heads, queries, keys] shape. */
  define("unpackAttention", function (set) {
    var shape = set.shape || [], bin = atob(set.weights || ""), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var n = shape.length === 4 ? shape[0] * shape[1] * shape[2] * shape[3] : -1;
    if (n !== bytes.length) {
      throw new Error("ecco: attention weights of \"" + set.name + "\" do not match shape " + JSON.stringify(shape));
    }
    return bytes;
  });
})();
