"""Progress bars that work everywhere without warnings.

In a notebook with ipywidgets (a dependency of ecco) the bar is a widget; in a notebook
without it, a plain text bar on standard output (tqdm.auto would print the red "IProgress not
found" warning there); elsewhere tqdm's usual terminal bar.
"""
from __future__ import annotations

import importlib.util
import sys

from tqdm import tqdm as text_bar

from .stream import in_notebook


def progress_bar(**options) -> text_bar:
    """A tqdm bar (``total``, ``desc``, ``disable``, ``leave``, ...) suited to where ecco runs."""
    if in_notebook():
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm as widget_bar

            return widget_bar(**options)
        return text_bar(file=sys.stdout, **options)
    return text_bar(**options)
