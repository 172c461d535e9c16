"""Windowed QCFS neurons (``qcfs=window``, :class:`~neurodeploy.ir.neurons.WindowIF`): each layer integrates an
L-step window and sends its QCFS level count in the next window, so the SNN's readout equals the quantized ANN
at every T that is a whole number of windows, after a fill of one window per layer (the reference target's
default for QCFS models). The rate-coded form (``qcfs=rate``), exact at T = L only, is tested in test_qcfs.py.
"""

import json

import numpy as np
import pytest
from ir_graphs import qcfs_net, two_layer

from neurodeploy import compile_model
from neurodeploy.backends.registry import get_backend
from neurodeploy.errors import ConversionError, DataError, NeurodeployError
from neurodeploy.ir import (
    IF,
    QCFS,
    Add,
    AvgPool2d,
    Concat,
    Conv2d,
    Dense,
    Graph,
    Reshape,
    TensorType,
    WindowIF,
    interpret,
)
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline
from neurodeploy.simulate import readout_delay, simulate

F32 = np.float32
QCFS_EXAMPLE = "examples/mnist_qcfs/mnist_qcfs.onnx"


def _convert(graph: Graph, options: str = "") -> tuple[Graph, Graph, PassContext]:
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    ann = graph.copy()
    ctx = PassContext()
    PassManager(build_pipeline(f"convert-to-snn{{{options}}}")).run(graph, ctx)
    return ann, graph, ctx


def _neuron(threshold, levels: int = 4) -> Graph:
    op = WindowIF(name="n", inputs=("x",), output="s", threshold=np.asarray(threshold, F32), levels=levels)
    return Graph("one", {"x": TensorType((len(np.atleast_1d(threshold)),))}, ["s"], [op])


def _trace(graph: Graph, currents: np.ndarray) -> np.ndarray:
    """The spikes of the graph's one neuron op, step by step, for ``currents`` (steps, channels)."""
    (op,) = graph.ops
    state = op.init_state(1, (currents.shape[1],))
    return np.stack([op.step(state, [current[None].astype(F32)])[0] for current in currents])


