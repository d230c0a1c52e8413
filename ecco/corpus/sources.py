"""Corpus sources: anything that holds documents, as an ordered stream of :class:`Document`.

A document's ``doc_id`` is its index in the source's order (0, 1, 2, ...), the same on every
run, so a stopped run continues with ``source.documents(start)`` and a cluster splits the
corpus the same way on every machine. Every source has a JSON-able ``description`` (written
into a run's manifest and compared when a run continues) and ``n_documents`` (None when the
source cannot tell without reading it all).

``datasets`` is imported only when a dataset is given.
"""
from __future__ import annotations

import ast
import glob
import hashlib
import os
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..checks import as_int

FILE_SUFFIXES = (".txt", ".md", ".rst", ".py")
_EXCLUDED_DIRS = ("site-packages", "dist-packages", "__pycache__")
_GLOB_CHARS = ("*", "?", "[")
_DATASET_ROWS = 512  # rows read from a dataset at a time


@dataclass(frozen=True)
class Document:
    """One document: its index in the source (``doc_id``), its text, and a name for display
    (a file's path; empty when the source has none)."""

    doc_id: int
    text: str
    name: str = ""


class Source:
    """An ordered, restartable stream of documents.

    Subclasses set ``description`` (a JSON-able dict) and ``n_documents`` (int, or None when
    unknown) and implement :meth:`documents`.
    """

    description: dict
    n_documents: int | None = None

    def documents(self, start: int = 0) -> Iterator[Document]:
        """Documents ``start``, ``start + 1``, ... in order (the first ``start`` are skipped)."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Document]:
        return self.documents()

    def __len__(self) -> int:
        if self.n_documents is None:
            raise TypeError(f"{type(self).__name__} does not know its number of documents before reading them.")
        return self.n_documents

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description})"


def _start(start: object) -> int:
    return as_int(start, "start", 0)


class TextsSource(Source):
    """A list of texts held in memory."""

    def __init__(self, texts: Sequence[str]) -> None:
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"Document {index} of the list is a {type(text).__name__}, not a str: give one string of text "
                    "per document."
                )
        if not texts:
            raise ValueError("The source is empty: the list of texts has no documents.")
        digest = hashlib.sha256()
        for text in texts:
            data = text.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        self.texts = texts
        self.n_documents = len(texts)
        self.description = {"kind": "texts", "documents": len(texts), "sha256": digest.hexdigest()}

    def documents(self, start: int = 0) -> Iterator[Document]:
        """The texts from index ``start`` on."""
        for doc_id in range(_start(start), len(self.texts)):
            yield Document(doc_id, self.texts[doc_id])


class FilesSource(Source):
    """Text files, one document each, read (as UTF-8, undecodable bytes replaced) only when reached."""

    def __init__(self, paths: Sequence[Path], description: dict, root: Path | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.root = root
        self.n_documents = len(self.paths)
        self.description = {**description, "files": len(self.paths), "bytes": sum(p.stat().st_size for p in self.paths)}

    def documents(self, start: int = 0) -> Iterator[Document]:
        """The files' texts from file ``start`` on; earlier files are not opened."""
        for doc_id in range(_start(start), len(self.paths)):
            path = self.paths[doc_id]
            name = path.relative_to(self.root).as_posix() if self.root else path.name
            yield Document(doc_id, self.text(path), name)

    def text(self, path: Path) -> str:
        """A file's document: its text."""
        return path.read_text(encoding="utf-8", errors="replace")


class DocstringsSource(FilesSource):
    """Python files, each one document made of its docstrings (module, classes, functions), in
    source order, separated by blank lines: English prose from code. A file that does not parse
    or has no docstrings is an empty document (skipped by a run, its ``doc_id`` kept)."""

    def text(self, path: Path) -> str:
        """The docstrings of one file."""
        try:
            tree = ast.parse(super().text(path))
        except (SyntaxError, ValueError):
            return ""
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        found = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds))
        return "\n\n".join(d for d in found if d)


class DatasetSource(Source):
    """One text column of a ``datasets.Dataset`` (in its own order, an index mapping included)."""

    def __init__(self, dataset: object, text_column: str = "text", description: dict | None = None) -> None:
        _check_column(dataset, text_column)
        if len(dataset) == 0:
            raise ValueError("The source is empty: the dataset has no rows.")
        self.dataset = dataset.select_columns([text_column]).with_format(None)  # plain Python strings
        self.text_column = text_column
        self.n_documents = len(dataset)
        split = getattr(dataset, "split", None)
        self.description = description or {"kind": "datasets.Dataset", "split": None if split is None else str(split)}
        self.description.update(column=text_column, rows=len(dataset), fingerprint=getattr(dataset, "_fingerprint", None))

    def documents(self, start: int = 0) -> Iterator[Document]:
        """Rows ``start`` ... of the text column, read a few hundred at a time."""
        for first in range(_start(start), self.n_documents, _DATASET_ROWS):
            texts = self.dataset[first : first + _DATASET_ROWS][self.text_column]
            for doc_id, text in enumerate(texts, first):
                yield Document(doc_id, _row_text(text, doc_id, self.text_column))


