"""Hostile and malformed models (issue #10): a model must never read a file outside its folder, and every malformed
model ends in one typed error that names the node, attribute or tensor; never an internal error, never a wrong
answer with exit status 0, never an allocation beyond the limits in ``neurodeploy.limits``."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_support import assert_one_line_error, run_cli, tiny_model
from onnx import TensorProto, helper, numpy_helper

from neurodeploy.errors import LimitError, ModelLoadError, NeurodeployError, ShapeError, UnsupportedOpError
from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.frontend.onnx.loader import MAX_LOCATION_CHARS, load_model

from .onnx_cases import const, one_node, randn

SECRET = np.array([1234.5, 2345.25, 3456.125, 4567.0625, 5678.5, 6789.25], np.float32)


def _save(model: onnx.ModelProto, folder: Path, name: str = "model.onnx") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def _external(tensor: onnx.TensorProto, location: str, **entries: str) -> onnx.TensorProto:
    """``tensor`` made to keep its data in ``location`` (its own values dropped)."""
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.ClearField("int64_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, **entries}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _secret_tensor(location: str, name: str = "c") -> onnx.TensorProto:
    return _external(numpy_helper.from_array(np.zeros(6, np.float32), name), location)


def _plain_model(nodes, initializers=(), x_shape=(1, 6), opset: int = 17, **graph_kwargs) -> onnx.ModelProto:
    """A model built without onnx's checker or shape inference (which refuse what these tests feed in)."""
    graph = helper.make_graph(
        list(nodes),
        "hostile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=list(initializers),
        **graph_kwargs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _leaky_constant_model(location: str = "secret.bin") -> onnx.ModelProto:
    """The attack from the issue: a Constant whose ``value`` attribute is declared FLOAT but carries an
    external-data tensor; onnx resolved its location against the working directory."""
    attr = helper.make_attribute("value", 0.0)  # declared FLOAT
    attr.t.CopyFrom(_secret_tensor(location))
    leak = helper.make_node("Constant", [], ["c"], name="leak")
    leak.attribute.append(attr)
    return _plain_model([leak, helper.make_node("Add", ["x", "c"], ["y"], name="add")])


def _every_file_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


# --- 3. external data everywhere ---------------------------------------------------------------------------------


_OPENED: list[str] | None = None
"""Paths opened while a test records them (see _record_opens); an audit hook cannot be removed, so it is added
once and records only while this is a list."""


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def test_constant_float_attribute_cannot_read_a_file_from_the_working_directory(tmp_path, capsys, monkeypatch):
    global _OPENED
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET.tobytes())
    model = _save(_leaky_constant_model(), tmp_path / "models")
    monkeypatch.chdir(tmp_path)  # the secret is in the working directory, not in the model's folder
    out = tmp_path / "work" / "art"
    _OPENED = []
    try:
        result = run_cli(capsys, "compile", model, "--target", "reference", "-o", out)
        opened = list(_OPENED)
    finally:
        _OPENED = None
    work_bytes = _every_file_bytes(tmp_path / "work") if (tmp_path / "work").exists() else b""
    assert SECRET[:2].tobytes() not in work_bytes, "the secret is in the artifact"
    assert not [p for p in opened if Path(p).name == "secret.bin"], "the secret was opened"
    error = assert_one_line_error(result, "'leak'", "'value'", "secret.bin")
    assert "internal error" not in error


def test_a_loaded_model_that_still_points_to_external_data_is_refused(tmp_path, monkeypatch):
    """A ModelProto handed to import_onnx has no folder: its external data must not be read from anywhere."""
    (tmp_path / "weights.bin").write_bytes(SECRET.tobytes())
    monkeypatch.chdir(tmp_path)
    model = _plain_model([helper.make_node("Add", ["x", "c"], ["y"], name="add")], [_secret_tensor("weights.bin")])
    with pytest.raises(ModelLoadError, match=r"initializer 'c' keeps its data in an external file"):
        import_onnx(model)


