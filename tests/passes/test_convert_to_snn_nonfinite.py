"""convert-to-snn never produces a NaN, Inf or non-positive threshold or scale (issue #10): non-finite weights or
calibration data are refused naming the layer; Clip(0, inf) is a ReLU, not a threshold of inf."""

import numpy as np
import pytest
from ir_graphs import conv_net, inputs_for, residual_net

from neurodeploy.errors import ConversionError, DataError
from neurodeploy.ir import IF, Graph, interpret
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline


def convert(graph: Graph, calibration, options: str = "") -> tuple[Graph, PassContext]:
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    ctx = PassContext(calibration=calibration)
    PassManager(build_pipeline(f"convert-to-snn{options}")).run(graph, ctx)
    return graph, ctx


def with_bad_weight(value: float) -> Graph:
    graph = conv_net()
    weight = graph.op("conv2").weight.copy()
    weight[1, 0, 1, 1] = value
    graph.op("conv2").weight = weight
    return graph


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("options", ["{norm=max}", "", "{norm=weights}", "{norm=spike,spike-steps=4}"])
def test_non_finite_weights_are_refused_naming_the_layer(value, options):
    graph = with_bad_weight(value)
    calibration = None if options == "{norm=weights}" else inputs_for(conv_net())
    with pytest.raises(ConversionError, match=r"'relu2'|'conv2'"):
        convert(graph, calibration, options)


def test_non_finite_calibration_data_that_reaches_the_pass_is_refused():
    x = inputs_for(conv_net())
    x[3, 0, 2, 2] = np.nan
    with pytest.raises(DataError, match=r"1 non-finite value\(s\).*sample 3"):
        convert(conv_net(), x, "{norm=max}")


def test_clip_to_infinity_is_a_relu_with_a_measured_threshold():
    graph = residual_net()
    graph.op("left_clip").high = float("inf")
    x = inputs_for(residual_net())
    snn, ctx = convert(graph, x, "{norm=max}")
    lam = ctx.records["convert-to-snn"]["lambda"]["left_clip"]
    assert np.isfinite(lam)
    assert lam > 0
    ann = residual_net()
    ann.op("left_clip").high = None
    PassManager(build_pipeline(CANONICALIZE)).run(ann, PassContext())
    measured = interpret.run(ann, x, keep=["lc"])["lc"].max()
    assert lam == pytest.approx(float(measured), rel=1e-6)
    for op in snn.ops:
        if isinstance(op, IF):
            assert np.all(np.isfinite(op.threshold))
            assert np.all(np.asarray(op.threshold) > 0)


def test_a_layer_that_never_activates_gets_a_finite_threshold():
    graph = conv_net()
    graph.op("conv2").weight = -np.abs(graph.op("conv2").weight)
    graph.op("conv2").bias = -np.abs(graph.op("conv2").bias) - 1
    snn, ctx = convert(graph, inputs_for(conv_net()), "{norm=max}")
    assert ctx.records["convert-to-snn"]["lambda"]["relu2"] == 1.0
    assert all(np.all(np.isfinite(op.weight)) for op in snn.ops if hasattr(op, "weight"))
