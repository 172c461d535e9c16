"""Build small ONNX models with onnx.helper and compare onnxruntime with the imported IR.

The runtime input is always the first graph input and has a batch dimension; everything else (weights, bias,
shape tensors) is an initializer. ``check`` runs both and asserts that they agree to ``atol`` (absolute).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.interpret import run

ATOL = 1e-5
BATCH = 2

# onnxruntime 1.23.2 (the newest release for Python 3.10) divides AveragePool sums by the wrong count when
# count_include_pad=1 meets SAME or ceil-mode padding; 1.32 agrees with the ONNX spec and its reference
# implementation. Older releases are compared with the reference implementation for those cases instead.
ORT_AVERAGE_POOL_PADDING_OK = tuple(int(p) for p in ort.__version__.split(".")[:2]) >= (1, 32)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(shape: Sequence[int], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (rng(seed).standard_normal(tuple(shape)) * scale).astype(np.float32)


def const(name: str, value) -> onnx.TensorProto:
    """An initializer; float arrays become float32 unless already typed."""
    array = np.asarray(value)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return numpy_helper.from_array(array, name)


def make_model(
    nodes: Sequence[onnx.NodeProto],
    x_shape: Sequence[int | str | None],
    *,
    initializers: Sequence[onnx.TensorProto] = (),
    opset: int = 17,
    outputs: Sequence[str] = ("y",),
    extra_inputs: Sequence[tuple[str, Sequence[int | str | None]]] = (),
    input_name: str = "x",
) -> onnx.ModelProto:
    """A model whose first input is ``input_name`` of ``x_shape`` (batch first), with the given nodes."""
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(x_shape))]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in extra_inputs]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(list(nodes), "test", inputs, outs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="neurodeploy-tests")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    # Strict shape inference validates the test model (attributes, input counts) and fills in output shapes.
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    if all(o.type.tensor_type.HasField("shape") for o in model.graph.output):  # the checker requires output shapes
        onnx.checker.check_model(model)
    return model


def one_node(
    op_type: str,
    x_shape: Sequence[int],
    consts: Sequence[tuple[str, np.ndarray] | None] = (),
    *,
    opset: int = 17,
    **attrs,
) -> onnx.ModelProto:
    """One ``op_type`` node reading the runtime input ``x`` and then ``consts`` (None: an omitted input)."""
    names = ["x"] + ["" if c is None else c[0] for c in consts]
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op_type, names, ["y"], name=f"{op_type.lower()}_node", **attrs)
    inits = [const(n, v) for n, v in (c for c in consts if c is not None)]
    return make_model([node], x_shape, initializers=inits, opset=opset)


def run_ort(model: onnx.ModelProto, feeds: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
    return run_ort_all(model, feeds)[0]


def run_ort_all(model: onnx.ModelProto, feeds: np.ndarray | dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every output of the model, in graph order, computed by onnxruntime on the CPU."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    if not isinstance(feeds, dict):
        feeds = {session.get_inputs()[0].name: feeds}
    return session.run(None, feeds)


def run_ir(graph: Graph, feeds: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
    return run(graph, feeds)[graph.outputs[0]]


def run_reference(model: onnx.ModelProto, feeds: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
    """The ONNX reference implementation (for variants onnxruntime does not implement)."""
    evaluator = ReferenceEvaluator(model)
    if not isinstance(feeds, dict):
        feeds = {model.graph.input[0].name: feeds}
    return np.asarray(evaluator.run(None, feeds)[0])


def import_model(model: onnx.ModelProto, **kwargs) -> Graph:
    """Import a ModelProto (the importer must leave it intact: ``check`` runs onnxruntime on it afterwards)."""
    return import_onnx(model, **kwargs)


def check(
    model: onnx.ModelProto,
    x: np.ndarray | dict[str, np.ndarray] | None = None,
    *,
    atol: float = ATOL,
    rtol: float = 0.0,
    seed: int = 0,
    reference: str = "ort",
) -> tuple[Graph, np.ndarray]:
    """Import ``model``, run it and onnxruntime on ``x`` (random when None) and assert they agree.

    Returns the graph and the expected output. The absolute bound ``atol`` is 1e-5 unless a test says
    otherwise. ``reference="onnx"`` compares with onnx's ReferenceEvaluator instead of onnxruntime.
    """
    if x is None:
        dims = model.graph.input[0].type.tensor_type.shape.dim
        shape = [dims[0].dim_value or BATCH] + [d.dim_value for d in dims[1:]]
        x = randn(shape, seed=seed)
    graph = import_model(model)
    if reference == "ort" and not ORT_AVERAGE_POOL_PADDING_OK and _average_pool_counts_padding(model):
        reference = "onnx"
    expected = run_ort(model, x) if reference == "ort" else run_reference(model, x)
    actual = run_ir(graph, x)
    assert actual.shape == expected.shape, f"IR output {actual.shape} != onnxruntime {expected.shape}"
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol)
    return graph, expected


def _average_pool_counts_padding(model: onnx.ModelProto) -> bool:
    return any(
        n.op_type == "AveragePool" and any(a.name == "count_include_pad" and a.i == 1 for a in n.attribute)
        for n in model.graph.node
    )


def op_types(graph: Graph) -> list[str]:
    return [op.op_type for op in graph.ops]