def _carriers() -> dict[str, onnx.ModelProto]:
    """One model per place a tensor can hide, each pointing outside the model's folder."""
    outside = "../secret.bin"
    add = helper.make_node("Add", ["x", "c"], ["y"], name="add")
    c = numpy_helper.from_array(SECRET, "c")
    models = {}

    sparse = helper.make_sparse_tensor(
        _secret_tensor(outside, "s"), numpy_helper.from_array(np.arange(6, dtype=np.int64), "s_idx"), [6]
    )
    models["sparse initializer"] = _plain_model([add], [c], sparse_initializer=[sparse])

    for kind in ("tensors", "sparse_tensor", "sparse_tensors", "int-typed t"):
        node = helper.make_node("Relu", ["x"], ["r"], name="carrier")
        attr = node.attribute.add()
        attr.name = "value"
        if kind == "tensors":
            attr.type = onnx.AttributeProto.TENSORS
            attr.tensors.append(_secret_tensor(outside))
        elif kind == "sparse_tensor":
            attr.type = onnx.AttributeProto.SPARSE_TENSOR
            attr.sparse_tensor.CopyFrom(sparse)
        elif kind == "sparse_tensors":
            attr.type = onnx.AttributeProto.SPARSE_TENSORS
            attr.sparse_tensors.append(sparse)
        else:
            attr.type = onnx.AttributeProto.INT
            attr.t.CopyFrom(_secret_tensor(outside))
        models[f"attribute {kind}"] = _plain_model([node, add], [c], x_shape=(1, 6))

    # A subgraph two levels deep: If -> then_branch (g) -> Loop body in graphs.
    inner = helper.make_graph([], "inner", [], [], initializer=[_secret_tensor(outside, "deep")])
    loop = helper.make_node("Loop", [], ["l"], name="loop", body=inner)
    then_graph = helper.make_graph([loop], "then", [], [helper.make_tensor_value_info("l", TensorProto.FLOAT, None)])
    models["nested subgraph"] = _plain_model(
        [helper.make_node("If", ["x"], ["i"], name="if", then_branch=then_graph, else_branch=then_graph), add], [c]
    )
    graphs_attr = helper.make_node("Relu", ["x"], ["r"], name="carrier")
    attr = graphs_attr.attribute.add()
    attr.name, attr.type = "branches", onnx.AttributeProto.GRAPHS
    attr.graphs.append(inner)
    models["attribute graphs"] = _plain_model([graphs_attr, add], [c])

    function_node = helper.make_node("Constant", [], ["k"], name="fconst", value=_secret_tensor(outside, "k"))
    function = helper.make_function("local", "leaky", [], ["k"], [function_node], [helper.make_opsetid("", 17)])
    model = _plain_model([add], [c])
    model.functions.append(function)
    models["model-local function"] = model

    model = _plain_model([add], [c])
    info = model.training_info.add()
    info.initialization.CopyFrom(helper.make_graph([], "init", [], [], initializer=[_secret_tensor(outside, "t")]))
    models["training graph"] = model
    return models


@pytest.mark.parametrize("carrier", list(_carriers()))
def test_external_data_outside_the_folder_is_refused_wherever_the_tensor_hides(tmp_path, carrier):
    (tmp_path / "secret.bin").write_bytes(SECRET.tobytes())
    path = _save(_carriers()[carrier], tmp_path / "models")
    with pytest.raises(ModelLoadError, match=r"outside the model's folder") as info:
        load_model(path)
    assert "secret.bin" in str(info.value)


def test_after_loading_no_tensor_points_to_external_data(tmp_path):
    """Data inside the folder is read in every carrier, and every reference to a file is gone afterwards."""
    from neurodeploy.frontend.onnx.loader import all_tensors

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "secret.bin").write_bytes(SECRET.tobytes())
    for name, model in _carriers().items():
        for _label, tensor in all_tensors(model):
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = "secret.bin"
        loaded = load_model(_save(model, tmp_path / "models", f"{name.replace(' ', '_')}.onnx"))
        tensors = list(all_tensors(loaded))
        assert tensors, name
        assert all(t.data_location != TensorProto.EXTERNAL and not t.external_data for _, t in tensors), name


@pytest.mark.parametrize(
    ("location", "entries", "fragment"),
    [
        ("", {}, "empty location"),
        ("weights\0.bin", {}, "NUL"),
        ("w" * 5000, {}, f"at most {MAX_LOCATION_CHARS:,}"),
        ("w" * 300 + ".bin", {}, "cannot resolve"),
        ("sub", {}, "not a regular file"),
        ("weights.bin", {"offset": "16", "length": "24"}, "holds 24 bytes"),
        ("weights.bin", {"offset": "-1"}, "whole number"),
        ("weights.bin", {"length": "12"}, "raw data holds 12 bytes"),
    ],
    ids=["empty", "nul", "5000-chars", "long-component", "folder", "past-the-end", "negative-offset", "short"],
)
def test_external_data_locations_are_checked(tmp_path, location, entries, fragment):
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    (models / "weights.bin").write_bytes(SECRET.tobytes())
    tensor = _external(numpy_helper.from_array(np.zeros(6, np.float32), "c"), location, **entries)
    path = _save(_plain_model([helper.make_node("Add", ["x", "c"], ["y"], name="add")], [tensor]), models)
    with pytest.raises(ModelLoadError) as info:
        import_onnx(path)
    message = str(info.value)
    assert fragment in message
    assert "'c'" in message
    assert "\n" not in message


# --- 4. one-line errors for malformed models ---------------------------------------------------------------------


def _add_const(op_node: onnx.NodeProto, initializers=(), x_shape=(1, 6), opset: int = 17) -> onnx.ModelProto:
    """``op_node`` computes ``c`` from constants; the model adds it to ``x``."""
    return _plain_model([op_node, helper.make_node("Add", ["x", "c"], ["y"], name="add")], initializers, x_shape, opset)


