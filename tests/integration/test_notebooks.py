"""The notebooks run top to bottom offline, and their views produce HTML."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_renders(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    html = [
        output["data"]["text/html"]
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if "text/html" in output.get("data", {})
    ]
    assert any("ecco-view-tokens" in h for h in html), "no token view rendered"
    if path.name == "01_quickstart.ipynb":
        streamed = [h for h in html if "ecco-stream" in h]
        assert streamed and "London" in streamed[0], "verbose generation did not stream into the notebook"
