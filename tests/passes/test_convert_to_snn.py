"""convert-to-snn: scale bookkeeping is exact in the rate limit, the SNN approaches the ANN as T grows, and
what cannot convert is refused by name."""

import numpy as np
import pytest
from ir_graphs import conv_net, inputs_for, residual_net

from neurodeploy.conversion.statistics import weight_bounds
from neurodeploy.errors import ConversionError
from neurodeploy.ir import IF, AvgPool2d, Clip, Dense, Graph, MaxPool2d, Relu, Scale, TensorType, interpret
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline
from neurodeploy.simulate import simulate


def convert(graph: Graph, calibration, options: str = "") -> tuple[Graph, Graph, PassContext]:
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    ann = graph.copy()
    ctx = PassContext(calibration=calibration)
    PassManager(build_pipeline(f"convert-to-snn{options}")).run(graph, ctx)
    return ann, graph, ctx


@pytest.mark.parametrize("make", [conv_net, residual_net])
def test_rate_limit_equals_the_ann_on_calibration_data(make):
    """The default is the 99.9th percentile (which clips the top activations on purpose); with max nothing
    clips, so the comparison is exact."""
    # With max normalization nothing clips on the calibration inputs, so the IF rate limit clip(x/theta, 0, 1)
    # reproduces every ReLU exactly: any error in weight, threshold or branch scaling shows up here.
    x = inputs_for(make(), batch=32)
    ann, snn, _ = convert(make(), x, "{norm=max}")
    assert any(isinstance(op, IF) for op in snn.ops)
    assert not any(isinstance(op, Relu) for op in snn.ops)
    np.testing.assert_allclose(interpret.run(snn, x)["logits"], interpret.run(ann, x)["logits"], rtol=1e-4, atol=1e-5)


def test_thresholds_are_one_when_layers_absorb_the_scale_and_lambdas_are_recorded():
    x = inputs_for(conv_net())
    ann, snn, ctx = convert(conv_net(), x, "{norm=max}")
    neurons = [op for op in snn.ops if isinstance(op, IF)]
    assert [float(n.threshold) for n in neurons] == [1.0, 1.0]
    assert all(n.reset == "subtract" and n.initial == 0.5 for n in neurons)
    activations = interpret.run(ann, x, keep=["r1", "r2"])
    lambdas = ctx.records["convert-to-snn"]["lambda"]
    assert lambdas["relu1"] == pytest.approx(float(activations["r1"].max()), rel=1e-6)
    assert lambdas["relu2"] == pytest.approx(float(activations["r2"].max()), rel=1e-6)


def test_clipped_relu_threshold_is_its_clip_value_and_skip_branch_gets_a_scale():
    x = inputs_for(residual_net())
    _, snn, ctx = convert(residual_net(), x)
    assert ctx.records["convert-to-snn"]["lambda"]["left_clip"] == pytest.approx(0.4)
    scales = [op for op in snn.ops if isinstance(op, Scale)]
    assert [op.inputs for op in scales] == [("sr",)]  # the identity branch of the residual Add


