# Environments live in the repository root and are reused: `make demo` and `make test` create .venv when it is
# missing or older than the project files, and do nothing more on a second run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := tests/plugins/dummy_backend

.PHONY: env demo test lint format bench clean

env: $(STAMP)

# torch==2.13.0 goes first: it is the local CPU build, and anything that pulls torch later finds it installed.
$(STAMP): pyproject.toml $(PLUGINS)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[ort,torch,plot,dev]' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" sh examples/mnist/demo.sh

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/compile_time.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
