"""One item of an attribution experiment, start to end: its tokens (the prompt with its given
target, or a greedy continuation), every method's attributions of every explained token, and
their faithfulness scores. The model is called only through the runner.

A method that cannot run on this model (:class:`~ecco.attribution.UnsupportedMethodError`, or
non-finite scores) is recorded with its reason and the item goes on with the other methods.
The random-order baseline does not depend on the method, so it is computed once per item (with
the first method that ran) and kept beside every method's scores.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..attribution import Options, Target, UnsupportedMethodError, build_problem, generated_targets, run_method
from ..attribution.faithfulness import FaithfulnessResult, faithfulness
from ..attribution.perturb import token_removal
from ..layout import Layout
from ..runner import Runner
from ..tokens import describe_tokens
from .items import Item


@dataclass(frozen=True)
class Settings:
    """Everything that decides an experiment's contents; a resumed run must have the same."""

    model: str
    model_class: str
    kind: str
    n_layers: dict  # stack -> blocks
    methods: tuple[str, ...]
    score: str = "prob"
    generate: int = 10  # new tokens (greedy) for items without a target
    faithfulness: bool = True
    removal: str = "zero"
    levels: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
    steps: int = 10  # deletion / insertion curve points (steps + 1)
    seeds: int = 3  # random-order baselines per item
    soft_samples: int = 1
    shard_items: int = 32
    options: dict = field(default_factory=dict)  # attribution Options (n_steps, layer, n_samples, ...)

    def to_json(self) -> dict:
        """The settings as stored in the manifest."""
        data = asdict(self)
        data["methods"], data["levels"] = list(self.methods), list(self.levels)
        return data


@dataclass
class Prepared:
    """An item's token ids: the prompt's, and the target's (None: generate)."""

    item: Item
    prompt_ids: list[int]
    target_ids: list[int] | None


def prepare(tokenizer: PreTrainedTokenizerBase, items: Sequence[Item], vocab: int, context: int | None) -> list[Prepared]:
    """Token ids of every item, checked before anything runs: a target that tokenizes to nothing
    or ids outside the model's vocabulary are errors that name the item."""
    out = []
    for item in items:
        prompt = tokenizer(item.prompt, add_special_tokens=True)["input_ids"]
        target = None if item.target is None else tokenizer(item.target, add_special_tokens=False)["input_ids"]
        if target is not None and not target:
            raise ValueError(f"Item {item.item_id}: the target {item.target!r} tokenizes to nothing; give a non-empty "
                             "continuation, or None to generate one.")
        if not prompt:
            raise ValueError(f"Item {item.item_id}: the prompt {item.prompt!r} tokenizes to nothing.")
        bad = [i for i in prompt + (target or []) if not 0 <= i < vocab]
        if bad:
            raise ValueError(f"Item {item.item_id}: token ids {bad[:5]} are outside the model's vocabulary 0..{vocab - 1}.")
        if context is not None and len(prompt) + len(target or []) > context:
            raise ValueError(f"Item {item.item_id}: prompt and target make {len(prompt) + len(target or [])} tokens, more "
                             f"than the model's context of {context}.")
        out.append(Prepared(item, list(prompt), None if target is None else list(target)))
    return out


