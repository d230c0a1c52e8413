/* ecco view "attention_head": one layer's attention as lines between two token columns (queries
 * left, keys right), one colour per head. Click a head tile to toggle it, double-click to show only
 * it (double-click the only head shown to show all again); hover a left token for the attention
 * from it, a right token for the attention to it; the other column then shows one mark per head.
 * data: {sets: [{name, label, queries: [{text, position}], keys: [...], layers: [int], heads: int,
 *                shape: [L, H, Q, K], weights: base64 of uint8 (value / 255), C order}],
 *        set: int, layer: int, heads: [int] | null, title: string | null} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var SVG = "http://www.w3.org/2000/svg";
  var ROW = 22, WIDTH = 190, MIN_WEIGHT = 0.01;

  var headRGB = util.headColor, unpack = util.unpackAttention;
  function rgb(c) { return "rgb(" + c.join(", ") + ")"; }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, String(attrs[key])); });
    return node;
  }

  ecco.views.attention_head = function (root, data) {
    var sets = Array.isArray(data.sets) ? data.sets : [];
    var decoded = [];
    var state = { set: Math.max(0, Math.min(sets.length - 1, data.set | 0)), layer: 0, heads: [], focus: null };

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    if (!sets.length) { root.appendChild(el("div", { class: "ecco-note" }, "no attention to show")); return; }

    var setSelect = el("select", { class: "ecco-set-select", "aria-label": "attention" });
    sets.forEach(function (s, i) { setSelect.appendChild(el("option", { value: i }, String(s.label || s.name))); });
    var layerSelect = el("select", { class: "ecco-layer-select", "aria-label": "layer" });
    var tiles = el("div", { class: "ecco-head-tiles", role: "group", "aria-label": "heads" });
    root.appendChild(el("div", { class: "ecco-att-controls" }, [
      sets.length > 1 ? el("label", { class: "ecco-att-control" }, [el("span", { class: "ecco-att-control-key" }, "attention"), setSelect]) : null,
      el("label", { class: "ecco-att-control" }, [el("span", { class: "ecco-att-control-key" }, "layer"), layerSelect]),
      el("span", { class: "ecco-att-control" }, [el("span", { class: "ecco-att-control-key" }, "heads"), tiles])
    ]));
    root.appendChild(el("div", { class: "ecco-legend ecco-att-hint" },
      "Hover a token on the left for the attention from it, on the right for the attention to it. " +
      "Click a head to toggle it, double-click to show only it."));

    var left = el("div", { class: "ecco-att-col ecco-att-col-left" });
    var right = el("div", { class: "ecco-att-col ecco-att-col-right" });
    var lines = svg("svg", { class: "ecco-att-svg", width: WIDTH, "aria-hidden": "true" });
    var columns = el("div", { class: "ecco-att-columns" }, [left, lines, right]);
    root.appendChild(el("div", { class: "ecco-att-scroll" }, [
      el("div", { class: "ecco-att-col-heads" }, [
        el("span", { class: "ecco-att-col-head ecco-att-col-head-left" }, "from (query)"),
        el("span", { class: "ecco-att-col-head ecco-att-col-head-right" }, "to (key)")
      ]),
      columns
    ]));

    var allLines = null;  // the <g> of every line of the current layer and heads, kept while focused

    function current() { return sets[state.set]; }
    function bytes() { return decoded[state.set] || (decoded[state.set] = unpack(current())); }
    function dims() { var s = current().shape; return { L: s[0], H: s[1], Q: s[2], K: s[3] }; }
    /* Byte of (layer index, head, q, k). */
    function at(h, q, k) { var d = dims(); return bytes()[((state.layer * d.H + h) * d.Q + q) * d.K + k]; }

    /* Lines of the active heads, optionally only from query `q` or only to key `k`. */
    function group(onlyQ, onlyK) {
      var d = dims(), g = svg("g", { class: "ecco-att-lines" }), x2 = WIDTH;
      // Several heads overlap: fade each, except when only the lines of one token are shown.
      var fade = state.heads.length > 1 && onlyQ === null && onlyK === null ? Math.max(0.35, 1 / Math.sqrt(state.heads.length)) : 1;
      state.heads.forEach(function (h) {
        var colour = rgb(headRGB(h));
        for (var q = onlyQ === null ? 0 : onlyQ; q < (onlyQ === null ? d.Q : onlyQ + 1); q++) {
          for (var k = onlyK === null ? 0 : onlyK; k < (onlyK === null ? d.K : onlyK + 1); k++) {
            var w = at(h, q, k) / 255;
            if (w < MIN_WEIGHT) continue;
            g.appendChild(svg("line", {
              class: "ecco-att-line", x1: 0, y1: (q + 0.5) * ROW, x2: x2, y2: (k + 0.5) * ROW,
              stroke: colour, "stroke-opacity": (w * fade).toFixed(3), "stroke-width": (0.8 + 2.2 * w).toFixed(2),
              "data-head": h, "data-q": q, "data-k": k, "data-weight": Number(w.toFixed(3))
            }));
          }
        }
      });
      return g;
    }

    function clearMarks() {
      root.querySelectorAll(".ecco-att-marks").forEach(function (m) { m.textContent = ""; });
      root.querySelectorAll(".ecco-att-token.ecco-att-focus").forEach(function (t) { t.classList.remove("ecco-att-focus"); });
    }

    /* Show every line, or (focus = {side, index}) only those from / to one token. */
    function draw() {
      clearMarks();
      lines.textContent = "";
      columns.classList.toggle("ecco-att-focused", state.focus !== null);
      if (state.focus === null) {
        if (!allLines) allLines = group(null, null);
        lines.appendChild(allLines);
        return;
      }
      var f = state.focus, fromLeft = f.side === "left";
      lines.appendChild(group(fromLeft ? f.index : null, fromLeft ? null : f.index));
      var token = (fromLeft ? left : right).children[f.index];
      if (token) token.classList.add("ecco-att-focus");
      // The other column: one mark per active head, opacity = weight, where the lines end.
      var mw = Math.max(2, Math.min(8, Math.floor(60 / Math.max(1, state.heads.length)) - 1)) + "px";
      Array.prototype.forEach.call((fromLeft ? right : left).children, function (other, i) {
        var marks = other.querySelector(".ecco-att-marks");
        state.heads.forEach(function (h) {
          var w = (fromLeft ? at(h, f.index, i) : at(h, i, f.index)) / 255;
          marks.appendChild(el("span", {
            class: "ecco-att-mark", "data-head": h, "data-weight": Number(w.toFixed(3)),
            style: { width: mw, backgroundColor: rgb(headRGB(h)), opacity: w.toFixed(3) }
          }));
        });
      });
    }
    function redraw() { allLines = null; draw(); }

    function tokenColumn(column, side, tokens, n) {
      column.textContent = "";
      column.style.height = n * ROW + "px";
      for (var i = 0; i < n; i++) {
        var tok = tokens[i] || { text: "", position: i };
        var text = el("span", { class: "ecco-att-text" }, util.tokenNodes(tok.text));
        var marks = el("span", { class: "ecco-att-marks" });
        column.appendChild(el("div", {
          class: "ecco-att-token", "data-side": side, "data-position": tok.position, "data-index": i,
          title: JSON.stringify(String(tok.text)) + (tok.position === undefined || tok.position === null ? "" : " @" + tok.position),
          style: { height: ROW + "px", lineHeight: ROW + "px" }
        }, side === "left" ? [text, marks] : [marks, text]));
      }
    }

    function buildTiles() {
      tiles.textContent = "";
      for (var h = 0; h < dims().H; h++) {
        tiles.appendChild(el("button", {
          type: "button", class: "ecco-head-tile", "data-head": h, title: "head " + h + ": click to toggle, double-click to show only it",
          "aria-label": "head " + h, style: { backgroundColor: rgb(headRGB(h)), borderColor: rgb(headRGB(h)) }
        }, String(h)));
      }
      syncTiles();
    }
    function syncTiles() {
      tiles.querySelectorAll(".ecco-head-tile").forEach(function (tile) {
        var on = state.heads.indexOf(Number(tile.dataset.head)) >= 0;
        tile.classList.toggle("ecco-off", !on);
        tile.setAttribute("aria-pressed", String(on));
      });
    }

    function showSet(index, layer, heads) {
      state.set = index;
      setSelect.value = String(index);
      var s = current(), d = dims(), layers = Array.isArray(s.layers) ? s.layers : [];
      layerSelect.textContent = "";
      for (var l = 0; l < d.L; l++) layerSelect.appendChild(el("option", { value: l }, String(layers[l] === undefined ? l : layers[l])));
      var li = layers.indexOf(layer);
      state.layer = li >= 0 ? li : Math.max(0, Math.min(d.L - 1, layer | 0));
      layerSelect.value = String(state.layer);
      state.heads = [];
      for (var h = 0; h < d.H; h++) if (!heads || heads.indexOf(h) >= 0) state.heads.push(h);
      state.focus = null;
      tokenColumn(left, "left", s.queries || [], d.Q);
      tokenColumn(right, "right", s.keys || [], d.K);
      var height = Math.max(d.Q, d.K) * ROW;
      lines.setAttribute("height", height);
      lines.setAttribute("viewBox", "0 0 " + WIDTH + " " + height);
      buildTiles();
      redraw();
    }

    setSelect.addEventListener("change", function () {
      var layers = current().layers || [];
      showSet(Number(setSelect.value), layers[state.layer], state.heads.length === dims().H ? null : state.heads);
    });
    layerSelect.addEventListener("change", function () { state.layer = Number(layerSelect.value); redraw(); });

    function setHeads(heads) { state.heads = heads.slice().sort(function (a, b) { return a - b; }); syncTiles(); redraw(); }
    tiles.addEventListener("click", function (event) {
      var tile = event.target.closest(".ecco-head-tile");
      if (!tile) return;
      var h = Number(tile.dataset.head), i = state.heads.indexOf(h);
      setHeads(i >= 0 ? state.heads.filter(function (x) { return x !== h; }) : state.heads.concat([h]));
    });
    tiles.addEventListener("dblclick", function (event) {
      var tile = event.target.closest(".ecco-head-tile");
      if (!tile) return;
      var h = Number(tile.dataset.head), all = [];
      for (var x = 0; x < dims().H; x++) all.push(x);
      // The two clicks before a double-click toggled the head twice: `state` is as before them.
      setHeads(state.heads.length === 1 && state.heads[0] === h ? all : [h]);
    });

    function tokenOf(node) {
      var t = node && node.closest ? node.closest(".ecco-att-token") : null;
      return t && columns.contains(t) ? { side: t.dataset.side, index: Number(t.dataset.index) } : null;
    }
    function focus(f) {
      var same = f === null ? state.focus === null : state.focus !== null && f.side === state.focus.side && f.index === state.focus.index;
      if (same) return;
      state.focus = f;
      draw();
    }
    columns.addEventListener("mouseover", function (event) { var f = tokenOf(event.target); if (f) focus(f); });
    columns.addEventListener("mouseout", function (event) { if (!tokenOf(event.relatedTarget)) focus(null); });

    showSet(state.set, data.layer, Array.isArray(data.heads) ? data.heads.map(Number) : null);
  };
})();
