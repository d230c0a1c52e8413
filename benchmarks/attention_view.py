"""Size and load time of the attention model view for SmolLM2 on 100 tokens (30 layers x 9 heads).

Targets: the standalone HTML is at most 5 MB and is interactive in headless Chromium within
2 s of load (all 270 thumbnails drawn and a click enlarges one). Needs Debian's chromium.
Run: ``.venv/bin/python benchmarks/attention_view.py``.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

import ecco

PROMPT = "The history of the city begins with a small settlement on the banks of the river, where"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    torch.set_num_threads(2)
    lm = ecco.from_pretrained("smollm2-135m", attention=True, verbose=False)
    n_prompt = len(lm.tokenizer(PROMPT)["input_ids"])
    output = lm.generate(PROMPT, generate=100 - n_prompt, min_new_tokens=100 - n_prompt)
    path = Path(tempfile.mkdtemp()) / "model_view.html"
    output.attention_model_view().save_html(path)
    size = path.stat().st_size / 2**20
    print(f"{len(output.sequences[0])} tokens, attention {tuple(output.attention['decoder'].shape[1:3])} layers x heads")
    print(f"HTML size: {size:.2f} MB (target <= 5 MB)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("document.querySelectorAll('canvas.ecco-thumb').length === 270")
        page.locator('canvas.ecco-thumb[data-layer="29"][data-head="8"]').click()
        page.wait_for_selector(".ecco-att-zoom")
        seconds = time.perf_counter() - start
        browser.close()
    print(f"load -> all thumbnails drawn -> click enlarges: {seconds:.2f} s (target <= 2 s)")


if __name__ == "__main__":
    main()
