"""AveragePool (count_include_pad, ceil_mode, pads, strides, kernels, auto_pad, dilations at opset 19), MaxPool
(ceil_mode, pads, strides, dilations) and GlobalAveragePool."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, shape_inference

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import check, import_model, make_model, one_node, op_types, randn, run_ir

X_SHAPE = (2, 3, 9, 8)

WINDOWS = [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "strides": [1, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 3], "pads": [1, 0, 0, 1]},
    {"kernel_shape": [4, 3], "strides": [3, 2], "pads": [2, 1, 1, 0]},
    {"kernel_shape": [1, 1], "strides": [1, 1]},
]


def _id(attrs: dict) -> str:
    return "-".join(f"{k[0]}{''.join(map(str, v))}" for k, v in attrs.items())


@pytest.mark.parametrize("window", WINDOWS, ids=_id)
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool(window, ceil_mode, count_include_pad):
    model = one_node("AveragePool", X_SHAPE, ceil_mode=ceil_mode, count_include_pad=count_include_pad, **window)
    graph, _ = check(model)
    assert op_types(graph) == ["AvgPool2d"]


@pytest.mark.parametrize("opset", [11, 19, 21])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("strides", [[1, 1], [2, 2]])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)], ids=["even", "odd"])
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool_auto_pad(opset, auto_pad, strides, size, count_include_pad):
    model = one_node(
        "AveragePool",
        (2, 2, *size),
        opset=opset,
        kernel_shape=[3, 2],
        strides=strides,
        auto_pad=auto_pad,
        count_include_pad=count_include_pad,
    )
    check(model)


@pytest.mark.parametrize("dilations", [[2, 2], [1, 2], [3, 1]])
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("pads", [[0, 0, 0, 0], [1, 1, 1, 1], [2, 0, 1, 2]])
def test_average_pool_dilations_opset19(dilations, ceil_mode, count_include_pad, pads):
    model = one_node(
        "AveragePool",
        (2, 2, 11, 10),
        opset=19,
        kernel_shape=[3, 3],
        strides=[2, 2],
        dilations=dilations,
        pads=pads,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )
    check(model)


@pytest.mark.parametrize("window", WINDOWS, ids=_id)
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("opset", [11, 12, 21])
def test_max_pool(window, ceil_mode, opset):
    graph, _ = check(one_node("MaxPool", X_SHAPE, opset=opset, ceil_mode=ceil_mode, **window))
    assert op_types(graph) == ["MaxPool2d"]


@pytest.mark.parametrize("dilations", [[2, 2], [1, 3]])
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("pads", [[0, 0, 0, 0], [2, 1, 1, 1]])
def test_max_pool_dilations(dilations, ceil_mode, pads):
    model = one_node(
        "MaxPool",
        (2, 2, 11, 10),
        kernel_shape=[3, 2],
        strides=[2, 1],
        dilations=dilations,
        pads=pads,
        ceil_mode=ceil_mode,
    )
    check(model)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)], ids=["even", "odd"])
def test_max_pool_auto_pad(auto_pad, size):
    check(one_node("MaxPool", (2, 2, *size), kernel_shape=[3, 3], strides=[2, 2], auto_pad=auto_pad))


def test_max_pool_negative_inputs_ignore_padding():
    """All inputs negative: a padded cell (0 in a naive implementation) must never win."""
    x = -abs(randn((2, 2, 6, 6), seed=9)) - 1.0
    check(one_node("MaxPool", (2, 2, 6, 6), kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]), x)


def test_max_pool_indices_output_is_rejected():
    node = helper.make_node("MaxPool", ["x"], ["y", "idx"], name="mp", kernel_shape=[2, 2])
    with pytest.raises(UnsupportedOpError, match=r"MaxPool 'mp': the Indices output"):
        import_model(make_model([node], (2, 2, 4, 4)))


@pytest.mark.parametrize("x_shape", [(2, 3, 5, 7), (3, 4, 1, 1), (2, 3, 6)])
def test_global_average_pool(x_shape):
    graph, _ = check(one_node("GlobalAveragePool", x_shape))
    assert op_types(graph) == ["GlobalAvgPool"]


@pytest.mark.parametrize("op_type", ["AveragePool", "MaxPool"])
@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("size", [(6, 6), (7, 5), (5, 7)])
def test_ceil_mode_drops_window_starting_in_end_padding(op_type, count_include_pad, size):
    """size 6, kernel 3, stride 4, pads 1: ceil gives 3 windows, but the third would start in the end padding."""
    attrs = {"count_include_pad": count_include_pad} if op_type == "AveragePool" else {}
    model = one_node(
        op_type, (2, 2, *size), kernel_shape=[3, 3], strides=[4, 4], pads=[1, 1, 1, 1], ceil_mode=1, **attrs
    )
    graph, expected = check(model)
    assert expected.shape[2:] == graph.types()[graph.outputs[0]].shape[1:]


def _pool_by_definition(x, kernel, strides, dilations, pads, average, count_include_pad, out_hw):
    """Pooling straight from the ONNX definition: window cell (a, b) of output (i, j) reads input row
    i * stride + a * dilation - pad_top; cells outside the input count only as padding (0) for AveragePool with
    count_include_pad."""
    n, c, h, w = x.shape
    top, left, bottom, right = pads
    y = np.zeros((n, c, *out_hw), np.float64)
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            cells, count = [], 0
            for a in range(kernel[0]):
                for b in range(kernel[1]):
                    r, q = i * strides[0] + a * dilations[0] - top, j * strides[1] + b * dilations[1] - left
                    if 0 <= r < h and 0 <= q < w:
                        cells.append(x[:, :, r, q])
                        count += 1
                    elif count_include_pad and -top <= r < h + bottom and -left <= q < w + right:
                        count += 1
            y[:, :, i, j] = np.sum(cells, axis=0) / count if average else np.max(cells, axis=0)
    return y


@pytest.mark.parametrize("op_type", ["AveragePool", "MaxPool"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize(("size", "strides", "dilations"), [((9, 8), [2, 1], [2, 2]), ((7, 10), [1, 2], [1, 3])])
def test_same_auto_pad_with_dilations_follows_the_spec(op_type, auto_pad, size, strides, dilations):
    """The ONNX spec pads SAME_* by (out - 1) * stride + (kernel - 1) * dilation + 1 - in, with out = ceil(in /
    stride). onnxruntime 1.32 leaves dilation out of that total (and so gets other output shapes), and so does
    onnx's ReferenceEvaluator; compare with ONNX shape inference and the definition instead."""
    attrs = {"count_include_pad": 1} if op_type == "AveragePool" else {}
    model = one_node(
        op_type, (2, 2, *size), opset=19, kernel_shape=[3, 2], strides=strides, dilations=dilations,
        auto_pad=auto_pad, **attrs,
    )  # fmt: skip
    inferred = shape_inference.infer_shapes(model).graph.output[0].type.tensor_type.shape
    out_hw = tuple(d.dim_value for d in inferred.dim[2:])
    assert out_hw == tuple(-(-s // st) for s, st in zip(size, strides))
    graph = import_model(model)
    x = randn((2, 2, *size), seed=5)
    expected = _pool_by_definition(
        x, (3, 2), strides, dilations, graph.ops[0].padding, op_type == "AveragePool", True, out_hw
    )
    np.testing.assert_allclose(run_ir(graph, x), expected, atol=1e-5, rtol=0)
    # SAME_UPPER puts the odd padding cell at the end, SAME_LOWER at the beginning.
    top, left, bottom, right = graph.ops[0].padding
    totals = [(o - 1) * st + (k - 1) * d + 1 - s for o, st, k, d, s in zip(out_hw, strides, (3, 2), dilations, size)]
    assert (top + bottom, left + right) == tuple(totals)
    assert (bottom - top, right - left) == tuple((t % 2) * (1 if auto_pad == "SAME_UPPER" else -1) for t in totals)


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool"])
def test_windows_over_padding_alone_match_onnxruntime(op_type):
    # A 2x2 window dilated by 3 on a padded 2x2 input touches padded cells 0 and 3 only: it sees no data.
    # onnxruntime gives the lowest float32 for MaxPool and 0 for AveragePool without count_include_pad.
    model = one_node(op_type, (2, 3, 2, 2), kernel_shape=[2, 2], pads=[1, 1, 1, 1], dilations=[3, 3], opset=19)
    graph, expected = check(model)
    assert expected.shape == (2, 3, 1, 1)
    assert np.isfinite(run_ir(graph, randn((2, 3, 2, 2)))).all()


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_over_spatial_axes_is_a_global_average_pool(opset, keepdims):
    axes = [-2, -1] if keepdims else [2, 3]
    if opset >= 18:
        model = one_node("ReduceMean", X_SHAPE, [("axes", np.array(axes, np.int64))], opset=opset, keepdims=keepdims)
    else:
        model = one_node("ReduceMean", X_SHAPE, opset=opset, axes=axes, keepdims=keepdims)
    graph, expected = check(model)
    assert expected.shape == ((2, 3, 1, 1) if keepdims else (2, 3))
    assert op_types(graph) == (["GlobalAvgPool"] if keepdims else ["GlobalAvgPool", "Reshape"])


def test_reduce_mean_over_channels_is_rejected():
    model = one_node("ReduceMean", X_SHAPE, opset=13, axes=[1], keepdims=1)
    with pytest.raises(UnsupportedOpError, match=r"ReduceMean 'reducemean_node': only the mean over every spatial"):
        import_model(model)
