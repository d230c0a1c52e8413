"""The registry's entries: one per architecture family, holding everything ecco knows of it.

Each entry names the transformers ``*PreTrainedModel`` classes it covers (every head class of a
family derives from one), where the blocks, FFN output projections and final norms are, and the
family's facts that analyses need: gated-FFN layout, cross-attention module names, MLM head,
what the model does between its last hidden state and its logits, and what each block adds into
the residual stream and how (attention, its output projection, MLP; ``residual``). To support a new
family, add one entry here (see docs/models.md).
"""
from __future__ import annotations

import transformers

from .spec import ArchSpec, GateLayout, StackSpec

_TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5

_SWIGLU = (GateLayout("act_fn", "up_proj"),)
_T5_GATE = (GateLayout("act", "wi_1"),)
_T5_SELF = dict(attention="layer.0.SelfAttention", attention_out="layer.0.SelfAttention.o")


def _t5_scale(config: object) -> float:
    """T5 rescales the last hidden state by d_model^-0.5 before the head: transformers 5 says so
    in ``scale_decoder_outputs`` and ties every T5's embeddings (its mT5 never rescales);
    transformers 4 rescaled exactly when the embeddings were tied."""
    scaled = getattr(config, "scale_decoder_outputs", None)
    if scaled is None:
        mt5_in_5 = _TRANSFORMERS_5 and getattr(config, "model_type", None) == "mt5"
        scaled = getattr(config, "tie_word_embeddings", False) and not mt5_in_5
    return config.d_model**-0.5 if scaled else 1.0


def _parts(attention: str, out: str, mlp: str, **more) -> dict:
    """A stack's residual parts (see ``StackSpec``): attention, its output projection, MLP."""
    return dict(attention=attention, attention_out=out, mlp=mlp, **more)


_LLAMA_PARTS = _parts("self_attn", "self_attn.o_proj", "mlp")


def _decoder_only(name: str, blocks: str, ffn_out: str, norm: str, parts: dict, **facts) -> ArchSpec:
    facts.setdefault("residual", "sequential")
    return ArchSpec(name, (StackSpec(blocks, ffn_out, norm, **parts),), **facts)


def _encoder(name: str, blocks: str, ffn_out: str, head: tuple[str, ...], parts: dict) -> ArchSpec:
    return ArchSpec(name, (StackSpec(blocks, ffn_out, None, False, **parts),), mlm_head=(head,), residual="post_norm")


_BERT_PARTS = _parts("attention", "attention.output.dense", "output")


def _bart(name: str, residual: str) -> ArchSpec:
    """BART's family: BART and Marian norm after each sub-layer, mBART and Pegasus before."""
    parts = _parts("self_attn", "self_attn.out_proj", "fc2")
    return ArchSpec(
        name,
        (
            StackSpec("encoder.layers", "fc2", "encoder.layer_norm", False, **parts),
            StackSpec("decoder.layers", "fc2", "decoder.layer_norm", False, **parts,
                      cross_attention="encoder_attn", cross_attention_out="encoder_attn.out_proj"),
        ),
        cross_attention=("encoder_attn",),
        logits_bias="final_logits_bias",
        residual=residual,
    )


def _neox_residual(config: object) -> str:
    return "parallel" if getattr(config, "use_parallel_residual", True) else "sequential"


def _opt_residual(config: object) -> str:
    return "sequential" if getattr(config, "do_layer_norm_before", True) else "post_norm"


