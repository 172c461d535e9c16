"""Leaky neurons of a spiking import (LIF ops: a NIR file's LIF and CubaLIF) on Loihi 2: v's decay as dv, the
synaptic current's as du, in Lava's LIF (reset to zero) and in the subtractive neuron (reset by subtraction), run in
Lava's bit-accurate process models and in the emulator: the same spikes, u and v in every population at every
Loihi step, and the same readout."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
from lava_checks import assert_program_equals_lava, require_lava
from loihi_graphs import emit_graph
from neurodeploy_loihi.program import Program

from neurodeploy.ir import LIF, AvgPool2d, Conv2d, Dense, Graph, Reshape, TensorType

require_lava()


def leaky_net(reset: str, strict: bool) -> Graph:
    """Conv -> LIF (v decays by 7/8) -> pool -> Dense -> CubaLIF (u decays by 3/4, v by 0.9) -> Dense -> LIF."""
    rng = np.random.default_rng(3)
    f = np.float32
    common = {"reset": reset, "strict": strict, "drive": f(0.0)}
    graph = Graph(name="leaky", inputs={"x": TensorType((1, 8, 8))}, outputs=["s3"])
    graph.ops = [
        Conv2d(
            name="c1", inputs=("x",), output="h1", weight=rng.uniform(0, 0.5, (4, 1, 3, 3)).astype(f), padding=(1,) * 4
        ),
        LIF(name="n1", inputs=("h1",), output="s1", decay=f(0.875), gain=f(1.0), threshold=f(0.6), **common),
        AvgPool2d(name="p1", inputs=("s1",), output="p1", kernel=(2, 2), stride=(2, 2)),
        Reshape(name="f1", inputs=("p1",), output="f1", shape=(64,)),
        Dense(name="d2", inputs=("f1",), output="h2", weight=rng.uniform(-0.2, 0.6, (12, 64)).astype(f)),
        LIF(
            name="n2",
            inputs=("h2",),
            output="s2",
            decay=f(0.9),
            gain=f(1.0),
            threshold=f(1.0),
            syn_decay=f(0.75),
            syn_gain=f(1.0),
            **common,
        ),
        Dense(
            name="d3",
            inputs=("s2",),
            output="h3",
            weight=rng.normal(0, 0.6, (5, 12)).astype(f),
            bias=np.full(5, 0.05, f),
        ),
        LIF(name="n3", inputs=("h3",), output="s3", decay=f(0.8), gain=f(1.0), threshold=f(0.5), **common),
    ]
    return graph


@pytest.mark.parametrize(("reset", "strict"), [("zero", True), ("subtract", True), ("zero", False)])
def test_leaky_neurons_equal_lava_fixed_pt_spike_for_spike_and_state_for_state(
    reset: str, strict: bool, tmp_path: Path
) -> None:
    x = np.random.default_rng(5).random((3, 1, 8, 8)).astype(np.float32)
    emit_graph(leaky_net(reset, strict), tmp_path, None)
    program = Program.load(tmp_path)
    neurons = [layer.neuron for layer in program.network.layers]
    assert [(n.du, n.dv) for n in neurons] == [(4095, 512), (1023, 410), (4095, 819)]
    assert_program_equals_lava(program, x, 24, f"leaky reset={reset} strict={strict}")
