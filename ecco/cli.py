"""Command line: ``ecco report`` writes a standalone HTML report (``--corpus RUN_DIR``: of a
corpus run's neurons; ``--attribution RUN_DIR``: of an attribution experiment); ``ecco demo`` is
the report of the bundled SmolLM2 with its defaults; ``ecco corpus`` captures a corpus to Arrow
shards; ``ecco attribute`` runs an attribution experiment over a dataset."""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .experiment_report import add_parser as add_attribute_parser
from .experiment_report import experiment_report, run_attribute_command

DEFAULT_MODEL = "smollm2-135m"
DEFAULT_PROMPT = "Heathrow airport is located in the city of"

# name -> (what it needs: 'generate' | 'lens' | 'activations' | 'attention' | None, builder)
VIEWS: dict[str, tuple[str | None, Callable]] = {
    "tokens": (None, lambda o, a: o.tokens_view()),
    "attribution": ("generate", lambda o, a: o.primary_attributions(attr_method=a[0], style="detailed")),
    "rankings": ("lens", lambda o, a: o.rankings()),
    "layer_predictions": ("lens", lambda o, a: o.layer_predictions(position=len(o.sequences[0]) - 1)),
    "trajectories": ("lens", lambda o, a: o.trajectories()),
    "head": ("attention", lambda o, a: o.attention_head_view(layer=0)),
    "model": ("attention", lambda o, a: o.attention_model_view()),
    "nmf": ("activations", lambda o, a: o.run_nmf(n_components=min(6, len(o.sequences[0]) - 1)).explore()),
    "similarity": ("activations", lambda o, a: o.layer_similarity("cka")),
}
DEMO_VIEWS = ["tokens", "attribution", "rankings", "head", "nmf"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecco", description="See what a transformer language model is thinking.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="write a standalone HTML report for a model and a prompt")
    report.add_argument("--model", default=None,
                        help=f"bundled alias, local folder or hub id (default {DEFAULT_MODEL}; with --corpus, the run's)")
    demo = commands.add_parser("demo", help="the report of the bundled SmolLM2 with default settings")
    for sub, out in ((report, "report.html"), (demo, "ecco-demo.html")):
        sub.add_argument("--prompt", default=DEFAULT_PROMPT, help="text to continue (or to read, for encoders)")
        sub.add_argument("--generate", type=int, default=10, help="number of new tokens (default 10)")
        sub.add_argument("--out", default=out, help=f"report path (default {out})")
    report.add_argument("--attribution", default="grad_x_input",
                        help="comma-separated attribution methods; or an experiment folder (written by `ecco attribute`) "
                        "for the report of that experiment")
    report.add_argument("--views", default=None,
                        help=f"comma-separated views, from: {', '.join(VIEWS)} (default: all the model can give)")
    _corpus_report_arguments(report)
    _corpus_parser(commands)
    add_attribute_parser(commands, DEFAULT_MODEL)
    return parser


def _corpus_report_arguments(report: argparse.ArgumentParser) -> None:
    group = report.add_argument_group("corpus report", "with --corpus RUN_DIR: a report of a corpus run's neurons")
    group.add_argument("--corpus", default=None, help="a corpus run folder (written by `ecco corpus`)")
    group.add_argument("--search", action="append", default=[], metavar="NAME=REGEX",
                       help="a search query over token text (repeat it; default: opening brackets, line "
                       "indentation and string literals)")
    group.add_argument("--top", type=int, default=5, help="neurons shown per query (default 5)")
    group.add_argument("--contexts", type=int, default=3, help="contexts shown per neuron in a search (default 3)")
    group.add_argument("--neurons", default=None, metavar="L:N,...", help="more neuron dashboards, e.g. 12:345,3:7")
    group.add_argument("--factors", type=int, default=0, help="fit this many NMF factors and show them (default 0)")
    group.add_argument("--factor-layers", default=None, help="comma-separated layers for --factors (default: middle)")
    group.add_argument("--no-model", action="store_true", help="do not load the model (no direct effects)")


def _corpus_parser(commands: argparse._SubParsersAction) -> None:
    corpus = commands.add_parser("corpus", help="capture activations over a corpus into Arrow shards (resumable)")
    corpus.add_argument("--model", default=DEFAULT_MODEL, help="bundled alias, local folder or hub id")
    corpus.add_argument("--input", required=True,
                        help="'stdlib' (Python's standard library source), a folder or glob of text files, "
                             "or a dataset saved with datasets' save_to_disk")
    corpus.add_argument("--out", required=True, help="output folder (run the same command again to continue)")
    corpus.add_argument("--layers", default=None, help="comma-separated block indices (default: all)")
    corpus.add_argument("--hidden-states", action="store_true", help="store hidden states too")
    corpus.add_argument("--no-activations", action="store_true", help="do not store FFN activations")
    corpus.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    corpus.add_argument("--text-column", default="text", help="text column of a dataset (default 'text')")
    corpus.add_argument("--max-files", type=int, default=None, help="with --input stdlib: at most this many files")
    for name, default in (("max-tokens", None), ("overlap", 64), ("batch-tokens", 4096), ("shard-tokens", 32768),
                          ("top-k", 32), ("workers", None)):
        corpus.add_argument(f"--{name}", type=int, default=default)
    corpus.add_argument("--backend", default="local", choices=["local", "ray"],
                        help="ray: run on the cluster at RAY_ADDRESS, or a local one")
    corpus.add_argument("--overwrite", action="store_true", help="delete an earlier run in --out and start again")


