"""Command line: ``ecco demo`` writes a standalone HTML report from the bundled default model."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m"
DEFAULT_PROMPT = "Heathrow airport is located in the city of"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecco", description="See what a transformer language model is thinking.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="generate with the bundled SmolLM2 and write an HTML report")
    demo.add_argument("--prompt", default=DEFAULT_PROMPT, help="text to continue")
    demo.add_argument("--generate", type=int, default=10, help="number of new tokens (default 10)")
    demo.add_argument("--out", default="ecco-demo.html", help="report path (default ecco-demo.html)")
    demo.add_argument("--model", default=DEFAULT_MODEL, help=argparse.SUPPRESS)
    return parser


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(prompt: str, generate: int, out: str | Path, model: str = DEFAULT_MODEL) -> Path:
    """Load ``model``, generate, write the report; returns its path."""
    import ecco
    from ecco.render import save_report

    started = time.perf_counter()
    _log(f"loading {model} ...")
    lm = ecco.from_pretrained(model, activations=True, attention=True, verbose=False)
    _log(f"loaded in {time.perf_counter() - started:.1f} s; generating {generate} tokens and their attributions ...")
    output = lm.generate(prompt, generate=generate, attribution=["grad_x_input"])
    print(f"{prompt}\033[1m{output.output_text[0]}\033[0m" if sys.stdout.isatty() else prompt + output.output_text[0])
    views = [
        output.tokens_view(),
        output.primary_attributions(attr_method="grad_x_input", style="detailed"),
        output.rankings(),
        output.attention_head_view(layer=0),
        output.run_nmf(n_components=6).explore(),
    ]
    path = save_report(views, out, title=f"ecco · {model}")
    print(f"report: {Path(path).resolve()}")
    return Path(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            run_demo(args.prompt, args.generate, args.out, args.model)
    except Exception as error:  # one clear line for users, the traceback with --debug
        if args.debug:
            raise
        print(f"ecco: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