def test_snn_approaches_the_ann_as_steps_grow():
    x = inputs_for(conv_net(), batch=32)
    ann, snn, _ = convert(conv_net(), x)
    expected = interpret.run(ann, x)["logits"]
    errors = [np.abs(simulate(snn, {"x": x}, steps).outputs["logits"] - expected).mean() for steps in (16, 128, 1024)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * np.abs(expected).mean() + 1e-3


def test_without_calibration_weight_bounds_are_used_and_never_clip():
    graph = conv_net()
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    ann = graph.copy()
    ctx = PassContext()
    PassManager(build_pipeline("convert-to-snn")).run(graph, ctx)
    assert any("No calibration data" in w for w in ctx.warnings)
    assert graph.meta["snn"]["norm"] == "weights"
    x = np.random.default_rng(5).uniform(-1, 1, size=(64, 2, 8, 8)).astype(np.float32)
    bounds = weight_bounds(ann, ["r1", "r2"])
    observed = interpret.run(ann, x, keep=["r1", "r2"])
    assert all(observed[v].max() <= bounds[v] for v in ("r1", "r2"))
    np.testing.assert_allclose(interpret.run(graph, x)["logits"], interpret.run(ann, x)["logits"], rtol=1e-4, atol=1e-5)


def test_maxpool_becomes_avgpool_with_a_warning_or_is_refused():
    x = inputs_for(conv_net())
    _, snn, ctx = convert(conv_net(maxpool=True), x)
    assert isinstance(snn.op("pool1"), AvgPool2d)
    assert not any(isinstance(op, MaxPool2d) for op in snn.ops)
    assert any("MaxPool replaced by AvgPool" in w and "pool1" in w for w in ctx.warnings)
    with pytest.raises(ConversionError, match="MaxPool2d 'pool1' cannot be rate-coded"):
        convert(conv_net(maxpool=True), x, "{maxpool=error}")


def test_unconvertible_ops_are_named():
    graph = Graph(
        "g",
        {"x": TensorType((4,))},
        ["y"],
        [
            Dense(name="fc", inputs=("x",), output="h", weight=np.eye(4, dtype=np.float32)),
            Clip(name="hardtanh", inputs=("h",), output="y", low=-1.0, high=1.0),
        ],
    )
    with pytest.raises(ConversionError, match=r"Clip 'hardtanh' with low=-1\.0 has no spiking equivalent"):
        convert(graph, np.ones((2, 4), np.float32))
    with pytest.raises(ConversionError, match="Softmax 'softmax' has no spiking equivalent; run drop-softmax"):
        PassManager(build_pipeline("fold-batchnorm,convert-to-snn")).run(conv_net(softmax=True), PassContext())
    with pytest.raises(ConversionError, match="BatchNorm 'bn1' is left over; run fold-batchnorm"):
        PassManager(build_pipeline("convert-to-snn")).run(conv_net(), PassContext())


def test_reset_to_zero_option_reaches_the_neurons():
    _, snn, _ = convert(conv_net(), inputs_for(conv_net()), "{reset=zero,initial=0}")
    assert {(op.reset, op.initial) for op in snn.ops if isinstance(op, IF)} == {("zero", 0.0)}


@pytest.mark.parametrize("zeros", ["exclude", "include"])
def test_percentile_lambda_is_the_percentile_of_the_calibration_activations(zeros):
    x = inputs_for(conv_net(), batch=32)
    ann, _, ctx = convert(conv_net(), x, f"{{norm=percentile,percentile=90,zeros={zeros}}}")
    r1 = interpret.run(ann, x, keep=["r1"])["r1"].ravel()
    pool = r1[r1 > 0] if zeros == "exclude" else r1
    assert ctx.records["convert-to-snn"]["lambda"]["relu1"] == pytest.approx(float(np.percentile(pool, 90)), rel=1e-5)
    assert ctx.records["convert-to-snn"]["norm"] == "percentile"
    # Robust normalization clips the top activations: the rate limit now saturates at lambda.
    assert ctx.records["convert-to-snn"]["lambda"]["relu1"] < float(r1.max())


def test_per_channel_lambdas_fold_into_weights_and_keep_the_rate_limit_exact():
    x = inputs_for(residual_net(), batch=32)
    ann, snn, ctx = convert(residual_net(), x, "{norm=max,granularity=channel}")
    lambdas = ctx.records["convert-to-snn"]["lambda"]
    activations = interpret.run(ann, x, keep=["sr", "b1r"])
    maxima = activations["sr"].max(axis=(0, 2, 3))
    # A channel never active on the calibration data gets lambda 1 (any threshold would do).
    np.testing.assert_allclose(lambdas["stem_relu"], np.where(maxima > 0, maxima, 1.0), rtol=1e-6)
    assert len(lambdas["b1_relu"]) == 4
    assert all(float(op.threshold) == 1.0 for op in snn.ops if isinstance(op, IF) and op.threshold.ndim == 0)
    np.testing.assert_allclose(interpret.run(snn, x)["logits"], interpret.run(ann, x)["logits"], rtol=1e-4, atol=1e-5)


def test_spike_count_readout_makes_the_output_layer_spike():
    x = inputs_for(conv_net(), batch=32)
    ann, snn, ctx = convert(conv_net(), x, "{norm=max,readout=spikes}")
    producer = snn.producer(snn.outputs[0])
    assert isinstance(producer, Scale)
    assert isinstance(snn.producer(producer.inputs[0]), IF)
    logits = interpret.run(ann, x)["logits"]
    limit = interpret.run(snn, x)["logits"]
    # The rate limit of a spiking readout is the ReLU of the logits: positive winners keep their rank.
    np.testing.assert_allclose(limit, np.maximum(logits, 0), rtol=1e-4, atol=1e-5)
    winners = logits.max(axis=1) > 0
    assert (limit.argmax(1) == logits.argmax(1))[winners].all()
    assert ctx.records["convert-to-snn"]["readout"] == "spikes"


def test_per_channel_without_calibration_falls_back_to_layer_bounds():
    graph = conv_net()
    PassManager(build_pipeline(f"{CANONICALIZE},convert-to-snn{{granularity=channel}}")).run(
        graph, ctx := PassContext()
    )
    assert any("Per-channel thresholds need calibration data" in w for w in ctx.warnings)
    assert graph.meta["snn"]["granularity"] == "layer"


def test_spike_norm_balances_layer_by_layer_by_simulation():
    x = inputs_for(conv_net(), batch=32)
    ann, snn, ctx = convert(conv_net(), x, "{norm=spike,spike-steps=16}")
    record = ctx.records["convert-to-snn"]
    assert record["norm"] == "spike"
    # The first layer sees the constant analog input: its largest current is the largest pre-activation.
    first = interpret.run(ann, x, keep=["c1"])["c1"]
    assert record["lambda"]["relu1"] == pytest.approx(float(first.max()), rel=1e-6)
    # Deeper layers see binary spikes: their largest per-step current exceeds the ANN's largest activation.
    second = interpret.run(ann, x, keep=["r2"])["r2"]
    assert record["lambda"]["relu2"] > float(second.max())
    expected = interpret.run(ann, x)["logits"]
    errors = [np.abs(simulate(snn, {"x": x}, steps).outputs["logits"] - expected).mean() for steps in (32, 512)]
    assert errors[1] < errors[0]


def _capped(high: float, gain: float) -> Graph:
    """x (4) -> dense (gain * I) -> Clip(0, high) -> dense (2): a clipped ReLU whose inputs reach ``gain``."""
    return Graph(
        "capped",
        {"x": TensorType((4,))},
        ["y"],
        [
            Dense(name="fc", inputs=("x",), output="h", weight=gain * np.eye(4, dtype=np.float32)),
            Clip(name="relu6", inputs=("h",), output="a", low=0.0, high=high),
            Dense(name="out", inputs=("a",), output="y", weight=np.ones((2, 4), np.float32)),
        ],
    )


def test_a_cap_the_data_sit_below_takes_the_datas_threshold_and_a_reached_clip_keeps_its_value():
    """ReLU6 on activations that reach 2 (uniform inputs times 2): clip=auto takes the 99.9th percentile of the
    clipped output (below 2), clip=trained keeps 6. A clip the data exceed (inputs reach 2, clip 0.5) keeps 0.5
    either way, and without data the clip value is λ."""
    x = np.random.default_rng(2).random((512, 4)).astype(np.float32)
    _, _, ctx = convert(_capped(6.0, 2.0), x)
    auto = ctx.records["convert-to-snn"]["lambda"]["relu6"]
    a = interpret.run(_capped(6.0, 2.0), x, keep=["a"])["a"]
    assert auto == pytest.approx(float(np.percentile(a[a > 0], 99.9)), rel=1e-5)
    assert 1.9 < auto < 2.0
    assert ctx.records["convert-to-snn"]["clip"] == "auto"
    _, _, ctx = convert(_capped(6.0, 2.0), x, "{clip=trained}")
    assert ctx.records["convert-to-snn"]["lambda"]["relu6"] == pytest.approx(6.0)
    for options in ("", "{clip=trained}"):
        _, _, ctx = convert(_capped(0.5, 2.0), x, options)
        assert ctx.records["convert-to-snn"]["lambda"]["relu6"] == pytest.approx(0.5)
    _, _, ctx = convert(_capped(6.0, 2.0), None)
    assert ctx.records["convert-to-snn"]["lambda"]["relu6"] == pytest.approx(6.0)


def test_a_cap_the_data_sit_below_fires_at_the_rate_the_data_call_for():
    """At T = 16 the SNN with λ from the data is closer to the ANN than the one with the cap as λ: each neuron
    fires about 3x as often, so the rate carries more of the value."""
    x = np.random.default_rng(3).random((256, 4)).astype(np.float32)
    errors = {}
    for options in ("", "{clip=trained}"):
        ann, snn, _ = convert(_capped(6.0, 2.0), x, options)
        want = interpret.run(ann, x)["y"]
        errors[options] = np.abs(simulate(snn, {"x": x}, 16).outputs["y"] - want).mean()
    assert errors[""] < 0.5 * errors["{clip=trained}"]