def test_window_neuron_trace_matches_a_hand_derived_one():
    """L = 4, φ = 1/2; channel 0 has θ = 1, channel 1 θ = 2. Window sums 1.2, 3.5, -1, 8, 0 give counts
    clip(floor(v/θ + 1/2), 0, 4): channel 0 1, 4, 0, 4 (8.5 clipped), 0; channel 1 1, 2, 0, 4, 0. Each count is
    sent in the next window from its first step on; the first window sends nothing."""
    windows = [[0.3] * 4, [1.0, 1.0, 1.0, 0.5], [-1.0, 0.0, 0.0, 0.0], [2.0] * 4, [0.0] * 4]
    currents = np.repeat(np.array(windows, np.float64).reshape(-1, 1), 2, axis=1)
    spikes = _trace(_neuron([1.0, 2.0]), currents)
    expected_0 = [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]
    expected_1 = [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(spikes[:, 0], expected_0)
    np.testing.assert_array_equal(spikes[:, 1], expected_1)


def test_window_neuron_forward_is_the_qcfs_staircase_of_a_constant_current():
    graph = _neuron(1.0, levels=4)
    x = np.array([[-1.0], [0.1], [0.125], [0.3], [0.6], [0.875], [2.0]], F32)
    expected = np.array([[0], [0], [0.25], [0.25], [0.5], [1.0], [1.0]], F32)  # floor(4x + 1/2) / 4, clipped
    np.testing.assert_array_equal(interpret.run(graph, x)["s"], expected)
    counts = _trace(graph, np.repeat(x.T, 8, axis=0))[4:].sum(axis=0)  # the second window sends the count
    np.testing.assert_array_equal(counts / 4, expected[:, 0])


def test_readout_delay_is_one_window_per_layer_on_the_longest_path():
    def neurons(name, source, levels=4):
        return WindowIF(name=name, inputs=(source,), output=name, threshold=F32(1), levels=levels)

    skip = Add(name="sum", inputs=("b", "a"), output="sum")
    graph = Graph("skip", {"x": TensorType((3,))}, ["sum"], [neurons("a", "x"), neurons("b", "a"), skip])
    assert readout_delay(graph) == 8  # the longest path has two windows of 4 steps
    # A window of 3 after one of 4: inputs settle after step 4, the window of steps 7-9 is the first whole
    # one after it, and its count is sent from step 10 on.
    graph = Graph("mixed", {"x": TensorType((3,))}, ["c"], [neurons("a", "x"), neurons("c", "a", levels=3)])
    assert readout_delay(graph) == 9
    rate = Graph("rate", {"x": TensorType((3,))}, ["s"], [IF(name="s", inputs=("x",), output="s", threshold=F32(1))])
    assert readout_delay(rate) == 0


def _steps_off(actual: np.ndarray, expected: np.ndarray, step: float) -> np.ndarray:
    return np.abs(actual.astype(np.float64) - expected.astype(np.float64)) / step


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_two_qcfs_layers_are_exact_at_every_whole_number_of_windows(levels):
    """The rate-coded form of this network misses by up to a step or two at T = L (test_qcfs.py, the unevenness
    bound) and slides past it; the windowed form equals the quantized ANN at T = L, 2L, ..., 16L."""
    ann, snn, ctx = _convert(two_layer(levels))
    assert ctx.warnings == []
    assert [op.op_type for op in snn.ops] == ["Dense", "WindowIF", "Dense", "WindowIF", "Dense"]
    assert ctx.records["convert-to-snn"]["qcfs"] == "window"
    assert readout_delay(snn) == 2 * levels
    x = np.random.default_rng(1).normal(size=(512, 6)).astype(F32)
    kept = interpret.run(ann, x, keep=["a2", "y"])
    windows = [levels * k for k in (1, 2, 4, 8, 16)]
    sim = simulate(snn, {"x": x}, steps=windows[-1], checkpoints=tuple(windows[:-1]), observe=None)
    readouts = {**{t: sim.checkpoints[t]["y"] for t in windows[:-1]}, windows[-1]: sim.outputs["y"]}
    for t, actual in readouts.items():
        np.testing.assert_allclose(actual, kept["y"], rtol=1e-5, atol=1e-5, err_msg=f"T = {t}")
    # The rate-coded conversion of the same network, for contrast: not exact at 2L.
    _, rate, _ = _convert(two_layer(levels), "qcfs=rate")
    off = _steps_off(simulate(rate, {"x": x}, steps=2 * levels).outputs["y"], kept["y"], 1e-3)
    assert off.max() > 1


def _residual_cnn(levels: int = 4, seed: int = 0) -> Graph:
    """conv -> QCFS -> conv -> QCFS -> Add(skip, QCFS λ different from the branch's) -> avgpool ->
    Concat(with a second conv branch) -> QCFS -> flatten -> dense."""
    rng = np.random.default_rng(seed)

    def conv(name, src, out_channels, in_channels):
        weight = (rng.normal(size=(out_channels, in_channels, 3, 3)) * 0.4).astype(F32)
        bias = (rng.normal(size=out_channels) * 0.1).astype(F32)
        return Conv2d(name=name, inputs=(src,), output=name, weight=weight, bias=bias, padding=(1, 1, 1, 1))

    def act(name, src, lam):
        return QCFS(name=name, inputs=(src,), output=name, lam=lam, levels=levels)

    ops = [
        conv("c1", "x", 4, 1),
        act("a1", "c1", 1.5),
        conv("c2", "a1", 4, 4),
        act("a2", "c2", 1.0),
        Add(name="sum", inputs=("a2", "a1"), output="sum"),
        AvgPool2d(name="pool", inputs=("sum",), output="pool", kernel=(2, 2), stride=(2, 2)),
        conv("c3", "pool", 3, 4),
        conv("c4", "pool", 2, 4),
        act("a3", "c3", 2.0),
        act("a4", "c4", 0.5),
        Concat(name="cat", inputs=("a3", "a4"), output="cat", axis=0),
        Reshape(name="flat", inputs=("cat",), output="flat", shape=(80,)),
        Dense(name="fc", inputs=("flat",), output="y", weight=(rng.normal(size=(5, 80)) * 0.3).astype(F32)),
    ]
    return Graph("residual_qcfs", {"x": TensorType((1, 8, 8))}, ["y"], ops)


def test_a_cnn_with_residual_add_concat_and_pooling_is_exact_at_every_whole_number_of_windows():
    """Branches of different depth meet at the Add and the Concat: once the longest path has filled, every
    window repeats the same counts, so the branches need no alignment. Checked against the quantized ANN at
    T = 4 ... 64 on inputs away from step boundaries (where float32 may round the window sum either way)."""
    ann, snn, ctx = _convert(_residual_cnn())
    assert ctx.warnings == []
    assert sum(isinstance(op, WindowIF) for op in snn.ops) == 4
    assert readout_delay(snn) == 12  # c1 -> c2 -> (add) -> c3: three windows of 4
    # Each layer stays silent until its input has settled: the fill costs no spikes.
    assert {op.name: op.start for op in snn.ops if isinstance(op, WindowIF)} == {"a1": 0, "a2": 4, "a3": 8, "a4": 8}
    x = np.random.default_rng(2).uniform(0, 1, size=(256, 1, 8, 8)).astype(F32)
    expected = interpret.run(ann, x)["y"]
    sent: dict[str, list[float]] = {"a1": [], "a2": [], "a3": []}

    def observe(value: str, array: np.ndarray) -> None:
        if value in sent:
            sent[value].append(float(array.sum()))

    sim = simulate(snn, {"x": x}, steps=64, checkpoints=(4, 8, 16, 32), observe=observe)
    for name, first in (("a1", 4), ("a2", 8), ("a3", 12)):
        assert sum(sent[name][:first]) == 0
        assert sent[name][first] > 0
    readouts = {**{t: outs["y"] for t, outs in sim.checkpoints.items()}, 64: sim.outputs["y"]}
    for t, actual in readouts.items():
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4, err_msg=f"T = {t}")
    assert (readouts[64].argmax(axis=1) == expected.argmax(axis=1)).all()
    # The fill is spent, not hidden: spikes counted over 12 + 64 steps, each neuron at most L per window.
    for op in snn.ops:
        if isinstance(op, WindowIF):
            assert sim.counts[op.name].max() <= 4 * (76 // 4)


def test_partial_windows_are_not_exact_and_T_counts_after_the_fill():
    """T = L/2 reads half a window of bursts (each count sent from the window's first step): not the ANN."""
    ann, snn, _ = _convert(two_layer(4))
    x = np.random.default_rng(3).normal(size=(256, 6)).astype(F32)
    expected = interpret.run(ann, x)["y"]
    half = simulate(snn, {"x": x}, steps=2).outputs["y"]
    assert not np.allclose(half, expected, atol=1e-3)
    whole = simulate(snn, {"x": x}, steps=4).outputs["y"]
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-5)


