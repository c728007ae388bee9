# Quick start: `make run` (set up and run AIOS), `make test` (set up and run every test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Two stamps: running (and the benchmark) needs only AIOS and its dependencies; the test tools
# (pytest, Playwright, ruff, mypy: most of the venv's size) are added by the first `make test`.
STAMP      := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP        := $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: run test agents bench soak screenshots smoke-agents clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("AIOS needs Python >= 3.11" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PIP) install -e '.[test]'
	touch $(TEST_STAMP)

run: $(STAMP)
	$(BIN)/aios

test: $(TEST_STAMP)
	@# The real-agents tier's CLIs (see agents): where they cannot be installed, outside CI the
	@# tier is skipped and says why; in CI that fails.
	$(BIN)/python -m scripts.install_agents --if-possible
	$(BIN)/ruff check aios tests bench scripts
	$(BIN)/ruff format --check aios tests bench scripts
	$(BIN)/mypy
	@# The hundreds of daemons the tests start import AIOS byte-compiled, as pip leaves a package
	@# it puts in place (an editable copy leaves that to each import, and with
	@# PYTHONDONTWRITEBYTECODE set every daemon compiled all of AIOS again).
	$(BIN)/python -m compileall -q aios
	@# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
	@# One worker a core, at most four (pytest-xdist): most of the suite waits on daemons, agents
	@# and browsers, so two workers on two cores take it from about 9.8 to 6 minutes. worksteal:
	@# a worker left with the slow real-agents tests hands the rest on.
	$(BIN)/python -m pytest --numprocesses=auto --maxprocesses=4 --dist=worksteal; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'pytest collected no tests' >&2; exit 1; fi; exit $$rc

# The agent CLIs of the real-agents tier at their pinned versions (agents/), into .agents/ (never
# global, never on the user's PATH); a no-op once they are there (docs/agents.md).
agents:
	$(PYTHON) -m scripts.install_agents

# Every figure beside its floor, in one run (docs/performance.md). supervisord, one of the
# floors, is installed from PyPI into .bench-venv/, never into AIOS's own environment.
bench: $(STAMP)
	$(BIN)/python -m bench

# Flat under long use: 10,000 short runs with 20 SSE clients (some minutes; docs/performance.md).
soak: $(STAMP)
	$(BIN)/python -m bench soak

screenshots: $(TEST_STAMP)
	$(BIN)/python -m scripts.screenshots
	$(BIN)/python -m scripts.icon_states
	$(BIN)/python -m scripts.tray_pictures

# Not run in CI: tries whichever real agent CLIs are installed here, through AIOS.
smoke-agents: $(STAMP)
	$(BIN)/python -m scripts.smoke_agents

clean:
	rm -rf $(VENV) .bench-venv .agents .pytest_cache .mypy_cache .ruff_cache