def run_corpus_command(args: argparse.Namespace) -> Path:
    """``ecco corpus``: load the model, run the corpus, print where it went and its size."""
    import ecco
    from ecco.corpus import as_source, python_stdlib

    # the source is checked before the model loads, so a wrong path fails at once
    source = python_stdlib(max_files=args.max_files) if args.input == "stdlib" else as_source(args.input, args.text_column)
    layers = None if args.layers is None else [int(part) for part in args.layers.split(",") if part.strip()]
    _log(f"loading {args.model} ...")
    lm = ecco.from_pretrained(args.model, verbose=False)
    run = lm.run_corpus(
        source, args.out, layers, activations=not args.no_activations, hidden_states=args.hidden_states,
        dtype=args.dtype, text_column=args.text_column, max_tokens=args.max_tokens, overlap=args.overlap,
        batch_tokens=args.batch_tokens, shard_tokens=args.shard_tokens, top_k=args.top_k, backend=args.backend,
        workers=args.workers, overwrite=args.overwrite,
    )
    totals = run.manifest.totals()
    print(f"corpus: {Path(args.out).resolve()} ({totals['documents']} documents, {totals['tokens']} tokens, "
          f"{totals['bytes'] / 2**20:.1f} MiB, {totals['skipped_documents']} empty documents skipped)")
    sizes = run.bytes_per_token_per_layer()
    print("bytes per token: " + ", ".join(f"{name} {size:.0f}" for name, size in sizes.items()))
    return Path(args.out)


def run_corpus_report(args: argparse.Namespace) -> Path:
    """``ecco report --corpus RUN_DIR``: search results and dashboards of a corpus run."""
    from ecco.corpus_report import corpus_report, parse_neurons, parse_queries

    layers = None if args.factor_layers is None else [int(p) for p in args.factor_layers.split(",") if p.strip()]
    return corpus_report(
        args.corpus, args.out, parse_queries(args.search), top=args.top, contexts=args.contexts,
        neurons=parse_neurons(args.neurons), factors=args.factors, factor_layers=layers, model=args.model,
        load_model=not args.no_model,
    )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_report(
    model: str, prompt: str, generate: int, out: str | Path, attribution: Sequence[str], views: Sequence[str],
    strict: bool = True,
) -> Path:
    """Load ``model``, run it on ``prompt`` and write the requested views to ``out``.

    Views the model cannot give (no LM head, an encoder that cannot generate) are an error
    when ``strict``, and skipped with a note otherwise."""
    import ecco
    from ecco.render import save_report

    unknown = sorted(set(views) - set(VIEWS))
    if unknown:
        raise ValueError(f"unknown view(s) {unknown}; valid: {', '.join(VIEWS)}")
    if not prompt.strip():
        raise ValueError("the prompt is empty: give the model some text to read")
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    needs = {VIEWS[v][0] for v in views}
    with clock(f"loading {model}", "load the model"):
        lm = ecco.from_pretrained(
            model, activations="activations" in needs, attention="attention" in needs, verbose=False
        )
    possible = []
    for name in views:
        need = VIEWS[name][0]
        if (need == "generate" and not lm.spec.kind.generates) or (need == "lens" and lm.link.lens is None):
            reason = f"view {name!r} needs " + ("a generative model" if need == "generate" else "an LM head")
            if strict:
                raise ValueError(reason + f"; {model} does not have one (drop it from --views)")
            _log(f"skipping: {reason}")
        else:
            possible.append(name)
    methods = list(attribution) if "attribution" in views and lm.spec.kind.generates else []
    if not lm.spec.kind.generates:
        with clock("reading the text (encoder)", "read the text"):
            output = lm(prompt)
    else:
        what = f"generating {generate} tokens" + (f" and {', '.join(methods)} attributions" if methods else "")
        with clock(what, "generate" + (" and attribute" if methods else "")):
            output = lm.generate(prompt, generate=generate, attribution=methods)
        print(prompt + output.output_text[0])
    rendered = []
    for name in possible:
        with clock(f"rendering {name}", f"view: {name}"):
            rendered.append(VIEWS[name][1](output, list(attribution)))
    summary = {
        "Prompt": prompt,
        "Output": "".join(output.sequences[0].tokens),
        "Model": f"{model} ({lm.spec.arch}, {lm.spec.kind}, {lm.spec.main_stack.n_layers} layers)",
        "Settings": (f"{generate} new tokens, greedy; " if lm.spec.kind.generates else "forward pass; ")
        + f"attribution: {', '.join(methods) or 'none'}; views: {', '.join(possible)}",
        "Time": "; ".join(f"{label} {seconds:.1f} s" for label, seconds in timings.items()),
    }
    path = save_report(rendered, out, title=f"ecco report · {model}", summary=summary)
    print(f"report: {Path(path).resolve()}")
    return Path(path)


class _Clock:
    """``with clock(message, label):`` logs ``message``, times the block into ``timings[label]``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, message: str, label: str) -> Iterator[None]:
        _log(message + " ...")
        started = time.perf_counter()
        yield
        self.timings[label] = time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ecco`` command: run it with ``argv`` (default: the command line); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "corpus":
            run_corpus_command(args)
        elif args.command == "attribute":
            run_attribute_command(args)
        elif args.command == "demo":
            run_report(DEFAULT_MODEL, args.prompt, args.generate, args.out, ["grad_x_input"], DEMO_VIEWS)
        elif args.corpus is not None:
            run_corpus_report(args)
        elif Path(args.attribution).is_dir():
            experiment_report(args.attribution, args.out)
        else:
            split = lambda text: [part.strip() for part in text.split(",") if part.strip()]  # noqa: E731
            views = list(VIEWS) if args.views is None else split(args.views)
            run_report(args.model or DEFAULT_MODEL, args.prompt, args.generate, args.out, split(args.attribution), views,
                       strict=args.views is not None)
    except Exception as error:  # one clear line for users, the traceback with --debug
        if args.debug:
            raise
        print(f"ecco: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
