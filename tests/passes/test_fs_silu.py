"""SiLU in few-spike coding: ``Mul(x, Sigmoid(x))`` imported as one SiLU op, few-spike codes fitted to SiLU per
layer (:mod:`neurodeploy.conversion.few_spike`) within the errors they record, the FewSpike neuron running such a
code (negative thresholds and spike values, silent before its start), the shipped SiLU MNIST model converted and
simulated on the reference target against its ANN, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from ir_graphs import two_layer
from onnx import TensorProto, helper, numpy_helper
from test_few_spike import _convert

from neurodeploy import compile_model
from neurodeploy.conversion import few_spike
from neurodeploy.conversion.few_spike import few_spike_output, fit_silu, silu_target
from neurodeploy.data.calibration import load_calibration
from neurodeploy.errors import ConversionError, DataError, UnsupportedOpError
from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.ir import Clip, Dense, FewSpike, Graph, SiLU, TensorType, interpret
from neurodeploy.ir.ops import SILU_MINIMUM, SILU_MINIMUM_AT
from neurodeploy.simulate import readout_delay, simulate

F32 = np.float32
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist_silu"
MODEL, CALIBRATION = EXAMPLE / "mnist_silu.onnx", EXAMPLE / "calibration.npz"


# -- import ----------------------------------------------------------------------------------------------------------


def _model(nodes: list, output: str, shape=(2, 4, 4)) -> onnx.ModelProto:
    """x (1, 2, 4, 4) -> Conv 3x3 (2 channels, pads 1) -> ``nodes`` -> ``output``, opset 17."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(2, 2, 3, 3)).astype(F32), "w"),
        numpy_helper.from_array(rng.normal(size=(2,)).astype(F32), "b"),
    ]
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4)
    graph = helper.make_graph(
        [conv, *nodes],
        "silu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *shape])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("order", [["c", "s"], ["s", "c"]])
def test_mul_of_x_and_its_sigmoid_imports_as_one_silu(order):
    sigmoid = helper.make_node("Sigmoid", ["c"], ["s"], name="sig")
    mul = helper.make_node("Mul", order, ["y"], name="mul")
    graph = import_onnx(_model([sigmoid, mul], "y"))
    assert [op.op_type for op in graph.ops] == ["Conv2d", "SiLU"]
    assert graph.ops[1].meta["onnx_fused"] == [{"onnx_node": "sig", "onnx_op": "Sigmoid-17"}]
    x = np.random.default_rng(1).normal(size=(3, 2, 4, 4)).astype(F32) * 3
    conv = interpret.run(graph, x, keep=["c"])["c"].astype(np.float64)
    np.testing.assert_allclose(interpret.run(graph, x)["y"], conv / (1 + np.exp(-conv)), rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
def test_torch_silu_exports_as_mul_of_sigmoid_and_imports_as_silu(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.SiLU()).eval()
    path = tmp_path / "silu.onnx"
    torch.onnx.export(model, torch.zeros(1, 1, 6, 6), str(path), dynamo=False, opset_version=17)
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["Conv", "Sigmoid", "Mul"]
    graph = import_onnx(path)
    assert [op.op_type for op in graph.ops] == ["Conv2d", "SiLU"]
    x = np.random.default_rng(2).normal(size=(4, 1, 6, 6)).astype(F32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(interpret.run(graph, x)[graph.outputs[0]], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("nodes", "output", "match"),
    [
        ([helper.make_node("Sigmoid", ["c"], ["y"], name="sig")], "y", r"Sigmoid 'sig': a model output"),
        (
            [helper.make_node("Sigmoid", ["c"], ["s"], name="sig"), helper.make_node("Relu", ["s"], ["y"], name="r")],
            "y",
            r"Sigmoid 'sig' is read by Relu 'r': a Sigmoid is imported only inside SiLU, x \* Sigmoid\(x\)",
        ),
        (
            [
                helper.make_node("Relu", ["c"], ["r"], name="r"),
                helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
                helper.make_node("Mul", ["r", "s"], ["y"], name="mul"),
            ],
            "y",
            r"Mul 'mul' multiplies Sigmoid 'sig' by 'r', not by the Sigmoid's own input",
        ),
    ],
    ids=["output", "other-reader", "other-operand"],
)
def test_a_sigmoid_outside_silu_is_refused_by_name(nodes, output, match):
    with pytest.raises(UnsupportedOpError, match=match):
        import_onnx(_model(nodes, output))


def test_silu_op_forward_and_bounds():
    op = SiLU(name="s", inputs=("x",), output="y")
    x = np.array([[-200.0, -1.5, 0.0, 2.0, 90.0]], F32)
    np.testing.assert_allclose(op.forward([x]), x.astype(np.float64) / (1 + np.exp(-x.astype(np.float64))), atol=1e-6)
    assert op.bounds([(-3.0, 2.0)]) == pytest.approx((SILU_MINIMUM, 2.0 / (1 + np.exp(-2.0))))
    assert op.bounds([(0.0, 2.0)])[0] == 0.0
    grid = np.linspace(-3, 0, 300001)
    assert grid[np.argmin(grid / (1 + np.exp(-grid)))] == pytest.approx(SILU_MINIMUM_AT, abs=1e-4)


# -- the fit ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "steps", "mean_bound", "max_bound"),
    [(2.0, 8, 0.0115, 0.055), (6.0, 8, 0.006, 0.032), (6.0, 16, 0.0035, 0.016)],
)
def test_the_fit_keeps_within_its_recorded_error_on_a_finer_grid(scale, steps, mean_bound, max_bound):
    fit = fit_silu(scale, steps, low=-8.0)
    assert (fit.low, fit.high) == (pytest.approx(-8.0 / scale), 1.0)
    r = np.linspace(fit.low, fit.high, 40001).astype(F32)  # not the grid the error was measured on
    error = np.abs(few_spike_output(r, fit.thresholds, fit.resets, fit.spike_values) - silu_target(scale)(r))
    slack = 1.1 * (fit.high - fit.low) / 16384  # SiLU's steepest slope times the measuring grid's spacing
    assert error.max() <= fit.max_error + slack
    assert error.mean() == pytest.approx(fit.mean_error, rel=0.05)
    # a working fit, not merely a recorded one (the solved starting codes alone err by about half as much again)
    assert fit.mean_error < mean_bound
    assert fit.max_error < max_bound
    record = fit.record()
    assert (record["activation"], record["steps"]) == ("SiLU", steps)
    assert fit.spike_values.min() < 0  # SiLU's negative part is sent as negative spikes


def test_the_fit_improves_with_steps_and_is_deterministic():
    errors = [fit_silu(4.0, k, low=-10.0).mean_error for k in (4, 8, 16)]
    assert errors[0] > errors[1] > errors[2]
    a = fit_silu(4.0, 8, low=-10.0)
    few_spike._fit_cached.cache_clear()  # fitted again, not taken from the cache
    b = fit_silu(4.0, 8, low=-10.0)
    assert a is not b
    for x, y in ((a.thresholds, b.thresholds), (a.resets, b.resets), (a.spike_values, b.spike_values)):
        np.testing.assert_array_equal(x, y)


def test_the_fit_from_calibration_values_spans_them_and_records_its_error_on_them():
    samples = np.random.default_rng(0).normal(-0.5, 1.0, 20000).astype(F32) * 3.0
    fit = fit_silu(4.0, 8, samples=samples)
    assert (fit.low, fit.high) == (pytest.approx(float(samples.min()) / 4.0, abs=1e-6), 1.0)
    r = samples / F32(4.0)
    r = r[r <= 1.0]  # above the range the code saturates, as a ReLU's does at λ
    sent = few_spike_output(r, fit.thresholds, fit.resets, fit.spike_values)
    assert fit.data_error == pytest.approx(float(np.abs(sent - silu_target(4.0)(r)).mean()), rel=1e-3)
    assert fit.data_error < 0.01
    assert fit_silu(4.0, 8, samples=np.clip(samples, -1.0, None)).low == pytest.approx(-0.25)
    assert fit_silu(4.0, 8, samples=samples - 100).low == pytest.approx(-4.0)  # never below x = -16


def _fitted_neuron(scale: float, steps: int, theta: float, start: int = 0) -> tuple[FewSpike, object]:
    fit = fit_silu(scale, steps, low=-12.0)
    neuron = FewSpike(
        name="n",
        inputs=("x",),
        output="y",
        threshold=np.float32(theta),
        thresholds=fit.thresholds,
        resets=fit.resets,
        spike_values=fit.spike_values,
        start=start,
    )
    neuron.verify()
    return neuron, fit


def test_few_spike_forward_with_the_fitted_code_is_silu_within_the_fit_error():
    """θ = 0.5: the neuron sees a = r θ; its window result Σ d_j z_j is SiLU(λ r) / λ within the fit's error, and
    stepping it (a constant input, after one window) sends that as graded spikes, negative ones included."""
    scale, theta = 5.0, 0.5
    neuron, fit = _fitted_neuron(scale, 12, theta)
    r = np.linspace(fit.low, fit.high, 2001).astype(F32)
    got = neuron.forward([(r * F32(theta))[:, None]])[:, 0]
    assert np.abs(got - silu_target(scale)(r)).max() <= fit.max_error + 1e-3
    state = neuron.init_state(len(r), (1,))
    outs = [neuron.step(state, [(r * F32(theta))[:, None]])[:, 0] for _ in range(3 * neuron.steps)]
    window = np.mean(outs[neuron.steps : 2 * neuron.steps], axis=0)
    np.testing.assert_allclose(window, got, atol=1e-5)
    np.testing.assert_allclose(np.mean(outs[2 * neuron.steps :], axis=0), got, atol=1e-5)
    assert min(o.min() for o in outs) < 0


def test_a_code_that_spikes_at_zero_sends_nothing_before_its_start():
    """T_1 = -1/2 fires on a = 0; windows that begin before ``start`` (4 steps, K = 2) must still send nothing."""
    neuron = FewSpike(
        name="n",
        inputs=("x",),
        output="y",
        threshold=np.float32(1),
        thresholds=np.array([-0.5, 0.25], F32),
        resets=np.array([-0.5, 0.5], F32),
        spike_values=np.array([-0.25, 0.5], F32),
        start=4,
    )
    neuron.verify()
    state = neuron.init_state(1, (1,))
    out = [float(neuron.step(state, [np.zeros((1, 1), F32)])[0, 0]) for _ in range(10)]
    # windows 0-2 (steps 0-5) send nothing; window 3 sends window 2's mean 0: T_1 fires (K d_1 = -1/2), a = 1/2,
    # then T_2 = 1/4 fires (K d_2 = 1): the code's value at 0 is d_1 + d_2 = 1/4
    assert out == [0, 0, 0, 0, 0, 0, -0.5, 1.0, -0.5, 1.0]
    assert neuron.forward([np.zeros((1, 1), F32)])[0, 0] == pytest.approx(0.25)


# -- conversion ------------------------------------------------------------------------------------------------------


def test_a_silu_network_converts_to_fitted_few_spike_neurons_and_runs_them_pipelined():
    x = np.random.default_rng(3).normal(size=(256, 6)).astype(F32)
    ann, snn, ctx = _convert(two_layer(None, silu=True), "coding=fs,fs-steps=12,norm=max", calibration=x)
    assert [op.op_type for op in snn.ops] == ["Dense", "FewSpike", "Dense", "FewSpike", "Dense"]
    record = ctx.records["convert-to-snn"]
    assert set(record["fs_fit"]) == {"act1", "act2"}
    for name, fit in record["fs_fit"].items():
        assert (fit["activation"], fit["steps"]) == ("SiLU", 12)
        assert 0 < fit["mean_error"] <= fit["max_error"] < 0.05
        assert fit["data_error"] is not None
        assert snn.op(name).meta["fs_fit"] == fit
        assert fit["lambda"] == pytest.approx(record["lambda"][name])
    assert readout_delay(snn) == 24
    sim = simulate(snn, {"x": x}, steps=24, checkpoints=(12,))
    float_snn = interpret.run(snn, x)["y"]  # each layer's Σ d_j z_j: what whole windows send
    np.testing.assert_allclose(sim.checkpoints[12]["y"], float_snn, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sim.outputs["y"], float_snn, rtol=1e-4, atol=1e-4)
    expected = interpret.run(ann, x)["y"]
    assert np.abs(float_snn - expected).max() < 0.1 * np.abs(expected).max()
    assert np.mean(float_snn.argmax(1) == expected.argmax(1)) > 0.95


def test_without_calibration_data_the_fit_spans_the_weight_bounds():
    _, snn, ctx = _convert(two_layer(None, silu=True), "coding=fs,fs-steps=6,norm=weights")
    for fit in ctx.records["convert-to-snn"]["fs_fit"].values():
        assert fit["data_error"] is None
        assert fit["range"][0] < 0
    assert sum(isinstance(op, FewSpike) for op in snn.ops) == 2


@pytest.mark.parametrize("coding", ["rate", "signed"])
def test_silu_is_refused_in_codings_of_integrate_and_fire_neurons(coding):
    refusal = rf"SiLU 'act1' \(and 1 more\): integrate-and-fire neurons \(coding={coding}\) .*convert with coding=fs"
    with pytest.raises(ConversionError, match=refusal):
        _convert(two_layer(None, silu=True), f"coding={coding}")


def test_silu_needs_one_scale_per_layer_and_data_based_thresholds():
    x = np.random.default_rng(3).normal(size=(64, 6)).astype(F32)
    with pytest.raises(ConversionError, match=r"SiLU 'act1'.*one SiLU code per layer.*pass granularity=layer"):
        _convert(two_layer(None, silu=True), "coding=fs,granularity=channel", calibration=x)
    with pytest.raises(ConversionError, match=r"SiLU 'act1'.*norm=spike .*pass norm=percentile"):
        _convert(two_layer(None, silu=True), "coding=fs,norm=spike", calibration=x)


def test_few_spike_coding_names_what_it_has_codes_for():
    graph = Graph(
        "hardtanh",
        {"x": TensorType((4,))},
        ["y"],
        [
            Dense(name="fc", inputs=("x",), output="h", weight=np.eye(4, dtype=F32)),
            Clip(name="tanh", inputs=("h",), output="t", low=-1.0, high=1.0),
            Dense(name="out", inputs=("t",), output="y", weight=np.eye(4, dtype=F32)),
        ],
    )
    with pytest.raises(
        ConversionError, match=r"Clip 'tanh' with low=-1.0: few-spike coding \(coding=fs\) has a code for ReLU, .*SiLU"
    ):
        _convert(graph, "coding=fs")


@pytest.mark.parametrize("target", ["speck", "spinnaker", "brainscales2"])
def test_targets_of_if_neurons_refuse_silu_by_name(tmp_path, target):
    calibration = load_calibration(str(CALIBRATION), 64)
    with pytest.raises(ConversionError, match=r"SiLU '/features/features.2/Mul' .*convert with coding=fs"):
        compile_model(MODEL, target, tmp_path / "a", calibration=calibration)
    with pytest.raises(DataError, match=rf"coding=fs asks for neurons the {target} target does not run"):
        compile_model(MODEL, target, tmp_path / "b", calibration=calibration, conversion="coding=fs")


# -- the shipped model -----------------------------------------------------------------------------------------------


def test_the_silu_example_is_small_logged_and_imports_as_its_onnx_model():
    ort = pytest.importorskip("onnxruntime")
    assert MODEL.stat().st_size < 2**17
    log = json.loads((EXAMPLE / "training_log.json").read_text())
    assert log["torch_test_accuracy"] == log["onnxruntime_test_accuracy"] > 0.98
    assert {"Sigmoid", "Mul"} <= set(log["onnx_op_types"])
    graph = import_onnx(MODEL)
    assert sum(isinstance(op, SiLU) for op in graph.ops) == 2
    x = np.load(CALIBRATION)["x"][:32]
    expected = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(interpret.run(graph, x)[graph.outputs[0]], expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def mnist_test():
    from neurodeploy.data import data_folder, load_dataset

    if data_folder("mnist") is None:
        pytest.skip("the shared data (or its mnist/) is not here")
    return load_dataset("mnist", "test", limit=200)


def test_the_silu_example_on_the_reference_target_is_within_a_point_of_its_ann(mnist_test):
    """K = 8, thresholds and fits from the 256 shipped calibration images; 200 MNIST test images, read over the
    second window after the fill: the SNN's accuracy within 1 point of the ANN's, 97% of the predictions alike."""
    calibration = np.load(CALIBRATION)["x"]
    ann, snn, ctx = _convert(import_onnx(MODEL), "coding=fs,fs-steps=8", calibration=calibration)
    fits = ctx.records["convert-to-snn"]["fs_fit"]
    assert len(fits) == 2
    assert all(f["max_error"] < 0.06 and f["data_error"] < 0.01 for f in fits.values())
    x, y = mnist_test.x, mnist_test.y
    (out,) = ann.outputs
    ann_logits = interpret.run(ann, x)[out]
    sim = simulate(snn, {"input": x}, steps=16, checkpoints=(8,))
    ann_accuracy = np.mean(ann_logits.argmax(1) == y)
    for logits in (sim.checkpoints[8][out], sim.outputs[out]):
        assert np.mean(logits.argmax(1) == y) >= ann_accuracy - 0.01
        assert np.mean(logits.argmax(1) == ann_logits.argmax(1)) >= 0.97
