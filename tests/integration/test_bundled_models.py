"""The real bundled models: SmolLM2 through the conversion cache, and MiniLM."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, BertModel, PreTrainedModel, PreTrainedTokenizerBase

from ecco.models import bundled

pytestmark = pytest.mark.integration

CHAT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
TEXTS = ["The capital of France is", CHAT, "  tabs\tand ünïcödé 日本語 🤖<|endoftext|>"]


@dataclass
class Smol:
    direct: tuple[PreTrainedModel, PreTrainedTokenizerBase]  # straight from the GGUF file
    first: tuple[PreTrainedModel, PreTrainedTokenizerBase]  # converted, then read from the cache
    cached: tuple[PreTrainedModel, PreTrainedTokenizerBase]  # cache already there
    conversions: int


@pytest.fixture(scope="session")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smol]:
    """Load SmolLM2 twice with a fresh cache, keeping the direct GGUF model the conversion used."""
    direct = []

    def recording_load_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        direct.append(real_load_gguf(gguf))
        return direct[-1]

    real_load_gguf = bundled._load_gguf
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ECCO_CACHE_DIR", str(tmp_path_factory.mktemp("ecco-cache")))
        patch.setattr(bundled, "_load_gguf", recording_load_gguf)
        first = bundled.load_bundled("smollm2-135m")
        cached = bundled.load_bundled("smollm2-135m")
        yield Smol(direct[0], first, cached, len(direct))


def logits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits


def test_smollm2_converted_once(smol: Smol) -> None:
    """Converted on the first load only (the cached load's speed: benchmarks/cached_load.py)."""
    assert smol.conversions == 1


def test_smollm2_cached_logits_match_gguf(smol: Smol) -> None:
    model, tokenizer = smol.cached
    assert not model.training
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    reference = logits(*smol.direct, CHAT)
    assert torch.allclose(logits(model, tokenizer, CHAT), reference, atol=1e-5, rtol=0)
    assert torch.allclose(logits(*smol.first, CHAT), reference, atol=1e-5, rtol=0)


def test_smollm2_cache_keeps_tied_embeddings_and_loads_cleanly(smol: Smol) -> None:
    model, _ = smol.cached
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert not hasattr(model.config, "quantization_config")
    _, info = AutoModelForCausalLM.from_pretrained(model.name_or_path, output_loading_info=True)
    assert not any(info.values()), info


def test_smollm2_cached_tokenizer_matches_gguf(smol: Smol) -> None:
    direct, cached = smol.direct[1], smol.cached[1]
    for text in TEXTS:
        assert cached(text).input_ids == direct(text).input_ids
    for name in ("eos_token", "bos_token", "pad_token", "unk_token"):
        assert getattr(cached, name) == getattr(direct, name)
    assert cached.eos_token == "<|im_end|>"
    messages = [{"role": "user", "content": "Hi"}]
    assert cached.apply_chat_template(messages, tokenize=False) == direct.apply_chat_template(
        messages, tokenize=False
    )


def test_minilm_loads() -> None:
    model, tokenizer = bundled.load_bundled("minilm-l6")
    assert isinstance(model, BertModel) and not model.training
    assert model.config.num_hidden_layers == 6
    assert model.config.intermediate_size == 1536 and model.config.hidden_size == 384
    ids = tokenizer("Hello World", return_tensors="pt")
    assert ids.input_ids[0].tolist() == [101, 7592, 2088, 102]
    with torch.no_grad():
        hidden = model(**ids).last_hidden_state
    assert hidden.shape == (1, 4, 384) and torch.isfinite(hidden).all()