def _i64(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _bad_initializer_dims() -> onnx.ModelProto:
    tensor = numpy_helper.from_array(np.ones(6, np.float32), "w")
    tensor.dims[:] = [4, 3]
    return _plain_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [tensor])


def _wrongly_typed(op_node: onnx.NodeProto, name: str, value) -> onnx.NodeProto:
    for attr in op_node.attribute:
        if attr.name == name:
            op_node.attribute.remove(attr)
            break
    op_node.attribute.append(helper.make_attribute(name, value))
    return op_node


MALFORMED = {
    "initializer-dims": (_bad_initializer_dims, ("initializer 'w'", "dims (4, 3) say 12 values")),
    "gather-index": (
        lambda: _add_const(
            helper.make_node("Gather", ["d", "i"], ["c"], name="g0", axis=0),
            [const("d", np.ones((3, 6), np.float32)), _i64("i", [7])],
        ),
        ("node 'g0' (Gather)", "index 7 is out of range for axis 0 of size 3"),
    ),
    "gather-axis": (
        lambda: _add_const(
            helper.make_node("Gather", ["d", "i"], ["c"], name="g0", axis=5),
            [const("d", np.ones((3, 6), np.float32)), _i64("i", [0])],
        ),
        ("node 'g0' (Gather)", "axis 5"),
    ),
    "slice-step-0": (
        lambda: _add_const(
            helper.make_node("Slice", ["d", "s", "e", "a", "st"], ["c"], name="s0"),
            [const("d", np.ones((1, 6), np.float32)), _i64("s", [0]), _i64("e", [6]), _i64("a", [1]), _i64("st", [0])],
        ),
        ("node 's0' (Slice)", "step is 0"),
    ),
    "slice-lengths": (
        lambda: _add_const(
            helper.make_node("Slice", ["d", "s", "e"], ["c"], name="s0"),
            [const("d", np.ones((1, 6), np.float32)), _i64("s", [0, 0]), _i64("e", [6])],
        ),
        ("node 's0' (Slice)", "differ in length"),
    ),
    "cast-unknown-type": (
        lambda: _add_const(helper.make_node("Cast", ["d"], ["c"], name="c0", to=999), [const("d", np.ones(6))]),
        ("node 'c0' (Cast)", "999"),
    ),
    "transpose-perm": (
        lambda: _add_const(
            helper.make_node("Transpose", ["d"], ["c"], name="t0", perm=[0, 0]), [const("d", np.ones((1, 6)))]
        ),
        ("node 't0' (Transpose)", "perm [0, 0]"),
    ),
    "constant-of-shape-negative": (
        lambda: _add_const(helper.make_node("ConstantOfShape", ["s"], ["c"], name="k0"), [_i64("s", [-6])]),
        ("node 'k0' (ConstantOfShape)", "negative"),
    ),
    "constant-of-shape-float-shape": (
        lambda: _add_const(helper.make_node("ConstantOfShape", ["s"], ["c"], name="k0"), [const("s", [6.0])]),
        ("node 'k0' (ConstantOfShape)", "expected integers"),
    ),
    "attribute-type": (
        lambda: one_node_plain(_wrongly_typed(helper.make_node("Softmax", ["x"], ["y"], name="sm"), "axis", "one")),
        ("node 'sm' (Softmax)", "attribute 'axis' is declared STRING", "INT"),
    ),
    "attribute-float-for-int": (
        lambda: _plain_model(
            [
                _wrongly_typed(
                    helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3]), "group", 1.5
                )
            ],
            [const("w", randn((2, 1, 3, 3)))],
            x_shape=(1, 1, 6, 6),
        ),
        ("node 'conv' (Conv)", "'group'", "FLOAT"),
    ),
    "concat-without-axis": (
        lambda: one_node_plain(helper.make_node("Concat", ["x", "x"], ["y"], name="cat")),
        ("node 'cat' (Concat)", "required attribute 'axis' is missing"),
    ),
    "node-without-outputs": (
        lambda: _plain_model(
            [helper.make_node("Relu", ["x"], [], name="dead"), helper.make_node("Relu", ["x"], ["y"], name="r")]
        ),
        ("node 'dead' (Relu)", "no output"),
    ),
    "missing-input": (
        lambda: one_node_plain(helper.make_node("Flatten", [""], ["y"], name="flat")),
        ("node 'flat' (Flatten)", "required input 0"),
    ),
    "defined-twice": (
        lambda: _plain_model(
            [helper.make_node("Relu", ["x"], ["y"], name="a"), helper.make_node("Relu", ["x"], ["y"], name="b")]
        ),
        ("malformed ONNX graph", "'y' is defined twice"),
    ),
    "flatten-axis": (
        lambda: one_node_plain(helper.make_node("Flatten", ["x"], ["y"], name="flat", axis=9)),
        ("node 'flat' (Flatten)", "axis 9"),
    ),
    "unsqueeze-axes": (
        lambda: one_node_plain(helper.make_node("Unsqueeze", ["x"], ["y"], name="u", axes=[7]), opset=11),
        ("node 'u' (Unsqueeze)", "axes [7]"),
    ),
    "matmul-shapes": (
        lambda: _add_const(
            helper.make_node("MatMul", ["a", "b"], ["c"], name="mm"),
            [const("a", np.ones((1, 4))), const("b", np.ones((5, 6)))],
        ),
        ("node 'mm' (MatMul)", "do not multiply"),
    ),
    "unknown-attribute": (
        lambda: one_node_plain(helper.make_node("Relu", ["x"], ["y"], name="r", slope=0.5)),
        ("node 'r' (Relu)", "'slope' is not an attribute of Relu-14"),
    ),
    "newline-in-name": (
        lambda: one_node_plain(helper.make_node("Flatten", ["x"], ["y"], name="evil\nerror: fake", axis=9)),
        ("node 'evil\\nerror: fake' (Flatten)",),
    ),
}


