"""``lm.generate``: generation with capture, one path for causal and encoder-decoder models.

transformers' ``generate`` runs with the KV cache. Without beam search the decoder's internals
are captured while it generates (one chunk for the prompt, then one per new token), and one
cached step captures the last token, which ``generate`` never feeds back. Beam search reorders
its beams, so it is captured by one teacher-forced pass over the returned sequences. An
encoder-decoder model runs its encoder once first and hands the result to ``generate``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutput

from ..attribution import check_methods, explain, generated_targets
from ..capture import align_windowed_keys, shift_left
from ..checks import as_int, is_int
from ..output import OutputSeq
from ..stream import NotebookStreamer, in_notebook
from . import core
from .core import Core, Recorder
from .inputs import Batch, attribution_options, new_tokens
from .interventions import generate as generate_intervened
from .interventions import prepare as prepare_interventions

Feed = Callable[[torch.Tensor, bool], dict[str, object]]
Steps = Callable[[str], list]


@dataclass
class _Decoder:
    """How a kind of model feeds its decoder (a causal model: the whole model)."""

    width: int  # columns of generate's sequences before the first new token
    extra: dict[str, object]  # further arguments of generate
    feed: Feed  # (sequences, last token only) -> the inputs of a forward pass over them


def generate(
    lm: Core,
    texts: str | Sequence[str],
    generate: int | None,
    max_length: int | None,
    beam_size: int,
    attribution: Sequence[str] | str | None,
    options: Mapping | None,
    sampling: dict[str, object],
    generate_kwargs: dict[str, object],
    interventions: Sequence[object] | None = None,
) -> OutputSeq:
    """``lm.generate``: check the arguments, generate with capture, then attribute if asked.
    With ``interventions`` (see :mod:`.interventions`), the prompts are generated clean, then again
    with the interventions, from the same random state."""
    if not lm.kind.generates:
        raise ValueError(
            f"{lm.model_name} is an encoder ({type(lm.model).__name__}) and cannot generate text. "
            "Run it on a text with lm(text) instead."
        )
    beam_size = as_int(beam_size, "beam_size", 1, None, f"beam_size must be a positive integer, got {beam_size!r}.")
    if "num_beams" in generate_kwargs:
        raise ValueError("Pass beam search's width as beam_size=..., not num_beams.")
    # transformers' generate wants Python ints (top_k, min_new_tokens, ...): NumPy integers become ints.
    sampling, generate_kwargs = ({k: int(v) if is_int(v) else v for k, v in d.items()} for d in (sampling, generate_kwargs))
    methods = check_methods(attribution or [])
    settings = attribution_options(options, lm.spec)
    prompts = lm.inputs.encode(texts)
    n_new = new_tokens([len(p) for p in prompts], generate, max_length)
    lm.inputs.check_context(max(len(p) for p in prompts) + n_new, f"The prompt plus {n_new} new tokens")
    gen_options = dict(
        max_new_tokens=n_new,
        do_sample=bool(sampling.get("do_sample")),
        num_beams=beam_size,
        pad_token_id=lm.inputs.pad_id(),
        return_dict_in_generate=True,
        **{k: v for k, v in sampling.items() if k != "do_sample" and v is not None},
        **generate_kwargs,
    )
    if interventions is None:
        output = _generate(lm, prompts, gen_options)
    else:
        if methods:
            raise ValueError("attribution= explains the model as it is, not with interventions: generate with "
                             "interventions first, then explain the continuation with lm.attribute(prompt, target).")
        prepared = prepare_interventions(lm, interventions, beam_size)
        output = generate_intervened(lm, prepared, prompts, lambda: _generate(lm, prompts, gen_options))
    if methods:
        sequences = [
            (seq.token_ids, seq.n_input_tokens, generated_targets(lm.kind, seq.token_ids, seq.n_input_tokens))
            for seq in output.sequences
        ]
        output.attributions.update(
            explain(lm.runner, sequences, methods, options=settings, progress=lm.flags.verbose)
        )
    return output


def _generate(lm: Core, prompts: list[list[int]], options: dict) -> OutputSeq:
    """Generate from token ids and capture; the token lists put the encoder's tokens first."""
    kind = lm.kind
    batch = lm.inputs.pad(prompts, left=not kind.encoder_decoder)
    hidden_fields, attention_fields = core.output_fields(kind)
    hidden: dict[str, list] = {}
    attention: dict[str, list] = {}
    recorders: list[Recorder] = []
    with lm.runner.session(eager_attention=lm.flags.attention):
        if kind.encoder_decoder:
            with core.recorder(lm, "encoder") as encoder_recorder:
                encoded = lm.runner.encode(
                    input_ids=batch.ids,
                    attention_mask=batch.mask,
                    output_hidden_states=True,
                    output_attentions=lm.flags.attention,
                    return_dict=True,
                )
            hidden["encoder"], attention["encoder"] = [encoded.hidden_states], [encoded.attentions]
            recorders.append(encoder_recorder)
            decoder = _encoder_decoder(batch, encoded.last_hidden_state, kind.decoder_start)
        else:
            decoder = _causal(batch)
        sequences, logits, recorder, steps = _decode(lm, batch, decoder, options)
    hidden["decoder"] = steps(hidden_fields["decoder"])
    attention.update({name: steps(field) for name, field in attention_fields.items() if name != "encoder"})
    if lm.flags.attention:  # sliding-window layers give only the window's keys
        attention["decoder"] = align_windowed_keys(attention["decoder"])
    recorders.append(recorder)
    captured = core.captures(lm, hidden, attention, recorders, batch.pads)
    generated = sequences[:, decoder.width :].cpu()
    n_generated = core.generated_lengths(lm, generated)
    rows = shift_left(sequences.cpu(), batch.pads, [1])
    encoder_tokens = prompts if kind.encoder_decoder else [[] for _ in prompts]
    return core.output(
        lm,
        token_ids=[
            (encoder + row.tolist())[: n + kind.decoder_start + g]
            for encoder, row, n, g in zip(encoder_tokens, rows, batch.lengths, n_generated)
        ],
        n_input=batch.lengths,
        generated=generated,
        logits=logits,
        n_generated=n_generated,
        captures=captured,
    )


