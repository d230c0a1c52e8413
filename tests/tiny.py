"""Tiny random models of each supported architecture, with a BPE tokenizer trained offline."""
from __future__ import annotations

import functools

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

CORPUS = [
    "the quick brown fox jumps over the lazy dog.",
    "hello world, this is a test of tiny models.",
    "heathrow airport is located in the city of london.",
    "the keys to the cabinet are on the table.",
] * 20
SPECIALS = ["<pad>", "</s>", "<s>", "<mask>", "[CLS]", "[SEP]"]


@functools.lru_cache(maxsize=1)
def tokenizer() -> tf.PreTrainedTokenizerFast:
    """A byte-level BPE of ~300 tokens; ids 0-5 are the special tokens above."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(CORPUS, trainer)
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", eos_token="</s>", bos_token="<s>", mask_token="<mask>"
    )


@functools.lru_cache(maxsize=1)
def pair_tokenizer() -> tf.PreTrainedTokenizerFast:
    """The same BPE as a BERT-style tokenizer: [CLS] a [SEP] b [SEP], with token type ids."""
    bpe = Tokenizer.from_str(tokenizer().backend_tokenizer.to_str())
    cls, sep = (bpe.token_to_id(t) for t in ("[CLS]", "[SEP]"))
    bpe.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", mask_token="<mask>", cls_token="[CLS]", sep_token="[SEP]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _ids() -> dict:
    return dict(pad_token_id=0, eos_token_id=1, bos_token_id=2, vocab_size=len(tokenizer()))


def config(arch: str, **overrides) -> tf.PretrainedConfig:
    """A small config for ``arch`` (gpt2, gpt-neo, llama, bert, t5, bart, or one of ``FAMILIES``)."""
    ids = _ids()
    configs = {
        "gpt2": lambda: tf.GPT2Config(n_layer=3, n_embd=32, n_head=4, n_positions=128, **ids),
        "gpt-neo": lambda: tf.GPTNeoConfig(
            num_layers=2, hidden_size=32, num_heads=4, attention_types=[[["global", "local"], 1]],
            max_position_embeddings=128, window_size=16, **ids,
        ),
        "llama": lambda: tf.LlamaConfig(
            num_hidden_layers=3, hidden_size=32, intermediate_size=48, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, **ids,
        ),
        "bert": lambda: tf.BertConfig(
            num_hidden_layers=2, hidden_size=32, intermediate_size=40, num_attention_heads=4,
            max_position_embeddings=128, **ids,
        ),
        "t5": lambda: tf.T5Config(
            num_layers=2, num_decoder_layers=2, d_model=32, d_ff=40, num_heads=4, d_kv=8,
            decoder_start_token_id=0, **ids,
        ),
        "bart": lambda: tf.BartConfig(
            encoder_layers=2, decoder_layers=2, d_model=32, encoder_ffn_dim=40, decoder_ffn_dim=40,
            encoder_attention_heads=4, decoder_attention_heads=4, max_position_embeddings=128,
            decoder_start_token_id=1, forced_bos_token_id=None, forced_eos_token_id=None, **ids,
        ),
    }
    built = (configs.get(arch) or FAMILY_CONFIGS[arch])()
    for key, value in overrides.items():
        setattr(built, key, value)
    return built


AUTO = {
    "gpt2": tf.AutoModelForCausalLM,
    "gpt-neo": tf.AutoModelForCausalLM,
    "llama": tf.AutoModelForCausalLM,
    "bert": tf.AutoModelForMaskedLM,
    "t5": tf.AutoModelForSeq2SeqLM,
    "bart": tf.AutoModelForSeq2SeqLM,
}


def _small(**extra) -> dict:
    """The sizes most decoder-only families name the same way."""
    return dict(num_hidden_layers=2, hidden_size=32, intermediate_size=40, num_attention_heads=4,
                max_position_embeddings=128, **_ids(), **extra)


def _seq2seq(**extra) -> dict:
    """BART-style encoder-decoder sizes (mBART, Pegasus, Marian)."""
    return dict(encoder_layers=2, decoder_layers=2, d_model=32, encoder_ffn_dim=40, decoder_ffn_dim=40,
                encoder_attention_heads=4, decoder_attention_heads=4, max_position_embeddings=128,
                forced_eos_token_id=None, **_ids(), **extra)


# The other registry families: one tiny config each (sliding windows shorter than the test
# sequences, so that the windowed layers really drop keys).
FAMILY_CONFIGS = {
    "gptj": lambda: tf.GPTJConfig(n_layer=2, n_embd=32, n_head=4, rotary_dim=4, n_positions=128, **_ids()),
    "gpt-neox": lambda: tf.GPTNeoXConfig(
        num_hidden_layers=2, hidden_size=32, intermediate_size=40, num_attention_heads=4, max_position_embeddings=128,
        **_ids(),
    ),
    "opt": lambda: tf.OPTConfig(
        num_hidden_layers=2, hidden_size=32, ffn_dim=40, num_attention_heads=4, word_embed_proj_dim=32,
        max_position_embeddings=128, **_ids(),
    ),
    "mistral": lambda: tf.MistralConfig(**_small(num_key_value_heads=2, sliding_window=4)),
    "qwen2": lambda: tf.Qwen2Config(**_small(num_key_value_heads=2)),
    "qwen3": lambda: tf.Qwen3Config(**_small(num_key_value_heads=2, head_dim=8)),
    "gemma": lambda: tf.GemmaConfig(**_small(num_key_value_heads=1, head_dim=8)),
    "gemma2": lambda: tf.Gemma2Config(**_small(
        num_key_value_heads=2, head_dim=8, sliding_window=4, final_logit_softcapping=0.5, attn_logit_softcapping=5.0,
    )),
    "phi3": lambda: tf.Phi3Config(**_small(num_key_value_heads=2)),
    "roberta": lambda: tf.RobertaConfig(**_small()),
    "electra": lambda: tf.ElectraConfig(embedding_size=24, **_small()),
    "distilbert": lambda: tf.DistilBertConfig(
        n_layers=2, dim=32, hidden_dim=40, n_heads=4, max_position_embeddings=128, **_ids()
    ),
    "mt5": lambda: tf.MT5Config(
        num_layers=2, num_decoder_layers=2, d_model=32, d_ff=40, num_heads=4, d_kv=8, decoder_start_token_id=0,
        **_ids(),
    ),
    "mbart": lambda: tf.MBartConfig(**_seq2seq(decoder_start_token_id=1)),
    "pegasus": lambda: tf.PegasusConfig(**_seq2seq(decoder_start_token_id=0)),
    "marian": lambda: tf.MarianConfig(**_seq2seq(decoder_start_token_id=0)),
}
FAMILY_AUTO = {
    **{name: tf.AutoModelForCausalLM for name in ("gptj", "gpt-neox", "opt", "mistral", "qwen2", "qwen3", "gemma",
                                                  "gemma2", "phi3")},
    **{name: tf.AutoModelForMaskedLM for name in ("roberta", "electra", "distilbert")},
    **{name: tf.AutoModelForSeq2SeqLM for name in ("mt5", "mbart", "pegasus", "marian")},
}
FAMILIES = tuple(FAMILY_CONFIGS)

CAUSAL = ("gpt2", "gpt-neo", "llama")
ENC_DEC = ("t5", "bart")
ALL = CAUSAL + ("bert",) + ENC_DEC


def model(arch: str, seed: int = 0, **overrides) -> tf.PreTrainedModel:
    """A tiny random model in eval mode (weights fixed by ``seed``)."""
    torch.manual_seed(seed)
    built = (AUTO.get(arch) or FAMILY_AUTO[arch]).from_config(config(arch, **overrides))
    return built.eval()
