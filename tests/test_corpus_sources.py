"""Corpus sources: the documents, their order and ids, cheap skipping, descriptions that survive
JSON (a run's manifest compares them), and errors that say what to do."""
from __future__ import annotations

import inspect
import json
import os
import sys
import sysconfig
from pathlib import Path

import datasets
import pytest

from ecco.corpus.sources import (
    DocstringsSource,
    Document,
    FilesSource,
    Source,
    as_source,
    python_docstrings,
    python_stdlib,
)

TEXTS = ["A first short text.", "", "A third one,\nwith two lines.", "Fourth: café 東京."]


def _docs(source: Source, start: int = 0) -> list[tuple[int, str]]:
    return [(d.doc_id, d.text) for d in source.documents(start)]


def _json_round_trip(description: dict) -> None:
    assert json.loads(json.dumps(description)) == description


@pytest.mark.parametrize("make", [list, tuple])
def test_texts_in_order_with_their_index_as_id(make):
    source = as_source(make(TEXTS))
    assert _docs(source) == list(enumerate(TEXTS))  # the empty text is still a document
    assert _docs(source, 2) == [(2, TEXTS[2]), (3, TEXTS[3])]
    assert _docs(source, 10) == []
    assert list(source) == [Document(i, t) for i, t in enumerate(TEXTS)]
    assert len(source) == source.n_documents == 4
    assert source.description["kind"] == "texts" and source.description["documents"] == 4
    _json_round_trip(source.description)
    assert as_source(list(TEXTS)).description == source.description  # the same texts: the same description
    assert as_source(TEXTS[:3] + ["other"]).description != source.description
    assert as_source(source) is source


def test_bad_texts_say_which_and_what():
    with pytest.raises(ValueError, match="empty"):
        as_source([])
    with pytest.raises(TypeError, match="Document 2 of the list is a int, not a str"):
        as_source(["a", "b", 3])
    with pytest.raises(TypeError, match="Document 0 .* bytes"):
        as_source([b"raw bytes"])
    with pytest.raises(TypeError, match="Cannot read documents from a dict"):
        as_source({"text": ["a"]})
    with pytest.raises(ValueError, match="start"):
        list(as_source(["a"]).documents(-1))


@pytest.fixture
def tree(tmp_path):
    """A folder of files: some that are documents, some that are not."""
    files = {
        "b.txt": "bee",
        "a.md": "# A heading\n",
        "A.TXT": "upper-case suffix",
        "sub/c.py": "print('c')\n",
        "sub/deeper/d.rst": "Title\n=====\n",
        "sub-dir/e.txt": "",
        "notes.json": "{}",
        ".hidden/x.txt": "hidden",
        ".secret.txt": "hidden too",
        "__pycache__/y.py": "cached",
    }
    for name, text in files.items():
        path = tmp_path / "corpus" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (tmp_path / "corpus" / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))  # not UTF-8
    return tmp_path / "corpus"


def test_folder_of_text_files(tree):
    source = as_source(str(tree))
    # sorted by relative path (code point order: '-' < '/' < upper case < lower case)
    expected = ["A.TXT", "a.md", "b.txt", "latin.txt", "sub-dir/e.txt", "sub/c.py", "sub/deeper/d.rst"]
    assert [p.relative_to(tree).as_posix() for p in source.paths] == expected
    texts = [t for _, t in _docs(source)]
    assert texts[:3] == ["upper-case suffix", "# A heading\n", "bee"]
    assert texts[3] == "caf\ufffd"  # undecodable bytes are replaced, not an error
    assert texts[4] == "" and [i for i, _ in _docs(source)] == list(range(7))
    assert [d.name for d in source.documents()] == expected  # names are the paths under the folder
    assert source.description == {
        "kind": "folder", "path": str(tree.resolve()), "suffixes": [".txt", ".md", ".rst", ".py"], "files": 7,
        "bytes": sum((tree / name).stat().st_size for name in expected),
    }
    _json_round_trip(source.description)
    assert as_source(tree).description == source.description  # a Path works as well


