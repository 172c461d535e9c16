"""Shape, Gather, Cast, Slice, Mul, Sub, Div, Transpose and ConstantOfShape on constants: evaluated at import, in
subgraphs that end in a Reshape target or an Add constant."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from neurodeploy.errors import UnsupportedOpError

from .onnx_cases import check, const, import_model, make_model, op_types, randn

X_SHAPE = (2, 3, 4, 5)
INT64_MAX = np.iinfo(np.int64).max


def _i64(name: str, values) -> object:
    return const(name, np.array(values, np.int64))


def _reshape_model(nodes, target: str, inits=(), opset: int = 17, x_shape=X_SHAPE):
    nodes = [*nodes, helper.make_node("Reshape", ["x", target], ["y"], name="reshape")]
    return make_model(nodes, x_shape, initializers=list(inits), opset=opset)


def _check_reshape(model, per_sample: tuple[int, ...]):
    graph, expected = check(model)
    assert op_types(graph) == ["Reshape"]
    assert graph.ops[0].shape == per_sample
    assert expected.shape[1:] == per_sample


@pytest.mark.parametrize("opset", [15, 19, 21])
@pytest.mark.parametrize(
    ("start", "end", "per_sample"),
    [
        (None, 1, (2, 30)),
        (0, 2, (2, 3, 10)),
        (1, None, (3, 4, 5, 1)),
        (-2, None, (4, 5, 3)),
        (1, -1, (3, 4, 5)),
        (-1, None, (5, 12)),
        (2, 2, (60,)),
        (-10, 10, None),
    ],
    ids=str,
)
def test_shape_start_end(opset, start, end, per_sample):
    """Reshape x to Concat(N, Shape(x)[start:end], -1): the Shape slice decides the target."""
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape", **attrs),
        helper.make_node("Shape", ["x"], ["n"], name="batch", end=1),
        helper.make_node("Concat", ["n", "s", "minus_one"], ["t"], name="concat", axis=0),
    ]
    model = _reshape_model(nodes, "t", [_i64("minus_one", [-1])], opset=opset)
    if per_sample is None:  # start/end clamp to the whole shape: (N, N, C, H, W, -1) has too many values
        with pytest.raises(UnsupportedOpError, match=r"Reshape 'reshape': cannot reshape"):
            import_model(model)
    else:
        _check_reshape(model, per_sample)


def _unsqueeze0(src: str, dst: str, opset: int):
    """Unsqueeze(src, axes=[0]): the axes are an attribute before opset 13 and an input (``axes0``) since."""
    if opset >= 13:
        return helper.make_node("Unsqueeze", [src, "axes0"], [dst], name=f"unsq_{src}")
    return helper.make_node("Unsqueeze", [src], [dst], name=f"unsq_{src}", axes=[0])


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_shape_gather_mul_unsqueeze_concat(opset):
    """x.view(x.size(0), x.size(1), x.size(2) * x.size(3)) as torch writes it."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape")]
    for i in range(4):
        nodes.append(_const_node(f"i{i}", np.array(i, np.int64)))
        nodes.append(helper.make_node("Gather", ["s", f"i{i}"], [f"d{i}"], name=f"gather{i}", axis=0))
    nodes += [
        helper.make_node("Mul", ["d2", "d3"], ["hw"], name="mul"),
        _unsqueeze0("d0", "u0", opset),
        _unsqueeze0("d1", "u1", opset),
        _unsqueeze0("hw", "u2", opset),
        helper.make_node("Concat", ["u0", "u1", "u2"], ["t"], name="concat", axis=0),
    ]
    inits = [_i64("axes0", [0])] if opset >= 13 else []
    _check_reshape(_reshape_model(nodes, "t", inits, opset=opset), (3, 20))


def _const_node(name: str, value: np.ndarray):
    return helper.make_node(
        "Constant",
        [],
        [name],
        name=f"const_{name}",
        value=helper.make_tensor(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape, value.reshape(-1).tolist()
        ),
    )


