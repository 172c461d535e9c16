"""Delays (NIR's Delay node; IR ``Delay``): the op against a hand-derived trace, the NIR reader and writer, and what
each target does with one: the reference and loihi run it (on Loihi a DelayDense / DelaySparse whose extra steps
delay the input in the graph's time, checked against the same network without the delay, shifted), speck and
brainscales2 refuse it naming the Delay. Against Lava's bit-accurate models:
backends/loihi/tests/lava/test_delay_against_lava.py."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.backends.base import CompiledModel
from neurodeploy.backends.registry import get_backend
from neurodeploy.errors import ConversionError, IRVerificationError, ModelLoadError, UnsupportedOpError
from neurodeploy.ir import IF, Conv2d, Delay, Dense, Graph, Reshape, TensorType
from neurodeploy.ir.serialize import graph_from_dict, graph_to_dict
from neurodeploy.metrics import fan_out_maps, neuron_counts
from neurodeploy.simulate import simulate

F = np.float32


def test_a_delay_sends_its_input_steps_late_hand_derived_trace() -> None:
    op = Delay(name="d", inputs=("x",), output="y", steps=2)
    state = op.init_state(1, (2,))
    out = [op.step(state, [np.array([[t, -t]], F)])[0].tolist() for t in range(1, 6)]
    assert out == [[0, 0], [0, 0], [1, -1], [2, -2], [3, -3]]
    assert op.forward([np.ones((1, 2), F)]).tolist() == [[1, 1]]  # the ANN's view: rates do not move


def test_a_delay_is_checked_and_round_trips() -> None:
    for bad in (0, -1, 1.5, True):
        graph = Graph(name="g", inputs={"x": TensorType((2,))}, outputs=["y"])
        graph.ops = [Delay(name="d", inputs=("x",), output="y", steps=bad)]
        with pytest.raises(IRVerificationError, match="steps must be a whole number"):
            graph.verify()
    graph = delayed_net(3, 2)
    again = graph_from_dict(*graph_to_dict(graph))
    assert [o.steps for o in again.ops if isinstance(o, Delay)] == [3, 2]


def delayed_net(first: int, second: int, reset: str = "zero") -> Graph:
    """conv -> IF -> [Delay first] -> conv -> IF -> flatten -> [Delay second] -> dense readout; no biases, v starts
    at 0, so a neuron that gets no input stays silent."""
    rng = np.random.default_rng(0)
    common = {"threshold": F(1.0), "reset": reset, "initial": F(0.0)}
    graph = Graph(name="delayed", inputs={"x": TensorType((2, 6, 6))}, outputs=["out"])
    ops: list = [
        Conv2d(
            name="c1",
            inputs=("x",),
            output="h1",
            weight=rng.uniform(-0.1, 0.5, (3, 2, 3, 3)).astype(F),
            stride=(2, 2),
            padding=(1,) * 4,
        ),
        IF(name="n1", inputs=("h1",), output="s1", **common),
    ]
    s1 = "s1"
    if first:
        ops.append(Delay(name="dl1", inputs=("s1",), output="s1d", steps=first))
        s1 = "s1d"
    ops += [
        Conv2d(
            name="c2",
            inputs=(s1,),
            output="h2",
            weight=rng.uniform(-0.2, 0.6, (4, 3, 3, 3)).astype(F),
            padding=(1,) * 4,
        ),
        IF(name="n2", inputs=("h2",), output="s2", **common),
        Reshape(name="f", inputs=("s2",), output="f2", shape=(36,)),
    ]
    f2 = "f2"
    if second:
        ops.append(Delay(name="dl2", inputs=("f2",), output="f2d", steps=second))
        f2 = "f2d"
    ops.append(Dense(name="d3", inputs=(f2,), output="out", weight=rng.normal(0, 0.5, (3, 36)).astype(F)))
    graph.ops = ops
    graph.verify()
    return graph


def inputs() -> np.ndarray:
    return (np.random.default_rng(1).random((4, 2, 6, 6)) * 0.4).astype(F)


def test_a_delay_is_synapses_not_neurons() -> None:
    graph = delayed_net(3, 2)
    assert set(neuron_counts(graph)) == {"n1", "n2"}
    maps = fan_out_maps(graph)
    undelayed = fan_out_maps(delayed_net(0, 0))
    np.testing.assert_array_equal(maps["s1"], undelayed["s1"])  # the Delay passes its fan-out through


def test_the_reference_target_shifts_the_delayed_layer_by_the_delay() -> None:
    x = inputs()
    delayed = simulate(delayed_net(3, 0), {"x": x}, 20)
    plain = simulate(delayed_net(0, 0), {"x": x}, 17)
    np.testing.assert_array_equal(delayed.counts["n1"][:, :], simulate(delayed_net(0, 0), {"x": x}, 20).counts["n1"])
    np.testing.assert_array_equal(delayed.counts["n2"], plain.counts["n2"])  # its input starts 3 steps late


def loihi_program(graph: Graph, tmp_path):
    from neurodeploy_loihi import Loihi2Backend
    from neurodeploy_loihi.program import Program

    backend = Loihi2Backend()
    tmp_path.mkdir()
    backend.emit(backend.plan(CompiledModel(snn=graph)), tmp_path)
    return Program.load(tmp_path)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_loihi_delays_the_synapse_and_keeps_the_graph_time(reset: str, tmp_path) -> None:
    pytest.importorskip("neurodeploy_loihi")
    x = inputs()
    delayed = loihi_program(delayed_net(3, 2, reset), tmp_path / "d")
    plain = loihi_program(delayed_net(0, 0, reset), tmp_path / "p")
    layers = delayed.network.layers
    assert [(layer.delay, layer.lag) for layer in layers] == [(0, 0), (3, 3), (2, 2)]
    assert delayed.network.depths == plain.network.depths == [0, 1, 2]  # the pipeline is aligned as before
    assert delayed.delay == plain.delay == 2
    a = delayed.run(x, 20, counts=True)
    np.testing.assert_array_equal(a.counts["n1"], plain.run(x, 20, counts=True).counts["n1"])
    np.testing.assert_array_equal(a.counts["n2"], plain.run(x, 17, counts=True).counts["n2"])
    assert a.counts["n2"].sum() > 0
    # the step-by-step path (an observer) gives the same integers as the fused one
    b = delayed.run(x, 20, counts=True, observe=lambda state: None)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.counts["n2"], b.counts["n2"])
    # and the same spike counts as the reference target, whose float run has the same delays
    reference = simulate(delayed_net(3, 2, reset), {"x": x}, 20)
    for name in ("n1", "n2"):
        assert abs(int(a.counts[name].sum()) - int(reference.counts[name].sum())) <= 0.02 * reference.counts[name].sum()


def test_targets_without_synaptic_delays_refuse_a_delay_naming_it() -> None:
    graph = delayed_net(3, 0)
    with pytest.raises(UnsupportedOpError, match=r"'dl1' \(Delay: Speck's synapses have no delays"):
        get_backend("speck").plan(CompiledModel(snn=delayed_net(3, 0)))
    with pytest.raises(ConversionError, match=r"Delay 'dl1' .* by 3 step\(s\); the brainscales2 target"):
        get_backend("brainscales2").plan(CompiledModel(snn=graph))


def test_a_delay_before_the_first_neurons_or_a_spike_readout_is_refused() -> None:
    graph = Graph(name="g", inputs={"x": TensorType((4,))}, outputs=["s"])
    graph.ops = [
        Delay(name="dl", inputs=("x",), output="xd", steps=2),
        Dense(name="d", inputs=("xd",), output="h", weight=np.eye(4, dtype=F)),
        IF(name="n", inputs=("h",), output="s", threshold=F(1.0), reset="zero", initial=F(0.0)),
    ]
    with pytest.raises(ConversionError, match="delays the input of the first neurons"):
        get_backend("loihi").plan(CompiledModel(snn=graph))
    graph.ops = [
        Dense(name="d", inputs=("x",), output="h", weight=np.eye(4, dtype=F)),
        IF(name="n", inputs=("h",), output="s0", threshold=F(1.0), reset="zero", initial=F(0.0)),
        Delay(name="dl", inputs=("s0",), output="s", steps=2),
    ]
    with pytest.raises(ConversionError, match="a spike readout counts the neurons' own spikes"):
        get_backend("loihi").plan(CompiledModel(snn=graph))


def nir_delay_file(tmp_path, delay) -> str:
    nir = pytest.importorskip("nir")
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "a": nir.Affine(weight=np.eye(3, dtype=F), bias=np.zeros(3, F)),
        "if": nir.IF(r=np.ones(3, F), v_threshold=np.full(3, 0.5, F)),
        "d": nir.Delay(delay=np.asarray(delay, F)),
        "b": nir.Affine(weight=np.eye(3, dtype=F), bias=np.zeros(3, F)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    path = tmp_path / "delay.nir"
    nir.write(
        str(path),
        nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("a", "if"), ("if", "d"), ("d", "b"), ("b", "output")]),
    )
    return str(path)


def test_nir_delays_import_as_whole_steps_of_dt(tmp_path) -> None:
    from neurodeploy.frontend.nir import import_nir

    graph = import_nir(nir_delay_file(tmp_path, np.full(3, 0.003)), options={"dt": "1e-3"})
    assert [(o.op_type, getattr(o, "steps", None)) for o in graph.ops if isinstance(o, Delay)] == [("Delay", 3)]
    with pytest.raises(UnsupportedOpError, match=r"'d' \(Delay\).*need a time step"):
        import_nir(nir_delay_file(tmp_path, np.full(3, 0.003)))
    with pytest.raises(ModelLoadError, match="not whole numbers of steps"):
        import_nir(nir_delay_file(tmp_path, np.full(3, 0.0025)), options={"dt": "1e-3"})
    with pytest.raises(ModelLoadError, match=r"different delays \(\[1, 2\] steps\)"):
        import_nir(nir_delay_file(tmp_path, [0.001, 0.002, 0.001]), options={"dt": "1e-3"})
    none = import_nir(nir_delay_file(tmp_path, np.zeros(3)), options={"dt": "1e-3"})
    assert not any(isinstance(o, Delay) for o in none.ops)  # a delay of 0 steps is no op


def test_a_delay_exports_to_nir_and_reads_back(tmp_path) -> None:
    from neurodeploy.compiler import compile_model
    from neurodeploy.export import export_nir
    from neurodeploy.frontend.nir import import_nir

    artifact = compile_model(
        nir_delay_file(tmp_path, np.full(3, 0.002)),
        "reference",
        tmp_path / "a",
        import_options={"dt": "1e-3", "compare": "ge", "reset": "subtract"},
    )
    options = export_nir(artifact, tmp_path / "again.nir", dt=0.5)
    again = import_nir(tmp_path / "again.nir", options=options)
    assert [o.steps for o in again.ops if isinstance(o, Delay)] == [2]


def test_spinnaker_puts_the_delay_on_its_projection_and_counts_what_the_reference_counts(tmp_path) -> None:
    pytest.importorskip("neurodeploy_pynn")
    from neurodeploy_pynn import spinnaker

    x = inputs()
    backend = get_backend("spinnaker")
    backend.emit(backend.plan(CompiledModel(snn=delayed_net(3, 2))), tmp_path)
    netlist = spinnaker.load(tmp_path)
    chip = spinnaker.run(netlist, x, 24, counts=True)
    reference = simulate(delayed_net(3, 2), {"x": x}, 24)
    for name in ("n1", "n2"):  # s16.15 weights: measured equal, neuron for neuron
        np.testing.assert_array_equal(np.asarray(chip["counts"][name]), reference.counts[name], err_msg=name)
    assert np.abs(chip["outputs"] - reference.outputs["out"]).max() < 0.02 * np.abs(reference.outputs["out"]).max()