class IterableDatasetSource(Source):
    """One text column of a streamed ``datasets.IterableDataset`` (length unknown)."""

    def __init__(self, dataset: object, text_column: str = "text") -> None:
        _check_column(dataset, text_column)
        self.dataset = dataset
        self.text_column = text_column
        self.n_documents = None
        split = getattr(dataset, "split", None)
        self.description = {"kind": "datasets.IterableDataset", "split": None if split is None else str(split),
                            "column": text_column}

    def documents(self, start: int = 0) -> Iterator[Document]:
        """Rows ``start`` ... (the dataset's own ``skip`` passes over the first ``start``)."""
        start = _start(start)
        rows = self.dataset.skip(start) if start else self.dataset
        for doc_id, row in enumerate(rows, start):
            if self.text_column not in row:
                raise ValueError(f"Row {doc_id} has no column {self.text_column!r}; its columns are {list(row)}.")
            yield Document(doc_id, _row_text(row[self.text_column], doc_id, self.text_column))


def _check_column(dataset: object, text_column: str) -> None:
    """A clear error when ``text_column`` is missing or does not hold strings (features unknown: no check)."""
    features = getattr(dataset, "features", None)
    if features is None:
        return
    if text_column not in features:
        raise ValueError(
            f"The dataset has no column {text_column!r}; its columns are {list(features)}. Pass text_column= with "
            "the column that holds the text."
        )
    if getattr(features[text_column], "dtype", None) not in ("string", "large_string"):
        raise TypeError(
            f"Column {text_column!r} holds {features[text_column]}, not strings: pass text_column= with a text column."
        )


def _row_text(text: object, doc_id: int, column: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"Row {doc_id} of column {column!r} is a {type(text).__name__}, not a str ({text!r:.60}).")
    return text


def _dataset_types() -> tuple[type, ...]:
    """``datasets``' Dataset classes, if ``datasets`` is already imported (else nothing can be one)."""
    if "datasets" not in sys.modules:
        return ()
    import datasets

    return (datasets.Dataset, datasets.IterableDataset, datasets.DatasetDict, datasets.IterableDatasetDict)


def _from_dataset(obj: object, text_column: str, description: dict | None = None) -> Source:
    import datasets

    if isinstance(obj, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = list(obj)
        example = splits[0] if splits else "train"
        raise TypeError(
            f"This is a DatasetDict with the splits {splits}: pick one split, e.g. dataset[{example!r}]."
        )
    if isinstance(obj, datasets.IterableDataset):
        return IterableDatasetSource(obj, text_column)
    return DatasetSource(obj, text_column, description)


def _from_saved_dataset(folder: Path, text_column: str) -> Source:
    """A dataset (or a DatasetDict: an error) saved with ``save_to_disk``."""
    if (folder / "dataset_dict.json").exists():
        splits = sorted(p.name for p in folder.iterdir() if (p / "state.json").exists())
        example = splits[0] if splits else "train"
        raise TypeError(
            f"{folder} holds a DatasetDict saved with save_to_disk (splits {splits}): pick one split, e.g. "
            f"the folder {str(folder / example)!r}."
        )
    import datasets

    dataset = datasets.load_from_disk(str(folder))
    return _from_dataset(dataset, text_column, {"kind": "datasets.load_from_disk", "path": str(folder.resolve())})


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").exists() or (
        (folder / "state.json").exists() and (folder / "dataset_info.json").exists()
    )


