/* ecco view "nmf": the factor explorer (Ecco's NMF explore()). One sparkline per factor on the
 * left, the tokens as text on the right. By default every token takes the colour of its strongest
 * factor (the largest raw value), its intensity = value / that factor's max. Hovering a sparkline
 * isolates its factor (tokens coloured by that factor only); clicking pins it (click it again to
 * unpin; hovering another factor previews it). Hovering a token shows every factor's value.
 * data: {tokens: [{text, position, sequence, is_input, continues_word, special, excluded}],
 *        factors: [[value >= 0 | null per token] per factor], factor_labels: [string] (optional),
 *        method: string, caption: string | null, title: string | null} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var SVG = "http://www.w3.org/2000/svg";
  var W = 176, H = 30, PAD = 2;
  var MAX_ALPHA = 0.72;
  // Ten well-separated hues; more factors get golden-angle hues.
  var PALETTE = [
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [23, 190, 207], [227, 119, 194], [188, 189, 34], [140, 86, 75], [90, 70, 220]
  ];

  var num = util.num;
  function fmt(v) {
    if (v === null) return "\u2013";
    if (v === 0) return "0";
    return String(Number(v.toPrecision(3)));
  }

  function hslToRgb(h, s, l) {
    var c = (1 - Math.abs(2 * l - 1)) * s, hp = h / 60, x = c * (1 - Math.abs((hp % 2) - 1)), m = l - c / 2;
    var rgb = hp < 1 ? [c, x, 0] : hp < 2 ? [x, c, 0] : hp < 3 ? [0, c, x] : hp < 4 ? [0, x, c] : hp < 5 ? [x, 0, c] : [c, 0, x];
    return rgb.map(function (v) { return Math.round((v + m) * 255); });
  }
  function rgbOf(k) { return k < PALETTE.length ? PALETTE[k] : hslToRgb((k * 137.508 + 20) % 360, 0.62, 0.5); }
  function solid(k) { return "rgb(" + rgbOf(k).join(", ") + ")"; }
  function tint(k, intensity) {
    var a = Math.max(0, Math.min(1, intensity)) * MAX_ALPHA;
    return "rgba(" + rgbOf(k).join(", ") + ", " + a.toFixed(3) + ")";
  }

  /* svg(tag, attrs, children): like util.el for SVG. */
  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value !== null && value !== undefined && value !== false) node.setAttribute(key, String(value));
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c instanceof Node ? c : document.createTextNode(String(c))); });
    return node;
  }

  ecco.views.nmf = function (root, data) {
    var tokens = Array.isArray(data.tokens) ? data.tokens : [];
    var rawFactors = Array.isArray(data.factors) ? data.factors : [];
    var labels = Array.isArray(data.factor_labels) ? data.factor_labels : [];
    var n = tokens.length, nf = rawFactors.length;

    // values[k][i]: a finite value or null; negative values (signed methods) count as 0.
    var values = rawFactors.map(function (row) {
      return tokens.map(function (_, i) {
        var v = Array.isArray(row) ? num(row[i]) : null;
        return v === null ? null : Math.max(0, v);
      });
    });
    var maxOf = values.map(function (row) { return row.reduce(function (m, v) { return v !== null && v > m ? v : m; }, 0); });
    var globalMax = maxOf.reduce(function (m, v) { return Math.max(m, v); }, 0);
    // Strongest factor of each token (first one on ties, like numpy's argmax); null when all are 0.
    var strongest = tokens.map(function (_, i) {
      var best = null, bestValue = 0;
      for (var k = 0; k < nf; k++) {
        var v = values[k][i];
        if (v !== null && v > bestValue) { best = k; bestValue = v; }
      }
      return best;
    });
    function label(k) {
      var l = labels[k];
      return "factor " + (l === null || l === undefined ? k : String(l));
    }
    var sequences = [];
    tokens.forEach(function (tok) { if (sequences.indexOf(tok.sequence) < 0) sequences.push(tok.sequence); });

    // Header.
    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    var header = el("div", { class: "ecco-nmf-header" }, [
      data.method ? el("span", { class: "ecco-nmf-method" }, String(data.method)) : null,
      data.caption ? el("span", { class: "ecco-nmf-caption" }, String(data.caption)) : null
    ]);
    if (header.childNodes.length) root.appendChild(header);

    // Left: one sparkline per factor.
    var column = el("div", { class: "ecco-nmf-factors", role: "group", "aria-label": "factors" });
    var rows = [], markers = [];
    function sx(i) { return n > 1 ? PAD + i * (W - 2 * PAD) / (n - 1) : W / 2; }
    values.forEach(function (row, k) {
      var max = maxOf[k];
      function sy(v) { return H - PAD - (max > 0 && v !== null ? v / max : 0) * (H - 2 * PAD); }
      var line = "", area = "", pen = false;
      row.forEach(function (v, i) {
        var x = sx(i).toFixed(2), y = sy(v).toFixed(2);
        line += (pen ? "L" : "M") + x + "," + y;
        area += (pen ? "L" : "M" + x + "," + (H - PAD) + "L") + x + "," + y;
        pen = true;
      });
      if (n === 1) { line = "M" + PAD + "," + sy(row[0]).toFixed(2) + "H" + (W - PAD); area = ""; }
      else if (n > 1) area += "L" + sx(n - 1).toFixed(2) + "," + (H - PAD) + "Z";
      var seqLines = [];
      for (var i = 1; i < n; i++) {
        if (tokens[i].sequence !== tokens[i - 1].sequence) {
          var bx = ((sx(i) + sx(i - 1)) / 2).toFixed(2);
          seqLines.push(svg("line", { class: "ecco-nmf-seqline", x1: bx, x2: bx, y1: 0, y2: H }));
        }
      }
      var marker = svg("g", { class: "ecco-nmf-marker", visibility: "hidden" }, [
        svg("line", { class: "ecco-nmf-marker-line", x1: 0, x2: 0, y1: 0, y2: H }),
        svg("circle", { class: "ecco-nmf-marker-dot", cx: 0, cy: 0, r: 2.6, fill: solid(k) })
      ]);
      marker.eccoY = sy;
      markers.push(marker);
      var spark = svg("svg", {
        class: "ecco-nmf-spark", width: W, height: H, viewBox: "0 0 " + W + " " + H, "aria-hidden": "true"
      }, [
        svg("line", { class: "ecco-nmf-baseline", x1: PAD, x2: W - PAD, y1: H - PAD + 0.5, y2: H - PAD + 0.5 }),
        seqLines.length ? svg("g", {}, seqLines) : null,
        area ? svg("path", { class: "ecco-nmf-area", d: area, fill: solid(k) }) : null,
        n ? svg("path", { class: "ecco-nmf-line", d: line, stroke: solid(k) }) : null,
        marker
      ]);
      rows[k] = el("div", {
        class: "ecco-nmf-factor" + (max > 0 ? "" : " ecco-nmf-zero"), "data-factor": k, tabindex: 0, role: "button",
        "aria-pressed": "false", "aria-label": label(k) + ", max " + fmt(max), title: null
      }, [
        el("div", { class: "ecco-nmf-factor-head" }, [
          el("span", { class: "ecco-nmf-swatch", style: { backgroundColor: solid(k) } }),
          el("span", { class: "ecco-nmf-factor-label" }, label(k)),
          el("span", { class: "ecco-nmf-factor-max" }, max > 0 ? "max " + fmt(max) : "all zero")
        ]),
        spark
      ]);
      column.appendChild(rows[k]);
    });

    // Right: the tokens as text, one paragraph per sequence, word pieces grouped.
    var text = el("div", { class: "ecco-nmf-text" });
    var spans = [], seqBlock = null, line = null, word = null, lastSeq;
    tokens.forEach(function (tok, i) {
      if (!seqBlock || tok.sequence !== lastSeq) {
        lastSeq = tok.sequence;
        line = el("div", { class: "ecco-tokens ecco-nmf-tokens" });
        seqBlock = el("div", { class: "ecco-nmf-seq", "data-sequence": tok.sequence }, [
          sequences.length > 1 ? el("div", { class: "ecco-nmf-seq-label" }, "sequence " + tok.sequence) : null, line
        ]);
        text.appendChild(seqBlock);
        word = null;
      }
      if (!word || !tok.continues_word) line.appendChild((word = el("span", { class: "ecco-word" })));
      spans[i] = el("span", {
        class: "ecco-token" + (tok.is_input === false ? " ecco-nmf-generated" : "") + (tok.special ? " ecco-special" : "")
          + (tok.excluded ? " ecco-nmf-excluded" : ""),
        "data-position": tok.position, "data-sequence": tok.sequence, "data-index": i,
        // Left out of the fit: struck through, so the reader sees it is not explained by any factor.
        style: tok.excluded ? { textDecoration: "line-through", opacity: "0.55" } : undefined
      }, util.tokenNodes(tok.text));
      word.appendChild(spans[i]);
    });
    if (!n || !nf) text.appendChild(el("div", { class: "ecco-note" }, !n ? "no tokens to show" : "no factors to show"));

    root.appendChild(el("div", { class: "ecco-nmf-layout" }, [column, text]));
    var status = el("div", { class: "ecco-legend ecco-nmf-status" });
    root.appendChild(status);

    // State: the factor shown is the hovered one, else the pinned one, else none (strongest per token).
    var state = { hover: null, pinned: null };
    function shown() { return state.hover !== null ? state.hover : state.pinned; }

    function update() {
      var k = shown();
      root.classList.toggle("ecco-nmf-isolated", k !== null);
      rows.forEach(function (row, j) {
        row.classList.toggle("ecco-selected", j === k);
        row.classList.toggle("ecco-pinned", j === state.pinned);
        row.classList.toggle("ecco-dimmed", k !== null && j !== k);
        row.setAttribute("aria-pressed", String(j === state.pinned));
      });
      spans.forEach(function (span, i) {
        var f = k === null ? strongest[i] : k;
        var v = f === null ? null : values[f][i];
        if (v !== null && v > 0 && maxOf[f] > 0) {
          span.dataset.factor = String(f);
          span.dataset.value = String(v);
          span.style.backgroundColor = tint(f, v / maxOf[f]);
          span.classList.add("ecco-nmf-colored");
        } else {
          delete span.dataset.factor;
          delete span.dataset.value;
          span.style.backgroundColor = "";
          span.classList.remove("ecco-nmf-colored");
        }
      });
      status.textContent = "";
      if (!nf) return;
      if (k === null) {
        status.appendChild(el("span", {}, "colour = each token\u2019s strongest factor \u00b7 hover a factor to isolate it, click to pin"));
      } else {
        status.appendChild(el("span", { class: "ecco-nmf-status-factor" }, [
          el("span", { class: "ecco-nmf-swatch", style: { backgroundColor: solid(k) } }), label(k)
        ]));
        status.appendChild(el("span", { class: "ecco-nmf-scale" }, maxOf[k] > 0 ? [
          "0", el("span", { class: "ecco-nmf-gradient", style: {
            backgroundImage: "linear-gradient(to right, " + tint(k, 0) + ", " + tint(k, 1) + ")" } }), fmt(maxOf[k])
        ] : "zero at every token"));
        status.appendChild(el("span", { class: "ecco-nmf-hint" }, state.pinned === k
          ? "pinned \u2014 click it again to unpin" : state.pinned !== null ? "previewing \u2014 " + label(state.pinned) + " is pinned" : "click to pin"));
      }
    }

    function factorOf(node) {
      var row = node && node.closest ? node.closest(".ecco-nmf-factor") : null;
      return row && column.contains(row) ? Number(row.dataset.factor) : null;
    }
    function hover(k) { if (state.hover !== k) { state.hover = k; update(); } }
    function pin(k) { state.pinned = state.pinned === k ? null : k; update(); }
    column.addEventListener("mouseover", function (event) { hover(factorOf(event.target)); });
    column.addEventListener("mouseleave", function () { hover(null); });
    column.addEventListener("focusin", function (event) { hover(factorOf(event.target)); });
    column.addEventListener("focusout", function (event) { if (factorOf(event.relatedTarget) === null) hover(null); });
    column.addEventListener("click", function (event) {
      var k = factorOf(event.target);
      if (k !== null) pin(k);
    });
    column.addEventListener("keydown", function (event) {
      var k = factorOf(event.target);
      if (k === null || (event.key !== "Enter" && event.key !== " ")) return;
      event.preventDefault();
      pin(k);
    });

    // Hovering a token marks its position on every sparkline.
    function mark(i) {
      markers.forEach(function (m, k) {
        if (i === null) { m.setAttribute("visibility", "hidden"); return; }
        var x = sx(i).toFixed(2), v = values[k][i];
        m.setAttribute("visibility", "visible");
        m.firstChild.setAttribute("x1", x);
        m.firstChild.setAttribute("x2", x);
        m.lastChild.setAttribute("cx", x);
        m.lastChild.setAttribute("cy", m.eccoY(v).toFixed(2));
        m.lastChild.setAttribute("visibility", v === null ? "hidden" : "inherit");
      });
    }
    function tokenIndex(node) {
      var span = node && node.closest ? node.closest(".ecco-token") : null;
      return span && text.contains(span) ? Number(span.dataset.index) : null;
    }
    text.addEventListener("mouseover", function (event) { mark(tokenIndex(event.target)); });
    text.addEventListener("mouseleave", function () { mark(null); });

    util.hoverTooltip(root, ".ecco-nmf-text .ecco-token", function (span) {
      var i = Number(span.dataset.index), tok = tokens[i], f = span.dataset.factor === undefined ? null : Number(span.dataset.factor);
      var bars = el("div", { class: "ecco-nmf-tip-bars" });
      values.forEach(function (row, k) {
        var v = row[i], width = v !== null && globalMax > 0 ? (100 * v / globalMax).toFixed(1) + "%" : "0%";
        bars.appendChild(el("div", { class: "ecco-nmf-tip-row" + (k === f ? " ecco-nmf-tip-shown" : ""), "data-factor": k }, [
          el("span", { class: "ecco-nmf-tip-label" }, [el("span", { class: "ecco-nmf-swatch", style: { backgroundColor: solid(k) } }), label(k)]),
          el("span", { class: "ecco-nmf-tip-track" }, el("span", { class: "ecco-nmf-tip-bar", style: { width: width, backgroundColor: solid(k) } })),
          el("span", { class: "ecco-nmf-tip-value" }, fmt(v))
        ]));
      });
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(tok.text))),
        util.tooltipRow("position", tok.position + (sequences.length > 1 ? " (sequence " + tok.sequence + ")" : "")),
        tok.is_input === false ? util.tooltipRow("kind", "generated") : null,
        tok.excluded ? util.tooltipRow("fit", "left out (exclude=)") : null,
        nf && !tok.excluded ? bars : null
      ];
    });

    update();
  };
})();
