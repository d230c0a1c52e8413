/* ecco view "rankings" (also rankings_watch): the rank of tokens at every layer, as a heatmap of
 * layers (rows, top to bottom) by tokens (columns). Darker = better rank, on a log scale.
 * Hovering a cell shows its numbers and marks its row and column headers.
 * data: {layers: [int], columns: [{text, id, position}], ranks: [[int]], probs: [[float]],
 *        caption: string | null, title: string | null, max_rank: int | null (optional: the rank
 *        drawn lightest, e.g. the vocabulary size; default the largest rank in the data)} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var SCHEME = "viridis";  // dark end = rank 1
  var ROTATE_OVER = 4;     // rotate the column headers when a token is longer than this

  var num = util.num;
  function at(table, r, c) { return Array.isArray(table) && Array.isArray(table[r]) ? num(table[r][c]) : null; }
  function pct(p) {
    if (p === null) return "\u2013";
    if (p > 0 && p < 0.00005) return "<0.01%";
    return (p * 100).toFixed(2) + "%";
  }
  function compact(rank) {
    if (rank < 100000) return String(rank);
    return Math.round(rank / 1000) + "k";
  }

  ecco.views.rankings = function (root, data) {
    var layers = Array.isArray(data.layers) ? data.layers : [];
    var columns = Array.isArray(data.columns) ? data.columns : [];

    var maxRank = num(data.max_rank);
    if (maxRank === null || maxRank < 2) {
      maxRank = 2;
      layers.forEach(function (_, r) {
        columns.forEach(function (_, c) { var k = at(data.ranks, r, c); if (k !== null && k > maxRank) maxRank = k; });
      });
    }
    function shade(rank) { return Math.log(Math.max(rank, 1)) / Math.log(maxRank); }

    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, data.title));
    if (data.caption) root.appendChild(el("div", { class: "ecco-rank-caption" }, data.caption));

    var rotate = columns.some(function (col) { return String(col.text).trim().length > ROTATE_OVER; });
    var table = el("table", { class: "ecco-rank-table" + (rotate ? " ecco-rank-rotated" : "") });
    var colHeads = [], rowHeads = [];
    var headRow = el("tr", {}, el("th", { class: "ecco-rank-corner", scope: "col" }, "layer"));
    columns.forEach(function (col, c) {
      colHeads[c] = el("th", { class: "ecco-rank-col", scope: "col", "data-col": c, "data-token-id": col.id, "data-position": col.position },
        el("span", { class: "ecco-rank-col-text" }, util.tokenNodes(col.text)));
      headRow.appendChild(colHeads[c]);
    });
    table.appendChild(el("thead", {}, headRow));

    var body = el("tbody");
    layers.forEach(function (layer, r) {
      rowHeads[r] = el("th", { class: "ecco-rank-row", scope: "row", "data-layer": layer }, String(layer));
      var tr = el("tr", {}, rowHeads[r]);
      columns.forEach(function (col, c) {
        var rank = at(data.ranks, r, c), prob = at(data.probs, r, c);
        tr.appendChild(el("td", {
          class: "ecco-rank-cell" + (rank === null ? " ecco-rank-missing" : "") + (rank === 1 ? " ecco-rank-top" : ""),
          "data-layer": layer, "data-col": c, "data-row": r,
          "data-rank": rank, "data-prob": prob === null ? null : String(prob),
          style: rank === null ? null : { backgroundColor: util.colorScale(shade(rank), SCHEME), color: util.textColor(shade(rank), SCHEME) }
        }, rank === null ? "\u2013" : compact(rank)));
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    root.appendChild(el("div", { class: "ecco-rank-scroll" }, table));
    if (!layers.length || !columns.length) root.appendChild(el("div", { class: "ecco-note ecco-rank-empty" }, "nothing to show"));

    var stops = [0, 0.25, 0.5, 0.75, 1].map(function (v) { return util.colorScale(v, SCHEME) + " " + v * 100 + "%"; });
    root.appendChild(el("div", { class: "ecco-legend ecco-rank-legend" }, [
      el("span", { class: "ecco-rank-scale" }, [
        "rank 1", el("span", { class: "ecco-rank-gradient", style: { backgroundImage: "linear-gradient(to right, " + stops.join(", ") + ")" } }),
        compact(maxRank)
      ]),
      el("span", {}, "log scale; darker = ranked higher")
    ]));

    // Hover: mark the cell's row and column headers.
    util.headerHover(table, ".ecco-rank-cell", rowHeads, colHeads);

    util.hoverTooltip(root, ".ecco-rank-cell", function (cell) {
      var r = Number(cell.dataset.row), c = Number(cell.dataset.col), col = columns[c];
      var rank = at(data.ranks, r, c);
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(String(col.text))),
        util.tooltipRow("layer", layers[r]),
        util.tooltipRow("rank", rank === null ? "\u2013" : rank),
        util.tooltipRow("prob", pct(at(data.probs, r, c))),
        col.position !== null && col.position !== undefined ? util.tooltipRow("position", col.position) : null,
        col.id !== null && col.id !== undefined ? util.tooltipRow("id", col.id) : null
      ];
    });
  };
})();