def test_auto_falls_back_to_rate_with_a_warning_and_window_refuses_what_it_cannot_convert():
    # Different L: auto converts with rate-coded IF neurons and says why; window refuses.
    _, snn, ctx = _convert(qcfs_net())
    assert {op.op_type for op in snn.ops if op.is_stateful} == {"IF"}
    assert ctx.records["convert-to-snn"]["qcfs"] == "rate"
    assert any("different numbers of levels L (4, 8)" in w for w in ctx.warnings)
    with pytest.raises(ConversionError, match=r"qcfs=window needs every activation to be a QCFS of one L"):
        _convert(qcfs_net(), "qcfs=window")
    # readout=spikes adds ReLU readout neurons, which are no QCFS.
    with pytest.raises(ConversionError, match=r"readout=spikes adds readout neurons"):
        _convert(two_layer(4), "qcfs=window,readout=spikes")
    # rate asked for: IF neurons, no warning.
    _, snn, ctx = _convert(two_layer(4), "qcfs=rate")
    assert [op.op_type for op in snn.ops if op.is_stateful] == ["IF", "IF"]
    assert ctx.warnings == []


def test_the_reference_target_converts_the_qcfs_example_to_windows_and_says_so(tmp_path):
    artifact = compile_model(QCFS_EXAMPLE, "reference", tmp_path / "out")
    manifest = json.loads((artifact.root / "manifest.json").read_text())
    report = json.loads((artifact.root / "report.json").read_text())
    assert report["conversion"]["convert-to-snn"]["qcfs"] == "window"
    (output,) = manifest["outputs"]
    assert "after a fill of 12 steps" in output["readout"]  # three QCFS layers, L = 4


@pytest.mark.parametrize("target", ["loihi", "speck", "spinnaker", "brainscales2"])
def test_targets_without_windowed_neurons_convert_with_rate_and_refuse_window_by_name(tmp_path, target):
    backend = get_backend(target)
    assert "qcfs=rate" in backend.pipeline({})
    assert "qcfs=rate" in backend.pipeline({"conversion_as_given": "qcfs=auto"})
    with pytest.raises(
        DataError,
        match=rf"qcfs=window asks for neurons the {target} target does not run \(it runs rate-coded IF neurons"
        r"[^;]*; not: window: windowed QCFS neurons, WindowIF",
    ):
        compile_model(QCFS_EXAMPLE, target, tmp_path / "a", conversion="qcfs=window")
    # A whole pipeline of the user's own bypasses the target's pins: the plan refuses the neurons by name.
    pipeline = f"{CANONICALIZE},convert-to-snn{{qcfs=window}}"
    with pytest.raises(NeurodeployError, match=r"features\.2/QCFS.*WindowIF|WindowIF.*features\.2"):
        compile_model(QCFS_EXAMPLE, target, tmp_path / "b", pipeline=pipeline)
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_a_fill_beyond_the_step_limit_is_refused_before_it_runs():
    """An artifact's windows decide the fill: a hostile one with 10^9 levels per window must not loop for 10^9
    steps; the fill counts against NEURODEPLOY_MAX_STEPS like the steps asked for."""
    from neurodeploy.errors import LimitError

    graph = _neuron(1.0, levels=10**9)
    with pytest.raises(LimitError, match=r"1 steps after a pipeline fill of 1000000000"):
        simulate(graph, {"x": np.zeros((1, 1), F32)}, steps=1)
