"""Residual networks compiled for the loihi target (binary mode), run by the Lava runner in Lava's bit-accurate
process models (``Loihi2SimCfg(select_tag="fixed_pt")``) and by the emulator: the same spikes, u and v in every
population at every Loihi step, and the same readout.

Each network is a residual block (``loihi_graphs.residual_block``): the skip from the first population joins
the main path at an Add before the last IF neurons, so that population has two synapses, whose int32 messages
Lava's InPort sums before the neuron's arithmetic; an identity or Scale skip is one-to-one synapses, Lava's
``Sparse`` with a diagonal matrix (``DelaySparse`` with delay 1 where the skip is one synapse shorter than the main
path), a 1x1-conv skip a ``DelaySparse`` of its taps where delayed, or a second ``Conv``. The artifact is read
back from its folder (``Program.load``), so Lava runs what a board would get.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
from lava_checks import assert_program_equals_lava, require_lava
from loihi_graphs import emit_graph, residual_block
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, SparseSynapse
from neurodeploy_loihi.program import Program

require_lava()

STEPS = 10
SAMPLES = 3
NETWORKS = [
    # seed, skip, deep (skip one synapse shorter: delayed), reset, the skip synapse Lava gets
    (0, "identity", True, "subtract", "DelaySparse"),
    (1, "scale", True, "zero", "DelaySparse"),
    (2, "conv", True, "subtract", "DelaySparse"),
    (3, "conv", False, "subtract", "Conv"),
    (4, "identity", False, "zero", "Sparse"),
    (5, "scale", True, "subtract", "DelaySparse"),
]


@pytest.mark.parametrize(("seed", "skip", "deep", "reset", "lava_skip"), NETWORKS)
def test_residual_equals_lava_fixed_pt_spike_for_spike_and_state_for_state(
    tmp_path: Path, seed: int, skip: str, deep: bool, reset: str, lava_skip: str
) -> None:
    graph = residual_block(seed, skip, deep, reset, channels=2 + seed % 3)
    x = np.random.default_rng(100 + seed).random((SAMPLES, 1, 6, 6)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    joined = [layer for layer in program.network.layers if layer.skips]
    assert len(joined) == 1
    ((s,),) = (layer.skips for layer in joined)
    kind = {ConvSynapse: "Conv", DenseSynapse: "Dense", SparseSynapse: "Sparse"}[type(s.synapse)]
    kind = f"Delay{kind}" if s.delay else kind
    assert kind == lava_skip
    assert program.delay == (3 if deep else 2)
    assert_program_equals_lava(program, x, STEPS, f"{graph.name} seed {seed}")
