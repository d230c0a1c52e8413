"""LM: tokenise, generate or run forward, and hand the captures to an OutputSeq.

This module owns the calls into the model; it holds no maths and no HTML.
"""
from __future__ import annotations

import contextlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import BaseModelOutput

from .attribution import Options, Target, check_methods, explain, generated_targets
from .session import model_session
from .capture import FFNRecorder, shift_left, stitch_attention, stitch_steps
from .models.registry import resolve
from .runner import Runner
from .models.spec import ModelSpec
from .lens import LensHead
from .output import ModelLink, OutputSeq, SequenceMeta
from .stream import NotebookStreamer, in_notebook

_DEFAULT_NEW_TOKENS = 8
_STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class _Batch:
    """Padded token ids of a batch of prompts."""

    ids: torch.Tensor
    mask: torch.Tensor
    lengths: list[int]
    pads: list[int]  # left padding per item (causal models), else zeros


class LM:
    """A transformers model wrapped for capture and interpretation.

    Create it with :func:`ecco.from_pretrained` or :func:`ecco.from_model`.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        model_name: str | None = None,
        activations: bool = False,
        attention: bool = False,
        hidden_states: bool = True,
        activations_layer_nums: Sequence[int] | None = None,
        verbose: bool = True,
        model_config: Mapping | None = None,
        store_dtype: str | torch.dtype = torch.float32,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self.spec: ModelSpec = resolve(model, model_config)
        self.runner = Runner(model, self.spec)
        self.collect_activations = activations
        self.attention = attention
        self.hidden_states = hidden_states
        self.verbose = verbose
        self.store_dtype = _store_dtype(store_dtype)
        self.activation_layers = self._layer_selection(activations_layer_nums)
        self.link = _link(self.runner, tokenizer)

    def __repr__(self) -> str:
        layers = {name: stack.n_layers for name, stack in self.spec.stacks.items()}
        return f"LM({self.model_name!r}, arch={self.spec.arch}, kind={self.spec.kind}, layers={layers})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _layer_selection(self, layer_nums: Sequence[int] | None) -> dict[str, list[int]]:
        selection = {}
        for name, stack in self.spec.stacks.items():
            if layer_nums is None:
                selection[name] = list(range(stack.n_layers))
                continue
            bad = [n for n in layer_nums if not isinstance(n, int) or not 0 <= n < stack.n_layers]
            if bad:
                raise ValueError(
                    f"activations_layer_nums {bad} out of range: the {name} of {self.model_name} has "
                    f"{stack.n_layers} layers, numbered 0..{stack.n_layers - 1}."
                )
            selection[name] = sorted(set(int(n) for n in layer_nums))
        return selection

    # ----------------------------------------------------------------- inputs
    def _context_size(self) -> int | None:
        config = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _encode(self, texts: str | Sequence[str]) -> list[list[int]]:
        batch = [texts] if isinstance(texts, str) else list(texts)
        if not batch:
            raise ValueError("No input text given: pass a string or a non-empty list of strings.")
        encoded = []
        context = self._context_size()
        for index, text in enumerate(batch):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"Input text {index} is empty: give the model some text to read.")
            ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
            if context is not None and len(ids) > context:
                raise ValueError(
                    f"Input text {index} is {len(ids)} tokens, longer than the model's context window of "
                    f"{context} tokens. Shorten the text."
                )
            encoded.append(ids)
        return encoded

    def _pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, self.model.config.pad_token_id):
            if candidate is not None:
                return int(candidate)
        return 0

    def _pad(self, sequences: list[list[int]], left: bool) -> _Batch:
        width = max(len(s) for s in sequences)
        pad = self._pad_id()
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        pads = []
        for row, seq in enumerate(sequences):
            start = width - len(seq) if left else 0
            ids[row, start : start + len(seq)] = torch.tensor(seq)
            mask[row, start : start + len(seq)] = 1
            pads.append(start)
        device = self.device
        return _Batch(ids.to(device), mask.to(device), [len(s) for s in sequences], pads)

    def _new_tokens(self, prompt_lengths: list[int], generate: int | None, max_length: int | None) -> int:
        if generate is not None and max_length is not None:
            raise ValueError("Pass either generate (new tokens) or max_length (total length), not both.")
        if generate is None and max_length is None:
            return _DEFAULT_NEW_TOKENS
        if generate is not None:
            n = generate
        else:
            n = max_length - max(prompt_lengths)  # type: ignore[operator]
            if n < 1:
                raise ValueError(
                    f"max_length={max_length} leaves no room to generate after a {max(prompt_lengths)}-token "
                    "prompt; max_length counts the prompt too (or use generate=N new tokens)."
                )
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"generate must be a positive number of new tokens, got {generate!r}.")
        return n

    # ------------------------------------------------------------- generation
    def generate(
        self,
        input_str: str | Sequence[str],
        generate: int | None = None,
        max_length: int | None = None,
        do_sample: bool | None = False,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        beam_size: int = 1,
        attribution: Sequence[str] | str | None = None,
        attribution_options: Mapping | None = None,
        **generate_kwargs,
    ) -> OutputSeq:
        """Generate a continuation of one prompt or a batch, capturing the model's internals.

        Uses transformers' ``generate`` with the KV cache; activations, hidden states and
        attention are captured during generation (beam search: one teacher-forced pass over
        the returned sequences). ``generate`` counts new tokens; Ecco's ``max_length`` counts
        the prompt too. Extra keyword arguments go to transformers' ``generate``.

        ``attribution`` names methods (``ecco.attribution.METHODS``) that explain every generated
        token by the earlier tokens; ``attribution_options`` sets their
        :class:`~ecco.attribution.Options` (``n_steps``, ``internal_batch_size``, ...).
        """
        if self.spec.kind == "masked":
            raise ValueError(
                f"{self.model_name} is an encoder ({type(self.model).__name__}) and cannot generate text. "
                "Run it on a text with lm(text) instead."
            )
        if not isinstance(beam_size, int) or beam_size < 1:
            raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}.")
        methods = check_methods(attribution or [])
        options = _attribution_options(attribution_options)
        prompts = self._encode(input_str)
        n_new = self._new_tokens([len(p) for p in prompts], generate, max_length)
        self._check_context(max(len(p) for p in prompts) + n_new, f"The prompt plus {n_new} new tokens")
        sampling = {k: v for k, v in dict(temperature=temperature, top_k=top_k, top_p=top_p).items() if v is not None}
        gen_options = dict(
            max_new_tokens=n_new,
            do_sample=bool(do_sample),
            num_beams=beam_size,
            pad_token_id=self._pad_id(),
            return_dict_in_generate=True,
            **sampling,
            **generate_kwargs,
        )
        generating = self._generate_enc_dec if self.spec.kind == "enc-dec" else self._generate_causal
        output = generating(prompts, gen_options)
        if methods:
            sequences = [
                (seq.token_ids, seq.n_input_tokens, generated_targets(self.spec.kind, seq.token_ids, seq.n_input_tokens))
                for seq in output.sequences
            ]
            output.attributions.update(
                explain(self.runner, sequences, methods, options=options, progress=self.verbose)
            )
        return output

    def _streamer(self, batch_size: int, beams: int) -> NotebookStreamer | None:
        if self.verbose and batch_size == 1 and beams == 1 and in_notebook():
            return NotebookStreamer(self.tokenizer)
        return None

    def _recorder(self, stack: str, live: bool = True) -> FFNRecorder | contextlib.nullcontext:
        """FFN hooks for one stack, or nothing when activations are off or not captured live."""
        if not (self.collect_activations and live):
            return contextlib.nullcontext()
        return FFNRecorder(self.spec, {stack: self.activation_layers[stack]}, self.store_dtype)

    def _forward(self, **kwargs) -> object:
        """One model call with ecco's output flags (``position_ids`` only where the model takes it)."""
        kwargs.update(output_hidden_states=self.hidden_states, output_attentions=self.attention)
        if "position_ids" not in inspect.signature(self.model.forward).parameters:
            kwargs.pop("position_ids", None)
        return self.model(**{k: v for k, v in kwargs.items() if v is not None})

    def _generate_call(self, batch: _Batch, options: dict, live: bool, **extra) -> object:
        return self.model.generate(
            input_ids=batch.ids,
            attention_mask=batch.mask,
            streamer=self._streamer(batch.ids.shape[0], options["num_beams"]),
            output_hidden_states=self.hidden_states and live,
            output_attentions=self.attention and live,
            output_logits=True,
            **extra,
            **options,
        )

    def _generate_causal(self, prompts: list[list[int]], options: dict) -> OutputSeq:
        batch = self._pad(prompts, left=True)
        width = batch.ids.shape[1]
        live = options["num_beams"] == 1
        with model_session(self.model, eager_attention=self.attention):
            with self._recorder("decoder", live) as recorder:
                out = self._generate_call(batch, options, live)
                sequences = out.sequences
                mask = torch.cat([batch.mask, torch.ones_like(sequences[:, width:])], dim=1)
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                if live:
                    # generate never feeds its last token back: one cached step captures it.
                    last = self._forward(
                        input_ids=sequences[:, -1:],
                        attention_mask=mask,
                        position_ids=positions[:, -1:],
                        past_key_values=out.past_key_values,
                        use_cache=True,
                    )
                    hidden = [*(out.hidden_states or ()), last.hidden_states]
                    attention = [*(out.attentions or ()), last.attentions]
                    logits = torch.stack(out.logits, dim=1)
            if not live:
                with self._recorder("decoder") as recorder:
                    full = self._forward(input_ids=sequences, attention_mask=mask, position_ids=positions)
                hidden, attention = [full.hidden_states], [full.attentions]
                logits = full.logits[:, width - 1 : -1]
        captures = self._captures({"decoder": hidden}, {"decoder": attention}, [recorder], batch.pads)
        generated = sequences[:, width:].cpu()
        n_generated = self._generated_lengths(generated)
        token_ids = shift_left(sequences.cpu(), batch.pads, [1])
        return self._output(
            token_ids=[row[: p + g].tolist() for row, p, g in zip(token_ids, batch.lengths, n_generated)],
            n_input=batch.lengths,
            generated=generated,
            logits=logits,
            n_generated=n_generated,
            captures=captures,
        )

    def _generate_enc_dec(self, prompts: list[list[int]], options: dict) -> OutputSeq:
        batch = self._pad(prompts, left=False)
        live = options["num_beams"] == 1
        with model_session(self.model, eager_attention=self.attention):
            with self._recorder("encoder") as encoder_recorder:
                encoded = self.model.get_encoder()(
                    input_ids=batch.ids,
                    attention_mask=batch.mask,
                    output_hidden_states=True,
                    output_attentions=self.attention,
                    return_dict=True,
                )
            encoder_outputs = BaseModelOutput(last_hidden_state=encoded.last_hidden_state)
            with self._recorder("decoder", live) as recorder:
                # generate expands what it is given for beam search, so it gets its own copy.
                out = self._generate_call(
                    batch, options, live, encoder_outputs=BaseModelOutput(last_hidden_state=encoded.last_hidden_state)
                )
                sequences = out.sequences
                if live:
                    # generate never feeds its last token back: one cached step captures it.
                    last = self._forward(
                        encoder_outputs=encoder_outputs,
                        attention_mask=batch.mask,
                        decoder_input_ids=sequences[:, -1:],
                        past_key_values=out.past_key_values,
                        use_cache=True,
                    )
                    hidden = [*(out.decoder_hidden_states or ()), last.decoder_hidden_states]
                    attention = [*(out.decoder_attentions or ()), last.decoder_attentions]
                    cross = [*(out.cross_attentions or ()), last.cross_attentions]
                    logits = torch.stack(out.logits, dim=1)
            if not live:
                with self._recorder("decoder") as recorder:
                    full = self._forward(
                        encoder_outputs=encoder_outputs, attention_mask=batch.mask, decoder_input_ids=sequences
                    )
                hidden, attention = [full.decoder_hidden_states], [full.decoder_attentions]
                cross = [full.cross_attentions]
                logits = full.logits[:, :-1]
        captures = self._captures(
            {"encoder": [encoded.hidden_states], "decoder": hidden},
            {"encoder": [encoded.attentions], "decoder": attention, "cross": cross},
            [encoder_recorder, recorder],
            [],
        )
        generated = sequences[:, 1:].cpu()
        n_generated = self._generated_lengths(generated)
        return self._output(
            token_ids=[
                row[:p].tolist() + dec[: g + 1].tolist()
                for row, p, dec, g in zip(batch.ids.cpu(), batch.lengths, sequences.cpu(), n_generated)
            ],
            n_input=batch.lengths,
            generated=generated,
            logits=logits,
            n_generated=n_generated,
            captures=captures,
        )

    def _captures(
        self,
        hidden: dict[str, list],
        attention: dict[str, list],
        recorders: list[FFNRecorder | contextlib.nullcontext],
        pads: list[int],
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Stitch per-call chunks into whole-sequence arrays on the CPU.

        ``pads`` is the left padding of a causal batch; it is moved to the right end so
        every sequence starts at position 0.
        """
        captures: dict[str, dict[str, torch.Tensor]] = {}
        if self.hidden_states:
            captures["hidden_states"] = {
                stack: shift_left(stitch_steps(steps, self.store_dtype), pads, [2]) for stack, steps in hidden.items()
            }
        if self.attention:
            captures["attention"] = {
                name: shift_left(stitch_attention(steps, steps[-1][0].shape[-1], self.store_dtype), pads, [3, 4])
                for name, steps in attention.items()
            }
        activations = {
            stack: shift_left(rec.collect(stack), pads, [3])
            for rec in recorders
            if isinstance(rec, FFNRecorder)
            for stack in rec.chunks
        }
        if activations:
            captures["activations"] = activations
        return captures

    def _generated_lengths(self, generated: torch.Tensor) -> list[int]:
        """New tokens per item, up to and including the first end-of-sequence token."""
        eos = self.model.generation_config.eos_token_id
        eos_ids = set([eos] if isinstance(eos, int) else (eos or []))
        lengths = []
        for row in generated.tolist():
            hit = next((i for i, token in enumerate(row) if token in eos_ids), None)
            lengths.append(len(row) if hit is None else hit + 1)
        return lengths

    # ---------------------------------------------------------- forward only
    def __call__(self, inputs: str | Sequence[str] | Mapping, text_pair: str | Sequence[str] | None = None) -> OutputSeq:
        """Run one forward pass (no generation) and capture, e.g. for encoders such as BERT.

        ``inputs`` is a text, a list of texts, or the tokenizer's output (Ecco's
        ``lm(lm.tokenizer([text], return_tensors='pt'))``). ``text_pair`` makes sentence
        pairs for encoders.
        """
        return self._capture_forward(self._forward_inputs(inputs, text_pair))

    def _capture_forward(self, encoding: dict[str, torch.Tensor], n_input: list[int] | None = None) -> OutputSeq:
        """One captured forward pass. With ``n_input`` (teacher forcing) the tokens after each
        item's first ``n_input`` are treated as its continuation: their probabilities are kept."""
        ids, mask = encoding["input_ids"], encoding["attention_mask"]
        pads = (mask.cumsum(-1) == 0).sum(-1).tolist()
        lengths = mask.sum(-1).tolist()
        extra = {k: v.to(self.device) for k, v in encoding.items() if k not in ("input_ids", "attention_mask")}
        if self.spec.kind == "enc-dec" and "decoder_input_ids" not in extra:
            start = self.model.generation_config.decoder_start_token_id
            extra["decoder_input_ids"] = torch.full((ids.shape[0], 1), int(start), device=self.device)
        with model_session(self.model, eager_attention=self.attention):
            recorders = [self._recorder(stack) for stack in self.spec.stacks]
            with contextlib.ExitStack() as stack:
                for rec in recorders:
                    stack.enter_context(rec)
                out = self._forward(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(self.device)
                    if self.spec.kind == "causal"
                    else None,
                    **extra,
                )
        if self.spec.kind == "enc-dec":
            hidden = {"encoder": [out.encoder_hidden_states], "decoder": [out.decoder_hidden_states]}
            attention = {
                "encoder": [out.encoder_attentions],
                "decoder": [out.decoder_attentions],
                "cross": [out.cross_attentions],
            }
        else:
            name = self.spec.main_stack.name
            hidden, attention = {name: [out.hidden_states]}, {name: [out.attentions]}
        captures = self._captures(hidden, attention, recorders, pads)
        token_ids = shift_left(ids, pads, [1])
        sequences = [row[:n].tolist() for row, n in zip(token_ids, lengths)]
        decoder = extra.get("decoder_input_ids")
        if decoder is not None:
            sequences = [s + d.tolist() for s, d in zip(sequences, decoder.cpu())]
        types = extra.get("token_type_ids")
        segments = None if types is None else [row[:n].tolist() for row, n in zip(shift_left(types.cpu(), pads, [1]), lengths)]
        if n_input is None:
            return self._output(sequences, lengths, None, None, [0] * len(lengths), captures, segments)
        logits = shift_left(out.logits.detach().cpu(), pads, [1]) if decoder is None else out.logits.detach().cpu()
        # Continuation token j of item i sits at position first + j and is predicted one before.
        first = [1] * len(sequences) if decoder is not None else n_input
        n_new = [len(s) - n for s, n in zip(sequences, n_input)] if decoder is None else [
            len(s) - n - 1 for s, n in zip(sequences, n_input)
        ]
        width = max(n_new)
        generated = torch.full((len(sequences), width), self._pad_id(), dtype=torch.long)
        step_logits = torch.zeros((len(sequences), width, logits.shape[-1]))
        for i, (seq, f, n) in enumerate(zip(sequences, first, n_new)):
            source = seq[len(seq) - n :]
            generated[i, :n] = torch.tensor(source)
            step_logits[i, :n] = logits[i, f - 1 : f - 1 + n]
        return self._output(sequences, n_input, generated, step_logits, n_new, captures)

    # ------------------------------------------------------------ attribution
    def attribute(
        self,
        prompt: str | Sequence[str],
        target: str | Sequence[str],
        foil: str | Sequence[str] | None = None,
        attribution: Sequence[str] | str = ("grad_x_input",),
        score: str = "prob",
        **options,
    ) -> OutputSeq:
        """Explain a given continuation (teacher forcing, no sampling).

        Every token of ``target`` is explained by the prompt and the target tokens before it,
        with the ``score`` ('prob' as in Ecco, 'logprob' or 'logit'). With ``foil`` the
        attribution is contrastive (Yin & Neubig 2022): it explains log p(target) - log p(foil)
        at the first token where target and foil differ (their common prefix is teacher-forced).
        Lists of prompts / targets / foils make a batch. ``options`` set
        :class:`~ecco.attribution.Options` (``n_steps``, ``internal_batch_size``, ...).
        """
        if self.spec.kind == "masked":
            raise ValueError(
                f"{self.model_name} is an encoder without a generative head; attributing a continuation "
                "needs a causal or encoder-decoder model."
            )
        if score not in ("prob", "logprob", "logit"):
            raise ValueError(f"score must be 'prob', 'logprob' or 'logit', got {score!r}.")
        methods = check_methods(attribution)
        settings = _attribution_options(options)
        prompts = self._encode(prompt)
        targets = self._continuations(target, len(prompts), "target")
        foils = None if foil is None else self._continuations(foil, len(prompts), "foil")
        plans = [_plan(t, None if foils is None else foils[i]) for i, t in enumerate(targets)]
        if self.spec.kind == "enc-dec":
            start = int(self.model.generation_config.decoder_start_token_id)
            encoder = self._pad(prompts, left=False)
            decoder = self._pad([[start] + p.tokens for p in plans], left=False)
            encoding = {"input_ids": encoder.ids.cpu(), "attention_mask": encoder.mask.cpu(),
                        "decoder_input_ids": decoder.ids.cpu()}
        else:
            batch = self._pad([p + plan.tokens for p, plan in zip(prompts, plans)], left=False)
            encoding = {"input_ids": batch.ids.cpu(), "attention_mask": batch.mask.cpu()}
        self._check_context(encoding["input_ids"].shape[1], "Prompt and target")
        output = self._capture_forward(encoding, [len(p) for p in prompts])
        sequences = []
        for seq, plan in zip(output.sequences, plans):
            every = generated_targets(self.spec.kind, seq.token_ids, seq.n_input_tokens)
            chosen = Target(every.positions, every.token_ids)
            if plan.foil is not None:
                chosen = Target(every.positions[-1:], every.token_ids[-1:], [plan.foil])
            sequences.append((seq.token_ids, seq.n_input_tokens, chosen))
        results = explain(self.runner, sequences, methods, score=score, options=settings, progress=self.verbose)
        for result in results.values():
            if result.foil_ids:
                result.foil_text = [self.tokenizer.decode(ids) for ids in result.foil_ids]
        output.attributions.update(results)
        return output

    def _continuations(self, texts: str | Sequence[str], count: int, what: str) -> list[list[int]]:
        """Token ids of target / foil texts, one per prompt, without special tokens."""
        texts = [texts] * count if isinstance(texts, str) else list(texts)
        if len(texts) != count:
            raise ValueError(f"Got {len(texts)} {what}s for {count} prompts; give one {what} per prompt.")
        out = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if isinstance(text, str) else []
            if not ids:
                raise ValueError(f"The {what} {text!r} tokenizes to nothing: give a non-empty continuation.")
            out.append(list(ids))
        return out

    def _check_context(self, length: int, what: str) -> None:
        """A causal sequence of ``length`` tokens must fit the context window."""
        context = self._context_size()
        if context is not None and self.spec.kind == "causal" and length > context:
            raise ValueError(
                f"{what} make {length} tokens, longer than the model's context window of {context} tokens. "
                "Shorten the text or generate fewer tokens."
            )

    def _forward_inputs(self, inputs: str | Sequence[str] | Mapping, text_pair) -> dict[str, torch.Tensor]:
        if isinstance(inputs, Mapping):
            if "input_ids" not in inputs:
                raise ValueError("lm(inputs) needs 'input_ids' in a tokenizer output, or plain text.")
            ids = torch.as_tensor(inputs["input_ids"])
            ids = ids[None] if ids.dim() == 1 else ids
            encoding = {k: torch.as_tensor(v) for k, v in inputs.items() if v is not None}
            encoding["input_ids"] = ids
            encoding.setdefault("attention_mask", torch.ones_like(ids))
            encoding["attention_mask"] = encoding["attention_mask"].reshape(ids.shape)
            if ids.shape[1] == 0:
                raise ValueError("lm(inputs) got no tokens: give the model some text to read.")
            return encoding
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        pairs = None if text_pair is None else ([text_pair] if isinstance(text_pair, str) else list(text_pair))
        self._encode(texts)
        if pairs is not None:
            if len(pairs) != len(texts):
                raise ValueError(f"text_pair has {len(pairs)} texts for {len(texts)} inputs; give one per input.")
            self._encode(pairs)
        if len(texts) > 1 and self.tokenizer.pad_token_id is None:
            return self._pad_encoding(texts, pairs)
        encoding = self.tokenizer(texts, pairs, padding=True, return_tensors="pt")
        context = self._context_size()
        if context is not None and encoding["input_ids"].shape[1] > context:
            raise ValueError(
                f"The input is {encoding['input_ids'].shape[1]} tokens, longer than the model's context "
                f"window of {context} tokens. Shorten the text."
            )
        return dict(encoding)

    def _pad_encoding(self, texts: list[str], pairs: list[str] | None) -> dict[str, torch.Tensor]:
        """Tokenise a batch with a tokenizer that has no pad token (GPT-2, Llama)."""
        sequences = [
            self.tokenizer(t, p, add_special_tokens=True)["input_ids"]
            for t, p in zip(texts, pairs or [None] * len(texts))
        ]
        batch = self._pad(sequences, left=False)
        return {"input_ids": batch.ids.cpu(), "attention_mask": batch.mask.cpu()}

    # -------------------------------------------------------------- results
    def _output(
        self,
        token_ids: list[list[int]],
        n_input: list[int],
        generated: torch.Tensor | None,
        logits: torch.Tensor | None,
        n_generated: list[int],
        captures: dict[str, dict[str, torch.Tensor]],
        segments: list[list[int]] | None = None,
    ) -> OutputSeq:
        probs = entropy = None
        if logits is not None and generated is not None:
            log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
            steps = torch.arange(generated.shape[1])[None, :]
            valid = steps < torch.tensor(n_generated)[:, None]
            chosen = log_probs.gather(-1, generated[:, : log_probs.shape[1], None]).squeeze(-1)
            probs = torch.where(valid, chosen.exp(), torch.nan)
            entropy = torch.where(valid, -(log_probs.exp() * log_probs).sum(-1), torch.nan)
        meta = [
            SequenceMeta.from_ids(self.tokenizer, ids, n, None if segments is None else segments[i])
            for i, (ids, n) in enumerate(zip(token_ids, n_input))
        ]
        return OutputSeq(
            link=self.link,
            model_name=self.model_name,
            kind=self.spec.kind,
            n_layers={name: stack.n_layers for name, stack in self.spec.stacks.items()},
            sequences=meta,
            activations={k: v.numpy() for k, v in captures.get("activations", {}).items()},
            activation_layers={k: list(v) for k, v in self.activation_layers.items()}
            if "activations" in captures
            else {},
            hidden_states=captures.get("hidden_states", {}),
            attention=captures.get("attention", {}),
            token_probs=probs,
            token_entropy=entropy,
        )


