"""Concat networks compiled for the loihi target (binary mode), run by the Lava runner in Lava's bit-accurate
process models (``Loihi2SimCfg(select_tag="fixed_pt")``) and by the emulator: the same spikes, u and v in every
population at every Loihi step, and the same readout.

Each network is a DenseNet-style block (``loihi_graphs.concat_block``): spike maps of two or three depths are
concatenated along the channel axis and read by a Conv2d (with or without a pooling folded in) or, after a
flatten, a Dense, so the population after the Concat has one synapse per concatenated input, whose int32 messages
Lava's InPort sums before the neuron's arithmetic: from the deepest input a ``Conv`` / ``Dense`` with its slice of
the weights, from each shallower one a ``DelaySparse`` (the taps of its conv slice) or a ``DelayDense`` (its Dense
columns) delayed by the depth difference. The artifact is read back
from its folder (``Program.load``), so Lava runs what a board would get.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
from lava_checks import assert_program_equals_lava, require_lava
from loihi_graphs import concat_block, emit_graph
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, SparseSynapse
from neurodeploy_loihi.program import Program

require_lava()

STEPS = 10
SAMPLES = 3
NETWORKS = [
    # seed, head, concatenated IF outputs, reset, the main synapse Lava gets, the skips' delays
    (0, "conv", ("sa", "sb"), "subtract", "Conv", [1]),
    (1, "pool_conv", ("sa", "sc", "sb"), "zero", "Conv", [2, 1]),
    (2, "dense", ("sb", "sa"), "subtract", "Dense", [1]),
    (3, "dense", ("sc", "sa", "sb"), "zero", "Dense", [2, 1]),
    (4, "conv", ("sb", "sc", "sa"), "subtract", "Conv", [1, 2]),
]


@pytest.mark.parametrize(("seed", "head", "order", "reset", "lava_main", "delays"), NETWORKS)
def test_concat_equals_lava_fixed_pt_spike_for_spike_and_state_for_state(
    tmp_path: Path, seed: int, head: str, order: tuple[str, ...], reset: str, lava_main: str, delays: list[int]
) -> None:
    graph = concat_block(seed, head, order, reset)
    x = np.random.default_rng(100 + seed).random((SAMPLES, 1, 6, 6)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    joined = [layer for layer in program.network.layers if layer.skips]
    assert len(joined) == 1
    (layer,) = joined
    assert ("Conv" if isinstance(layer.synapse, ConvSynapse) else "Dense") == lava_main
    assert [s.delay for s in layer.skips] == delays
    delayed = DenseSynapse if lava_main == "Dense" else SparseSynapse  # DelayDense / DelaySparse
    assert all(isinstance(s.synapse, delayed) for s in layer.skips)
    assert program.delay == len(order) + 1
    assert_program_equals_lava(program, x, STEPS, f"{graph.name} seed {seed}")


@pytest.mark.parametrize("head", ["dense", "conv"])
def test_concat_before_the_readout_equals_lava_fixed_pt(tmp_path: Path, head: str) -> None:
    """An Inception block's end: the readout reads a Concat of two neuron layers (through a flatten and a Dense, or a
    Conv), so the readout population has a synapse per input, the shallower one delayed a step."""
    from neurodeploy.ir import Concat, Conv2d, Dense, Graph, Reshape, TensorType
    from neurodeploy.ir.neurons import IF

    rng = np.random.default_rng(11)
    ops = [
        Conv2d(name="conv1", inputs=("x",), output="c1", weight=rng.normal(size=(2, 1, 3, 3)).astype(np.float32)),
        IF(name="if_a", inputs=("c1",), output="sa", threshold=np.float32(1)),
        Conv2d(name="conv2", inputs=("sa",), output="c2", weight=rng.normal(size=(3, 2, 3, 3)).astype(np.float32)),
        IF(name="if_b", inputs=("c2",), output="sb", threshold=np.float32(1)),
        Concat(name="cat", inputs=("sa", "sb"), output="cat_out", axis=0),
    ]
    if head == "dense":
        ops += [
            Reshape(name="flat", inputs=("cat_out",), output="f", shape=(5 * 4 * 4,)),
            Dense(name="out", inputs=("f",), output="y", weight=rng.normal(size=(4, 80)).astype(np.float32)),
        ]
    else:
        weight = rng.normal(size=(2, 5, 1, 1)).astype(np.float32)
        ops.append(Conv2d(name="out", inputs=("cat_out",), output="y", weight=weight))
    for op in ops:  # the convolutions keep the 6x6 map 4x4 (no padding, 3x3)
        if isinstance(op, Conv2d) and op.name == "conv2":
            op.padding = (1, 1, 1, 1)
    graph = Graph(f"concat_readout_{head}", {"x": TensorType((1, 6, 6))}, ["y"], ops)
    graph.verify()
    x = np.random.default_rng(12).random((SAMPLES, 1, 6, 6)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    readout = program.network.layers[-1]
    assert [s.delay for s in readout.skips] == [1]
    assert_program_equals_lava(program, x, STEPS, graph.name)