def test_skipping_does_not_read_the_skipped_files(tree):
    source = as_source(tree)
    for path in source.paths[:5]:
        path.unlink()  # reading one would now fail
    assert _docs(source, 5) == [(5, "print('c')\n"), (6, "Title\n=====\n")]


def test_glob_and_single_file(tree, monkeypatch):
    monkeypatch.chdir(tree)
    source = as_source("sub*/**/*.*")
    here = Path.cwd()
    assert [p.relative_to(here).as_posix() for p in source.paths] == ["sub-dir/e.txt", "sub/c.py", "sub/deeper/d.rst"]
    assert source.description["kind"] == "glob" and source.description["files"] == 3
    assert source.description["pattern"] == str(here / "sub*" / "**" / "*.*")  # absolute: the same from any folder
    assert _docs(as_source(str(tree / "*.json"))) == [(0, "{}")]  # a glob takes any file it names
    single = as_source(tree / "sub" / "c.py")
    assert _docs(single) == [(0, "print('c')\n")]
    assert single.description["kind"] == "file" and len(single) == 1


def test_bad_paths_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*folder of text files"):
        as_source(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"No file matches the pattern .*\*\.md"):
        as_source(str(tmp_path / "*.md"))
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"empty: .* no files ending in \.txt, \.md, \.rst, \.py.*glob"):
        as_source(tmp_path)


def test_datasets_dataset_in_its_own_order():
    ds = datasets.Dataset.from_dict({"text": TEXTS, "label": [0, 1, 2, 3]})
    source = as_source(ds)
    assert _docs(source) == list(enumerate(TEXTS))
    assert _docs(source, 3) == [(3, TEXTS[3])]
    assert len(source) == 4 and source.description["column"] == "text" and source.description["rows"] == 4
    _json_round_trip(source.description)
    picked = as_source(ds.select([3, 0, 2]))  # an index mapping: the dataset's order, not the file's
    assert _docs(picked) == [(0, TEXTS[3]), (1, TEXTS[0]), (2, TEXTS[2])]
    assert _docs(as_source(ds.with_format("arrow"))) == list(enumerate(TEXTS))  # any format reads as str
    other = as_source(datasets.Dataset.from_dict({"body": TEXTS}), text_column="body")
    assert _docs(other) == list(enumerate(TEXTS))


def test_a_long_dataset_is_read_in_chunks_from_any_start():
    texts = [f"row {i}" for i in range(1300)]
    source = as_source(datasets.Dataset.from_dict({"text": texts}))
    assert _docs(source, 700) == [(i, texts[i]) for i in range(700, 1300)]
    assert [d.text for d in source.documents()] == texts


def test_bad_datasets_say_what_to_do():
    ds = datasets.Dataset.from_dict({"content": ["a"], "label": [1]})
    with pytest.raises(ValueError, match=r"no column 'text'; its columns are \['content', 'label'\].*text_column="):
        as_source(ds)
    with pytest.raises(TypeError, match="Column 'label' holds .*int64.*not strings"):
        as_source(ds, text_column="label")
    with pytest.raises(ValueError, match="empty"):
        as_source(datasets.Dataset.from_dict({"text": []}, features=datasets.Features({"text": datasets.Value("string")})))
    holes = as_source(datasets.Dataset.from_dict({"text": ["a", None, "c"]}))
    with pytest.raises(TypeError, match="Row 1 of column 'text' is a NoneType, not a str"):
        list(holes.documents())
    splits = datasets.DatasetDict({"train": ds, "test": ds})
    with pytest.raises(TypeError, match=r"DatasetDict with the splits \['train', 'test'\]: pick one split"):
        as_source(splits)


def test_save_to_disk_round_trip(tmp_path):
    ds = datasets.Dataset.from_dict({"text": TEXTS, "n": [1, 2, 3, 4]})
    ds.save_to_disk(str(tmp_path / "saved"))
    source = as_source(str(tmp_path / "saved"))
    assert _docs(source) == list(enumerate(TEXTS))
    assert source.description["kind"] == "datasets.load_from_disk"
    assert source.description["path"] == str((tmp_path / "saved").resolve())
    _json_round_trip(source.description)
    assert as_source(tmp_path / "saved").description == source.description  # stable: a continued run matches
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(TypeError, match=r"DatasetDict saved with save_to_disk \(splits \['train', 'validation'\]\)"):
        as_source(tmp_path / "dict")
    assert _docs(as_source(tmp_path / "dict" / "validation")) == list(enumerate(TEXTS))