@dataclass
class _Plan:
    """The teacher-forced tokens of one attribute() item and the foil token, if contrastive."""

    tokens: list[int]
    foil: int | None


def _plan(target: list[int], foil: list[int] | None) -> _Plan:
    """Contrastive: teacher-force the common prefix, explain the first differing token."""
    if foil is None:
        return _Plan(target, None)
    differ = next((i for i, (t, f) in enumerate(zip(target, foil)) if t != f), None)
    if differ is None:
        raise ValueError(
            "The foil equals the target (or one is a prefix of the other): a contrastive explanation "
            "needs a foil that differs from the target in some token."
        )
    return _Plan(target[: differ + 1], foil[differ])


def _attribution_options(values: Mapping | None) -> Options:
    """Options from keyword arguments, with a clear error for unknown names."""
    known = {f.name for f in fields(Options)}
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise ValueError(f"Unknown attribution option(s) {unknown}; valid options: {sorted(known)}.")
    return Options(**(values or {}))


def _link(runner: Runner, tokenizer: PreTrainedTokenizerBase) -> ModelLink:
    """What outputs keep of the model: the tokenizer, the logit-lens head (if any), the runner."""
    try:
        return ModelLink(tokenizer, LensHead.from_model(runner.model, runner.spec), runner=runner)
    except ValueError as error:
        return ModelLink(tokenizer, None, str(error), runner=runner)


def _store_dtype(value: str | torch.dtype) -> torch.dtype:
    if isinstance(value, torch.dtype) and value in _STORE_DTYPES.values():
        return value
    if isinstance(value, str) and value in _STORE_DTYPES:
        return _STORE_DTYPES[value]
    raise ValueError(f"store_dtype must be 'float32' or 'float16', got {value!r}.")
