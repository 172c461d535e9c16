"""The text form is stable: golden files under tests/ir/golden (regenerate with UPDATE_GOLDEN=1)."""

import os
from pathlib import Path

import pytest
from ir_graphs import conv_net, inputs_for, residual_net

from neurodeploy.ir import format_graph
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline

GOLDEN = Path(__file__).parent / "golden"


def converted_residual():
    graph = residual_net()
    PassManager(build_pipeline(f"{CANONICALIZE},convert-to-snn")).run(graph, PassContext(calibration=inputs_for(graph)))
    return graph


@pytest.mark.parametrize(("name", "make"), [("conv_net", conv_net), ("residual_net_snn", converted_residual)])
def test_text_form_matches_golden(name, make):
    text = format_graph(make())
    path = GOLDEN / f"{name}.ir"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
