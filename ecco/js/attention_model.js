/* ecco view "attention_model": every layer x head as a small heat map (rows = queries, columns =
 * keys, opacity = weight, one colour per head). Click a thumbnail to enlarge it under its row with
 * the tokens on both axes and the weight of each cell on hover; click it again, press Escape or the
 * close button to shrink it back.
 * data: {sets: [{name, label, queries: [{text, position}], keys: [...], layers: [int], heads: int,
 *                shape: [L, H, Q, K], weights: base64 of uint8 (value / 255), C order}],
 *        set: int, title: string | null} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var LABEL_W = 120, LABEL_H = 92, LABEL_PX = 11;

  var headRGB = util.headColor, unpack = util.unpackAttention;
  function rgb(c) { return "rgb(" + c.join(", ") + ")"; }

  /* Alpha (0..255) for each byte: linear, or square root to lift small weights. */
  var ALPHA = { linear: [], sqrt: [] };
  for (var b = 0; b < 256; b++) { ALPHA.linear.push(b); ALPHA.sqrt.push(Math.round(Math.sqrt(b / 255) * 255)); }

  /* The Q x K matrix at `offset` of `bytes` as ImageData of rows x cols pixels (one pixel per
   * weight when they are Q x K; fewer: each pixel shows the largest weight it covers, so thin
   * patterns survive in thumbnails). */
  function image(ctx, bytes, offset, Q, K, colour, alpha, rows, cols) {
    rows = rows || Q; cols = cols || K;
    var img = ctx.createImageData(cols, rows), px = img.data;
    for (var y = 0; y < rows; y++) {
      var q0 = Math.floor(y * Q / rows), q1 = Math.max(q0 + 1, Math.floor((y + 1) * Q / rows));
      for (var x = 0; x < cols; x++) {
        var k0 = Math.floor(x * K / cols), k1 = Math.max(k0 + 1, Math.floor((x + 1) * K / cols)), m = 0;
        for (var q = q0; q < q1; q++) for (var k = k0, o = offset + q * K; k < k1; k++) if (bytes[o + k] > m) m = bytes[o + k];
        var p = (y * cols + x) * 4;
        px[p] = colour[0]; px[p + 1] = colour[1]; px[p + 2] = colour[2]; px[p + 3] = alpha[m];
      }
    }
    return img;
  }

  function fmt(w) { return w.toFixed(3); }

  ecco.views.attention_model = function (root, data) {
    var sets = Array.isArray(data.sets) ? data.sets : [];
    var decoded = [];
    var state = { set: Math.max(0, Math.min(sets.length - 1, data.set | 0)), scale: "linear", zoom: null };

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    if (!sets.length) { root.appendChild(el("div", { class: "ecco-note" }, "no attention to show")); return; }

    var setSelect = el("select", { class: "ecco-set-select", "aria-label": "attention" });
    sets.forEach(function (s, i) { setSelect.appendChild(el("option", { value: i }, String(s.label || s.name))); });
    var scaleSelect = el("select", { class: "ecco-att-scale-select", "aria-label": "colour scale" }, [
      el("option", { value: "linear" }, "weight"),
      el("option", { value: "sqrt" }, "\u221aweight (shows small weights)")
    ]);
    root.appendChild(el("div", { class: "ecco-att-controls" }, [
      sets.length > 1 ? el("label", { class: "ecco-att-control" }, [el("span", { class: "ecco-att-control-key" }, "attention"), setSelect]) : null,
      el("label", { class: "ecco-att-control" }, [el("span", { class: "ecco-att-control-key" }, "opacity \u221d"), scaleSelect]),
      el("span", { class: "ecco-legend ecco-att-hint" }, "Rows of a map: attending tokens (queries); columns: attended tokens (keys). Click a map to enlarge it.")
    ]));
    var grid = el("div", { class: "ecco-att-grid", role: "grid" });
    root.appendChild(el("div", { class: "ecco-att-scroll" }, grid));

    function current() { return sets[state.set]; }
    function bytes() { return decoded[state.set] || (decoded[state.set] = unpack(current())); }
    function dims() { var s = current().shape; return { L: s[0], H: s[1], Q: s[2], K: s[3] }; }
    function layerName(l) { var layers = current().layers || []; return layers[l] === undefined ? l : layers[l]; }
    function offset(l, h) { var d = dims(); return (l * d.H + h) * d.Q * d.K; }
    function maxByte(l, h) {
      var d = dims(), bs = bytes(), o = offset(l, h), m = 0;
      for (var i = 0, n = d.Q * d.K; i < n; i++) if (bs[o + i] > m) m = bs[o + i];
      return m;
    }
    function token(list, i) { var t = (list || [])[i]; return t || { text: "", position: i }; }

    function paintThumb(canvas) {
      var l = Number(canvas.dataset.index), h = Number(canvas.dataset.head), d = dims(), ctx = canvas.getContext("2d");
      ctx.putImageData(image(ctx, bytes(), offset(l, h), d.Q, d.K, headRGB(h), ALPHA[state.scale], canvas.height, canvas.width), 0, 0);
    }

    function build() {
      closeZoom();
      grid.textContent = "";
      var d = dims(), size = Math.max(32, Math.min(72, Math.floor(640 / Math.max(1, d.H))));
      // One pixel per weight, or per device pixel of the thumbnail when there are more weights.
      var px = Math.round(size * Math.max(1, window.devicePixelRatio || 1));
      var pixelated = Math.max(d.Q, d.K) <= px, rows = Math.min(d.Q, px), cols = Math.min(d.K, px);
      var head = el("div", { class: "ecco-att-grid-row ecco-att-grid-heads", role: "row" },
        el("span", { class: "ecco-att-grid-corner", role: "columnheader" }, "layer \\ head"));
      for (var h = 0; h < d.H; h++) {
        head.appendChild(el("span", {
          class: "ecco-att-grid-head", role: "columnheader", "data-head": h,
          style: { width: size + "px", borderBottomColor: rgb(headRGB(h)) }
        }, String(h)));
      }
      grid.appendChild(head);
      for (var l = 0; l < d.L; l++) {
        var row = el("div", { class: "ecco-att-grid-row", role: "row", "data-layer": layerName(l) },
          el("span", { class: "ecco-att-grid-layer", role: "rowheader" }, String(layerName(l))));
        for (h = 0; h < d.H; h++) {
          var canvas = el("canvas", {
            class: "ecco-thumb" + (pixelated ? " ecco-pixelated" : ""), width: cols, height: rows, role: "gridcell", tabindex: 0,
            "data-layer": layerName(l), "data-head": h, "data-index": l,
            "aria-label": "layer " + layerName(l) + ", head " + h + ": press Enter to enlarge",
            style: { width: size + "px", height: size + "px" }
          });
          paintThumb(canvas);
          row.appendChild(canvas);
        }
        grid.appendChild(row);
      }
    }

    /* ---- enlarged map ---- */
    function closeZoom() {
      if (!state.zoom) return;
      state.zoom.panel.remove();
      state.zoom.thumb.classList.remove("ecco-selected");
      state.zoom = null;
      util.tooltip(root).hide();
    }

    function openZoom(thumb) {
      var same = state.zoom && state.zoom.thumb === thumb;
      closeZoom();
      if (same) return;
      var l = Number(thumb.dataset.index), h = Number(thumb.dataset.head), d = dims(), s = current();
      var cell = Math.max(4, Math.min(30, Math.floor(600 / Math.max(1, d.Q, d.K))));
      var step = Math.ceil(LABEL_PX / cell), colour = headRGB(h), dpr = window.devicePixelRatio || 1;
      var top = 0;

      var canvas = el("canvas", {
        class: "ecco-att-zoom-canvas", width: Math.round(d.K * cell * dpr), height: Math.round(d.Q * cell * dpr),
        style: { width: d.K * cell + "px", height: d.Q * cell + "px", left: LABEL_W + "px", top: LABEL_H + "px" }
      });
      var ctx = canvas.getContext("2d"), off = document.createElement("canvas");
      off.width = d.K; off.height = d.Q;
      off.getContext("2d").putImageData(image(ctx, bytes(), offset(l, h), d.Q, d.K, colour, ALPHA[state.scale]), 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
      if (cell >= 12) {  // faint cell borders
        ctx.strokeStyle = "rgba(128, 128, 128, 0.18)";
        ctx.lineWidth = 1;
        ctx.beginPath();
        for (var q = 1; q < d.Q; q++) { top = Math.round(q * cell * dpr) + 0.5; ctx.moveTo(0, top); ctx.lineTo(canvas.width, top); }
        for (var k = 1; k < d.K; k++) { top = Math.round(k * cell * dpr) + 0.5; ctx.moveTo(top, 0); ctx.lineTo(top, canvas.height); }
        ctx.stroke();
      }

      var plot = el("div", {
        class: "ecco-att-zoom-plot",
        style: { width: LABEL_W + d.K * cell + 4 + "px", height: LABEL_H + d.Q * cell + 4 + "px" }
      }, [
        el("span", { class: "ecco-att-zoom-axis ecco-att-zoom-axis-y", style: { width: LABEL_W - 8 + "px", top: LABEL_H - 18 + "px" } }, "query \u2193"),
        el("span", { class: "ecco-att-zoom-axis ecco-att-zoom-axis-x", style: { left: LABEL_W - 48 + "px", top: "0px" } }, "key \u2192"),
        canvas
      ]);
      // One label per `step` tokens along an axis: rows (queries) or columns (keys).
      function axisLabels(count, kind, tokens, place) {
        var labels = {};
        for (var i = 0; i < count; i += step) {
          labels[i] = el("span", {
            class: "ecco-att-zoom-label ecco-att-zoom-" + kind, "data-index": i, style: place(i)
          }, util.tokenNodes(token(tokens, i).text));
          plot.appendChild(labels[i]);
        }
        return labels;
      }
      var rowLabels = axisLabels(d.Q, "row", s.queries, function (q) {
        return { top: LABEL_H + (q + 0.5) * cell + "px", width: LABEL_W - 8 + "px" };
      });
      var colLabels = axisLabels(d.K, "col", s.keys, function (k) {
        return { left: LABEL_W + (k + 0.5) * cell + "px", height: LABEL_H - 8 + "px" };
      });
      var marker = el("div", { class: "ecco-att-zoom-marker", hidden: true, style: { width: cell + "px", height: cell + "px" } });
      plot.appendChild(marker);

      var max = maxByte(l, h) / 255;
      var close = el("button", { type: "button", class: "ecco-att-zoom-close", "aria-label": "close", title: "close (Esc)" }, "\u00d7");
      var panel = el("div", {
        class: "ecco-att-zoom", role: "region", tabindex: -1,
        "aria-label": "layer " + layerName(l) + ", head " + h + " enlarged",
        "data-layer": layerName(l), "data-head": h, "data-max": fmt(max)
      }, [
        el("div", { class: "ecco-att-zoom-head" }, [
          el("span", { class: "ecco-att-zoom-swatch", style: { backgroundColor: rgb(colour) } }),
          el("span", { class: "ecco-att-zoom-name" }, "layer " + layerName(l) + " \u00b7 head " + h),
          el("span", { class: "ecco-att-zoom-stat" }, "max weight " + fmt(max)),
          el("span", { class: "ecco-att-zoom-stat" }, d.Q + " \u00d7 " + d.K + " tokens"),
          close
        ]),
        el("div", { class: "ecco-att-zoom-body" }, plot)
      ]);
      thumb.parentNode.after(panel);
      thumb.classList.add("ecco-selected");
      state.zoom = { panel: panel, thumb: thumb };
      close.addEventListener("click", function () { closeZoom(); thumb.focus(); });
      if (panel.scrollIntoView) panel.scrollIntoView({ block: "nearest" });

      var tip = util.tooltip(root), hot = null;
      function mark(q, k) {
        if (hot) {
          if (rowLabels[hot.q]) rowLabels[hot.q].classList.remove("ecco-active");
          if (colLabels[hot.k]) colLabels[hot.k].classList.remove("ecco-active");
        }
        hot = q === null ? null : { q: q, k: k };
        if (!hot) { marker.hidden = true; tip.hide(); return; }
        if (rowLabels[q]) rowLabels[q].classList.add("ecco-active");
        if (colLabels[k]) colLabels[k].classList.add("ecco-active");
        marker.hidden = false;
        marker.style.left = LABEL_W + k * cell + "px";
        marker.style.top = LABEL_H + q * cell + "px";
        var qt = token(s.queries, q), kt = token(s.keys, k), w = bytes()[offset(l, h) + q * d.K + k] / 255;
        tip.show(marker, [
          el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(qt.text)) + " \u2192 " + JSON.stringify(String(kt.text))),
          util.tooltipRow("weight", fmt(w)),
          util.tooltipRow("query", "#" + q + (qt.position === undefined ? "" : " (position " + qt.position + ")")),
          util.tooltipRow("key", "#" + k + (kt.position === undefined ? "" : " (position " + kt.position + ")"))
        ]);
      }
      canvas.addEventListener("mousemove", function (event) {
        var r = canvas.getBoundingClientRect();
        var k = Math.floor((event.clientX - r.left) / r.width * d.K), q = Math.floor((event.clientY - r.top) / r.height * d.Q);
        if (q < 0 || k < 0 || q >= d.Q || k >= d.K) { mark(null); return; }
        if (!hot || hot.q !== q || hot.k !== k) mark(q, k);
      });
      canvas.addEventListener("mouseleave", function () { mark(null); });
    }

    grid.addEventListener("click", function (event) {
      var thumb = event.target.closest("canvas.ecco-thumb");
      if (thumb && grid.contains(thumb)) openZoom(thumb);
    });
    root.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && state.zoom) {
        var thumb = state.zoom.thumb;
        closeZoom();
        thumb.focus();
      } else if ((event.key === "Enter" || event.key === " ") && event.target.matches && event.target.matches("canvas.ecco-thumb")) {
        event.preventDefault();
        openZoom(event.target);
      }
    });
    util.hoverTooltip(root, "canvas.ecco-thumb", function (thumb) {
      var l = Number(thumb.dataset.index), h = Number(thumb.dataset.head);
      return [
        el("div", { class: "ecco-tooltip-title" }, "layer " + layerName(l) + " \u00b7 head " + h),
        util.tooltipRow("max weight", fmt(maxByte(l, h) / 255)),
        el("div", { class: "ecco-tooltip-hint" }, state.zoom && state.zoom.thumb === thumb ? "click to close" : "click to enlarge")
      ];
    });

    setSelect.addEventListener("change", function () { state.set = Number(setSelect.value); build(); });
    scaleSelect.addEventListener("change", function () {
      state.scale = scaleSelect.value;
      var zoomed = state.zoom && state.zoom.thumb;
      grid.querySelectorAll("canvas.ecco-thumb").forEach(paintThumb);
      if (zoomed) { closeZoom(); openZoom(zoomed); }
    });
    setSelect.value = String(state.set);
    build();
  };
})();
