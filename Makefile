# Quick start: `make run` (set up and run the daemon), `make test` (set up and run every test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The runtime alone (no test tools): what the benchmark needs.
RUNTIME := $(VENV)/.runtime-installed

.PHONY: run test bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("AIOS needs Python >= 3.11" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(RUNTIME): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("AIOS needs Python >= 3.11" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

run: $(STAMP)
	$(BIN)/aios

test: $(STAMP)
	$(BIN)/ruff check aios tests bench scripts
	$(BIN)/ruff format --check aios tests bench scripts
	$(BIN)/mypy
	@# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
	$(BIN)/python -m pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'pytest collected no tests' >&2; exit 1; fi; exit $$rc

# Every figure beside its floor, in one run (docs/performance.md). supervisord, one of the
# floors, is installed from PyPI into .bench-venv/, never into AIOS's own environment.
bench: $(RUNTIME)
	$(BIN)/python -m bench

screenshots: $(STAMP)
	$(BIN)/python -m scripts.screenshots
	$(BIN)/python -m scripts.icon_states
	$(BIN)/python -m scripts.menu_image

clean:
	rm -rf $(VENV) .bench-venv .pytest_cache .mypy_cache .ruff_cache
