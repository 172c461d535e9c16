"""docs/supported-ops.md is what scripts/ops_table.py writes now: every probe compiled for every target."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from cli_support import load_script

from neurodeploy.backends.registry import available_backends

ROOT = Path(__file__).resolve().parent.parent


def test_every_registered_op_has_a_probe():
    load_script("ops_table").check_coverage()


def test_the_supported_ops_page_is_current():
    table = load_script("ops_table")
    missing = set(table.TARGETS) - set(available_backends())
    if missing:
        pytest.skip(f"targets not installed here: {', '.join(sorted(missing))}")
    now = table.page()
    assert "crash, " not in now, "a probe crashed the compiler (a defect: every refusal should be a named error)"
    documented = table.DOC.read_text() if table.DOC.exists() else ""
    diff = "\n".join(
        difflib.unified_diff(documented.splitlines(), now.splitlines(), "docs/supported-ops.md", "now", lineterm="")
    )
    assert now == documented, f"docs/supported-ops.md is out of date: run {table.COMMAND}\n{diff}"
