"""``ecco attribute`` (run an attribution experiment from the command line) and
``ecco report --attribution RUN_DIR`` (one offline HTML page of it: the faithfulness comparison,
then the first items in each method's attribution view)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyarrow and the views load only when an experiment is read
    from .experiment_run import ExperimentRun


def add_parser(commands: argparse._SubParsersAction, default_model: str) -> None:
    """The ``ecco attribute`` sub-command."""
    sub = commands.add_parser("attribute", help="attribute a dataset of prompts with several methods and score "
                              "their faithfulness (Arrow shards, resumable)")
    sub.add_argument("--model", default=default_model, help="bundled alias, local folder or hub id")
    sub.add_argument("--input", required=True,
                     help="a .txt file (one prompt per line, continuations generated), a .jsonl / .json file of "
                          "objects with a prompt (and target) key, or a dataset saved with datasets' save_to_disk")
    sub.add_argument("--methods", default="grad_x_input,ig", help="comma-separated attribution methods")
    sub.add_argument("--out", required=True, help="output folder (run the same command again to continue)")
    sub.add_argument("--prompt-column", default="prompt")
    sub.add_argument("--target-column", default="auto", help="'auto' (default: 'target' if present), a name, or "
                     "'none' to generate every continuation")
    sub.add_argument("--generate", type=int, default=10, help="new tokens for items without a target (default 10)")
    sub.add_argument("--score", default="prob", choices=["prob", "logprob", "logit"])
    sub.add_argument("--removal", default="zero", choices=["zero", "replace"])
    sub.add_argument("--levels", default="0.1,0.2,0.3,0.4,0.5", help="removal levels in (0, 1), comma-separated")
    sub.add_argument("--steps", type=int, default=10, help="deletion / insertion curve steps (default 10)")
    sub.add_argument("--seeds", type=int, default=3, help="random-order baselines per item (default 3)")
    sub.add_argument("--no-faithfulness", action="store_true", help="attributions only")
    sub.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                     help="an attribution option, e.g. n_steps=32, layer=12, n_samples=100 (repeat it)")
    sub.add_argument("--shard-items", type=int, default=32)
    sub.add_argument("--backend", default="local", choices=["local", "ray"])
    sub.add_argument("--workers", type=int, default=None)
    sub.add_argument("--overwrite", action="store_true", help="delete an earlier experiment in --out and start again")


def read_input(path: str) -> object:
    """The items of ``--input``: prompts of a .txt file, objects of a .jsonl / .json file, or a saved dataset."""
    source = Path(path)
    if source.is_dir():
        from datasets import load_from_disk

        return load_from_disk(str(source))
    if not source.is_file():
        raise FileNotFoundError(f"--input {path}: no such file or folder.")
    text = source.read_text(encoding="utf-8")
    if source.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"--input {path}, line {number}: not JSON ({error}).") from error
        return rows
    if source.suffix == ".json":
        return json.loads(text)
    return [line for line in text.splitlines() if line.strip()]


def _option(spec: str) -> tuple[str, object]:
    name, found, value = spec.partition("=")
    if not found or not name.strip():
        raise ValueError(f"--option {spec!r} is not NAME=VALUE (e.g. n_steps=32).")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def run_attribute_command(args: argparse.Namespace) -> Path:
    """``ecco attribute``: read the items, load the model, run the experiment, print the comparison."""
    import ecco

    items = read_input(args.input)  # before the model loads, so a wrong path fails at once
    methods = [part.strip() for part in args.methods.split(",") if part.strip()]
    levels = [float(part) for part in args.levels.split(",") if part.strip()]
    target_column = None if args.target_column == "none" else args.target_column
    print(f"loading {args.model} ...", file=sys.stderr, flush=True)
    lm = ecco.from_pretrained(args.model, verbose=False)
    run = lm.attribute_dataset(
        items, methods, args.out, attribution_options=dict(map(_option, args.option)), prompt_column=args.prompt_column,
        target_column=target_column, generate=args.generate, score=args.score, removal=args.removal, levels=levels,
        steps=args.steps, seeds=args.seeds, faithfulness=not args.no_faithfulness, shard_items=args.shard_items,
        backend=args.backend, workers=args.workers, overwrite=args.overwrite, progress=True,
    )
    speed = run.speed()
    print(f"experiment: {Path(args.out).resolve()} ({speed['items']} items, {speed['explained_tokens']} explained tokens, "
          f"{speed['seconds']:.1f} s)")
    for name, reason in run.failures().items():
        print(f"  {name} could not run: {reason}")
    if not args.no_faithfulness:
        print(summary_table(run))
    return Path(args.out)


def summary_table(run: ExperimentRun) -> str:
    """The comparison as text: per method, each metric's mean and interval (random's beside it)."""
    data = run.comparison()
    lines = [f"{'method':<28}" + "".join(f"{m['label'][:22]:>24}" for m in data["metrics"])]
    for entry in data["methods"]:
        if entry["error"]:
            lines.append(f"{entry['label']:<28}  could not run: {entry['error']}")
            continue
        cells = [_cell(entry["metrics"][m["key"]]) for m in data["metrics"]]
        lines.append(f"{entry['label'][:27]:<28}" + "".join(f"{c:>24}" for c in cells))
    first = next((e for e in data["methods"] if e["random"]), None)
    if first is not None:
        lines.append(f"{'random (same items)':<28}" + "".join(f"{_cell(first['random'][m['key']]):>24}"
                                                         for m in data["metrics"]))
    return "\n".join(lines)


def _cell(stat: dict) -> str:
    if stat.get("mean") is None:
        return "-"
    return f"{stat['mean']:.3f} [{stat['low']:.3f}, {stat['high']:.3f}]"


def experiment_report(run_dir: str | Path, out: str | Path, items: int = 2) -> Path:
    """Write the report of the experiment in ``run_dir``: the comparison view, then the first
    ``items`` items in each method's attribution view."""
    from .experiment_run import ExperimentRun
    from .render import save_report

    started = time.perf_counter()
    run = ExperimentRun(run_dir)
    views = []
    if run.settings["faithfulness"]:
        views.append(run.compare())
    for index in range(min(items, len(run))):
        output = run.item(index)
        for name in run.methods:
            if name in output.attributions:
                views.append(output.primary_attributions(attr_method=name, style="detailed"))
    speed = run.speed()
    failures = run.failures()
    summary = {
        "Experiment": str(Path(run_dir).resolve()),
        "Model": run.settings["model"],
        "Items": f"{speed['items']} items, {speed['explained_tokens']} explained tokens"
        + ("" if run.complete else " (stopped part-way)"),
        "Methods": ", ".join(run.methods) + "".join(f"; {m} could not run: {r}" for m, r in failures.items()),
        "Faithfulness": (f"removal {run.settings['removal']}, levels {run.settings['levels']}, {run.settings['steps']} "
                         f"curve steps, {run.settings['seeds']} random orders per item")
        if run.settings["faithfulness"] else "not computed",
        "Time": f"run {speed['seconds']:.1f} s; report {time.perf_counter() - started:.1f} s",
    }
    path = save_report(views, out, title=f"ecco attribution experiment · {run.settings['model']}", summary=summary)
    print(f"report: {Path(path).resolve()}")
    return Path(path)
