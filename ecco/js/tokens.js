/* ecco view "tokens": the input and generated tokens of one sequence.
 * data: {tokens: [{text, id, position, is_input, continues_word, special}], n_input_tokens, title} */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;

  function tokenClass(tok) {
    return "ecco-token " + (tok.is_input ? "ecco-input" : "ecco-output") + (tok.special ? " ecco-special" : "");
  }

  function legend(nInput, nOutput) {
    return el("div", { class: "ecco-legend" }, [
      el("span", { class: "ecco-swatch ecco-swatch-input" }), nInput + " input",
      nOutput > 0 ? [el("span", { class: "ecco-swatch ecco-swatch-output" }), nOutput + " generated"] : null
    ]);
  }

  ecco.views.tokens = function (root, data) {
    var tokens = data.tokens || [];
    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, data.title));

    // Tokens of one word share a no-wrap group, so they sit flush and never split across lines.
    var line = el("div", { class: "ecco-tokens" }), word = null;
    tokens.forEach(function (tok, i) {
      if (!word || !tok.continues_word) line.appendChild((word = el("span", { class: "ecco-word" })));
      word.appendChild(el("span", {
        class: tokenClass(tok), "data-position": tok.position, "data-token-id": tok.id, "data-index": i
      }, util.tokenNodes(tok.text)));
    });
    root.appendChild(line);
    root.appendChild(legend(data.n_input_tokens, tokens.length - data.n_input_tokens));

    util.hoverTooltip(root, ".ecco-token", function (span) {
      var tok = tokens[Number(span.dataset.index)];
      return [
        el("div", { class: "ecco-tooltip-title" }, JSON.stringify(tok.text)),
        util.tooltipRow("id", tok.id),
        util.tooltipRow("position", tok.position),
        util.tooltipRow("kind", (tok.is_input ? "input" : "generated") + (tok.special ? ", special" : ""))
      ];
    });
  };
})();
