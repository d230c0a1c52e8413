"""The registry's entries: one per architecture family, holding everything ecco knows of it.

Each entry names the transformers ``*PreTrainedModel`` classes it covers (every head class of a
family derives from one), where the blocks, FFN output projections and final norms are, and the
family's facts that analyses need: gated-FFN layout, cross-attention module names, MLM head,
and what the model does between its last hidden state and its logits. To support a new
family, add one entry here (see docs/models.md).
"""
from __future__ import annotations

import transformers

from .spec import ArchSpec, GateLayout, StackSpec

_TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5

_SWIGLU = (GateLayout("act_fn", "up_proj"),)
_T5_GATE = (GateLayout("act", "wi_1"),)


def _t5_scale(config: object) -> float:
    """T5 rescales the last hidden state by d_model^-0.5 before the head: transformers 5 says so
    in ``scale_decoder_outputs`` and ties every T5's embeddings (its mT5 never rescales);
    transformers 4 rescaled exactly when the embeddings were tied."""
    scaled = getattr(config, "scale_decoder_outputs", None)
    if scaled is None:
        mt5_in_5 = _TRANSFORMERS_5 and getattr(config, "model_type", None) == "mt5"
        scaled = getattr(config, "tie_word_embeddings", False) and not mt5_in_5
    return config.d_model**-0.5 if scaled else 1.0


def _decoder_only(name: str, blocks: str, ffn_out: str, norm: str, **facts) -> ArchSpec:
    return ArchSpec(name, (StackSpec(blocks, ffn_out, norm),), **facts)


def _encoder(name: str, blocks: str, ffn_out: str, head: tuple[str, ...]) -> ArchSpec:
    return ArchSpec(name, (StackSpec(blocks, ffn_out, None, False),), mlm_head=(head,))


def _bart(name: str) -> ArchSpec:
    return ArchSpec(
        name,
        (
            StackSpec("encoder.layers", "fc2", "encoder.layer_norm", False),
            StackSpec("decoder.layers", "fc2", "decoder.layer_norm", False),
        ),
        cross_attention=("encoder_attn",),
        logits_bias="final_logits_bias",
    )


ENTRIES: tuple[tuple[ArchSpec, tuple[str, ...]], ...] = (
    (_decoder_only("gpt2", "h", "mlp.c_proj", "ln_f"), ("GPT2PreTrainedModel",)),
    (_decoder_only("gpt-neo", "h", "mlp.c_proj", "ln_f", attention_core="_attn"), ("GPTNeoPreTrainedModel",)),
    (_decoder_only("gptj", "h", "mlp.fc_out", "ln_f", attention_core="_attn"), ("GPTJPreTrainedModel",)),
    (_decoder_only("gpt-neox", "layers", "mlp.dense_4h_to_h", "final_layer_norm"), ("GPTNeoXPreTrainedModel",)),
    (_decoder_only("opt", "decoder.layers", "fc2", "decoder.final_layer_norm"), ("OPTPreTrainedModel",)),
    (
        _decoder_only("llama", "layers", "mlp.down_proj", "norm", gates=_SWIGLU),
        (
            "LlamaPreTrainedModel",
            "MistralPreTrainedModel",
            "Qwen2PreTrainedModel",
            "Qwen3PreTrainedModel",
            "SmolLM3PreTrainedModel",
            "OlmoPreTrainedModel",
        ),
    ),
    (_decoder_only("gemma", "layers", "mlp.down_proj", "norm", gates=_SWIGLU), ("GemmaPreTrainedModel",)),
    (
        _decoder_only("gemma2", "layers", "mlp.down_proj", "norm", gates=_SWIGLU, softcap="final_logit_softcapping"),
        ("Gemma2PreTrainedModel",),
    ),
    (
        _decoder_only(
            "phi3", "layers", "mlp.down_proj", "norm", gates=(GateLayout("activation_fn", "gate_up_proj", fused=True),)
        ),
        ("Phi3PreTrainedModel",),
    ),
    (_encoder("bert", "encoder.layer", "output.dense", ("cls",)), ("BertPreTrainedModel",)),
    (_encoder("roberta", "encoder.layer", "output.dense", ("lm_head",)), ("RobertaPreTrainedModel",)),
    (
        _encoder("electra", "encoder.layer", "output.dense", ("generator_predictions", "generator_lm_head")),
        ("ElectraPreTrainedModel",),
    ),
    (
        _encoder(
            "distilbert",
            "transformer.layer",
            "ffn.lin2",
            ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector"),
        ),
        ("DistilBertPreTrainedModel",),
    ),
    (
        ArchSpec(
            "t5",
            (
                StackSpec("encoder.block", "layer.1.DenseReluDense.wo", "encoder.final_layer_norm"),
                StackSpec("decoder.block", "layer.2.DenseReluDense.wo", "decoder.final_layer_norm"),
            ),
            gates=_T5_GATE,
            cross_attention=("EncDecAttention",),
            lens_scale=_t5_scale,
        ),
        ("T5PreTrainedModel", "MT5PreTrainedModel"),
    ),
    (_bart("bart"), ("BartPreTrainedModel",)),
    (_bart("mbart"), ("MBartPreTrainedModel",)),
    (_bart("pegasus"), ("PegasusPreTrainedModel",)),
    (_bart("marian"), ("MarianPreTrainedModel",)),
)

GENERIC = ArchSpec(
    "generic",
    (),
    gates=_SWIGLU + _T5_GATE,
    cross_attention=("encoder_attn", "EncDecAttention", "crossattention", "cross_attn"),
    mlm_head=(("cls",), ("lm_head",), ("predictions",), ("generator_lm_head",)),
    logits_bias="final_logits_bias",
    softcap="final_logit_softcapping",
)
"""Facts assumed for a model the registry does not know (discovered, or given by
``model_config``): every known gate layout and cross-attention name is tried."""