def one_node_plain(node: onnx.NodeProto, x_shape=(1, 6), opset: int = 17) -> onnx.ModelProto:
    return _plain_model([node], (), x_shape, opset)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_models_get_one_error_naming_the_node_or_tensor(case):
    build, fragments = MALFORMED[case]
    with pytest.raises(NeurodeployError) as info:
        import_onnx(build())
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("case", ["initializer-dims", "gather-index", "concat-without-axis", "newline-in-name"])
def test_malformed_models_through_the_cli(tmp_path, capsys, case):
    build, fragments = MALFORMED[case]
    model = _save(build(), tmp_path / "models")
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", tmp_path / "work" / "art")
    error = assert_one_line_error(result, *fragments)
    assert "internal error" not in error
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("case", ["conv-kernel", "unsqueeze-axes", "reshape-target", "initializer-rank"])
def test_long_lists_in_a_model_give_short_errors(case):
    """Lists of 200,000 entries (the fuzzer's kernel_shape, axes, a shape, dims): a short one-line error, without
    the quadratic work or the megabyte message they used to cause."""
    n = 200_000
    if case == "conv-kernel":
        node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[2**62] * n)
        model = _plain_model([node], [const("w", randn((2, 1, 3, 3)))], x_shape=(1, 1, 6, 6))
    elif case == "unsqueeze-axes":
        model = one_node_plain(helper.make_node("Unsqueeze", ["x"], ["y"], name="u", axes=list(range(n))), opset=11)
    elif case == "reshape-target":
        node = helper.make_node("Reshape", ["x", "s"], ["y"], name="r")
        model = _plain_model([node], [_i64("s", [2**40] * n)])
    else:
        tensor = numpy_helper.from_array(np.ones(1, np.float32), "w")
        tensor.dims[:] = [1] * n
        model = _plain_model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [tensor])
    with pytest.raises(NeurodeployError) as info:
        import_onnx(model)
    assert len(str(info.value)) < 2000
    assert str(info.value).count("\n  - ") <= 1


# --- 5. values: non-finite weights, negative variances, non-finite attributes ------------------------------------


def _tiny_with(name: str, change) -> onnx.ModelProto:
    model = tiny_model()
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(tensor)), name))
    return model


def _with_nan(w: np.ndarray) -> np.ndarray:
    w = w.copy()
    w.reshape(-1)[[0, 5, 7]] = np.nan
    return w


def _batchnorm(var, epsilon: float = 1e-5) -> onnx.ModelProto:
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn", epsilon=epsilon)
    inits = [const("s", np.ones(3)), const("b", np.zeros(3)), const("m", np.zeros(3)), const("v", np.asarray(var))]
    return _plain_model([node], inits, x_shape=(1, 3, 4, 4))


