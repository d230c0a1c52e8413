"""Self-contained HTML rendering of ecco views (notebook fragments and standalone pages).

A view is a JS function ``window.ecco.views[name](root, data)`` shipped as ``ecco/js/{name}.js``.
Everything (CSS, JS, data) is inlined: nothing is ever fetched from the network. The view's root
element first holds a static rendering of the data made in Python (:mod:`ecco.render.static`),
shown where scripts do not run (an untrusted notebook, GitHub, nbviewer, an export without
scripts); the view's script empties the root and draws the interactive view in its place.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .static import static_html

__all__ = ["View", "render_fragment", "save_report", "standalone_page", "view_names"]

_COMMON_JS = "common.js"
# JSON is safe inside <script> once these can no longer form `</script>`, `<!--` or `&...;`.
# Non-ASCII (U+2028/U+2029 included) is already \u-escaped by ensure_ascii.
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("ecco.render", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@functools.cache
def _asset(name: str) -> str:
    """Text of a file in ``ecco/js``; refuses anything that could end its inline tag early."""
    text = (resources.files("ecco") / "js" / name).read_text(encoding="utf-8")
    lowered = text.lower()
    if "</script" in lowered or "</style" in lowered or "<!--" in lowered:
        raise ValueError(f"ecco/js/{name} contains a sequence that cannot be inlined in HTML")
    return text


@functools.cache
def view_names() -> tuple[str, ...]:
    """Names of the views shipped in ``ecco/js`` (one ``{name}.js`` file each)."""
    files = (entry.name for entry in (resources.files("ecco") / "js").iterdir())
    return tuple(sorted(f[:-3] for f in files if f.endswith(".js") and f != _COMMON_JS))


def _check_view(view: str) -> None:
    if view not in view_names():
        raise ValueError(f"unknown view {view!r}; valid views: {', '.join(view_names())}")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays/scalars, torch tensors
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _script_json(data: Any) -> str:
    """JSON for a ``<script type="application/json">`` block; ``json.loads`` of it gives ``data``."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, default=_json_default)
    return text.translate(_JSON_ESCAPES)


def render_fragment(view: str, data: dict[str, Any], *, css: bool = True) -> str:
    """HTML fragment showing ``data`` with the JS view ``view``, for notebook output."""
    _check_view(view)
    data_json = _script_json(data)
    return _env.get_template("fragment.html").render(
        view=view,
        root_id=f"ecco-{uuid.uuid4().hex}",
        data_json=Markup(data_json),
        # The static rendering reads the data exactly as the JS view will (plain JSON values).
        static=static_html(view, json.loads(data_json)),
        css=Markup(_asset("ecco.css")) if css else None,
        js=Markup(_asset(_COMMON_JS) + "\n" + _asset(f"{view}.js")),
    )


def standalone_page(fragments: list[str], title: str = "ecco", summary: Mapping[str, str] | None = None) -> str:
    """A complete offline HTML5 document containing ``fragments`` (trusted HTML from ecco),
    opened by ``title`` and a table of ``summary`` (label -> text, escaped) when given."""
    return _env.get_template("page.html").render(
        title=title, fragments=[Markup(f) for f in fragments], summary=dict(summary or {})
    )


class View:
    """A rendered view: shows inline in Jupyter and can be saved as a standalone HTML file."""

    def __init__(self, view: str, data: dict[str, Any]) -> None:
        _check_view(view)
        self.view = view
        self.data = data

    @functools.cached_property
    def html(self) -> str:
        """The HTML fragment (generated once, so its element id is stable)."""
        return render_fragment(self.view, self.data)

    def _repr_html_(self) -> str:
        # A fresh id per display: showing the same View twice in one notebook must not
        # produce two elements with the same id.
        return render_fragment(self.view, self.data)

    def save_html(self, path: str | Path, title: str = "ecco") -> Path:
        """Write the view as a standalone HTML file and return its path."""
        return save_report([self], path, title)

    def __repr__(self) -> str:
        return f"<ecco View {self.view!r}>"


def save_report(
    views: list[View], path: str | Path, title: str = "ecco", summary: Mapping[str, str] | None = None
) -> Path:
    """Write several views into one standalone HTML file and return its path; ``summary``
    (label -> text, e.g. prompt, model, settings, timings) opens the report."""
    path = Path(path)
    path.write_text(standalone_page([v.html for v in views], title, summary), encoding="utf-8")
    return path
