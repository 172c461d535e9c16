"""A delayed convolution read from a relay population (``neurodeploy.lowering._relay``: where listing its taps
would pass the cap, here lowered to force it), run by the Lava runner in Lava's bit-accurate process models
(``Loihi2SimCfg(select_tag="fixed_pt")``) and by the emulator: the same spikes, u and v in every population, the
relay's included, at every Loihi step, and the same readout. The relay is Lava's LIF behind a ``Sparse`` of
weight-one synapses; the convolution that reads it a plain ``Conv``, undelayed."""

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
from lava_checks import assert_program_equals_lava, require_lava
from loihi_graphs import emit_graph, relay_block
from neurodeploy_loihi import lowering as loihi_lowering
from neurodeploy_loihi.emulator import ConvSynapse, SparseSynapse
from neurodeploy_loihi.program import Program

require_lava()


def test_a_relayed_delayed_convolution_equals_lava_fixed_pt_spike_for_spike(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(loihi_lowering, "RULES", dataclasses.replace(loihi_lowering.RULES, max_dense_entries=1000))
    x = np.random.default_rng(9).random((3, 1, 6, 6)).astype(np.float32)
    emit_graph(relay_block(), tmp_path, x)
    program = Program.load(tmp_path)
    relay, joined = program.network.layers[2], program.network.layers[3]
    assert program.names[2] == "if_a_delay1"
    assert isinstance(relay.synapse, SparseSynapse)
    ((skip,),) = (joined.skips,)
    assert (skip.source, skip.delay, isinstance(skip.synapse, ConvSynapse)) == (2, 0, True)
    assert_program_equals_lava(program, x, 10, "relay block")