VALUES = {
    "nan-weights": (lambda: _tiny_with("conv.w", _with_nan), ("initializer 'conv.w'", "3 of 36 values are NaN")),
    "inf-bias": (
        lambda: _tiny_with("fc.b", lambda b: np.full_like(b, np.inf)),
        ("initializer 'fc.b'", "3 of 3 values are infinite"),
    ),
    "float64-beyond-float32": (
        lambda: _plain_model(
            [helper.make_node("Add", ["x", "c"], ["y"], name="add")],
            [numpy_helper.from_array(np.array([1e39, 0, 0, 0, 0, 0]), "c")],
        ),
        ("initializer 'c'", "1 of 6 values is beyond float32's range"),
    ),
    "nan-constant": (
        lambda: _add_const(helper.make_node("Constant", [], ["c"], name="k", value_float=float("nan"))),
        ("node 'k' (Constant)", "'value_float' is nan"),
    ),
    "inf-constant-tensor": (
        lambda: _add_const(
            helper.make_node(
                "Constant", [], ["c"], name="k", value=numpy_helper.from_array(np.full(6, -np.inf, np.float32))
            )
        ),
        ("node 'k' (Constant)", "6 of 6 values are infinite"),
    ),
    "negative-variance": (lambda: _batchnorm([1.0, -0.5, -2.0]), ("node 'bn'", "2 of 3 variances in 'v' are negative")),
    "variance-plus-epsilon": (lambda: _batchnorm([0.0, 1.0, 1.0], epsilon=-1e-3), ("node 'bn'", "variance + epsilon")),
    "nan-epsilon": (lambda: _batchnorm([1.0, 1.0, 1.0], epsilon=float("nan")), ("node 'bn'", "'epsilon' is nan")),
    "nan-momentum": (
        lambda: _plain_model(
            [
                helper.make_node(
                    "BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn", momentum=float("nan")
                )
            ],
            [const(n, np.ones(3)) for n in "sbmv"],
            x_shape=(1, 3, 4, 4),
        ),
        ("node 'bn' (BatchNormalization)", "'momentum' is nan"),
    ),
    "nan-alpha": (
        lambda: _plain_model(
            [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", alpha=float("nan"))], [const("w", np.ones((6, 2)))]
        ),
        ("node 'fc' (Gemm)", "'alpha' is nan"),
    ),
    "inf-clip-attribute": (
        lambda: one_node_plain(
            helper.make_node("Clip", ["x"], ["y"], name="clip", min=0.0, max=float("inf")), opset=10
        ),
        ("node 'clip' (Clip)", "'max' is inf"),
    ),
    "folded-division-by-zero": (
        lambda: _add_const(
            helper.make_node("Div", ["a", "z"], ["c"], name="div"), [const("a", np.ones(6)), const("z", np.zeros(6))]
        ),
        ("node 'div' (Div)", "6 of 6 values are infinite"),
    ),
    "reciprocal-overflow": (
        lambda: _plain_model(
            [helper.make_node("Div", ["x", "z"], ["y"], name="div")], [const("z", np.full(6, 1e-45, np.float32))]
        ),
        ("node 'div' (Div)", "infinite"),
    ),
}


@pytest.mark.parametrize("case", list(VALUES))
def test_non_finite_values_are_refused_at_import(case):
    build, fragments = VALUES[case]
    with pytest.raises(ModelLoadError) as info:
        import_onnx(build())
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize("case", ["nan-weights", "negative-variance", "nan-alpha"])
def test_non_finite_values_fail_the_compile(tmp_path, capsys, case):
    build, fragments = VALUES[case]
    model = _save(build(), tmp_path / "models")
    result = run_cli(capsys, "compile", model, "--target", "reference", "-o", tmp_path / "work" / "art")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "work").exists()


def test_finite_weights_beyond_the_weight_limit_are_refused_at_import(monkeypatch):
    """1e30 is finite in float32, but no trained layer holds it, and its products overflow: refused, naming the
    node, the parameter and the variable that raises the limit."""
    model = _tiny_with("fc.w", lambda w: np.where(np.arange(w.size).reshape(w.shape) == 3, 1e30, w))
    with pytest.raises(LimitError) as info:
        import_onnx(model)
    for fragment in ("node 'fc' (Gemm)", "Dense weight", "magnitude 1e+30", "NEURODEPLOY_MAX_WEIGHT="):
        assert fragment in str(info.value)
    monkeypatch.setenv("NEURODEPLOY_MAX_WEIGHT", str(10**31))
    import_onnx(model)


def test_batchnorm_statistics_beyond_the_weight_limit_are_refused():
    model = _plain_model(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")],
        [const("s", np.ones(3)), const("b", np.zeros(3)), const("m", np.array([0, 5e12, 0])), const("v", np.ones(3))],
        x_shape=(1, 3, 4, 4),
    )
    with pytest.raises(LimitError, match=r"node 'bn' \(BatchNormalization\): its BatchNorm mean .* 5e\+12"):
        import_onnx(model)


@pytest.mark.parametrize("field", ["NodeProto.name", "NodeProto.op_type", "NodeProto.input", "ValueInfoProto.name"])
def test_text_that_is_not_utf8_is_refused_at_load(tmp_path, capsys, field):
    """protobuf hands invalid UTF-8 over as bytes; the loader names the field instead of failing later."""
    model = tiny_model()
    marker = "QQQQMARK"
    if field == "NodeProto.name":
        model.graph.node[0].name = marker
    elif field == "NodeProto.op_type":
        model.graph.node[1].op_type = marker
    elif field == "NodeProto.input":
        model.graph.node[1].input[0] = marker
        model.graph.node[0].output[0] = marker
    else:
        model.graph.input[0].name = marker
        model.graph.node[0].input[0] = marker
    data = model.SerializeToString().replace(marker.encode(), b"QQ\xff\xfeMARK")
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match=f"onnx.{field} holds text that is not valid UTF-8"):
        load_model(path)
    result = run_cli(capsys, "compile", path, "--target", "reference", "-o", tmp_path / "art")
    assert_one_line_error(result, "not valid UTF-8")


