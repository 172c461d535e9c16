"""The optional packages some Speck tests need: sinabs (and torch under it) for the cross-checks against sinabs'
layers, numba for the compiled loops. Without the package a test skips (as in the compatibility run,
`.venv-py310`), unless NEURODEPLOY_REQUIRE_SINABS=1 or NEURODEPLOY_REQUIRE_NUMBA=1 says it must run: `make
test-main` (so CI) sets both, and there a missing package fails the test, or the collection of its module."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

GATES = ("sinabs", "numba")


def require(module: str, gate: str) -> ModuleType:
    """``module`` imported. Without it: ``pytest.importorskip``'s skip (of the calling test, or of the whole module
    when called at import), or, when the environment variable NEURODEPLOY_REQUIRE_<GATE> is 1, an ImportError that
    says which variable demands it."""
    if gate not in GATES:
        raise ValueError(f"unknown gate {gate!r}; one of {', '.join(GATES)}")
    variable = f"NEURODEPLOY_REQUIRE_{gate.upper()}"
    if os.environ.get(variable) != "1":
        return pytest.importorskip(module, reason=f"{module} is not installed (set {variable}=1 to fail instead)")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{variable}=1 but {module} cannot be imported ({exc}): these tests must run here; `make env` installs "
            "it in .venv"
        ) from exc
