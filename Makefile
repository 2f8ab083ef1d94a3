# Two commands set everything up on a fresh machine:
#   make book   -> .venv, install, every notebook on the demo profile, the Jupyter Book
#   make test   -> .venv, install, the test suite
# Both are idempotent: the package is reinstalled only when pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.omnifer-installed
MATHJAX := .vendor/static/mathjax/tex-chtml.js
PROFILE ?= demo
# chapters run side by side by `make book JOBS=N` (each kernel gets cpu_count/N threads). One at a time by
# default: the thread count changes floating-point sums, so the demo's numbers would move like a new seed,
# and on the development Xeon two one-thread chapters saved only 5 % (README, "How long it takes here").
JOBS ?= 1
# `make book PROFILE=paper NPROC=4`: the heavy stages first in 4 processes under torchrun, one per GPU
# (README, "Several GPUs, several nodes"); empty: everything in the notebooks' own process.
NPROC ?=
# parameters for every chapter, as `omnifer reproduce -p NAME VALUE` takes them, e.g. one seed for a class:
# `make book PARAMS="-p seeds '[0]'"` (README, "How long it takes here"). The book shows the last run. Every
# chapter reruns when PARAMS change, but cached stages are reused: switching back retrains no learner,
# selection or distilled set (a one-seed run's learners are the seed-0 learners of the full run); chapter 04
# retrains its small evaluation networks. `:=`, not `?=`: an environment variable PARAMS is not picked up.
PARAMS :=

.PHONY: book test lint install mathjax clean help

help:
	@echo "make book   - install into .venv, run every notebook (profile $(PROFILE)), build the book"
	@echo "make test   - install into .venv, lint, and run the tests"
	@echo "make lint   - ruff on the library, the tests and the chapters (through jupytext)"
	@echo "make clean  - remove the built book and executed notebooks (keeps .venv and the cache)"

$(PY):
	@echo ">> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml's content changed (the stamp holds its hash).
install: $(PY)
	@want=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" = "$$want" ]; then \
	  echo ">> $(VENV) is up to date with pyproject.toml (nothing to install)"; \
	else \
	  echo ">> installing omnifer and its dependencies into $(VENV) (first time: a few minutes)"; \
	  $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -e '.[test]' && \
	  $(PY) -m ipykernel install --sys-prefix --name omnifer --display-name "omnifer (.venv)" >/dev/null && \
	  echo "$$want" > $(STAMP) && echo ">> installed; Jupyter kernel 'omnifer' registered in $(VENV)"; \
	fi

# MathJax from npm, so that equations typeset when the book is read offline.
mathjax: $(MATHJAX)
$(MATHJAX):
	@echo ">> vendoring MathJax 3 from npm into .vendor/static (offline math)"
	@mkdir -p .vendor/npm .vendor/static
	@if command -v npm >/dev/null 2>&1 && npm install --silent --no-audit --no-fund --prefix .vendor/npm mathjax@3 >/dev/null 2>&1; then \
	  src=.vendor/npm/node_modules/mathjax/es5; \
	  mkdir -p .vendor/static/mathjax/output/chtml .vendor/static/mathjax/input/tex; \
	  cp $$src/tex-chtml.js .vendor/static/mathjax/; \
	  cp -r $$src/output/chtml/fonts .vendor/static/mathjax/output/chtml/; \
	  cp -r $$src/input/tex/extensions .vendor/static/mathjax/input/tex/; \
	else \
	  echo ">> npm could not fetch mathjax@3: the book will load MathJax from its CDN instead"; \
	  $(PY) tools/vendor_fallback.py .vendor/static/mathjax/tex-chtml.js; \
	fi

book: install mathjax
	@echo ">> running every notebook with profile '$(PROFILE)' and building the book"
	@$(VENV)/bin/omnifer reproduce --profile $(PROFILE) --jobs $(JOBS) $(if $(NPROC),--nproc-per-node $(NPROC)) $(PARAMS)
	@echo ">> the book is at $(CURDIR)/_build/html/index.html"

test: install mathjax lint
	@echo ">> running the tests"
	$(PY) -m pytest
	@echo ">> tests finished"

# The chapters are linted as the Python jupytext makes of them (tools/lint_chapters.py).
lint: install
	@echo ">> linting the library, tests, benchmarks, tools and chapters (ruff)"
	$(VENV)/bin/ruff check omnifer_lib tests benchmarks tools
	$(PY) tools/lint_chapters.py notebooks

clean:
	rm -rf _build book/generated