def folder_files(
    folder: str | os.PathLike, suffixes: Sequence[str] = FILE_SUFFIXES, exclude: Sequence[str] = ("__pycache__",)
) -> list[Path]:
    """Files under ``folder`` (recursively) whose names end in one of ``suffixes`` (any case), sorted
    by their path relative to ``folder`` in POSIX form; hidden files and folders (``.name``) and
    folders named in ``exclude`` are left out (and not walked into)."""
    root = Path(folder)
    ends = tuple(s.lower() for s in suffixes)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in exclude]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(ends):
                found.append(Path(dirpath, name))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _from_path(path: str | os.PathLike, text_column: str) -> Source:
    text = os.fspath(path)
    target = Path(text).expanduser()
    if target.is_file():
        return FilesSource([target], {"kind": "file", "path": str(target.resolve())})
    if target.is_dir():
        if _is_saved_dataset(target):
            return _from_saved_dataset(target, text_column)
        files = folder_files(target)
        if not files:
            raise ValueError(
                f"The source is empty: {target} has no files ending in {', '.join(FILE_SUFFIXES)}. Give a glob "
                "such as 'folder/**/*.html' for other files."
            )
        return FilesSource(files, {"kind": "folder", "path": str(target.resolve()), "suffixes": list(FILE_SUFFIXES)},
                           root=target)
    if any(c in text for c in _GLOB_CHARS):
        pattern = os.path.abspath(os.path.expanduser(text))  # the description names the same files from anywhere
        matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not matches:
            raise FileNotFoundError(f"No file matches the pattern {text!r} (relative patterns start in {os.getcwd()}).")
        return FilesSource([Path(p) for p in matches], {"kind": "glob", "pattern": pattern})
    raise FileNotFoundError(
        f"{text!r} does not exist. Give a file, a folder of text files, a glob such as 'docs/**/*.md', a folder "
        "saved with datasets' save_to_disk, or a list of texts."
    )


def as_source(obj: object, text_column: str = "text") -> Source:
    """``obj`` as a :class:`Source`.

    Accepted: a Source; a list or tuple of strings; a ``datasets.Dataset`` or ``IterableDataset``
    (``text_column`` holds the text); a folder written by ``save_to_disk``; a folder of text files
    (``*.txt``, ``*.md``, ``*.rst``, ``*.py``, recursively, sorted by relative path); a glob pattern
    (``"src/**/*.py"``, sorted); a single file (one document). Files are read as UTF-8 with
    undecodable bytes replaced.
    """
    if isinstance(obj, Source):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return _from_path(obj, text_column)
    if isinstance(obj, _dataset_types()):
        return _from_dataset(obj, text_column)
    if isinstance(obj, (list, tuple)):
        return TextsSource(obj)
    raise TypeError(
        f"Cannot read documents from a {type(obj).__name__}. Give a list of texts, a datasets.Dataset, a path "
        "(file, folder, glob, or a save_to_disk folder) or an ecco.corpus.Source."
    )


def _stdlib_files(max_files: int | None, min_bytes: int, max_bytes: int | None) -> tuple[list[Path], Path, dict]:
    """The standard library's ``.py`` files chosen as :func:`python_stdlib` says, their root, and
    the description of the choice."""
    if max_files is not None:
        max_files = as_int(max_files, "max_files", 1)
    min_bytes = as_int(min_bytes, "min_bytes", 0)
    if max_bytes is not None:
        max_bytes = as_int(max_bytes, "max_bytes", max(min_bytes, 1))
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"The standard library folder {root} does not exist on this Python.")
    files = [p for p in folder_files(root, (".py",), _EXCLUDED_DIRS)
             if p.is_file() and min_bytes <= p.stat().st_size <= (max_bytes or float("inf"))]
    if max_files is not None:
        files = files[:max_files]
    if not files:
        raise ValueError(f"The source is empty: no .py files of {min_bytes} to {max_bytes or 'any'} bytes under {root}.")
    version = sys.version.split()[0]
    return files, root, {"python": version, "root": str(root), "min_bytes": min_bytes, "max_bytes": max_bytes}


def python_stdlib(max_files: int | None = None, min_bytes: int = 1, max_bytes: int | None = None) -> FilesSource:
    """The Python standard library's own ``.py`` files as a corpus: code, comments and docstrings.

    Files under ``sysconfig.get_paths()["stdlib"]``, sorted by relative path, without
    ``site-packages``, ``dist-packages`` and ``__pycache__``; files smaller than ``min_bytes``
    (by default the empty ones) and larger than ``max_bytes`` (e.g. to keep one huge file from
    taking most of a small slice) are left out; ``max_files`` keeps the first ones.
    """
    files, root, chosen = _stdlib_files(max_files, min_bytes, max_bytes)
    return FilesSource(files, {"kind": "python_stdlib", **chosen}, root=root)


def python_docstrings(max_files: int | None = None, min_bytes: int = 1, max_bytes: int | None = None) -> DocstringsSource:
    """The docstrings of the standard library's ``.py`` files (chosen as in :func:`python_stdlib`),
    one document per file: English prose about code, present on every machine."""
    files, root, chosen = _stdlib_files(max_files, min_bytes, max_bytes)
    return DocstringsSource(files, {"kind": "python_docstrings", **chosen}, root=root)
