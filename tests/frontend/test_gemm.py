"""Gemm (transB, alpha, beta, C shapes, constant folding, transA rejected) and MatMul (+ Add bias, fold-bias)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from neurodeploy.errors import UnsupportedOpError
from neurodeploy.ir.ops import Bias, Dense
from neurodeploy.passes import PassContext, PassManager, build_pipeline

from .onnx_cases import check, const, import_model, make_model, one_node, op_types, randn, run_ir, run_ort

K, N = 5, 4


def _c(kind: str) -> np.ndarray | None:
    return {
        "N": randn((N,), seed=3),
        "1xN": randn((1, N), seed=3),
        "scalar": np.array(0.75, np.float32),
        "1": randn((1,), seed=3),
        "1x1": randn((1, 1), seed=3),
        "absent": None,
    }[kind]


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha", [1.0, 0.5, -2.0])
@pytest.mark.parametrize("beta", [1.0, 0.25])
@pytest.mark.parametrize("c_kind", ["N", "1xN", "scalar", "1", "1x1", "absent"])
def test_gemm(trans_b, alpha, beta, c_kind):
    weight = randn((N, K) if trans_b else (K, N), seed=1)
    c = _c(c_kind)
    consts = [("b", weight)] + ([("c", c)] if c is not None else [])
    model = one_node("Gemm", (3, K), consts, transB=trans_b, alpha=alpha, beta=beta)
    graph, _ = check(model)
    assert op_types(graph) == ["Dense"]
    assert (graph.ops[0].bias is None) == (c is None)


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_gemm_opsets(opset):
    check(one_node("Gemm", (2, K), [("b", randn((N, K), seed=1)), ("c", randn((N,)))], opset=opset, transB=1))


def test_gemm_trans_a_on_runtime_input_is_rejected():
    model = one_node("Gemm", (K, K), [("b", randn((K, N), seed=1))], transA=1)
    with pytest.raises(UnsupportedOpError, match=r"gemm_node.*transA"):
        import_model(model)


def test_gemm_c_varying_along_batch_is_rejected():
    model = one_node("Gemm", (2, K), [("b", randn((K, N), seed=1)), ("c", randn((2, N)))])
    with pytest.raises(UnsupportedOpError, match=r"gemm_node.*varies along the batch"):
        import_model(model)


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_on_constants_folds(trans_a, trans_b):
    """A constant (1, N) Gemm result feeding an Add with the runtime input is evaluated at import."""
    a = randn((4, 1) if trans_a else (1, 4), seed=5)
    b = randn((N, 4) if trans_b else (4, N), seed=6)
    nodes = [
        helper.make_node("Gemm", ["a", "b", "c"], ["g"], name="g", transA=trans_a, transB=trans_b, alpha=0.5, beta=2.0),
        helper.make_node("Add", ["x", "g"], ["y"], name="add"),
    ]
    inits = [const("a", a), const("b", b), const("c", randn((N,), seed=7))]
    graph, _ = check(make_model(nodes, (3, N), initializers=inits))
    assert op_types(graph) == ["Bias"]  # the Gemm was evaluated at import


def test_matmul_constant_weight():
    graph, _ = check(one_node("MatMul", (3, K), [("w", randn((K, N), seed=1))]))
    assert op_types(graph) == ["Dense"]
    assert graph.ops[0].bias is None


def test_matmul_on_rank3_input():
    check(one_node("MatMul", (2, 3, K), [("w", randn((K, N), seed=1))]))


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_matmul_add_bias_then_fold_bias(opset):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="matmul"),
        helper.make_node("Add", ["h", "b"], ["y"], name="bias_add"),
    ]
    inits = [const("w", randn((K, N), seed=1)), const("b", randn((N,), seed=2))]
    model = make_model(nodes, (3, K), initializers=inits, opset=opset)
    graph, _expected = check(model)
    assert op_types(graph) == ["Dense", "Bias"]

    x = randn((3, K), seed=4)
    PassManager(build_pipeline("fold-bias")).run(graph, PassContext())
    assert op_types(graph) == ["Dense"]
    dense = graph.ops[0]
    assert isinstance(dense, Dense)
    np.testing.assert_array_equal(dense.bias, randn((N,), seed=2))
    assert graph.outputs == ["y"]
    np.testing.assert_allclose(run_ir(graph, x), run_ort(model, x), atol=1e-5, rtol=0)
    assert not any(isinstance(op, Bias) for op in graph.ops)


def test_matmul_with_runtime_weight_is_rejected():
    nodes = [helper.make_node("MatMul", ["x", "x2"], ["y"], name="mm")]
    model = make_model(nodes, (2, 3, K), extra_inputs=[("x2", (2, K, N))])
    with pytest.raises(UnsupportedOpError, match=r"mm.*constant weight"):
        import_model(model)


def test_matmul_on_constants_folds():
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["m"], name="mm"),
        helper.make_node("Add", ["x", "m"], ["y"], name="add"),
    ]
    inits = [const("a", randn((1, 2), seed=1)), const("b", randn((2, N), seed=2))]
    graph, _ = check(make_model(nodes, (3, N), initializers=inits))
    assert op_types(graph) == ["Bias"]
