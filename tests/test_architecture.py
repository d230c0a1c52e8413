"""The import rule of docs/architecture.md, checked on every import in ecco/.

Data flows one way: core (model, capture, analyses on arrays) -> record -> render -> views ->
output -> the user-facing modules. A module may import its own layer or lower ones, never a
higher one, and no set of modules may import each other in a circle. Every import counts:
module level, inside functions and under ``TYPE_CHECKING``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ecco"

# Layer of each module (dotted, relative to ecco; packages by prefix). Lower imports nothing higher.
LAYERS: dict[str, int] = {
    "models": 0, "checks": 0, "shapes": 0, "layout": 0, "session": 0, "runner": 0, "capture": 0, "tokens": 0, "stream": 0,
    "progress": 0,
    "lens": 0, "corpus": 0, "direct_effect": 0, "decomposition": 0, "analysis": 0, "attention": 0, "attribution": 0,
    "experiment": 0, "causal": 0, "tuned": 0,
    "record": 1, "access": 1, "io": 1, "record_faithfulness": 1,
    "render": 2,
    "views": 3,
    "output": 4, "corpus_run": 4, "experiment_run": 4,
    "lm": 5, "cli": 5, "corpus_report": 5, "experiment_report": 5, "__init__": 5,
}
NAMES = {0: "core", 1: "record", 2: "render", 3: "views", 4: "output", 5: "user-facing"}


def module_name(path: Path) -> str:
    """'attribution.lrp' for ecco/attribution/lrp.py, 'attribution' for its __init__."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package."""
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(base: list[str], name: str, known: set[str]) -> str | None:
    dotted = ".".join(base + ([name] if name else []))
    return dotted if dotted in known else None


def imports(name: str, source: str, known: set[str]) -> set[str]:
    """The ecco modules that ``source`` (module ``name``) imports, anywhere in the file."""
    package = name.split(".") if name in _packages(known) else name.split(".")[:-1]
    if name == "__init__":
        package = []
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "ecco" or alias.name.startswith("ecco."):
                    parts = alias.name.split(".")[1:]
                    found.add(".".join(parts) or "__init__")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
                base += node.module.split(".") if node.module else []
            elif node.module and (node.module == "ecco" or node.module.startswith("ecco.")):
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                target = _resolve(base, alias.name, known) or _resolve(base, "", known) or ("__init__" if not base else None)
                if target is None:
                    raise AssertionError(f"{name}: cannot resolve import of {alias.name!r} from {'.'.join(base)!r}")
                found.add(target)
    found.discard(name)
    return found


def _packages(known: set[str]) -> set[str]:
    return {m for m in known if any(other.startswith(m + ".") for other in known)}


def layer(name: str) -> int:
    """The layer of a module, by its own name or its package's."""
    parts = name.split(".")
    for size in range(len(parts), 0, -1):
        if ".".join(parts[:size]) in LAYERS:
            return LAYERS[".".join(parts[:size])]
    raise AssertionError(f"ecco/{name.replace('.', '/')}.py has no layer: add it to LAYERS (and docs/architecture.md).")


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Upward imports and import cycles in ``graph`` (module -> modules it imports)."""
    found = [
        f"{a} ({NAMES[layer(a)]}) imports {b} ({NAMES[layer(b)]})"
        for a, targets in graph.items() for b in sorted(targets) if layer(b) > layer(a)
    ]
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append("cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def package_graph() -> dict[str, set[str]]:
    """The import graph of ecco/."""
    found = modules()
    known = set(found)
    return {name: imports(name, path.read_text(encoding="utf-8"), known) for name, path in found.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_no_upward_import_and_no_cycle():
    problems = violations(package_graph())
    assert not problems, "the one-way import rule is broken:\n" + "\n".join(problems)


def test_the_checker_sees_function_level_and_type_checking_imports():
    known = {"lens", "output", "render", "attribution", "attribution.lrp"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .output import OutputSeq\n"
        "def f():\n    from . import render\n    import ecco.attribution.lrp\n"
    )
    assert imports("lens", source, known) == {"output", "render", "attribution.lrp"}
    assert imports("attribution.lrp", "from ..output import X\nfrom . import registry\n", known | {"attribution.registry"}) == {
        "output", "attribution.registry"
    }


def test_the_checker_reports_upward_imports_and_cycles():
    problems = violations({"lens": {"output"}, "output": {"lens"}, "views.a": {"views.b"}, "views.b": {"views.a"}})
    assert "lens (core) imports output (output)" in problems
    assert any(p.startswith("cycle: views.a -> views.b -> views.a") for p in problems)
    assert any(p.startswith("cycle: lens -> output -> lens") for p in problems)


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_over_400_lines(name):
    lines = modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= 400, f"ecco/{name}: {lines} lines; split it by job (limit 400)."
