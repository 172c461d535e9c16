"""Delays a network asks for (NIR's Delay; IR ``Delay``) on Loihi 2: a delayed convolution as a ``DelaySparse`` of
its taps, a delayed Dense readout as a ``DelayDense``, in Lava's bit-accurate process models and in the emulator:
the same spikes, u and v in every population at every Loihi step, and the same readout."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests"))  # tests/test_delay.py's network
from lava_checks import assert_program_equals_lava, require_lava
from loihi_graphs import emit_graph
from neurodeploy_loihi.emulator import SparseSynapse
from neurodeploy_loihi.program import Program
from test_delay import delayed_net, inputs

require_lava()


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_delayed_synapses_equal_lava_fixed_pt_spike_for_spike(reset: str, tmp_path: Path) -> None:
    emit_graph(delayed_net(3, 2, reset), tmp_path, None)
    program = Program.load(tmp_path)
    layers = program.network.layers
    assert isinstance(layers[1].synapse, SparseSynapse)  # the delayed convolution's taps
    assert [(layer.delay, layer.lag) for layer in layers] == [(0, 0), (3, 3), (2, 2)]
    assert_program_equals_lava(program, inputs(), 16, f"delays reset={reset}")
