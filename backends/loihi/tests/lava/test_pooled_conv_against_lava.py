"""A pooling that is no convolution's block before a convolution (overlapping windows, a map the windows do not
tile), compiled for the loihi target and run by the Lava runner in Lava's bit-accurate process models
(``Loihi2SimCfg(select_tag="fixed_pt")``) and by the emulator: the same spikes, u and v in every population at
every step, and the same readout. The population has two synapses from the one before it: Lava's ``Conv`` with the
composed kernel and a ``Sparse`` of the border corrections, whose messages Lava's InPort sums."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
from lava_checks import assert_program_equals_lava, require_lava
from loihi_graphs import emit_graph, small_cnn
from neurodeploy_loihi.emulator import ConvSynapse, SparseSynapse
from neurodeploy_loihi.program import Program

from neurodeploy.ir import Reshape

require_lava()

STEPS = 10
SAMPLES = 3


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"),
    [
        ((2, 2), (1, 1), (0, 0, 0, 0)),  # 8x8 -> 7x7, overlapping windows
        ((3, 3), (2, 2), (0, 0, 0, 0)),  # 8x8 -> 3x3, a row dropped
        ((3, 3), (2, 2), (0, 0, 1, 1)),  # 8x8 -> 4x4, padded at the end only: the kernel gets a leading zero row
    ],
)
def test_pooled_convolution_equals_lava_fixed_pt_spike_for_spike_and_state_for_state(
    tmp_path: Path, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, ...]
) -> None:
    graph = small_cnn(seed=7)
    ops = {op.name: op for op in graph.ops}
    ops["pool1"].kernel, ops["pool1"].stride, ops["pool1"].padding = kernel, stride, padding
    side = (8 + padding[2] - kernel[0]) // stride[0] + 1
    pooled = (side - 2) // 2 + 1
    flat = Reshape(name="flat", inputs=("p2",), output="f", shape=(6 * pooled * pooled,))
    graph.ops[graph.ops.index(ops["flat"])] = flat
    ops["fc"].weight = np.random.default_rng(8).normal(size=(5, 6 * pooled * pooled)).astype(np.float32)
    graph.verify()
    x = np.random.default_rng(9).random((SAMPLES, 1, 8, 8)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    layer = program.network.layers[1]
    assert isinstance(layer.synapse, ConvSynapse)
    ((fix,),) = [layer.skips]
    assert isinstance(fix.synapse, SparseSynapse)
    assert (fix.source, fix.delay) == (0, 0)
    assert_program_equals_lava(program, x, STEPS, f"pool {kernel} stride {stride} padding {padding}")
