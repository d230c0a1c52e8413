"""OutputSeq: what one ecco call captured, plus thin view methods that delegate."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from torch import nn

from . import analysis, attention, decomposition, lens, lens_views
from .models.spec import ModelSpec
from .attribution import AttributionResult
from .attribution.aggregate import word_spans
from .render import View
from .render.plots import rankings_figure, trajectory_figure
from .record import ModelLink, SequenceMeta


@dataclass
class OutputSeq:
    """Tokens and captures of one call (a prompt or a batch).

    Arrays follow Ecco's layouts, with the batch first and every sequence starting at
    position 0 (shorter items padded at the end; ``lengths`` says where each ends):

    - ``activations[stack]``: numpy (batch, layers, neurons, positions), layers as listed in
      ``activation_layers[stack]`` (numeric order);
    - ``hidden_states[stack]``: torch (batch, layers + 1, positions, hidden), index 0 the
      embeddings, the last already through the model's final norm (as transformers gives it);
    - ``attention['encoder'|'decoder'|'cross']``: torch (batch, layers, heads, queries, keys);
    - ``token_probs`` / ``token_entropy``: (batch, generated) probability of each generated
      token and entropy (nats) of the next-token distribution it was drawn from, from the
      model's raw logits (before temperature or top-k/p); NaN past an item's end.

    ``stack`` is 'decoder' for causal models, 'encoder' for encoders, both for
    encoder-decoder models, whose token lists hold the encoder tokens then the decoder's.
    """

    model_name: str
    kind: str
    n_layers: dict[str, int]
    sequences: list[SequenceMeta]
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    activation_layers: dict[str, list[int]] = field(default_factory=dict)
    hidden_states: dict[str, torch.Tensor] = field(default_factory=dict)
    attention: dict[str, torch.Tensor] = field(default_factory=dict)
    token_probs: torch.Tensor | None = None
    token_entropy: torch.Tensor | None = None
    attributions: dict[str, AttributionResult] = field(default_factory=dict)
    link: ModelLink | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------ Ecco's names
    @property
    def tokens(self) -> list[list[str]]:
        """Readable token strings, one list per batch item."""
        return [s.tokens for s in self.sequences]

    @property
    def token_ids(self) -> torch.Tensor:
        """(batch, positions) token ids, right-padded with -1 past each item's length."""
        out = torch.full((len(self.sequences), max(self.lengths)), -1, dtype=torch.long)
        for row, seq in enumerate(self.sequences):
            out[row, : len(seq)] = torch.tensor(seq.token_ids)
        return out

    @property
    def lengths(self) -> list[int]:
        return [len(s) for s in self.sequences]

    @property
    def n_input_tokens(self) -> int | list[int]:
        """Prompt length (encoder length for encoder-decoder models); a list for a batch
        whose prompts differ in length."""
        counts = [s.n_input_tokens for s in self.sequences]
        return counts[0] if len(set(counts)) == 1 else counts

    @property
    def batch_size(self) -> int:
        return len(self.sequences)

    @property
    def attribution(self) -> dict[str, list]:
        """Ecco's view of attributions: per method, one normalised array per explained token
        (for a batch, one such list per sequence). Details: ``attributions[method]``."""
        single = self.batch_size == 1
        return {name: (r.values[0] if single else r.values) for name, r in self.attributions.items()}

    @property
    def decoder_hidden_states(self) -> torch.Tensor | None:
        return self.hidden_states.get("decoder")

    @property
    def encoder_hidden_states(self) -> torch.Tensor | None:
        return self.hidden_states.get("encoder")

    @property
    def output_text(self) -> list[str]:
        """The generated text of each item (empty for forward-only outputs)."""
        return ["".join(s.tokens[s.n_input_tokens :]) for s in self.sequences]

    def __str__(self) -> str:
        return "\n".join("".join(s.tokens) for s in self.sequences)

    def __repr__(self) -> str:
        captured = [name for name in ("activations", "hidden_states", "attention") if getattr(self, name)]
        return (
            f"OutputSeq(model={self.model_name!r}, kind={self.kind}, batch={self.batch_size}, "
            f"lengths={self.lengths}, captured={captured})"
        )

    # ------------------------------------------------------------------ checks
    def check_sequence(self, sequence: int) -> SequenceMeta:
        """The batch item ``sequence``, with a clear error when it does not exist."""
        if not isinstance(sequence, int) or not 0 <= sequence < self.batch_size:
            raise ValueError(
                f"sequence={sequence!r} is out of range: this output holds {self.batch_size} "
                f"sequence(s), numbered 0..{self.batch_size - 1}."
            )
        return self.sequences[sequence]

    # ------------------------------------------------------------------- views
    def tokens_view(self, sequence: int = 0) -> View:
        """The token sequence: prompt vs generated tokens; hover shows id and position."""
        seq = self.check_sequence(sequence)
        data = {
            "tokens": [
                {
                    "text": text,
                    "id": token_id,
                    "position": position,
                    "is_input": position < seq.n_input_tokens,
                    "continues_word": continues,
                    "special": special,
                }
                for position, (text, token_id, continues, special) in enumerate(
                    zip(seq.tokens, seq.token_ids, seq.continues_word, seq.special)
                )
            ],
            "n_input_tokens": seq.n_input_tokens,
            "title": f"{self.model_name} · sequence {sequence}" if self.batch_size > 1 else self.model_name,
        }
        return View("tokens", data)

    def _attribution_result(self, attr_method: str) -> AttributionResult:
        if attr_method not in self.attributions:
            available = ", ".join(self.attributions) or "none"
            raise ValueError(
                f"No {attr_method!r} attributions in this output (available: {available}). Compute them with "
                f"lm.generate(..., attribution=[{attr_method!r}]) or lm.attribute(prompt, target, "
                f"attribution=[{attr_method!r}])."
            )
        return self.attributions[attr_method]

    def primary_attributions(
        self,
        attr_method: str = "grad_x_input",
        style: str = "minimal",
        ignore_tokens: list[int | str] | None = None,
        printJson: bool = False,  # noqa: N803 (Ecco's name)
        sequence: int = 0,
    ) -> View | dict:
        """Input saliency: hover or click an output token to see how much each earlier token
        contributed to it. ``style='detailed'`` adds values and bars; ``ignore_tokens``
        (positions or token texts) hides tokens from the display only; ``printJson=True``
        returns the data instead of the view."""
        if style not in ("minimal", "detailed"):
            raise ValueError(f"style must be 'minimal' or 'detailed', got {style!r}.")
        result = self._attribution_result(attr_method)
        seq = self.check_sequence(sequence)
        hidden = set()
        for item in ignore_tokens or []:
            if isinstance(item, int) and not isinstance(item, bool):
                if not 0 <= item < len(seq):
                    raise ValueError(f"ignore_tokens position {item} is outside 0..{len(seq) - 1}.")
                hidden.add(item)
            else:
                hidden.update(i for i, text in enumerate(seq.tokens) if text == item or text.strip() == item)
        data = self.tokens_view(sequence).data
        for token in data["tokens"]:
            token["hidden"] = token["position"] in hidden
        targets = result.targets[sequence]
        offset = seq.n_input_tokens + (1 if self.kind == "enc-dec" else 0)
        errors = result.completeness_error
        data.update(
            targets=targets,
            attributions=[v.tolist() for v in result.values[sequence]],
            raw=[v.tolist() for v in result.raw[sequence]],
            words=[list(span) for span in word_spans(seq.continues_word)],
            method=attr_method,
            method_label=result.label,
            style=style,
            probs=[_step_value(self.token_probs, sequence, t - offset) for t in targets],
            entropy=[_step_value(self.token_entropy, sequence, t - offset) for t in targets],
            completeness=None if errors is None else [float(e) for e in errors[sequence]],
            foil=result.foil_text[sequence] if result.foil_text else None,
        )
        return data if printJson else View("attribution", data)

    def saliency(self, attr_method: str = "grad_x_input", style: str = "minimal", **kwargs) -> View | dict:
        """Alias of :meth:`primary_attributions` (Ecco's name)."""
        return self.primary_attributions(attr_method=attr_method, style=style, **kwargs)

    def word_attributions(self, attr_method: str = "grad_x_input", sequence: int = 0, raw: bool = False) -> dict:
        """Attributions summed over the sub-word pieces of each source word.

        Returns ``{'words': [...], 'targets': [...], 'values': [array per target]}`` where each
        array has one score per word before the target."""
        result = self._attribution_result(attr_method)
        seq = self.check_sequence(sequence)
        spans = word_spans(seq.continues_word)
        return {
            "words": ["".join(seq.tokens[a:b]) for a, b in spans],
            "targets": result.targets[sequence],
            "values": result.word_values(sequence, seq.continues_word, raw=raw),
        }

    # ------------------------------------------------------------- logit lens
    def _lens(self) -> lens.LensHead:
        if self.link is None:
            raise ValueError(
                "The logit lens needs the model's head: load the output with ecco.load(path, lm=lm), or "
                "use an output made by this session's LM."
            )
        if self.link.lens is None:
            raise ValueError(self.link.lens_error or "This model has no LM head for the logit lens.")
        return self.link.lens

    def _token_text(self, token_id: int) -> str:
        return self.link.tokenizer.decode([int(token_id)]) if self.link else str(token_id)

    @property
    def mask_token_id(self) -> int | None:
        return self.link.tokenizer.mask_token_id if self.link else None

    def layer_predictions(
        self,
        position: int = 1,
        layer: int | None = None,
        topk: int = 10,
        printJson: bool = False,  # noqa: N803
        sequence: int = 0,
    ) -> View | list:
        """The top-k tokens each layer would predict at ``position`` (the logit lens).

        Ecco's position: tokens count from 0 and the first token has no prediction. One
        layer with ``layer=``; ``printJson=True`` returns, per layer, a list of
        ``{'token', 'prob', 'ranking', 'layer'}``."""
        return lens_views.layer_predictions(
            self, position=position, layer=layer, topk=topk, printJson=printJson, sequence=sequence
        )

    def rankings(self, printJson: bool = False, plot: bool = False, sequence: int = 0):  # noqa: N803
        """Rank of each output token at every layer (1 = top): a heatmap, layers x tokens.

        ``plot=True`` returns a matplotlib figure; ``printJson=True`` Ecco's
        ``{'output_tokens', 'rankings'}`` with rankings of shape (layers, tokens)."""
        return lens_views.rankings(self, printJson=printJson, plot=plot, sequence=sequence)

    def rankings_watch(
        self,
        watch: list[int | str] | None = None,
        position: int = -1,
        printJson: bool = False,  # noqa: N803
        plot: bool = False,
        sequence: int = 0,
    ):
        """Ranks of several candidate tokens (ids or strings) at every layer for one position.

        A string of several tokens is ranked by its first piece, with a warning. ``position=-1``
        is the last token."""
        return lens_views.rankings_watch(
            self, watch=watch, position=position, printJson=printJson, plot=plot, sequence=sequence
        )

    def lens_trajectories(self, sequence: int = 0) -> dict:
        """Per layer (rows) and output token (columns): entropy of the lens distribution,
        KL(final || layer), probability and rank of the chosen token, as numpy arrays."""
        return lens_views.lens_trajectories(self, sequence=sequence)

    def trajectories(self, plot: bool = False, sequence: int = 0):
        """View (or matplotlib figure) of :meth:`lens_trajectories`."""
        return lens_views.trajectories(self, plot=plot, sequence=sequence)

    # ------------------------------------------------------ neuron activations
    def run_nmf(
        self,
        n_components: int | str = 10,
        from_layer: int | None = None,
        to_layer: int | None = None,
        nonneg: str = "clip",
        **kwargs,
    ) -> decomposition.NMF:
        """Ecco's NMF of the neuron activations (layers [from_layer, to_layer)); ``explore()``
        and ``plot()`` on the result. ``nonneg='split'`` keeps negative activations as separate
        features; ``n_components='auto'`` picks the elbow of the reconstruction error."""
        return decomposition.decompose(self, "nmf", n_components, from_layer, to_layer, nonneg, **kwargs)

    def run_decomposition(self, method: str = "nmf", n_components: int | str = 10, **kwargs) -> decomposition.Decomposition:
        """NMF, PCA, ICA or truncated SVD of the activations, through one interface."""
        return decomposition.decompose(self, method, n_components, **kwargs)

    def _activation_stack(self, stack: str | None) -> tuple[str, np.ndarray, list[int]]:
        name = decomposition.activation_stack(self, stack)
        return name, self.activations[name], self.activation_layers[name]

    def _token_entries(self, sequence: int) -> list[dict]:
        return [
            {k: v for k, v in token.items() if k != "id"} | {"sequence": sequence}
            for token in self.tokens_view(sequence).data["tokens"]
        ]

    def top_neurons(
        self, position: int, k: int = 10, sequence: int = 0, stack: str | None = None, printJson: bool = False  # noqa: N803
    ) -> View | list[dict]:
        """The ``k`` most active neurons (all captured layers) at one token: (layer, neuron, value)."""
        seq = self.check_sequence(sequence)
        if not isinstance(position, int) or not 0 <= position < len(seq):
            raise ValueError(f"position={position!r} is out of range: sequence {sequence} has tokens 0..{len(seq) - 1}.")
        name, acts, layers = self._activation_stack(stack)
        values = acts[sequence, :, :, position]  # (layers, neurons)
        if not isinstance(k, int) or not 1 <= k <= values.size:
            raise ValueError(f"k must be between 1 and {values.size}, got {k!r}.")
        flat = np.argsort(values, axis=None)[::-1][:k]
        rows = [
            {"layer": layers[i // values.shape[1]], "neuron": int(i % values.shape[1]), "value": float(values.flat[i])}
            for i in flat
        ]
        if printJson:
            return rows
        return View("top_neurons", {
            "token": {"text": seq.tokens[position], "position": position},
            "neurons": rows,
            "title": f"{self.model_name}: most active {name} neurons",
        })

    def neuron_view(
        self, layer: int, neuron: int, sequence: int = 0, stack: str | None = None, printJson: bool = False  # noqa: N803
    ) -> View | np.ndarray:
        """One neuron's activation over every token, as highlighted text (Karpathy-style)."""
        seq = self.check_sequence(sequence)
        name, acts, layers = self._activation_stack(stack)
        if layer not in layers:
            raise ValueError(f"layer={layer!r} was not captured; captured {name} layers: {layers}.")
        if not isinstance(neuron, int) or not 0 <= neuron < acts.shape[2]:
            raise ValueError(f"neuron={neuron!r} is out of range: layers have neurons 0..{acts.shape[2] - 1}.")
        values = acts[sequence, layers.index(layer), neuron, : len(seq)].astype(float)
        if printJson:
            return values
        return View("neuron", {
            "tokens": self._token_entries(sequence),
            "values": values.tolist(),
            "layer": layer,
            "neuron": neuron,
            "stack": name,
            "title": self.model_name,
        })

    def layer_similarity(
        self, method: str = "cka", stack: str | None = None, sequences: list[int] | None = None,
        printJson: bool = False, **kwargs  # noqa: N803
    ) -> View | np.ndarray:
        """Similarity of every pair of captured layers' activations (``cka``, ``svcca``, ``pwcca``
        or ``cca``), over the tokens of ``sequences`` (all by default): a (layers, layers) matrix."""
        if method not in analysis.SIMILARITY:
            raise ValueError(f"Unknown similarity {method!r}; valid: {', '.join(analysis.SIMILARITY)}.")
        selection = decomposition.select_activations(self, sequences=sequences, stack=stack)
        per_layer = selection.matrix.reshape(len(selection.layers), -1, selection.matrix.shape[1])
        n = len(per_layer)
        matrix = np.eye(n)
        for i in range(n):
            for j in range(i + 1, n):
                matrix[i, j] = matrix[j, i] = analysis.SIMILARITY[method](per_layer[i], per_layer[j], **kwargs)
        if printJson:
            return matrix
        return View("similarity", {
            "labels": [str(layer) for layer in selection.layers],
            "matrix": matrix.tolist(),
            "method": method,
            "title": f"{self.model_name}: {method.upper()} between {selection.stack} layers",
        })

    # -------------------------------------------------------------- attention
    def attention_head_view(
        self,
        layer: int | None = None,
        heads: list[int] | None = None,
        sequence: int = 0,
        attention_set: str | None = None,
        printJson: bool = False,  # noqa: N803
    ) -> View | dict:
        """Tokens in two columns, lines weighted by attention; a layer selector, one tile per
        head (click toggles, double-click isolates); hover a token for attention from / to it.
        ``attention_set``: 'decoder', 'encoder' or 'cross' (all available sets are selectable)."""
        name = attention.check_attention(self, attention_set)
        self.check_sequence(sequence)
        attention.check_layer_head(self, name, layer, None)
        for head in heads or []:
            attention.check_layer_head(self, name, None, head)
        names = list(self.attention)
        data = {
            "sets": [attention.packed_set(self, n, sequence) for n in names],
            "set": names.index(name),
            "layer": 0 if layer is None else layer,
            "heads": None if heads is None else list(heads),
            "title": self.model_name,
        }
        return data if printJson else View("attention_head", data)

    def attention_model_view(
        self, sequence: int = 0, attention_set: str | None = None, printJson: bool = False  # noqa: N803
    ) -> View | dict:
        """Thumbnails of every layer x head; click one to enlarge it."""
        name = attention.check_attention(self, attention_set)
        self.check_sequence(sequence)
        names = list(self.attention)
        data = {
            "sets": [attention.packed_set(self, n, sequence) for n in names],
            "set": names.index(name),
            "title": self.model_name,
        }
        return data if printJson else View("attention_model", data)

    def attention_neuron_view(
        self,
        layer: int,
        head: int,
        sequence: int = 0,
        attention_set: str | None = None,
        selected: int | None = None,
        printJson: bool = False,  # noqa: N803
    ) -> View | dict:
        """How one head's weights arise: for a selected token, its query, each key, their
        element-wise product and the softmaxed scores (queries/keys as the model uses them)."""
        name = attention.check_attention(self, attention_set)
        attention.check_layer_head(self, name, layer, head)
        queries, _ = attention.set_tokens(self, name, sequence)
        data = attention.neuron_data(self, name, layer, head, sequence, len(queries) - 1 if selected is None else selected)
        return data if printJson else View("attention_neuron", data)

    def _repr_html_(self) -> str:
        return "".join(self.tokens_view(i).html for i in range(self.batch_size))

    def save_html(self, path: str | Path, sequence: int = 0) -> Path:
        """Write the token view of one sequence as a standalone HTML file."""
        return self.tokens_view(sequence).save_html(path)

    def save(self, path: str | Path) -> Path:
        """Save every array and the metadata to one safetensors file (see :mod:`ecco.io`)."""
        from .io import save

        return save(self, path)


def _step_value(values: torch.Tensor | None, sequence: int, step: int) -> float | None:
    """One per-step score as a JSON-safe float (None when missing)."""
    if values is None or not 0 <= step < values.shape[1]:
        return None
    value = float(values[sequence, step])
    return None if value != value else value
