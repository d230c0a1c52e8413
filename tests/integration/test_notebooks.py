"""The notebooks run top to bottom offline, and their views produce HTML."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration

# Views each notebook must render (besides the token view every notebook shows).
EXPECTED_VIEWS = {
    "02_layer_predictions.ipynb": ["layer_predictions", "rankings"],
    "03_rankings_watch.ipynb": ["rankings"],
    "04_primary_attributions.ipynb": ["attribution"],
    "05_nmf_causal.ipynb": ["nmf"],
    "06_nmf_minilm.ipynb": ["nmf", "top_neurons", "neuron"],
    "07_attention.ipynb": ["attention_head", "attention_model", "attention_neuron"],
    "08_layer_similarity.ipynb": ["similarity"],
    "09_encoder_decoder_t5.ipynb": ["rankings", "attribution", "attention_head"],
    "10_bring_your_own_model.ipynb": ["rankings"],
    "11_karpathy_neurons.ipynb": ["neuron_dashboard", "nmf"],
    "12_faithful_attribution.ipynb": ["faithfulness", "attribution"],
    "13_causal_heathrow.ipynb": ["causal_trace", "logit_attribution", "intervention_diff"],
    "14_tuned_lens.ipynb": ["rankings", "trajectory"],
}
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
    # No red warnings: nothing on stderr (tqdm's "IProgress not found", deprecation notes...).
    stderr = [
        "".join(output.get("text", "")) for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", []) if output.get("name") == "stderr"
    ]
    assert not any("IProgress" in text or "Warning" in text for text in stderr), stderr
    if path.name == "01_quickstart.ipynb":
        streamed = [h for h in html if "ecco-stream" in h]
        assert streamed and "London" in streamed[0], "verbose generation did not stream into the notebook"
    for view in EXPECTED_VIEWS.get(path.name, []):
        assert any(f"ecco-view-{view}\"" in h or f"ecco-view-{view} " in h for h in html), f"no {view} view rendered"
