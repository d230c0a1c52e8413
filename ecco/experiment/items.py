"""The items of an attribution experiment: prompts, each with the continuation to explain or none.

A source is a list of prompts (their continuations are generated), a list of ``(prompt, target)``
pairs (teacher-forced), a list of dicts, or a ``datasets.Dataset`` with a prompt column and,
optionally, a target column. Items keep the source's order; an item's ``item_id`` is its index,
the same on every run, so a stopped run continues where it stopped. Every source has a
JSON-able ``description`` (its kind, size and a hash of its contents) that a resumed run must
match.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

AUTO = "auto"  # target_column: the column 'target' when the dataset has one, else generate


@dataclass(frozen=True)
class Item:
    """One prompt and the continuation to explain (None: generate one)."""

    item_id: int
    prompt: str
    target: str | None = None


class ItemSource:
    """An ordered list of items with a description for the run's manifest."""

    def __init__(self, items: list[Item], kind: str) -> None:
        if not items:
            raise ValueError("The source holds no items: give at least one prompt.")
        self.items = items
        digest = hashlib.sha256()
        for item in items:
            digest.update(repr((item.prompt, item.target)).encode("utf-8"))
        self.description = {"kind": kind, "n_items": len(items), "sha256": digest.hexdigest()}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)


def as_items(source: object, prompt_column: str = "prompt", target_column: str | None = AUTO) -> ItemSource:
    """Items from a list of prompts, of (prompt, target) pairs, of dicts, or a ``datasets.Dataset``.

    ``target_column``: the column (or dict key) holding targets; ``'auto'`` uses ``'target'``
    when present; None generates a continuation for every prompt.
    """
    if isinstance(source, ItemSource):
        return source
    if isinstance(source, str):
        return ItemSource([_item(0, source, None)], "list")
    if _is_dataset(source):
        return _from_dataset(source, prompt_column, target_column)
    if not isinstance(source, Sequence):
        raise TypeError(
            f"A source is a list of prompts, of (prompt, target) pairs, of dicts, or a datasets.Dataset; got "
            f"{type(source).__name__}."
        )
    items = []
    for index, entry in enumerate(source):
        if isinstance(entry, str):
            items.append(_item(index, entry, None))
        elif isinstance(entry, Mapping):
            items.append(_item(index, *_row(entry, index, prompt_column, target_column, list(entry))))
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            items.append(_item(index, entry[0], entry[1]))
        else:
            raise TypeError(
                f"Item {index} is a {type(entry).__name__}: give a prompt string, a (prompt, target) pair or a dict "
                f"with a {prompt_column!r} key."
            )
    return ItemSource(items, "list")


def _item(index: int, prompt: object, target: object) -> Item:
    if not isinstance(prompt, str):
        raise TypeError(f"Item {index}: the prompt is a {type(prompt).__name__}, not a str.")
    if not prompt.strip():
        raise ValueError(f"Item {index}: the prompt is empty; give the model some text to read.")
    if target is not None and not isinstance(target, str):
        raise TypeError(f"Item {index}: the target is a {type(target).__name__}, not a str (or None to generate).")
    return Item(index, prompt, target)


def _row(row: Mapping, index: int, prompt_column: str, target_column: str | None, columns: list) -> tuple:
    """(prompt, target) of one dict / dataset row, with errors naming the columns there are."""
    if prompt_column not in row:
        raise ValueError(
            f"Item {index} has no {prompt_column!r} column (it has {sorted(map(str, columns))}); name the prompt column "
            "with prompt_column=... (--prompt-column)."
        )
    if target_column is None:
        return row[prompt_column], None
    name = "target" if target_column == AUTO else target_column
    if name not in row:
        if target_column == AUTO:
            return row[prompt_column], None
        raise ValueError(
            f"Item {index} has no {name!r} column (it has {sorted(map(str, columns))}); name the target column with "
            "target_column=... (--target-column), or target_column=None to generate continuations."
        )
    return row[prompt_column], row[name]


def _is_dataset(obj: object) -> bool:
    return type(obj).__module__.startswith("datasets") and hasattr(obj, "column_names")


def _from_dataset(dataset: object, prompt_column: str, target_column: str | None) -> ItemSource:
    if isinstance(dataset.column_names, dict):
        raise TypeError("Give one split of the DatasetDict (e.g. dataset['train']), not the whole dict.")
    columns = list(dataset.column_names)
    probe = {c: None for c in columns}
    _row(probe, 0, prompt_column, target_column, columns)  # names the missing column before reading rows
    items = [_item(i, *_row(row, i, prompt_column, target_column, columns)) for i, row in enumerate(dataset)]
    return ItemSource(items, "dataset")