def _decode(
    lm: Core, batch: Batch, decoder: _Decoder, options: dict
) -> tuple[torch.Tensor, torch.Tensor, Recorder | None, Steps]:
    """Run ``generate`` and capture the decoder; returns the sequences, the logits of each new
    token, the FFN recorder and the captured chunks of an output field."""
    live = options["num_beams"] == 1
    with core.recorder(lm, "decoder", live) as recorder:
        out = lm.runner.generate(
            input_ids=batch.ids,
            attention_mask=batch.mask,
            streamer=_streamer(lm, batch.ids.shape[0], options["num_beams"]),
            output_hidden_states=lm.flags.hidden_states and live,
            output_attentions=lm.flags.attention and live,
            output_logits=True,
            **decoder.extra,
            **options,
        )
        sequences = out.sequences
        if live:
            # generate never feeds its last token back: one cached step captures it.
            feed = decoder.feed(sequences, True)
            last = core.forward(lm, **feed, past_key_values=out.past_key_values, use_cache=True)
            logits = torch.stack(out.logits, dim=1)
            return sequences, logits, recorder, lambda field: [*(getattr(out, field) or ()), getattr(last, field)]
    with core.recorder(lm, "decoder") as recorder:
        full = core.forward(lm, **decoder.feed(sequences, False))
    return sequences, full.logits[:, decoder.width - 1 : -1], recorder, lambda field: [getattr(full, field)]


def _causal(batch: Batch) -> _Decoder:
    """A causal model is fed the whole sequence; position ids follow the attention mask, so a
    left-padded item equals running it alone."""
    width = batch.ids.shape[1]

    def feed(sequences: torch.Tensor, last_only: bool) -> dict[str, object]:
        mask = torch.cat([batch.mask, torch.ones_like(sequences[:, width:])], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids = sequences[:, -1:] if last_only else sequences
        return dict(input_ids=ids, attention_mask=mask, position_ids=positions[:, -ids.shape[1] :])

    return _Decoder(width, {}, feed)


def _encoder_decoder(batch: Batch, encoded: torch.Tensor, start_width: int) -> _Decoder:
    """An encoder-decoder model's decoder reads the encoder's output; its sequences begin with
    the decoder start token."""
    encoder_outputs = BaseModelOutput(last_hidden_state=encoded)

    def feed(sequences: torch.Tensor, last_only: bool) -> dict[str, object]:
        ids = sequences[:, -1:] if last_only else sequences
        return dict(encoder_outputs=encoder_outputs, attention_mask=batch.mask, decoder_input_ids=ids)

    # generate expands what it is given for beam search, so it gets its own copy.
    return _Decoder(start_width, {"encoder_outputs": BaseModelOutput(last_hidden_state=encoded)}, feed)


def _streamer(lm: Core, batch_size: int, beams: int) -> NotebookStreamer | None:
    """Live text in a notebook, for one prompt without beam search when verbose."""
    if lm.flags.verbose and batch_size == 1 and beams == 1 and in_notebook():
        return NotebookStreamer(lm.tokenizer)
    return None
