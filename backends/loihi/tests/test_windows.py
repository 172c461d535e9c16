"""Trimmed runs (``Network.windows``, ``Program.run(trim=True)``): each population computes only the Loihi steps
that can change the result. The windows of a chain derived by hand; on chains, residual blocks (delayed skips),
Concats, parallel branches, both profiles and per-neuron thresholds, the trimmed run's outputs, checkpoints, spike
counts and SynOps equal those of computing every step."""

from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import concat_block, emit_graph, inception_block, residual_block, small_cnn
from neurodeploy_loihi.emulator import DenseSynapse, Layer, Network, Neuron
from neurodeploy_loihi.program import Program


def _chain(v0: int = 0, dv: int = 0, bias_start: int = 2, kind: str = "subtractive") -> Network:
    """input population (2) -> dense -> 2 neurons -> dense -> 1 readout neuron."""
    weights = DenseSynapse(np.array([[40, 0], [0, 40]]))
    hidden = Neuron(du=4095, dv=dv, vth=1, kind=kind, bias_mant=3, v0=v0, bias_start=bias_start if kind != "lif" else 0)
    return Network(
        [
            Layer(None, Neuron(du=4095, dv=0, vth=1, kind="subtractive"), population_shape=(2,)),
            Layer(weights, hidden),
            Layer(DenseSynapse(np.array([[20, 20]])), Neuron(du=4095, dv=0, vth=1000)),
        ]
    )


def test_windows_of_a_chain_derived_by_hand() -> None:
    # T = 5 graph steps, delay 2: 7 Loihi steps. Layer 1's first input arrives at step 2, layer 2's at step 3; each
    # starts at its depth (one step early, so the readout's state before its first input is seen). Layer 0's spikes
    # are needed up to step 5 (its own T) and reach the readout's step 7 from step 5; layer 1 up to step 6.
    assert _chain().windows(7, [5, 6, 7]) == [(1, 5), (1, 6), (2, 7)]
    assert _chain().windows(7) == [(1, 5), (1, 6), (2, 7)]  # what the readout needs alone: the same here
    assert _chain().windows(7, [7, 7, 7]) == [(1, 7), (1, 7), (2, 7)]  # spikes wanted to the end: no tail skipped


@pytest.mark.parametrize(
    ("network", "why"),
    [
        (_chain(bias_start=0), "its bias is added from step 1"),
        (_chain(kind="lif"), "Lava's LIF adds its bias from step 1"),
        (_chain(v0=40, dv=100), "v0 decays"),
    ],
)
def test_a_layer_that_moves_before_its_first_input_runs_from_step_1(network: Network, why: str) -> None:
    assert network.windows(7)[1][0] == 1, why


def test_windows_refuse_recording() -> None:
    network = _chain()
    bias = (np.zeros((1, 2), np.int64), np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="windows need one"):
        network.run(steps=3, input_bias=bias, windows=network.windows(3))


GRAPHS = {
    "chain": lambda: small_cnn(seed=1),
    "chain-channel-thresholds": lambda: small_cnn(seed=2, thresholds="channel"),
    "chain-reset-zero": lambda: small_cnn(seed=3, reset="zero", initial=0.0),
    "residual-identity": lambda: residual_block(seed=1, skip="identity"),
    "residual-conv-shallow": lambda: residual_block(seed=2, skip="conv", deep=False),
    "residual-reset-zero": lambda: residual_block(seed=4, skip="identity", reset="zero"),
    "concat": lambda: concat_block(seed=1, head="pool_conv", order=("sb", "sc", "sa")),
    "inception-deep": lambda: inception_block(deep=True),
}


@pytest.mark.parametrize("name", GRAPHS)
def test_a_trimmed_run_equals_computing_every_step(name: str, tmp_path: Path) -> None:
    graph = GRAPHS[name]()
    shape = graph.inputs["x"].shape
    x = np.random.default_rng(3).random((6, *shape)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    for steps in (1, 3, 8):
        full = program.run(x, steps, checkpoints=(1, 2, steps), trim=False)
        trimmed = program.run(x, steps, checkpoints=(1, 2, steps))
        np.testing.assert_array_equal(trimmed.outputs, full.outputs)
        assert trimmed.checkpoints.keys() == full.checkpoints.keys()
        for c in full.checkpoints:
            np.testing.assert_array_equal(trimmed.checkpoints[c], full.checkpoints[c])
            for population, synops in full.checkpoint_synops[c].items():
                np.testing.assert_array_equal(trimmed.checkpoint_synops[c][population], synops)
                np.testing.assert_array_equal(
                    trimmed.checkpoint_spikes[c].get(population), full.checkpoint_spikes[c].get(population)
                )
        for population, spikes in full.spikes.items():
            np.testing.assert_array_equal(trimmed.spikes[population], spikes)
        assert sum(int(s.sum()) for s in full.spikes.values()) > 0
    windows = program.network.windows(8 + program.delay, [d + 8 for d in program.network.depths])
    assert sum(b - a + 1 for a, b in windows) < len(windows) * (8 + program.delay), "something is skipped"