ENTRIES: tuple[tuple[ArchSpec, tuple[str, ...]], ...] = (
    (_decoder_only("gpt2", "h", "mlp.c_proj", "ln_f", _parts("attn", "attn.c_proj", "mlp")), ("GPT2PreTrainedModel",)),
    (_decoder_only(
            "gpt-neo", "h", "mlp.c_proj", "ln_f", _parts("attn", "attn.attention.out_proj", "mlp"), attention_core="_attn"
        ), ("GPTNeoPreTrainedModel",)),
    (_decoder_only(
            "gptj", "h", "mlp.fc_out", "ln_f", _parts("attn", "attn.out_proj", "mlp"), attention_core="_attn",
            residual="parallel",
        ), ("GPTJPreTrainedModel",)),
    (_decoder_only(
            "gpt-neox", "layers", "mlp.dense_4h_to_h", "final_layer_norm", _parts("attention", "attention.dense", "mlp"),
            residual=_neox_residual,
        ), ("GPTNeoXPreTrainedModel",)),
    (_decoder_only(
            "opt", "decoder.layers", "fc2", "decoder.final_layer_norm", _parts("self_attn", "self_attn.out_proj", "fc2"),
            residual=_opt_residual,
        ), ("OPTPreTrainedModel",)),
    (
        _decoder_only("llama", "layers", "mlp.down_proj", "norm", _LLAMA_PARTS, gates=_SWIGLU),
        (
            "LlamaPreTrainedModel",
            "MistralPreTrainedModel",
            "Qwen2PreTrainedModel",
            "Qwen3PreTrainedModel",
            "SmolLM3PreTrainedModel",
            "OlmoPreTrainedModel",
        ),
    ),
    (_decoder_only("gemma", "layers", "mlp.down_proj", "norm", _LLAMA_PARTS, gates=_SWIGLU), ("GemmaPreTrainedModel",)),
    (
        _decoder_only(
            "gemma2", "layers", "mlp.down_proj", "norm",
            _parts("self_attn", "self_attn.o_proj", "mlp", post_norms=("post_attention_layernorm", "post_feedforward_layernorm")),
            gates=_SWIGLU, softcap="final_logit_softcapping", residual="sandwich",
        ),
        ("Gemma2PreTrainedModel",),
    ),
    (
        _decoder_only(
            "phi3", "layers", "mlp.down_proj", "norm", _LLAMA_PARTS,
            gates=(GateLayout("activation_fn", "gate_up_proj", fused=True),),
        ),
        ("Phi3PreTrainedModel",),
    ),
    (_encoder("bert", "encoder.layer", "output.dense", ("cls",), _BERT_PARTS), ("BertPreTrainedModel",)),
    (_encoder("roberta", "encoder.layer", "output.dense", ("lm_head",), _BERT_PARTS), ("RobertaPreTrainedModel",)),
    (
        _encoder("electra", "encoder.layer", "output.dense", ("generator_predictions", "generator_lm_head"), _BERT_PARTS),
        ("ElectraPreTrainedModel",),
    ),
    (
        _encoder(
            "distilbert",
            "transformer.layer",
            "ffn.lin2",
            ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector"),
            _parts("attention", "attention.out_lin", "ffn"),
        ),
        ("DistilBertPreTrainedModel",),
    ),
    (
        ArchSpec(
            "t5",
            (
                StackSpec(
                    "encoder.block", "layer.1.DenseReluDense.wo", "encoder.final_layer_norm", **_T5_SELF,
                    mlp="layer.1.DenseReluDense",
                ),
                StackSpec(
                    "decoder.block", "layer.2.DenseReluDense.wo", "decoder.final_layer_norm", **_T5_SELF,
                    mlp="layer.2.DenseReluDense", cross_attention="layer.1.EncDecAttention",
                    cross_attention_out="layer.1.EncDecAttention.o",
                ),
            ),
            gates=_T5_GATE,
            cross_attention=("EncDecAttention",),
            lens_scale=_t5_scale,
            residual="sequential",
        ),
        ("T5PreTrainedModel", "MT5PreTrainedModel"),
    ),
    (_bart("bart", "post_norm"), ("BartPreTrainedModel",)),
    (_bart("mbart", "sequential"), ("MBartPreTrainedModel",)),
    (_bart("pegasus", "sequential"), ("PegasusPreTrainedModel",)),
    (_bart("marian", "post_norm"), ("MarianPreTrainedModel",)),
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