@pytest.mark.parametrize("indices", [[0, 1], [-4, -3], [[0], [1]]], ids=str)
def test_gather_indices(indices):
    """Shape[indices] (2-D indices give a 2-D result that Reshape flattens) then (N, C, -1)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "idx"], ["g"], name="gather", axis=0),
        helper.make_node("Reshape", ["g", "flat"], ["gf"], name="flatten_shape"),
        helper.make_node("Concat", ["gf", "minus_one"], ["t"], name="concat", axis=0),
    ]
    inits = [_i64("idx", indices), _i64("flat", [-1]), _i64("minus_one", [-1])]
    _check_reshape(_reshape_model(nodes, "t", inits), (3, 20))


def test_gather_axis1_on_constant_feeding_add():
    table = randn((3, 4, 2), seed=1)
    nodes = [
        helper.make_node("Gather", ["table", "idx"], ["g"], name="gather", axis=2),
        helper.make_node("Add", ["x", "g"], ["y"], name="add"),
    ]
    inits = [const("table", table), _i64("idx", -1)]
    graph, _ = check(make_model(nodes, (2, 3, 4), initializers=inits))
    assert op_types(graph) == ["Bias"]
    np.testing.assert_array_equal(graph.ops[0].value, table[:, :, -1])


@pytest.mark.parametrize("opset", [13, 19, 21])
def test_cast_float_div_floor(opset):
    """Shape arithmetic through float, as exporters write a size division: Cast -> Div -> Cast (truncates)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["sf"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Div", ["sf", "divisor"], ["q"], name="div"),
        helper.make_node("Cast", ["q"], ["t"], name="to_int", to=TensorProto.INT64),
    ]
    # [2, 3, 4, 5] / [1, 0.5, 2.5, 0.5] = [2, 6, 1.6, 10]; Cast to int64 truncates 1.6 to 1.
    inits = [const("divisor", np.array([1, 0.5, 2.5, 0.5], np.float32))]
    _check_reshape(_reshape_model(nodes, "t", inits, opset=opset), (6, 1, 10))


@pytest.mark.parametrize(
    ("a", "b"),
    [([7, -7, 7, -7], [2, 2, -2, -2]), ([6, 5, 1, 0], [3, 5, 1, 2])],
    ids=["signs", "exact"],
)
def test_integer_div_truncates(a, b):
    """Integer Div truncates toward zero (ONNX and onnxruntime); the result feeds an Add via Cast."""
    nodes = [
        helper.make_node("Div", ["a", "b"], ["q"], name="div"),
        helper.make_node("Cast", ["q"], ["qf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "qf"], ["y"], name="add"),
    ]
    graph, _ = check(make_model(nodes, (2, 4), initializers=[_i64("a", a), _i64("b", b)]))
    assert op_types(graph) == ["Bias"]


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps", "per_sample"),
    [
        ([0], [2], None, None, (3, 20)),
        ([1], [INT64_MAX], [0], None, (3, 4, 5, 1)),
        ([-3], [-1], [0], [1], (3, 4, 5)),
        ([1], [3], [-1], [1], (3, 4, 5)),
        ([3], [0], [0], [-2], (5, 3, 4)),
        ([-1], [-INT64_MAX], [0], [-3], (5, 2, 6)),
        ([10], [1], [0], [-1], (5, 4, 3)),
    ],
    ids=str,
)
def test_slice(starts, ends, axes, steps, per_sample):
    """Slice of Shape(x) joined with N and -1: exercises starts/ends/axes/steps and clamping."""
    inputs = ["s", "starts", "ends"]
    inits = [_i64("starts", starts), _i64("ends", ends), _i64("minus_one", [-1])]
    if axes is not None or steps is not None:
        inputs.append("axes" if axes is not None else "")
        if axes is not None:
            inits.append(_i64("axes", axes))
    if steps is not None:
        inputs.append("steps")
        inits.append(_i64("steps", steps))
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Slice", inputs, ["sl"], name="slice"),
        helper.make_node("Shape", ["x"], ["n"], name="batch", end=1),
        helper.make_node("Concat", ["n", "sl", "minus_one"], ["t"], name="concat", axis=0),
    ]
    if per_sample == (3, 20):  # a two-entry slice already holds N: drop the separate batch entry
        nodes[3] = helper.make_node("Concat", ["sl", "minus_one"], ["t"], name="concat", axis=0)
    _check_reshape(_reshape_model(nodes, "t", inits), per_sample)


def test_slice_2d_constant_feeding_add():
    table = randn((6, 8), seed=2)
    nodes = [
        helper.make_node("Slice", ["table", "starts", "ends", "axes", "steps"], ["sl"], name="slice"),
        helper.make_node("Add", ["x", "sl"], ["y"], name="add"),
    ]
    inits = [const("table", table), _i64("starts", [1, 7]), _i64("ends", [4, 0]), _i64("axes", [0, 1])]
    inits.append(_i64("steps", [1, -2]))
    graph, _ = check(make_model(nodes, (2, 3, 4), initializers=inits))
    np.testing.assert_array_equal(graph.ops[0].value, table[1:4, 7:0:-2])