class ItemJob:
    """Runs items on one model: tokens, attributions, faithfulness; one Arrow row per item."""

    def __init__(self, runner: Runner, tokenizer: PreTrainedTokenizerBase, settings: Settings) -> None:
        self.runner, self.tokenizer, self.settings = runner, tokenizer, settings
        self.options = Options(**settings.options)
        self.kind = runner.spec.kind

    def tokens(self, item: Prepared) -> tuple[list[int], int]:
        """The item's full token ids (encoder's then decoder's for encoder-decoder models) and
        how many are the input."""
        n_input = len(item.prompt_ids)
        if self.kind.encoder_decoder:
            start = int(self.runner.model.generation_config.decoder_start_token_id)
            decoder = [start] + item.target_ids if item.target_ids is not None else self._generate(item.prompt_ids)
            return item.prompt_ids + decoder, n_input
        if item.target_ids is not None:
            return item.prompt_ids + item.target_ids, n_input
        return self._generate(item.prompt_ids), n_input

    def _generate(self, prompt: list[int]) -> list[int]:
        """Greedy continuation (encoder-decoder: the decoder's tokens from its start token)."""
        ids = torch.tensor([prompt], device=self.runner.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self.runner.session():
            out = self.runner.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                       max_new_tokens=self.settings.generate, pad_token_id=pad)
        return [int(t) for t in out[0]]

    def run(self, item: Prepared) -> dict:
        """The Arrow row of one item."""
        token_ids, n_input = self.tokens(item)
        layout = Layout(self.kind, len(token_ids), n_input)
        target = generated_targets(self.kind, token_ids, n_input)
        if not target.positions:
            raise ValueError(f"Item {item.item.item_id}: the model generated nothing to explain (it ended at once).")
        problem = build_problem(self.runner, layout, token_ids, target, self.settings.score)
        with self.runner.session(), torch.no_grad():
            scores = problem.scores(*problem.embeds)[0].double().cpu().numpy()
            as_prob = problem if problem.score == "prob" else problem.with_score("prob")
            probs = as_prob.scores(*problem.embeds)[0].double().cpu().numpy()
        text = describe_tokens(self.tokenizer, token_ids)
        row = {
            "item_id": item.item.item_id, "prompt": item.item.prompt, "target": item.item.target,
            "generated": item.target_ids is None, "token_ids": token_ids, "tokens": text.text,
            "continues_word": text.continues_word, "special": text.special, "n_input": n_input,
            "targets": [layout.predicted_position(c) for c in target.positions], "target_ids": target.token_ids,
            "target_scores": scores.tolist(), "target_probs": probs.tolist(),
        }
        report: dict = {"methods": {}, "random": None}
        for name in self.settings.methods:
            row.update(self._method(problem, layout, token_ids, target, name, report))
        row["faithfulness"] = json.dumps(report) if self.settings.faithfulness else None
        return row

    def _method(self, problem, layout: Layout, token_ids: list[int], target: Target, name: str, report: dict) -> dict:
        """One method's columns of the row (and its faithfulness, into ``report``)."""
        started = time.perf_counter()
        try:
            out, values, raws = run_method(problem, name, self.options)
        except ValueError as error:  # cannot run here, or non-finite scores: the reason, and the others go on
            if not isinstance(error, UnsupportedMethodError) and "non-finite" not in str(error):
                raise
            return {f"{name}.error": str(error), f"{name}.values": None, f"{name}.raw": None,
                    f"{name}.completeness": None, f"{name}.explained": None, f"{name}.seconds": time.perf_counter() - started}
        seconds = time.perf_counter() - started
        if self.settings.faithfulness:
            first = report["random"] is None
            result = self._faithfulness(problem, layout, token_ids, values, seeds=self.settings.seeds if first else 0)
            if first:
                report["random"] = _random_part(result)
            report["methods"][name] = [t.method.to_dict() for t in result.targets]
        completeness = None if out.completeness_error is None else np.asarray(out.completeness_error).tolist()
        return {f"{name}.error": None, f"{name}.values": [v.tolist() for v in values],
                f"{name}.raw": [r.tolist() for r in raws], f"{name}.completeness": completeness,
                f"{name}.explained": out.explained or self.settings.score,
                f"{name}.seconds": seconds}

    def _faithfulness(self, problem, layout: Layout, token_ids: list[int], values, seeds: int) -> FaithfulnessResult:
        s = self.settings
        special, replacement = token_removal(problem, layout, token_ids, self.tokenizer, s.removal)
        return faithfulness(problem, values, removal=s.removal, replacement=replacement, special=special,
                            levels=s.levels, steps=s.steps, seeds=seeds, seed=self.options.seed,
                            soft_samples=s.soft_samples)


def _random_part(result: FaithfulnessResult) -> dict:
    """What the report keeps of the item's perturbations that do not depend on the method."""
    return {
        "levels": result.levels.tolist(), "removal": result.removal, "score": result.score,
        "targets": [{"n_sources": t.n_sources, "full_score": t.full_score, "empty_score": t.empty_score,
                     "fractions": t.fractions.tolist(), "mean": t.random_mean.to_dict() if t.random else None,
                     "std": t.random_std.to_dict() if t.random else None, "seeds": len(t.random)} for t in result.targets],
    }
