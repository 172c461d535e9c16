"""The evaluation code stays split by concern: no function of neurodeploy/evaluate.py or neurodeploy/evaluation/
has a body over 60 lines (signature and docstring not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "neurodeploy"
MODULES = [ROOT / "evaluate.py", *sorted((ROOT / "evaluation").glob("*.py"))]
LIMIT = 60


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return 0 if not body else node.end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_no_long_functions(module: Path) -> None:
    tree = ast.parse(module.read_text())
    long = {
        node.name: _body_lines(node)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > LIMIT
    }
    assert not long, f"{module.name}: functions over {LIMIT} lines: {long}"