def test_sub_mul_on_shape():
    """target = Concat((Shape(x)[:2] * [1, 2] - [-1, -1]) - 1, [-1]) = (N, 2C, -1)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape", end=2),
        helper.make_node("Mul", ["s", "factors"], ["m"], name="mul"),
        helper.make_node("Sub", ["m", "offsets"], ["d"], name="sub"),
        helper.make_node("Sub", ["d", "one"], ["d1"], name="sub_scalar"),
        helper.make_node("Concat", ["d1", "minus_one"], ["t"], name="concat", axis=0),
    ]
    inits = [_i64("factors", [1, 2]), _i64("offsets", [-1, -1]), _i64("one", 1), _i64("minus_one", [-1])]
    _check_reshape(_reshape_model(nodes, "t", inits), (6, 10))


@pytest.mark.parametrize("op_type", ["Mul", "Sub", "Div"])
def test_float_binary_constants_feeding_add(op_type):
    nodes = [
        helper.make_node(op_type, ["a", "b"], ["c"], name="binary"),
        helper.make_node("Add", ["x", "c"], ["y"], name="add"),
    ]
    inits = [const("a", randn((3, 1, 1), seed=1)), const("b", randn((1, 4, 1), seed=2) + 3)]
    graph, _ = check(make_model(nodes, (2, 3, 4, 5), initializers=inits))
    assert op_types(graph) == ["Bias"]


@pytest.mark.parametrize("perm", [None, [2, 0, 1], [1, 2, 0]], ids=str)
def test_transpose_constant_feeding_add(perm):
    raw = randn((4, 3, 5), seed=4)
    value = np.transpose(raw, perm)
    inits = [const("raw", raw)]
    attrs = {} if perm is None else {"perm": perm}
    nodes = [
        helper.make_node("Transpose", ["raw"], ["t"], name="transpose", **attrs),
        helper.make_node("Add", ["x", "t"], ["y"], name="add"),
    ]
    graph, _ = check(make_model(nodes, (2, *value.shape), initializers=inits))
    np.testing.assert_array_equal(graph.ops[0].value, value)


@pytest.mark.parametrize("opset", [11, 20, 21])
@pytest.mark.parametrize("value", [None, 0.5, -2.0], ids=str)
def test_constant_of_shape_feeding_add(opset, value):
    attrs = {} if value is None else {"value": helper.make_tensor("v", TensorProto.FLOAT, [1], [value])}
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Slice", ["s", "one", "big"], ["per_sample"], name="slice"),
        helper.make_node("ConstantOfShape", ["per_sample"], ["c"], name="fill", **attrs),
        helper.make_node("Add", ["x", "c"], ["y"], name="add"),
    ]
    inits = [_i64("one", [1]), _i64("big", [INT64_MAX])]
    graph, _ = check(make_model(nodes, (2, 3, 4), initializers=inits, opset=opset))
    assert op_types(graph) == ["Bias"]
    assert graph.ops[0].value.shape == (3, 4)


@pytest.mark.parametrize("batch", [1, 2, "N"], ids=["batch1", "batch2", "dynamic"])
def test_constant_of_shape_of_full_shape_feeding_add(batch):
    """x + ConstantOfShape(Shape(x)): with a static batch the constant has the batch dimension, but it is the
    same for every sample, so it is still a per-sample Bias."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node(
            "ConstantOfShape", ["s"], ["c"], name="fill", value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.5])
        ),
        helper.make_node("Add", ["x", "c"], ["y"], name="add"),
    ]
    model = make_model(nodes, (batch, 3, 4))
    graph, _ = check(model, randn((2 if batch == "N" else batch, 3, 4), seed=3))
    assert op_types(graph) == ["Bias"]
    assert graph.ops[0].value.shape == (3, 4)


def test_constant_of_shape_int_as_reshape_target():
    """ConstantOfShape([1]) filled with int64 -1, after the batch: (N, -1)."""
    nodes = [
        helper.make_node(
            "ConstantOfShape", ["len"], ["m"], name="fill", value=helper.make_tensor("v", TensorProto.INT64, [1], [-1])
        ),
        helper.make_node("Shape", ["x"], ["n"], name="batch", end=1),
        helper.make_node("Concat", ["n", "m"], ["t"], name="concat", axis=0),
    ]
    _check_reshape(_reshape_model(nodes, "t", [_i64("len", [1])], opset=15), (60,))


def test_folding_op_on_runtime_value_is_rejected():
    nodes = [helper.make_node("Slice", ["x", "starts", "ends"], ["y"], name="cut")]
    inits = [_i64("starts", [0]), _i64("ends", [1])]
    with pytest.raises(UnsupportedOpError, match=r"Slice 'cut': only constant inputs"):
        import_model(make_model(nodes, (2, 4), initializers=inits))


def test_a_transpose_of_a_runtime_value_that_is_not_a_channel_shuffle_is_rejected():
    nodes = [helper.make_node("Transpose", ["x"], ["y"], name="swap", perm=[1, 0])]
    with pytest.raises(UnsupportedOpError, match=r"Transpose 'swap': perm \[1, 0\] of a computed \(2, 4\) tensor"):
        import_model(make_model(nodes, (2, 4)))
