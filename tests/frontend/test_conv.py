"""Conv: groups (1, 2, depthwise), strides, dilations, explicit asymmetric pads, auto_pad, with and without bias."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import check, import_model, one_node, op_types, randn, run_ort


def _conv(x_shape, out_ch, kernel, group=1, bias=True, opset=17, **attrs):
    c = x_shape[1]
    weight = randn((out_ch, c // group, *kernel), seed=1, scale=0.5)
    consts = [("w", weight)]
    if bias:
        consts.append(("b", randn((out_ch,), seed=2)))
    return one_node("Conv", x_shape, consts, opset=opset, group=group, **attrs)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("in_ch", "out_ch", "group"),
    [(4, 6, 1), (4, 6, 2), (4, 4, 4), (3, 6, 3)],
    ids=["dense", "groups2", "depthwise", "depthwise-multiplier2"],
)
def test_groups(in_ch, out_ch, group, bias):
    graph, _ = check(_conv((2, in_ch, 7, 6), out_ch, (3, 3), group=group, bias=bias))
    assert op_types(graph) == ["Conv2d"]
    assert graph.ops[0].groups == group
    assert (graph.ops[0].bias is not None) == bias


@pytest.mark.parametrize("strides", [[1, 1], [2, 2], [2, 1], [3, 2]])
@pytest.mark.parametrize("dilations", [[1, 1], [2, 2], [1, 3]])
def test_strides_dilations(strides, dilations):
    check(_conv((2, 3, 11, 10), 4, (3, 3), strides=strides, dilations=dilations))


@pytest.mark.parametrize(
    "pads", [[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 2, 1], [0, 2, 1, 0], [2, 1, 0, 3]], ids=lambda p: "pads" + str(p)
)
@pytest.mark.parametrize("strides", [[1, 1], [2, 2]])
def test_explicit_asymmetric_pads(pads, strides):
    graph, _ = check(_conv((2, 3, 9, 8), 5, (3, 2), pads=pads, strides=strides))
    assert graph.ops[0].padding == tuple(pads)  # ONNX (top, left, bottom, right)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("strides", [[1, 1], [2, 2]])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)], ids=["even", "odd"])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 4)], ids=["k3x3", "k2x4"])
def test_auto_pad(auto_pad, strides, size, kernel):
    check(_conv((2, 3, *size), 4, kernel, auto_pad=auto_pad, strides=strides))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_auto_pad_with_dilation(auto_pad):
    # onnxruntime rejects dilations with SAME_*; the ONNX reference implementation defines them.
    check(_conv((2, 2, 9, 8), 3, (3, 2), auto_pad=auto_pad, dilations=[2, 3], strides=[2, 1]), reference="onnx")


def test_auto_pad_same_lower_puts_odd_cell_first():
    graph, _ = check(_conv((2, 1, 8, 8), 1, (2, 2), auto_pad="SAME_LOWER"))
    assert graph.ops[0].padding == (1, 1, 0, 0)
    graph, _ = check(_conv((2, 1, 8, 8), 1, (2, 2), auto_pad="SAME_UPPER"))
    assert graph.ops[0].padding == (0, 0, 1, 1)


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_opsets_and_kernel_shape(opset):
    check(_conv((3, 2, 6, 6), 4, (3, 3), opset=opset, kernel_shape=[3, 3], pads=[1, 1, 1, 1]))


def test_kernel_shape_disagreeing_with_weight_is_rejected():
    with pytest.raises(UnsupportedOpError, match=r"conv_node.*kernel_shape"):
        import_model(_conv((2, 2, 6, 6), 4, (3, 3), kernel_shape=[2, 2]))


def test_conv_1d_is_rejected():
    model = one_node("Conv", (2, 3, 10), [("w", randn((4, 3, 3)))])
    with pytest.raises(UnsupportedOpError, match=r"conv_node.*1 spatial dimension"):
        import_model(model)


def test_large_values_relative_to_output_scale():
    """Inputs of magnitude 1e3: float32 sums cancel, so the bound is 1e-5 times the largest output magnitude."""
    model = _conv((2, 8, 9, 9), 8, (3, 3), pads=[1, 1, 1, 1])
    x = randn((2, 8, 9, 9), seed=3, scale=1000.0)
    scale = float(np.abs(run_ort(model, x)).max())
    check(model, x, atol=1e-5 * scale)