# --- 6. limits ---------------------------------------------------------------------------------------------------


def test_a_tiny_constant_of_shape_cannot_ask_for_gigabytes():
    """196 bytes of model asked for 7 GB: refused before anything is allocated."""
    model = _add_const(helper.make_node("ConstantOfShape", ["s"], ["c"], name="k0"), [_i64("s", [1, 1, 1 << 31])])
    assert len(model.SerializeToString()) < 400
    with pytest.raises(LimitError) as info:
        import_onnx(model)
    message = str(info.value)
    assert "node 'k0' (ConstantOfShape)" in message
    assert "(1, 1, 2147483648)" in message
    assert "NEURODEPLOY_MAX_CONSTANT_BYTES" in message


FOLDS = {
    "gather": (
        lambda: _add_const(
            helper.make_node("Gather", ["d", "i"], ["c"], name="f", axis=0),
            [const("d", np.ones((2, 64), np.float32)), _i64("i", np.zeros(64, np.int64))],
        )
    ),
    "mul-broadcast": (
        lambda: _add_const(
            helper.make_node("Mul", ["a", "b"], ["c"], name="f"),
            [const("a", np.ones((64, 1))), const("b", np.ones((1, 64)))],
        )
    ),
    "add-broadcast": (
        lambda: _add_const(
            helper.make_node("Add", ["a", "b"], ["c"], name="f"),
            [const("a", np.ones((64, 1))), const("b", np.ones((1, 64)))],
        )
    ),
    "concat": (
        lambda: _add_const(
            helper.make_node("Concat", ["a", "a", "a"], ["c"], name="f", axis=0), [const("a", np.ones((32, 32)))]
        )
    ),
    "matmul": (
        lambda: _add_const(
            helper.make_node("MatMul", ["a", "b"], ["c"], name="f"),
            [const("a", np.ones((64, 1))), const("b", np.ones((1, 64)))],
        )
    ),
    "gemm": (
        lambda: _add_const(
            helper.make_node("Gemm", ["a", "b"], ["c"], name="f"),
            [const("a", np.ones((64, 1))), const("b", np.ones((1, 64)))],
        )
    ),
    "cast-wider": (
        lambda: _add_const(
            helper.make_node("Cast", ["a"], ["c"], name="f", to=TensorProto.DOUBLE), [const("a", np.ones((40, 40)))]
        )
    ),
    "constant-of-shape": (
        lambda: _add_const(helper.make_node("ConstantOfShape", ["s"], ["c"], name="f"), [_i64("s", [64, 64])])
    ),
}


@pytest.mark.parametrize("case", list(FOLDS))
def test_folded_constants_are_capped_before_they_are_made(case, monkeypatch):
    monkeypatch.setenv("NEURODEPLOY_MAX_CONSTANT_BYTES", "10000")
    with pytest.raises(LimitError, match=r"node 'f' .*NEURODEPLOY_MAX_CONSTANT_BYTES"):
        import_onnx(FOLDS[case]())


def test_a_declared_input_larger_than_the_activation_limit_is_refused():
    model = one_node_plain(helper.make_node("Relu", ["x"], ["y"], name="r"), x_shape=(1, 3, 100000, 100000))
    with pytest.raises(LimitError) as info:
        import_onnx(model)
    assert "input 'x' of shape (3, 100000, 100000)" in str(info.value)
    assert "NEURODEPLOY_MAX_ACTIVATION_BYTES" in str(info.value)


def test_an_input_shape_override_larger_than_the_activation_limit_is_refused(tmp_path, capsys):
    model = one_node_plain(helper.make_node("Relu", ["x"], ["y"], name="r"), x_shape=("N", 3, "h", "w"))
    path = _save(model, tmp_path / "models")
    out = tmp_path / "work" / "art"
    result = run_cli(capsys, "compile", path, "-t", "reference", "-o", out, "--input-shape", "1,3,100000,100000")
    assert_one_line_error(result, "(3, 100000, 100000)", "NEURODEPLOY_MAX_ACTIVATION_BYTES")
    with pytest.raises(ShapeError, match="positive"):
        import_onnx(model, input_shapes=(1, 3, -4, 4))


def test_wide_pads_are_refused_by_the_activation_limit():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[50000] * 4)
    model = _plain_model([node], [const("w", randn((4, 1, 3, 3)))], x_shape=(1, 1, 8, 8))
    with pytest.raises(LimitError) as info:
        import_onnx(model)
    assert "node 'conv' (Conv)" in str(info.value)
    assert "(4, 100006, 100006)" in str(info.value)


def _chain(n: int) -> onnx.ModelProto:
    """x -> (Relu, Identity, Add c) repeated -> y: ``n`` nodes, each reading the previous one."""
    nodes, prev = [], "x"
    for i in range(n):
        op = ("Relu", "Identity", "Add")[i % 3]
        nodes.append(helper.make_node(op, [prev, "c"] if op == "Add" else [prev], [f"v{i}"], name=f"n{i}"))
        prev = f"v{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"], name="out"))
    return _plain_model(nodes, [const("c", np.ones(8, np.float32))], x_shape=(1, 8))


