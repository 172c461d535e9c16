"""docs/zoo.md's matrix is what scripts/zoo_matrix.py computes now: every model compiled for every target."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from cli_support import load_script

from neurodeploy.backends.registry import available_backends

pytest.importorskip("torch")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_zoo_matrix_is_current():
    zoo = load_script("zoo_matrix")
    missing = set(zoo.TARGETS) - set(available_backends())
    if missing:
        pytest.skip(f"targets not installed here: {', '.join(sorted(missing))}")
    names, outcomes = zoo.matrix()
    assert len(outcomes) == len(names) * len(zoo.TARGETS)
    assert not any(o.text.startswith("crash") for o in outcomes.values()), [
        (pair, o.text) for pair, o in outcomes.items() if o.text.startswith("crash")
    ]
    assert all(outcomes[name, "reference"].compiled or "LRN" in outcomes[name, "reference"].text for name in names)
    now, documented = zoo.table(names, outcomes), zoo.documented()
    diff = "\n".join(difflib.unified_diff(documented.splitlines(), now.splitlines(), "docs/zoo.md", "now", lineterm=""))
    assert now == documented, f"docs/zoo.md is out of date: run scripts/zoo_matrix.py --write\n{diff}"
