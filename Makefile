# Environments live in the repository root and are reused: `make demo` and `make test` create .venv when it is
# missing or older than the project files, and do nothing more on a second run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The first-party plugins, installed in every environment. The test plugin tests/plugins/dummy_backend (target
# `dummy`) is installed in none: tests/conftest.py provides it to the tests, so `neurodeploy targets` in the
# environment `make demo` runs lists the real targets only. The recipes uninstall it from an environment made
# before that, and depend on this Makefile, so that a changed recipe reinstalls rather than leaving a stale install.
PLUGINS := backends/loihi backends/speck backends/pynn
PLUGIN_FILES := $(addsuffix /pyproject.toml,$(PLUGINS))
TEST_ONLY := neurodeploy-dummy
# The oldest supported Python with numpy 1.x: the core's compatibility run (tests needing torch skip there).
PY310 ?= $(shell for p in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10.*/bin/python3.10; do \
	$$p -c 'import sys' 2>/dev/null && echo $$p && break; done)
COMPAT := .venv-py310
# Lava (lava-nc 0.10.0: Python 3.10, numpy 1.x) with the core and the Loihi plugin: the Loihi emulator is checked
# against Lava's bit-accurate process models there. NEURODEPLOY_REQUIRE_LAVA=1 makes those tests fail, not skip,
# when Lava cannot be imported; elsewhere (a plain pytest in .venv) they skip.
LAVA := .venv-lava

# The simulators the spinnaker target's netlist is checked in: NEST 3.10 (through PyNN 0.13: the generated script
# against the emulator) and sPyNNaker 1!7.4.1 (its own partitioner and placer on a virtual board). The tests run
# the artifact's run_pynn.py with this interpreter, as a user would (NEURODEPLOY_PYNN_PYTHON).
PYNN_ENV := .venv-pynn

.PHONY: env demo test test-main test-compat test-lava lint format bench clean arm-tools browser-tools

env: $(STAMP)

