# ledgerflow: every target builds what it needs from nothing but python3.11 (and, for Kafka,
# a JDK and Maven, which scripts/kafka-local uses).
#
#   make run          the server on the embedded log with a demo experiment (http://127.0.0.1:5000)
#   make test         build the wheel, install it with the test extra in .venv-test, lint, run every test
#   make dev          editable install with the test and bench extras, in .venv
#   make lint         build and install the wheel in .venv-test, then ruff and import-linter
#   make bench        benchmarks (bench-quick: the short version)
#   make kafka-start  local single-node Kafka (kafka-stop stops it)
#   make clean        remove venvs, builds, caches and the demo's data

PYTHON ?= python3.11
VENV ?= .venv
TEST_VENV ?= .venv-test
DIST ?= dist
DEMO_HOME ?= ledgerflow-data
PIP_FLAGS ?= --quiet --disable-pip-version-check
PYTEST_ARGS ?=
BENCH_ARGS ?=

# Everything that ends up in the wheel: a change re-installs the package for `make run`.
SOURCES := pyproject.toml $(shell find core ingest schemas projector api -type f \( -name '*.py' -o -name '*.avsc' -o -name '*.json' -o -name 'py.typed' \) -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: run test wheel dev lint bench bench-quick kafka-start kafka-stop clean help

help:
	@sed -n '3,11p' Makefile | sed 's/^# \{0,1\}//'

# ---- the demo venv -----------------------------------------------------------------------

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip

# A regular install, unless `make dev` made .venv editable (then the sources are already live).
$(VENV)/.installed: $(SOURCES) | $(VENV)/bin/python
	@if [ -f $(VENV)/.editable ]; then \
		echo "$(VENV) holds an editable install (make dev): not re-installing"; \
	else \
		$(VENV)/bin/pip install $(PIP_FLAGS) . ; \
	fi
	@touch $@

run: $(VENV)/.installed
	$(VENV)/bin/ledgerflow server --home $(DEMO_HOME) --demo

dev: | $(VENV)/bin/python
	$(VENV)/bin/pip install $(PIP_FLAGS) -e ".[test,bench]"
	@touch $(VENV)/.editable $(VENV)/.installed

# The side-by-side group installs MLflow and FastTrackML into their own venv on first use
# (~/.cache/ledgerflow/bench-peers/...; BENCH_ARGS="--peers-venv DIR" to move it).
bench: dev
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

bench-quick: dev
	$(VENV)/bin/python -m bench --quick $(BENCH_ARGS)

# ---- the test venv: the suite runs against the built wheel, never the source tree ----------

$(TEST_VENV)/bin/python:
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip build

# Lint and tests use the built wheel: import-linter cannot follow the editable install's
# folder mapping (core/ -> ledgerflow), and the tests must see exactly what users install.
wheel: | $(TEST_VENV)/bin/python
	rm -rf $(DIST) build
	$(TEST_VENV)/bin/python -m build --wheel --outdir $(DIST) .
	@set -e; wheel="$$(ls $(DIST)/ledgerflow-*.whl)"; \
	echo "installing $$wheel[test] into $(TEST_VENV)"; \
	$(TEST_VENV)/bin/pip install $(PIP_FLAGS) "$$wheel[test]"; \
	$(TEST_VENV)/bin/pip install $(PIP_FLAGS) --force-reinstall --no-deps "$$wheel"

lint: wheel
	$(TEST_VENV)/bin/ruff check .
	$(TEST_VENV)/bin/lint-imports

# The `pytest` console script (not `python -m pytest`) keeps the repo root off sys.path, so
# `import ledgerflow` can only find the installed wheel. Exit code 5 (no test ran) is a failure.
test: lint
	@set +e; LEDGERFLOW_EXPECT_INSTALLED=wheel $(TEST_VENV)/bin/pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$status

# ---- local Kafka -------------------------------------------------------------------------

kafka-start:
	scripts/kafka-local start

kafka-stop:
	scripts/kafka-local stop

clean:
	rm -rf $(VENV) $(TEST_VENV) $(DIST) build *.egg-info core/*.egg-info $(DEMO_HOME) .pytest_cache .ruff_cache
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
