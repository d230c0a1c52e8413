/* ecco view "similarity": a layer-by-layer similarity matrix (CKA, SVCCA, ...) as a heatmap with
 * the labels on both axes and the value in every cell; hovering a cell marks its row and column
 * labels. Colours: viridis over [0, 1].
 * data: {labels: [string], matrix: [[number in [0, 1] | null]], method: string, title: string | null} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var SCHEME = "viridis";
  var COMPACT_OVER = 16;  // more rows than this: smaller cells
  var ROTATE_OVER = 3;    // rotate the column labels when one is longer than this

  var num = util.num;
  function at(matrix, r, c) { return Array.isArray(matrix) && Array.isArray(matrix[r]) ? num(matrix[r][c]) : null; }
  /* A bare number as label reads "layer 3" in sentences. */
  function spoken(label) { return /^\s*-?\d+\s*$/.test(label) ? "layer " + label.trim() : label; }

  ecco.views.similarity = function (root, data) {
    var matrix = Array.isArray(data.matrix) ? data.matrix : [];
    var n = Math.max(matrix.length, Array.isArray(data.labels) ? data.labels.length : 0);
    var labels = [];
    for (var i = 0; i < n; i++) {
      var l = Array.isArray(data.labels) ? data.labels[i] : undefined;
      labels.push(l === null || l === undefined ? String(i) : String(l));
    }
    var method = data.method ? String(data.method) : "";

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, String(data.title)));
    if (method) root.appendChild(el("div", { class: "ecco-sim-header" }, [el("span", { class: "ecco-sim-method" }, method), " similarity between layers"]));

    var rotate = labels.some(function (l) { return l.trim().length > ROTATE_OVER; });
    var table = el("table", { class: "ecco-sim-table" + (rotate ? " ecco-sim-rotated" : "") + (n > COMPACT_OVER ? " ecco-sim-compact" : "") });
    var colLabels = [], rowLabels = [];
    var head = el("tr", {}, el("th", { class: "ecco-sim-corner" }));
    labels.forEach(function (label, c) {
      colLabels[c] = el("th", { class: "ecco-sim-label ecco-sim-col", scope: "col", "data-index": c, "data-axis": "col" },
        el("span", { class: "ecco-sim-label-text" }, label));
      head.appendChild(colLabels[c]);
    });
    table.appendChild(el("thead", {}, head));
    var body = el("tbody");
    labels.forEach(function (label, r) {
      rowLabels[r] = el("th", { class: "ecco-sim-label ecco-sim-row", scope: "row", "data-index": r, "data-axis": "row" },
        el("span", { class: "ecco-sim-label-text" }, label));
      var tr = el("tr", {}, rowLabels[r]);
      labels.forEach(function (_, c) {
        var v = at(matrix, r, c);
        tr.appendChild(el("td", {
          class: "ecco-sim-cell" + (v === null ? " ecco-missing" : "") + (r === c ? " ecco-sim-diag" : ""),
          "data-row": r, "data-col": c, "data-value": v === null ? null : String(v),
          style: v === null ? null : { backgroundColor: util.colorScale(v, SCHEME), color: util.textColor(v, SCHEME) }
        }, v === null ? "\u2013" : v.toFixed(2)));
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    root.appendChild(el("div", { class: "ecco-sim-scroll" }, table));
    if (!n) root.appendChild(el("div", { class: "ecco-note" }, "nothing to show"));

    var stops = [0, 0.25, 0.5, 0.75, 1].map(function (v) { return util.colorScale(v, SCHEME) + " " + v * 100 + "%"; });
    root.appendChild(el("div", { class: "ecco-legend ecco-sim-legend" }, [
      el("span", { class: "ecco-sim-scale" }, [
        "0", el("span", { class: "ecco-sim-gradient", style: { backgroundImage: "linear-gradient(to right, " + stops.join(", ") + ")" } }), "1"
      ]),
      el("span", {}, (method ? method + " " : "") + "similarity; 1 = identical representations")
    ]));

    util.headerHover(table, ".ecco-sim-cell", rowLabels, colLabels);

    util.hoverTooltip(root, ".ecco-sim-cell", function (cell) {
      var r = Number(cell.dataset.row), c = Number(cell.dataset.col), v = at(matrix, r, c);
      return [
        el("div", { class: "ecco-sim-tip" },
          spoken(labels[r]) + " vs " + spoken(labels[c]) + ": " + (v === null ? "\u2013" : v.toFixed(2)) + (method ? " (" + method + ")" : "")),
        v !== null && v.toFixed(2) !== String(v) ? util.tooltipRow("exact", String(Number(v.toPrecision(6)))) : null
      ];
    });
  };
})();
