"""Headless Debian Chromium for the view tests: pages open from file://, fully offline."""

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported lazily below, so ECCO_SKIP_BROWSER=1 works without playwright
    from playwright.sync_api import Browser, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LOCAL_SCHEMES = ("file:", "data:")


@pytest.fixture(scope="session")
def chromium() -> Iterator["Browser"]:
    """The browser, once per session. Missing Chromium fails unless ECCO_SKIP_BROWSER=1."""
    if os.environ.get("ECCO_SKIP_BROWSER") == "1":
        pytest.skip("browser tests skipped (ECCO_SKIP_BROWSER=1)")
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (`make browser` or "
            "`apt-get install chromium`), or set ECCO_SKIP_BROWSER=1 to skip the browser tests"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_html(chromium: "Browser", tmp_path: Path) -> Iterator[Callable[[str], "Page"]]:
    """open_html(html) -> page: the html loaded from a file:// URL. At teardown, fails on any
    non-local request (they are also blocked), console error or uncaught page error."""
    context = chromium.new_context()
    external: list[str] = []
    errors: list[str] = []
    counter = itertools.count()

    def block_remote(route: "Route") -> None:
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", block_remote)
    context.on("request", lambda r: None if r.url.startswith(LOCAL_SCHEMES) else external.append(r.url))

    def open_page(html: str) -> "Page":
        path = tmp_path / f"page{next(counter)}.html"
        path.write_text(html, encoding="utf-8")
        page = context.new_page()
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.goto(path.as_uri())
        return page

    yield open_page
    context.close()
    assert not external, f"network requests from an offline view: {sorted(set(external))}"
    assert not errors, f"browser errors: {errors}"