# torch==2.13.0 goes first: it is the local CPU build, and anything that pulls torch later finds it installed.
# sinabs (the Speck cross-check's reference) keeps that torch; it pulls the samna stub, which nothing imports.
# snnTorch (the NIR cross-checks) declares no dependencies; 0.9.4 writes files the nir 1.0.4 sinabs pins can hold.
# numba (the Loihi plugin's `fast` extra, with threadpoolctl) compiles the Speck event mode's loop and the Loihi
# emulator's here; .venv-py310 goes without it, so its run tests the numpy loops.
$(STAMP): Makefile pyproject.toml $(PLUGIN_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip uninstall --quiet --disable-pip-version-check -y $(TEST_ONLY)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[ort,torch,plot,dev,nir,rich,cluster]' \
		$(addprefix -e ,$(filter-out backends/loihi,$(PLUGINS))) -e 'backends/loihi[fast]' 'sinabs==3.1.3'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps 'snntorch==0.9.4'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" sh examples/mnist/demo.sh

# The three suites run side by side after lint (each is mostly one process, and this machine class has two cores
# and memory to spare): the whole run takes about as long as its longest suite rather than their sum. Each suite's
# output is printed as one block when it ends (--output-sync), with its slowest tests (--durations) to show where
# the time goes.
test: lint
	$(MAKE) --no-print-directory -j3 --output-sync=target test-main test-compat test-lava

DURATIONS := --durations=15

# The SpiNNaker emulator is compared with sPyNNaker's tick written in C on GCC's fixed-point `accum` type,
# compiled for ARM and run under qemu (backends/pynn/tests/test_spinnaker_arm.py): Debian's gcc-arm-linux-gnueabihf
# and qemu-user, with the ARM C library's headers (libc6-dev-armhf-cross, only a recommendation of the compiler, so
# not pulled in by --no-install-recommends), installed here when a tool or the headers are missing (apt-get as
# root, else through sudo).
ARM_TOOLS := arm-linux-gnueabihf-gcc qemu-arm
ARM_HEADER := /usr/arm-linux-gnueabihf/include/stdint.h
arm-tools:
	@missing=; for tool in $(ARM_TOOLS); do command -v $$tool >/dev/null || missing=1; done; \
	test -f $(ARM_HEADER) || missing=1; \
	if [ -n "$$missing" ]; then \
		as_root=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$as_root apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$as_root apt-get install -y -q --no-install-recommends gcc-arm-linux-gnueabihf \
			libc6-dev-armhf-cross qemu-user; \
	fi

# Every artifact's report.html is opened in headless Chromium (tests/headless_chromium.py: console errors, images
# that do not load, a screenshot), as a person would open it: Debian's chromium, installed here when it is missing
# (apt-get as root, else through sudo).
browser-tools: | arm-tools
	@if ! command -v chromium >/dev/null; then \
		as_root=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$as_root apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$as_root apt-get install -y -q --no-install-recommends chromium; \
	fi

$(PYNN_ENV)/.installed: Makefile
	test -x $(PYNN_ENV)/bin/python || $(PYTHON) -m venv $(PYNN_ENV)
	$(PYNN_ENV)/bin/python -m pip install --quiet --disable-pip-version-check 'nest-simulator==3.10.0' 'PyNN==0.13.0' \
		'spynnaker==1!7.4.1'
	$(PYNN_ENV)/bin/python -c 'import nest, pyNN.nest, pyNN.spiNNaker' >/dev/null 2>&1 || \
		{ echo "error: NEST, PyNN or sPyNNaker does not import in $(PYNN_ENV)"; exit 1; }
	touch $@

# The sinabs cross-checks, the numba-compiled loops, the ARM reference, the PyNN simulators and the browser check
# must run here: NEURODEPLOY_REQUIRE_SINABS=1, NEURODEPLOY_REQUIRE_NUMBA=1, NEURODEPLOY_REQUIRE_ARM=1,
# NEURODEPLOY_REQUIRE_PYNN=1, NEURODEPLOY_REQUIRE_CHROMIUM=1, NEURODEPLOY_REQUIRE_DASK=1 (the Dask engine's
# tests, which start a two-worker local cluster) and NEURODEPLOY_REQUIRE_TORCH=1 (the torch emulator engines, on the
# CPU) turn their skip (without the package or the tools) into a failure. The compatibility run requires none of them.
test-main: $(STAMP) arm-tools browser-tools $(PYNN_ENV)/.installed
	NEURODEPLOY_REQUIRE_SINABS=1 NEURODEPLOY_REQUIRE_NUMBA=1 NEURODEPLOY_REQUIRE_ARM=1 NEURODEPLOY_REQUIRE_CHROMIUM=1 \
		NEURODEPLOY_REQUIRE_PYNN=1 NEURODEPLOY_REQUIRE_SNNTORCH=1 NEURODEPLOY_REQUIRE_DASK=1 NEURODEPLOY_REQUIRE_TORCH=1 \
		NEURODEPLOY_PYNN_PYTHON=$(CURDIR)/$(PYNN_ENV)/bin/python $(BIN)/python -m pytest $(DURATIONS)

$(COMPAT)/.installed: Makefile pyproject.toml $(PLUGIN_FILES)
	@test -n "$(PY310)" || { echo "error: no Python 3.10 found (looked on PATH and in pyenv); install it or set PY310=/path/to/python3.10"; exit 1; }
	test -x $(COMPAT)/bin/python || $(PY310) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip uninstall --quiet --disable-pip-version-check -y $(TEST_ONLY)
	$(COMPAT)/bin/python -m pip install --quiet --disable-pip-version-check 'numpy>=1.26,<2' onnxruntime pytest \
		hypothesis -e '.[nir]' $(addprefix -e ,$(PLUGINS))
	$(COMPAT)/bin/python -c 'import numpy, sys; sys.exit(numpy.__version__ >= "2")' || \
		{ echo "error: the compatibility environment must have numpy 1.x"; exit 1; }
	touch $@

test-compat: $(COMPAT)/.installed
	$(COMPAT)/bin/python -m pytest -q -p no:cacheprovider $(DURATIONS)

# lava-dl 0.6.0 (its netx reads the .net files the Loihi backend writes) pins torch 2.3, a CUDA build: it goes in
# with --no-deps, beside the CPU torch==2.13.0 and the torchvision of that torch, and the packages its imports need
# (opencv < 4.12 still builds against numpy 1.x); numpy < 2 is pinned again in the last install. numba compiles
# the Loihi emulator's event loops, so the Lava cross-checks test those loops against Lava.
$(LAVA)/.installed: Makefile pyproject.toml backends/loihi/pyproject.toml
	@test -n "$(PY310)" || { echo "error: no Python 3.10 found for $(LAVA) (lava-nc 0.10.0 runs only on 3.10; looked on PATH and in pyenv); install it or set PY310=/path/to/python3.10"; exit 1; }
	test -x $(LAVA)/bin/python || $(PY310) -m venv $(LAVA)
	$(LAVA)/bin/python -m pip install --quiet --disable-pip-version-check 'numpy>=1.26,<2' 'lava-nc==0.10.0' h5py \
		pytest -e . -e 'backends/loihi[lava,fast]'
	$(LAVA)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'lava-dl==0.6.0' 'torchvision==0.28.0'
	$(LAVA)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 'opencv-python-headless<4.12' \
		matplotlib scipy 'numba>=0.60' 'numpy>=1.26,<2'
	$(LAVA)/bin/python -c 'import lava, numpy, sys; sys.exit(numpy.__version__ >= "2")' || \
		{ echo "error: $(LAVA) must have lava-nc and numpy 1.x"; exit 1; }
	$(LAVA)/bin/python -c 'from lava.lib.dl import netx' || { echo "error: lava-dl's netx does not import in $(LAVA)"; exit 1; }
	$(LAVA)/bin/python -c 'from neurodeploy_loihi import _compiled; assert _compiled.kernels()' || \
		{ echo "error: numba is missing in $(LAVA) (it compiles the Loihi event loops)"; exit 1; }
	touch $@

test-lava: $(LAVA)/.installed
	NEURODEPLOY_REQUIRE_LAVA=1 $(LAVA)/bin/python -m pytest -q -p no:cacheprovider $(DURATIONS) backends/loihi/tests/lava

# mypy type-checks the core (neurodeploy/; settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/compile_time.py

clean:
	rm -rf $(VENV) $(COMPAT) $(LAVA) $(PYNN_ENV) demo-out .pytest_cache .ruff_cache
