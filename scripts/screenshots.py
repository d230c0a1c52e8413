"""Screenshots of every ecco view, from the real views, for the docs and the README.

Builds outputs with the two bundled offline models, saves each view as a standalone HTML file,
opens it in headless Chromium (Debian's ``/usr/bin/chromium`` through playwright), hovers or
clicks where that shows the interaction, and writes a PNG cropped to the view into ``docs/img/``.

    .venv/bin/python scripts/screenshots.py [--out docs/img] [--only rankings,tokens]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Heathrow airport is located in the city of"
CHROMIUM = os.environ.get("ECCO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
VIEWPORT = {"width": 1100, "height": 900}


def hover(selector: str, nth: int = -1):
    def act(root):
        items = root.locator(selector)
        items.nth(items.count() + nth if nth < 0 else nth).hover()
    return act


def click(selector: str, nth: int = 0):
    def act(root):
        root.locator(selector).nth(nth).click()
    return act


def build_views() -> list[tuple[str, object, object]]:
    """(png name, view, interaction or None) for every view."""
    import ecco

    lm = ecco.from_pretrained("smollm2-135m", activations=True, attention=True, verbose=False)
    out = lm.generate(PROMPT, generate=6, attribution=["ig"])
    n = len(out.tokens[0])
    last_input = out.n_input_tokens - 1
    top = out.top_neurons(position=last_input, printJson=True)[0]
    views = [
        ("tokens", out.tokens_view(), hover(".ecco-token", last_input)),
        ("attribution_minimal", out.primary_attributions(attr_method="ig", style="minimal"),
         hover('.ecco-token[data-position="%d"]' % (n - 1), 0)),
        ("attribution_detailed", out.primary_attributions(attr_method="ig", style="detailed"),
         hover('.ecco-token[data-position="%d"]' % (last_input + 1), 0)),
        ("layer_predictions", out.layer_predictions(position=last_input, topk=8), None),
        ("rankings", out.rankings(), None),
        ("trajectories", out.trajectories(), None),
        ("nmf", out.run_nmf(n_components=6).explore(), None),
        ("neuron", out.neuron_view(top["layer"], top["neuron"]), None),
        ("top_neurons", out.top_neurons(position=last_input), None),
        ("similarity", out.layer_similarity("cka"), None),
        ("attention_head", out.attention_head_view(layer=3),
         hover('.ecco-att-token[data-side="left"]', last_input)),
        ("attention_model", out.attention_model_view(), None),
        ("attention_neuron", out.attention_neuron_view(3, 2), None),
    ]
    enc = ecco.from_pretrained("minilm-l6", activations=True, attention=True, verbose=False)
    encoded = enc("The cat sat on the mat.", text_pair="A cat was sitting on the rug.")
    views.append(("attention_head_pair", encoded.attention_head_view(layer=2),
                  hover('.ecco-att-token[data-side="left"]', 2)))
    return views


def shoot(views, out_dir: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
        for name, view, act in views:
            html = Path(tmp) / f"{name}.html"
            view.save_html(html)
            page.goto(html.as_uri())
            root = page.locator(".ecco-view").first
            root.wait_for(state="visible")
            page.wait_for_timeout(300)
            if act is not None:
                try:
                    act(root)
                except Exception as exc:  # an interaction is a nicety, the picture still counts
                    print(f"{name}: interaction skipped ({exc.__class__.__name__}: {exc})", file=sys.stderr)
                page.wait_for_timeout(300)
            png = out_dir / f"{name}.png"
            root.screenshot(path=str(png), animations="disabled")
            _shrink(png)
            written.append(png)
            print(f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}: {png.stat().st_size // 1024} KB")
        browser.close()
    return written


def _shrink(png: Path, limit: int = 300_000, max_height: int = 1400) -> None:
    """Keep PNGs small: cap the height and quantise the palette when needed (Pillow, via matplotlib)."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(png) as img:
        img.load()
    if img.height > max_height:
        img = img.crop((0, 0, img.width, max_height))
        img.save(png, optimize=True)
    if png.stat().st_size > limit:
        img.convert("RGB").quantize(colors=128).save(png, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--only", default=None, help="comma-separated PNG names")
    args = parser.parse_args(argv)
    views = build_views()
    if args.only:
        keep = set(args.only.split(","))
        views = [v for v in views if v[0] in keep]
    shoot(views, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
