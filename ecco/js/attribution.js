/* ecco view "attribution": input saliency (Ecco's primary_attributions / saliency).
 * Hover or click a generated token (a "target") to colour every earlier token by how much it
 * contributed to it; click pins the selection, clicking the pinned token again unpins it.
 * data: {tokens: [{text, id, position, is_input, continues_word, special, hidden}], n_input_tokens,
 *        targets: [position], attributions: [[value per source position]], raw: [[...]] | null,
 *        words: [[start, end]], method, method_label, style: "minimal" | "detailed",
 *        probs: [p | null], entropy: [nats | null], completeness: [fraction | null] | null,
 *        foil: string | null, title: string | null}
 * Token positions are indexes into data.tokens; hidden tokens are kept for indexing, never shown. */
(function () {
  "use strict";
  var ecco = window.ecco, util = ecco.util, el = util.el;
  var SCHEME = "blue";
  var WARN_COMPLETENESS = 0.05;

  var num = util.num;
  function at(list, k) { return Array.isArray(list) ? num(list[k]) : null; }
  function pct(v) { return v === null ? "\u2013" : (v * 100).toFixed(1) + "%"; }
  function prob(v) { return v > 0 && v < 0.0005 ? "<0.1%" : pct(v); }
  function signed(v) {
    if (v === null) return "\u2013";
    if (v === 0) return "0";
    return (v > 0 ? "+" : "") + v.toPrecision(3);
  }

  /* Word spans [start, end) covering every token in order; rebuilt from continues_word when
   * data.words is missing or inconsistent. */
  function wordSpans(tokens, words) {
    var ok = Array.isArray(words), expect = 0;
    if (ok) {
      for (var i = 0; i < words.length && ok; i++) {
        var w = words[i];
        ok = Array.isArray(w) && w[0] === expect && w[1] > w[0];
        if (ok) expect = w[1];
      }
      ok = ok && expect === tokens.length;
    }
    if (ok) return words.map(function (w) { return [w[0], w[1]]; });
    var spans = [];
    tokens.forEach(function (tok, p) {
      if (!spans.length || !tok.continues_word) spans.push([p, p + 1]);
      else spans[spans.length - 1][1] = p + 1;
    });
    return spans;
  }

  function tokenClass(tok) {
    return "ecco-token " + (tok.is_input ? "ecco-input" : "ecco-output") + (tok.special ? " ecco-special" : "");
  }

  ecco.views.attribution = function (root, data) {
    var tokens = data.tokens || [];
    var targets = data.targets || [];
    var attributions = data.attributions || [];
    var raw = Array.isArray(data.raw) ? data.raw : null;
    var detailed = data.style === "detailed";
    var words = wordSpans(tokens, data.words);
    var wordOf = [];
    words.forEach(function (w, wi) { for (var p = w[0]; p < w[1]; p++) wordOf[p] = wi; });
    var visible = tokens.map(function (tok) { return !tok.hidden; });
    var targetIndex = {};  // position -> k
    targets.forEach(function (pos, k) { if (visible[pos]) targetIndex[pos] = k; });
    var firstTarget = null;
    for (var t = 0; t < targets.length && firstTarget === null; t++) if (visible[targets[t]]) firstTarget = t;

    var state = { current: firstTarget, pinned: false, words: false };
    var spans = [];  // position -> element (undefined when hidden)

    root.classList.add(detailed ? "ecco-attr-detailed" : "ecco-attr-minimal");
    if (data.title) root.appendChild(el("div", { class: "ecco-title" }, data.title));

    // Header: method, contrastive foil, word toggle.
    var header = el("div", { class: "ecco-attr-header" });
    if (data.method_label || data.method) {
      header.appendChild(el("span", { class: "ecco-attr-method", title: data.method || null }, data.method_label || data.method));
    }
    var foilTarget = null;
    if (data.foil !== null && data.foil !== undefined) {
      foilTarget = el("span", { class: "ecco-attr-foil-target" });
      header.appendChild(el("span", { class: "ecco-attr-foil" }, [
        "why \u201c", foilTarget, "\u201d rather than \u201c", el("span", { class: "ecco-attr-foil-text" }, String(data.foil)), "\u201d"
      ]));
    }
    var toggle = null;
    if (firstTarget !== null) {
      toggle = el("input", { type: "checkbox", class: "ecco-words-toggle" });
      header.appendChild(el("label", { class: "ecco-attr-toggle", title: "sum the values of the tokens of each word" }, [toggle, "words"]));
    }
    if (header.childNodes.length) root.appendChild(header);

    // The text: tokens grouped by word so word pieces sit flush and never split across lines.
    var line = el("div", { class: "ecco-tokens ecco-attr-tokens" });
    words.forEach(function (w, wi) {
      var group = null;
      for (var p = w[0]; p < w[1]; p++) {
        var tok = tokens[p];
        if (!visible[p]) continue;
        if (!group) line.appendChild((group = el("span", { class: "ecco-word", "data-word": wi })));
        var isTarget = p in targetIndex;
        spans[p] = el("span", {
          class: tokenClass(tok) + (isTarget ? " ecco-target" : ""),
          "data-position": p, "data-token-id": tok.id,
          tabindex: isTarget ? 0 : null, role: isTarget ? "button" : null,
          "aria-pressed": isTarget ? "false" : null
        }, util.tokenNodes(tok.text));
        group.appendChild(spans[p]);
      }
    });
    root.appendChild(line);

    var legend = el("div", { class: "ecco-legend ecco-attr-legend" });
    root.appendChild(legend);
    var detail = detailed && firstTarget !== null ? el("div", { class: "ecco-attr-detail" }) : null;
    if (detail) root.appendChild(detail);

    /* Values shown for target k: {value: [per position], raw: [per position], max, rows}, over
     * visible sources only; in word mode every token carries its word's sum. */
    function compute(k) {
      var target = targets[k], row = attributions[k] || [], rawRow = raw ? raw[k] || [] : [];
      var value = [], rawValue = [], rows = [], max = 0;
      if (!state.words) {
        for (var p = 0; p < target; p++) {
          if (!visible[p]) continue;
          value[p] = num(row[p]);
          rawValue[p] = num(rawRow[p]);
          rows.push({ position: p, text: tokens[p].text, value: value[p], raw: rawValue[p] });
        }
      } else {
        words.forEach(function (w, wi) {
          var members = [], sum = null, rawSum = null, text = "";
          for (var p = w[0]; p < Math.min(w[1], target); p++) {
            if (!visible[p]) continue;
            members.push(p);
            text += tokens[p].text;
            var v = num(row[p]), r = num(rawRow[p]);
            if (v !== null) sum = (sum === null ? 0 : sum) + v;
            if (r !== null) rawSum = (rawSum === null ? 0 : rawSum) + r;
          }
          if (!members.length) return;
          members.forEach(function (p) { value[p] = sum; rawValue[p] = rawSum; });
          rows.push({ position: members[0], word: wi, text: text, value: sum, raw: rawSum });
        });
      }
      rows.forEach(function (r) { if (r.value !== null && r.value > max) max = r.value; });
      return { value: value, raw: rawValue, max: max, rows: rows };
    }

    function scaled(v, max) { return v === null || max <= 0 ? 0 : Math.max(0, v / max); }

    function update() {
      var k = state.current, target = k === null ? -1 : targets[k];
      var shown = k === null ? null : compute(k);
      spans.forEach(function (span, p) {
        if (!span) return;
        var isSource = shown !== null && p < target;
        var v = isSource ? shown.value[p] : null;
        span.classList.toggle("ecco-selected", p === target);
        span.classList.toggle("ecco-pinned", p === target && state.pinned);
        span.classList.toggle("ecco-source", isSource);
        span.classList.toggle("ecco-dimmed", shown !== null && p > target);
        if (span.classList.contains("ecco-target")) span.setAttribute("aria-pressed", String(p === target && state.pinned));
        if (isSource && v !== null) {
          span.dataset.value = String(v);
          span.style.backgroundColor = util.colorScale(scaled(v, shown.max), SCHEME);
        } else {
          delete span.dataset.value;
          span.style.backgroundColor = "";
        }
        if (isSource && shown.raw[p] !== null && shown.raw[p] !== undefined) span.dataset.raw = String(shown.raw[p]);
        else delete span.dataset.raw;
      });
      if (foilTarget) foilTarget.textContent = k === null ? "\u2026" : tokens[target].text;
      renderLegend(shown);
      if (detail) renderDetail(k, shown);
    }

    function renderLegend(shown) {
      legend.textContent = "";
      if (shown === null) {
        legend.appendChild(el("span", { class: "ecco-note" }, "no generated tokens to explain"));
        return;
      }
      legend.appendChild(el("span", { class: "ecco-attr-scale" }, [
        "0", el("span", { class: "ecco-attr-gradient", style: { backgroundImage: gradient() } }), pct(shown.max)
      ]));
      legend.appendChild(el("span", { class: "ecco-attr-hint" },
        state.pinned ? "pinned \u2014 click the outlined token to unpin" : "hover or click a generated token to explain it"));
    }

    function gradient() {
      return "linear-gradient(to right, " + [0, 0.25, 0.5, 0.75, 1].map(function (v) {
        return util.colorScale(v, SCHEME) + " " + v * 100 + "%";
      }).join(", ") + ")";
    }

    function stat(key, value, cls) {
      return el("span", { class: "ecco-attr-stat" + (cls ? " " + cls : "") }, [
        el("span", { class: "ecco-attr-stat-key" }, key), " ", el("span", { class: "ecco-attr-stat-value" }, value)
      ]);
    }

    function completenessLabel() {
      return data.method === "ig" ? "IG completeness error" : "completeness error";
    }

    function renderDetail(k, shown) {
      detail.textContent = "";
      var target = targets[k], p = at(data.probs, k), h = at(data.entropy, k), c = at(data.completeness, k);
      var stats = el("div", { class: "ecco-attr-stats" }, [
        el("span", { class: "ecco-attr-stat ecco-attr-stat-target" }, [
          el("span", { class: "ecco-attr-stat-key" }, "target"), " ",
          el("span", { class: "ecco-attr-chip" }, util.tokenNodes(tokens[target].text)),
          " ", el("span", { class: "ecco-attr-stat-key" }, "position " + target)
        ]),
        p !== null ? stat("probability", prob(p), "ecco-attr-prob") : null,
        h !== null ? stat("entropy", h.toFixed(2) + " nats", "ecco-attr-entropy") : null,
        c !== null ? el("span", {
          class: "ecco-attr-stat ecco-attr-completeness" + (Math.abs(c) > WARN_COMPLETENESS ? " ecco-warn" : ""),
          title: "relative gap between the sum of the raw attributions and the change in the model's output"
        }, completenessLabel() + " " + pct(c)) : null
      ]);
      detail.appendChild(stats);
      if (!shown.rows.length) {
        detail.appendChild(el("div", { class: "ecco-note" }, "no visible source tokens"));
        return;
      }
      var hasRaw = raw !== null;
      var bars = el("div", { class: "ecco-bars" + (hasRaw ? " ecco-bars-raw" : "") }, el("div", { class: "ecco-bars-head" }, [
        el("div", {}, state.words ? "word" : "token"),
        el("div", {}, "attribution"),
        el("div", { class: "ecco-bars-num" }, "share"),
        hasRaw ? el("div", { class: "ecco-bars-num", title: "signed raw score before normalisation" }, "raw") : null
      ]));
      shown.rows.forEach(function (r) {
        var attrs = { class: "ecco-bar-row", "data-position": r.position, "data-word": state.words ? r.word : null };
        var width = (100 * scaled(r.value, shown.max)).toFixed(2) + "%";
        bars.appendChild(el("div", attrs, [
          el("div", { class: "ecco-bar-label" }, el("span", { class: "ecco-attr-chip", title: JSON.stringify(r.text) }, util.tokenNodes(r.text))),
          el("div", { class: "ecco-bar-track" }, el("div", {
            class: "ecco-bar", "data-position": r.position, "data-value": r.value === null ? null : String(r.value),
            style: { width: width }
          })),
          el("div", { class: "ecco-bar-value ecco-bars-num" }, pct(r.value)),
          hasRaw ? el("div", { class: "ecco-bar-raw ecco-bars-num", title: r.raw === null ? null : String(r.raw) }, signed(r.raw)) : null
        ]));
      });
      detail.appendChild(bars);
    }

    function select(k, pin) {
      if (pin) {
        if (state.pinned && state.current === k) state.pinned = false;
        else { state.pinned = true; state.current = k; }
      } else if (!state.pinned) {
        if (state.current === k) return;
        state.current = k;
      } else return;
      update();
    }

    function targetOf(node) {
      var span = node && node.closest ? node.closest(".ecco-target") : null;
      return span && line.contains(span) ? span : null;
    }
    function kOf(span) { return targetIndex[Number(span.dataset.position)]; }

    line.addEventListener("mouseover", function (event) {
      var span = targetOf(event.target);
      if (span) select(kOf(span), false);
    });
    line.addEventListener("focusin", function (event) {
      var span = targetOf(event.target);
      if (span) select(kOf(span), false);
    });
    line.addEventListener("click", function (event) {
      var span = targetOf(event.target);
      if (!span) return;
      select(kOf(span), true);
      tip.show(span, tipContent(span));
    });
    line.addEventListener("keydown", function (event) {
      var span = targetOf(event.target);
      if (!span || (event.key !== "Enter" && event.key !== " ")) return;
      event.preventDefault();
      select(kOf(span), true);
    });
    if (toggle) toggle.addEventListener("change", function () { state.words = toggle.checked; update(); });

    // Detailed style: hovering a bar row outlines its token(s) in the text.
    if (detail) {
      detail.addEventListener("mouseover", function (event) {
        var row = event.target.closest(".ecco-bar-row");
        spans.forEach(function (span, p) {
          if (!span) return;
          var hit = row && (state.words ? row.dataset.word === String(wordOf[p]) && span.dataset.value !== undefined
                                        : row.dataset.position === String(p));
          span.classList.toggle("ecco-linked", !!hit);
        });
      });
      detail.addEventListener("mouseleave", function () {
        spans.forEach(function (span) { if (span) span.classList.remove("ecco-linked"); });
      });
    }

    function tipContent(span) {
      var p = Number(span.dataset.position), tok = tokens[p], rows = [el("div", { class: "ecco-tooltip-title" }, JSON.stringify(tok.text))];
      if (span.classList.contains("ecco-target")) {
        var k = targetIndex[p];
        rows.push(util.tooltipRow("position", p));
        if (at(data.probs, k) !== null) rows.push(util.tooltipRow("probability", prob(at(data.probs, k))));
        if (at(data.entropy, k) !== null) rows.push(util.tooltipRow("entropy", at(data.entropy, k).toFixed(2) + " nats"));
        if (at(data.completeness, k) !== null) rows.push(util.tooltipRow("IG error", pct(at(data.completeness, k))));
        rows.push(el("div", { class: "ecco-tooltip-hint" },
          state.pinned && state.current === k ? "click to unpin" : "click to pin"));
        return rows;
      }
      var v = num(Number(span.dataset.value)), r = span.dataset.raw === undefined ? null : num(Number(span.dataset.raw));
      if (state.words) {
        var w = words[wordOf[p]], text = "";
        for (var q = w[0]; q < Math.min(w[1], targets[state.current]); q++) if (visible[q]) text += tokens[q].text;
        rows.push(util.tooltipRow("word", JSON.stringify(text)));
      }
      rows.push(util.tooltipRow("attribution", pct(v)));
      if (r !== null) rows.push(util.tooltipRow("raw", signed(r)));
      rows.push(util.tooltipRow("explains", JSON.stringify(tokens[targets[state.current]].text)));
      return rows;
    }
    var tip = util.hoverTooltip(root, ".ecco-token[data-value], .ecco-token.ecco-target", tipContent);

    update();
  };
})();
