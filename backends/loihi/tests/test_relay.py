"""A delayed convolution whose taps would pass the lowering's cap (ResNet-50's projection shortcuts, DenseNet's
late Concat inputs) reads a relay population that repeats its source's spikes late, not a list of taps: checked
spike for spike against the same network lowered with its taps listed (the cap raised), and against the float
SNN."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import emit_graph, relay_block
from neurodeploy_loihi import lowering as loihi_lowering
from neurodeploy_loihi.program import Program

from neurodeploy.ir import Graph
from neurodeploy.lowering import ConvSpec, SparseSpec
from neurodeploy.simulate import simulate

F = np.float32
# the shortcut conv's taps: 4 x 4 channel pairs x 256 (the 3x3 windows clipped at the 6x6 map's edges: 16 x 16)
SMALL_CAP = 1000


def _program(graph: Graph, folder: Path, x: np.ndarray, cap: int | None, monkeypatch) -> Program:
    rules = loihi_lowering.RULES
    if cap is not None:
        monkeypatch.setattr(loihi_lowering, "RULES", dataclasses.replace(rules, max_dense_entries=cap))
    folder.mkdir()
    emit_graph(graph, folder, x)
    monkeypatch.setattr(loihi_lowering, "RULES", rules)
    return Program.load(folder)


def test_the_relay_lowering(monkeypatch) -> None:
    graph = relay_block()
    monkeypatch.setattr(loihi_lowering, "RULES", dataclasses.replace(loihi_lowering.RULES, max_dense_entries=SMALL_CAP))
    lowered = loihi_lowering.lower(graph)
    names = [p.name for p in lowered.populations]
    assert names == ["if_a", "if_b", "if_a_delay1", "if_d", "fc"]
    relay, joined = lowered.populations[2], lowered.populations[3]
    assert isinstance(relay.synapse, SparseSpec)
    np.testing.assert_array_equal(relay.synapse.rows, np.arange(144))
    np.testing.assert_array_equal(relay.synapse.weight, np.ones(144))
    assert (relay.source, relay.delay, relay.depth, relay.value) == (0, 0, 1, "sa")
    # IF d reads IF b (its main synapse) and the relay through the shortcut's one shared-kernel convolution, on time
    assert joined.source == 1
    (skip,) = joined.skips
    assert (skip.source, skip.delay, isinstance(skip.synapse, ConvSpec)) == (2, 0, True)
    monkeypatch.undo()
    plain = loihi_lowering.lower(graph)  # under the real cap the taps are listed, delayed a step
    assert [p.name for p in plain.populations] == ["if_a", "if_b", "if_d", "fc"]
    (taps,) = plain.populations[2].skips
    assert (taps.delay, isinstance(taps.synapse, SparseSpec), taps.synapse.rows.size) == (1, True, 4 * 4 * 256)


def test_the_relay_network_fires_spike_for_spike_as_the_listed_taps(tmp_path: Path, monkeypatch) -> None:
    """Against the same network with the shortcut's taps listed and delayed (an independent lowering of the same
    arithmetic): IF d's counts and the readout are equal at every checkpoint, and both run as the float SNN
    (measured on these 32 inputs over 32 steps: IF d fires 14.4 times per neuron in the float SNN, 93% of its
    counts exact, at most 2 apart, 32 of 32 argmaxes the float SNN's)."""
    graph = relay_block()
    x = np.random.default_rng(9).random((32, 1, 6, 6)).astype(F)
    relayed = _program(graph, tmp_path / "relay", x, SMALL_CAP, monkeypatch)
    listed = _program(graph, tmp_path / "taps", x, None, monkeypatch)
    assert "if_a_delay1" in relayed.names
    assert "if_a_delay1" not in listed.names
    assert relayed.delay == listed.delay == 3
    got = relayed.run(x, 32, counts=True, checkpoints=(8, 16))
    want = listed.run(x, 32, counts=True, checkpoints=(8, 16))
    for name in ("if_a", "if_b", "if_d"):
        np.testing.assert_array_equal(got.counts[name], want.counts[name])
    np.testing.assert_array_equal(got.counts["if_a_delay1"], got.counts["if_a"])  # each spike, repeated once
    np.testing.assert_array_equal(got.outputs, want.outputs)
    for step in (8, 16):
        np.testing.assert_array_equal(got.checkpoints[step], want.checkpoints[step])
    reference = simulate(graph, {"x": x}, 32)
    ref = reference.counts["if_d"]
    assert ref.mean() > 2  # IF d is active, so the comparison means something
    assert np.mean(got.counts["if_d"] == ref) >= 0.8
    assert np.mean(got.outputs.argmax(axis=1) == reference.outputs["y"].argmax(axis=1)) >= 0.9


def test_a_relayed_network_places_the_relay_neurons(tmp_path: Path, monkeypatch) -> None:
    """The relay's neurons are placed and counted as any population's."""
    graph = relay_block()
    x = np.random.default_rng(9).random((8, 1, 6, 6)).astype(F)
    monkeypatch.setattr(loihi_lowering, "RULES", dataclasses.replace(loihi_lowering.RULES, max_dense_entries=SMALL_CAP))
    emitted = emit_graph(graph, tmp_path, x)
    placed = {entry["layer"] for entry in emitted.report["placement"]}
    assert "if_a_delay1" in placed


def test_relays_past_the_machines_neurons_are_refused_naming_them(monkeypatch) -> None:
    """IF a, IF b and the relay hold 3 x 144 neurons: lowering for a machine of 300 refuses the relay as it is made,
    naming the branch, the taps it would list instead, the relays and the limit (the backend lowers for the largest
    system, so that a runaway stops early, not after building millions of relay neurons)."""
    from neurodeploy.errors import ResourceError

    monkeypatch.setattr(loihi_lowering, "RULES", dataclasses.replace(loihi_lowering.RULES, max_dense_entries=SMALL_CAP))
    assert len(loihi_lowering.lower(relay_block(), max_neurons=432).populations) == 5  # exactly full: it fits
    with pytest.raises(
        ResourceError,
        match=r"IF 'if_d' \(branch from 'sa' through join\): .* its taps listed would be 5,184 synapses, past the "
        r"1,000 the loihi target builds, and the relay populations .* \(1 so far, 144 neurons, the latest "
        r"'if_a_delay1'\) take the network to 432 neurons, past the 300 the machine holds",
    ):
        loihi_lowering.lower(relay_block(), max_neurons=300)


def test_graded_mode_runs_the_relay_as_its_integer_reference(tmp_path: Path, monkeypatch) -> None:
    """Graded mode (payloads, one step per layer) with the relay: its outputs equal its own integer forward pass
    and the listed-taps program's, value for value."""
    from neurodeploy_loihi.graded import GradedProgram

    graph = relay_block()
    x = np.random.default_rng(9).random((16, 1, 6, 6)).astype(F)
    outputs = []
    for name, cap in (("relay", SMALL_CAP), ("taps", None)):
        _program(graph, tmp_path / name, x, cap, monkeypatch)
        graded = GradedProgram.load(tmp_path / name)
        assert ("if_a_delay1" in graded.names) == (name == "relay")
        got = graded.run(x, 1).outputs
        np.testing.assert_array_equal(got, graded.reference(x))
        outputs.append(got)
    np.testing.assert_array_equal(*outputs)


@pytest.mark.parametrize(
    ("core", "relayed"),
    [((8192, 131072), False), ((1000, 1000), True), ((144, 2592), True), ((144, 5184), False)],
)
def test_a_relay_replaces_listed_taps_where_they_would_take_more_cores(monkeypatch, core, relayed) -> None:
    """The shortcut's 5,184 taps (counted before the map's edges clip them) against a relay of its source's 144
    neurons, in whole cores of ``core`` (neurons, synapses): one Loihi 2 core holds either (listed); cores of 1000
    and 1000 take 6 cores for the taps against 1 for the relay (relayed); of 144 and 2592, 2 against 1 (relayed); of
    144 and 5184, 1 against 1 (listed). The refusal past the machine's neurons names the cost."""
    from neurodeploy.errors import ResourceError

    monkeypatch.setattr(loihi_lowering, "RULES", dataclasses.replace(loihi_lowering.RULES, core=core))
    names = [p.name for p in loihi_lowering.lower(relay_block()).populations]
    assert ("if_a_delay1" in names) == relayed
    if relayed:
        with pytest.raises(
            ResourceError, match=r"5,184 synapses, more cores than a relay neuron per source neuron, and"
        ):
            loihi_lowering.lower(relay_block(), max_neurons=300)


def test_a_compile_whose_relays_pass_its_chips_names_the_chips_the_whole_count_needs(tmp_path: Path, monkeypatch):
    """Chips of 500 neurons: the graph's 432 spiking neurons fit one, and with the relay's 144 they need two. The
    compile is refused after lowering (every relay counted, not at the first past the limit), naming the total, the
    relays and chips=2 (DenseNet-121 on 16 chips was refused so at its 22nd relay with no chip count)."""
    from neurodeploy_loihi import backend, resources

    from neurodeploy.errors import ResourceError

    monkeypatch.setattr(loihi_lowering, "RULES", dataclasses.replace(loihi_lowering.RULES, max_dense_entries=SMALL_CAP))
    monkeypatch.setattr(resources, "NEURONS_PER_CHIP", 500)
    monkeypatch.setattr(backend, "NEURONS_PER_CHIP", 500)
    x = np.random.default_rng(9).random((4, 1, 6, 6)).astype(F)
    with pytest.raises(
        ResourceError,
        match=r"the network has 576 spiking neurons \(largest layers .* and 144 more in 1 relay population\(s\), "
        r"which repeat .*\); 1 Loihi 2 chip\(s\) hold at most 500 .*--target-option chips=2 or more .*placement "
        r"then counts the cores",
    ):
        emit_graph(relay_block(), tmp_path, x)
    assert not any(tmp_path.iterdir())  # refused before anything was written