def test_a_10000_node_chain_imports():
    """Node sorting and the import context are linear (benchmarks/import_scaling.py measures it): a 10,000-node
    chain imports in well under a second here, where the quadratic sort took minutes. Shuffled, so the sort has
    to do the work."""
    model = _chain(10_000)
    nodes = list(model.graph.node)
    order = np.random.default_rng(0).permutation(len(nodes))
    del model.graph.node[:]
    model.graph.node.extend(copy.deepcopy(nodes[i]) for i in order)
    graph = import_onnx(model)
    assert len(graph.ops) == 2 * 10_000 // 3 + 1  # Relu and Add (as Bias) each a third; Identity makes no op
    assert graph.outputs == ["y"]


# --- mutations of every handler's one-node models ----------------------------------------------------------------


def _base_models() -> dict[str, onnx.ModelProto]:
    """One small valid model per handler (constant-only ops feed an Add to the runtime input)."""
    w33 = randn((2, 3, 3, 3), seed=1)
    models = {
        "Relu": one_node("Relu", (1, 3, 4, 4)),
        "Clip": one_node("Clip", (1, 6), [("lo", np.float32(0)), ("hi", np.float32(6))]),
        "Softmax": one_node("Softmax", (1, 6), axis=1),
        "BatchNormalization": one_node(
            "BatchNormalization",
            (1, 3, 4, 4),
            [(n, np.abs(randn((3,), seed=i)) + 0.1) for i, n in enumerate("sbmv")],
            epsilon=1e-3,
        ),
        "Conv": one_node(
            "Conv", (1, 3, 6, 6), [("w", w33)], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1
        ),
        "AveragePool": one_node("AveragePool", (1, 3, 6, 6), kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
        "MaxPool": one_node("MaxPool", (1, 3, 6, 6), kernel_shape=[3, 3], auto_pad="SAME_UPPER", ceil_mode=0),
        "GlobalAveragePool": one_node("GlobalAveragePool", (1, 3, 6, 6)),
        "ReduceMean": one_node("ReduceMean", (1, 3, 6, 6), opset=13, axes=[2, 3], keepdims=1),
        "Flatten": one_node("Flatten", (1, 3, 4), axis=1),
        "Reshape": one_node("Reshape", (1, 3, 4), [("s", np.array([1, 12], np.int64))], allowzero=0),
        "Squeeze": one_node("Squeeze", (1, 3, 1), [("a", np.array([2], np.int64))]),
        "Unsqueeze": one_node("Unsqueeze", (1, 3), [("a", np.array([2], np.int64))]),
        "Gemm": one_node("Gemm", (1, 6), [("w", randn((4, 6))), ("b", randn((4,)))], alpha=0.5, beta=2.0, transB=1),
        "MatMul": one_node("MatMul", (1, 6), [("w", randn((6, 4)))]),
        "Mul": one_node("Mul", (1, 6), [("c", randn((6,)))]),
        "Div": one_node("Div", (1, 6), [("c", np.full(6, 2.0, np.float32))]),
        "Sub": one_node("Sub", (1, 6), [("c", randn((6,)))]),
        "Floor": one_node("Floor", (1, 6)),
        "Add": one_node("Add", (1, 6), [("c", randn((6,)))]),
        "Concat": one_node_plain(helper.make_node("Concat", ["x", "x"], ["y"], name="concat_node", axis=1)),
        "Identity": one_node("Identity", (1, 6)),
        "Dropout": one_node("Dropout", (1, 6), opset=13),
        "Shape": _add_const(helper.make_node("Shape", ["x"], ["c"], name="shape_node", start=-1), x_shape=(1, 6)),
        "Gather": _add_const(
            helper.make_node("Gather", ["d", "i"], ["c"], name="gather_node", axis=0),
            [const("d", randn((3, 6))), _i64("i", [2])],
        ),
        "Cast": _add_const(
            helper.make_node("Cast", ["d"], ["c"], name="cast_node", to=TensorProto.FLOAT), [_i64("d", [1] * 6)]
        ),
        "Slice": _add_const(
            helper.make_node("Slice", ["d", "s", "e", "a", "st"], ["c"], name="slice_node"),
            [const("d", randn((2, 6))), _i64("s", [1]), _i64("e", [2]), _i64("a", [0]), _i64("st", [1])],
        ),
        "Transpose": _add_const(
            helper.make_node("Transpose", ["d"], ["c"], name="transpose_node", perm=[1, 0]), [const("d", randn((6, 1)))]
        ),
        "ConstantOfShape": _add_const(
            helper.make_node(
                "ConstantOfShape", ["s"], ["c"], name="cos_node", value=numpy_helper.from_array(np.ones(1, np.float32))
            ),
            [_i64("s", [6])],
        ),
        "Constant": _add_const(
            helper.make_node("Constant", [], ["c"], name="const_node", value=numpy_helper.from_array(randn((6,))))
        ),
    }
    return models


_INTS = [-(2**62), -1, 0, 7, 2**62]
_STRINGS = [b"", b"\0", b"NOTSET\0SAME", b"x" * 5000, b"\xff\xfe"]
_FLOATS = [float("nan"), float("inf"), -1.0, 0.0, 3.4e38]


def _replacements(attr: onnx.AttributeProto) -> list[onnx.AttributeProto]:
    """The same attribute name with other types and hostile values."""
    name = attr.name
    out = [helper.make_attribute(name, v) for v in _INTS + _FLOATS]
    out += [helper.make_attribute(name, v) for v in _STRINGS if v]
    out += [helper.make_attribute(name, [v, v]) for v in (0, -1, 2**62)]
    out += [helper.make_attribute(name, [1.5, float("nan")])]
    out += [onnx.AttributeProto(name=name, type=onnx.AttributeProto.INTS)]  # an empty list
    out += [helper.make_attribute(name, numpy_helper.from_array(np.array([np.nan, 1], np.float32)))]
    out += [helper.make_attribute(name, numpy_helper.from_array(np.array(["a"], object)))]
    empty = onnx.AttributeProto(name=name, type=onnx.AttributeProto.STRING, s=b"")
    undefined = onnx.AttributeProto(name=name)  # no type at all
    graph = helper.make_attribute(name, helper.make_graph([], "g", [], []))
    return [*out, empty, undefined, graph]


def _mutations(model: onnx.ModelProto) -> list[tuple[str, onnx.ModelProto]]:
    mutants: list[tuple[str, onnx.ModelProto]] = []
    index = next(i for i, n in enumerate(model.graph.node) if n.op_type != "Add" or len(model.graph.node) == 1)
    node = model.graph.node[index]

    def mutant(label: str, change) -> None:
        m = copy.deepcopy(model)
        change(m.graph.node[index])
        mutants.append((label, m))

    for i, attr in enumerate(node.attribute):
        mutant(f"drop {attr.name}", lambda n, i=i: n.attribute.pop(i))
        for j, replacement in enumerate(_replacements(attr)):

            def replace(n, i=i, r=replacement):
                n.attribute[i].CopyFrom(r)

            mutant(f"{attr.name} #{j}", replace)
        mutant(f"{attr.name} twice", lambda n, a=attr: n.attribute.append(copy.deepcopy(a)))
    for value in (0, -1, 2**40):
        mutant(f"axis={value}", lambda n, v=value: n.attribute.append(helper.make_attribute("axis", v)))
    mutant("no outputs", lambda n: n.ClearField("output"))
    mutant("empty output", lambda n: n.output.__setitem__(0, ""))
    mutant("no inputs", lambda n: n.ClearField("input"))
    mutant("empty first input", lambda n: n.input.__setitem__(0, "") if n.input else None)
    mutant("extra input", lambda n: n.input.append("x"))
    mutant("undefined input", lambda n: n.input.append("nowhere"))
    mutant("self input", lambda n: n.input.append(n.output[0]))
    for name in [t.name for t in model.graph.initializer]:
        m = copy.deepcopy(model)
        tensor = next(t for t in m.graph.initializer if t.name == name)
        tensor.dims.append(2)
        mutants.append((f"{name} dims", m))
        m = copy.deepcopy(model)
        tensor = next(t for t in m.graph.initializer if t.name == name)
        tensor.data_type = TensorProto.STRING
        mutants.append((f"{name} string", m))
        m = copy.deepcopy(model)
        tensor = next(t for t in m.graph.initializer if t.name == name)
        array = numpy_helper.to_array(tensor)
        tensor.CopyFrom(numpy_helper.from_array(np.zeros((0,), array.dtype), name))
        mutants.append((f"{name} empty", m))
    return mutants


@pytest.mark.parametrize("op_type", list(_base_models()))
def test_mutated_attributes_inputs_and_initializers_raise_only_typed_errors(op_type):
    """Every handler's model with each attribute dropped, retyped, duplicated or set to hostile values, inputs and
    outputs removed or added, initializers with wrong dims, types or sizes: the import succeeds or raises a
    NeurodeployError, never anything else."""
    base = _base_models()[op_type]
    import_onnx(base)  # the unmutated model imports
    mutants = _mutations(base)
    assert len(mutants) >= 10
    failures, multi_line = [], []
    for label, model in mutants:
        try:
            import_onnx(model)
        except UnsupportedOpError:
            pass  # a list of unsupported variants, one per line
        except NeurodeployError as exc:
            if "\n" in str(exc):
                multi_line.append((label, str(exc)))
        except Exception as exc:
            failures.append(f"{label}: {type(exc).__name__}: {exc}")
    assert failures == []
    assert multi_line == []
