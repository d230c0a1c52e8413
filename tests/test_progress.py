"""Progress bars: a widget in notebooks with ipywidgets, a plain bar on stdout (not tqdm.auto's red
IProgress warning) in notebooks without it, tqdm's terminal bar elsewhere."""
from __future__ import annotations

import warnings

from tqdm.notebook import tqdm as widget_bar

from ecco import progress


def test_terminal_bar_outside_notebooks():
    bar = progress.progress_bar(total=3, disable=True)
    assert type(bar).__module__ == "tqdm.std"


def test_notebook_without_ipywidgets_gets_a_plain_bar_on_stdout(monkeypatch, capsys):
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress.importlib.util, "find_spec", lambda name: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (IProgress ...) fails the test
        bar = progress.progress_bar(total=3, leave=True)
        bar.update(3)
        bar.close()
    assert type(bar).__module__ == "tqdm.std"
    captured = capsys.readouterr()
    assert "3/3" in captured.out and captured.err == ""


def test_notebook_with_ipywidgets_gets_the_widget(monkeypatch):
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    bar = progress.progress_bar(total=3, disable=True)
    assert isinstance(bar, widget_bar)