def test_iterable_dataset_has_no_length_and_skips():
    stream = datasets.Dataset.from_dict({"text": TEXTS}).to_iterable_dataset()
    source = as_source(stream)
    assert _docs(source) == list(enumerate(TEXTS))
    assert _docs(source, 2) == [(2, TEXTS[2]), (3, TEXTS[3])]
    assert source.n_documents is None
    with pytest.raises(TypeError, match="does not know its number of documents"):
        len(source)
    _json_round_trip(source.description)


def _stdlib_files() -> list[Path]:
    """The rule written out independently: non-empty .py files of the standard library folder,
    outside site-packages, dist-packages, __pycache__ and hidden folders, by relative path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if {"site-packages", "dist-packages", "__pycache__"} & set(parts) or any(p.startswith(".") for p in parts):
            continue
        if path.is_file() and path.stat().st_size > 0:
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def test_python_stdlib_first_files_are_the_real_files():
    source = python_stdlib(max_files=5)
    expected = _stdlib_files()[:5]
    assert source.paths == expected
    assert _docs(source) == [(i, p.read_text(encoding="utf-8", errors="replace")) for i, p in enumerate(expected)]
    assert all(text for _, text in _docs(source))
    root = Path(sysconfig.get_paths()["stdlib"])
    assert [d.name for d in source.documents()] == [p.relative_to(root).as_posix() for p in expected]
    description = source.description
    assert description["kind"] == "python_stdlib" and description["files"] == 5 == len(source)
    assert description["python"] == sys.version.split()[0]
    assert description["root"] == sysconfig.get_paths()["stdlib"]
    _json_round_trip(description)
    assert isinstance(source, FilesSource)


def test_python_stdlib_whole():
    source = python_stdlib()
    expected = _stdlib_files()
    assert source.paths == expected and len(source) == len(expected) > 100
    assert not any("site-packages" in p.parts for p in source.paths)
    assert any(p.name == "os.py" for p in source.paths) and Path(os.__file__).resolve() in {p.resolve() for p in expected}
    assert python_stdlib(min_bytes=0).n_documents >= len(source)  # empty files count again
    small = python_stdlib(max_bytes=20_000)
    assert small.paths == [p for p in expected if p.stat().st_size <= 20_000] and len(small) < len(source)
    assert small.description["max_bytes"] == 20_000
    with pytest.raises(ValueError, match="max_bytes"):
        python_stdlib(min_bytes=100, max_bytes=50)
    with pytest.raises(ValueError, match="max_files"):
        python_stdlib(max_files=0)


def test_python_docstrings_are_the_files_docstrings():
    source = python_docstrings()
    assert source.paths == python_stdlib().paths and source.description["kind"] == "python_docstrings"
    _json_round_trip(source.description)
    index = next(i for i, p in enumerate(source.paths) if p.resolve() == Path(json.__file__).resolve())
    doc = next(source.documents(index))
    assert doc.doc_id == index and doc.name == "json/__init__.py"
    # The module's and its functions' docstrings as Python itself cleans them (inspect), in source order.
    assert doc.text.startswith(inspect.cleandoc(json.__doc__))
    assert doc.text.index(inspect.getdoc(json.dump)) < doc.text.index(inspect.getdoc(json.loads))


def test_python_docstrings_of_a_file_without_any_are_empty(tmp_path):
    bare, broken = tmp_path / "bare.py", tmp_path / "broken.py"
    bare.write_text("x = 1\n", encoding="utf-8")
    broken.write_text("def (:\n", encoding="utf-8")
    source = DocstringsSource([bare, broken], {"kind": "test"}, root=tmp_path)
    assert [d.text for d in source.documents()] == ["", ""]
