"""Live display of tokens as they are generated, in notebooks only."""
from __future__ import annotations

import html

import torch
from transformers import PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Jupyter, JupyterLab, VS Code, Colab)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class NotebookStreamer(BaseStreamer):
    """A transformers streamer that updates one HTML display per generated token.

    The prompt is shown plain and the generated text highlighted; all text is escaped.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        from IPython.display import HTML, display

        self._tokenizer = tokenizer
        self._html = HTML
        self._prompt: list[int] = []
        self._generated: list[int] = []
        self._handle = display(HTML(""), display_id=True)

    def put(self, value: torch.Tensor) -> None:
        """Take the next token ids from ``generate`` (the prompt first) and redraw."""
        ids = value.reshape(-1).tolist()
        if not self._prompt:
            self._prompt = ids
        else:
            self._generated.extend(ids)
        self._refresh()

    def end(self) -> None:
        """Generation finished: draw the final text."""
        self._refresh()

    def _refresh(self) -> None:
        decode = self._tokenizer.decode
        prompt = html.escape(decode(self._prompt, skip_special_tokens=True))
        generated = html.escape(decode(self._generated, skip_special_tokens=True))
        self._handle.update(
            self._html(
                '<div class="ecco-stream" style="font-family:monospace;white-space:pre-wrap">'
                f'{prompt}<span style="background:rgba(255,190,60,.35)">{generated}</span></div>'
            )
        )
