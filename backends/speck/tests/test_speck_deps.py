"""speck_deps.require: a missing sinabs or numba skips, unless its NEURODEPLOY_REQUIRE_* variable is 1 (as
`make test-main` sets it): then it fails."""

import re
from pathlib import Path

import numpy as np
import pytest
from speck_deps import require

MISSING = "neurodeploy_no_such_module"
MAKEFILE = Path(__file__).resolve().parents[3] / "Makefile"


@pytest.mark.parametrize("gate", ["sinabs", "numba"])
def test_a_missing_package_skips_without_the_variable(monkeypatch, gate):
    monkeypatch.delenv(f"NEURODEPLOY_REQUIRE_{gate.upper()}", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"set NEURODEPLOY_REQUIRE_{gate.upper()}=1"):
        require(MISSING, gate)


@pytest.mark.parametrize("gate", ["sinabs", "numba"])
def test_a_missing_package_fails_under_the_variable(monkeypatch, gate):
    monkeypatch.setenv(f"NEURODEPLOY_REQUIRE_{gate.upper()}", "1")
    with pytest.raises(ImportError, match=f"NEURODEPLOY_REQUIRE_{gate.upper()}=1 but {MISSING} cannot be imported"):
        require(MISSING, gate)


@pytest.mark.parametrize("value", [None, "1"])
def test_an_installed_package_is_returned(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("NEURODEPLOY_REQUIRE_NUMBA", raising=False)
    else:
        monkeypatch.setenv("NEURODEPLOY_REQUIRE_NUMBA", value)
    assert require("numpy", "numba") is np


def test_an_unknown_gate_is_an_error():
    with pytest.raises(ValueError, match="unknown gate 'lava'"):
        require("numpy", "lava")


def test_make_test_main_requires_sinabs_and_numba():
    """The test-main recipe (the .venv run, where both are installed) sets both variables."""
    recipe = re.search(r"^test-main:.*\n((?:\t.*\n)+)", MAKEFILE.read_text(), re.MULTILINE)
    assert recipe is not None
    assert "NEURODEPLOY_REQUIRE_SINABS=1" in recipe[1]
    assert "NEURODEPLOY_REQUIRE_NUMBA=1" in recipe[1]
