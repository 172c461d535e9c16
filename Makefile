# Environments live in the repository root and are reused: `make demo` and `make test` create .venv when it is
# missing or older than the project files, and do nothing more on a second run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := tests/plugins/dummy_backend
# The oldest supported Python with numpy 1.x: the core's compatibility run (tests needing torch skip there).
PY310 ?= $(shell for p in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10.*/bin/python3.10; do \
	$$p -c 'import sys' 2>/dev/null && echo $$p && break; done)
COMPAT := .venv-py310

.PHONY: env demo test test-main test-compat lint format bench clean

env: $(STAMP)

# torch==2.13.0 goes first: it is the local CPU build, and anything that pulls torch later finds it installed.
$(STAMP): pyproject.toml $(PLUGINS)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[ort,torch,plot,dev]' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" sh examples/mnist/demo.sh

test: lint test-main test-compat

test-main: $(STAMP)
	$(BIN)/python -m pytest

$(COMPAT)/.installed: pyproject.toml $(PLUGINS)/pyproject.toml
	@test -n "$(PY310)" || { echo "error: no Python 3.10 found (looked on PATH and in pyenv); install it or set PY310=/path/to/python3.10"; exit 1; }
	test -x $(COMPAT)/bin/python || $(PY310) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install --quiet --disable-pip-version-check 'numpy>=1.26,<2' onnxruntime pytest \
		hypothesis -e . $(addprefix -e ,$(PLUGINS))
	$(COMPAT)/bin/python -c 'import numpy, sys; sys.exit(numpy.__version__ >= "2")' || \
		{ echo "error: the compatibility environment must have numpy 1.x"; exit 1; }
	touch $@

test-compat: $(COMPAT)/.installed
	$(COMPAT)/bin/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/compile_time.py

clean:
	rm -rf $(VENV) $(COMPAT) demo-out .pytest_cache .ruff_cache
