"""Whole models: the bundled MNIST CNN (from its file) and a hand-built residual model with Concat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline

from .onnx_cases import check, const, make_model, op_types, randn, run_ir, run_ort

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist"


@pytest.fixture(scope="module")
def mnist_images() -> np.ndarray:
    return np.load(EXAMPLE / "test_images.npz")["x"]


def test_mnist_from_file_matches_onnxruntime(mnist_images):
    path = EXAMPLE / "mnist_cnn.onnx"
    graph = import_onnx(str(path))
    assert graph.name == "mnist_cnn"
    assert op_types(graph).count("Conv2d") == 3
    assert op_types(graph)[-1] == "Dense"
    model = onnx.load(str(path))
    for batch in (mnist_images[:1], mnist_images[:37], mnist_images):
        expected = run_ort(model, batch)
        actual = run_ir(graph, batch)
        assert actual.shape == expected.shape == (len(batch), 10)
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)
    labels = np.load(EXAMPLE / "test_images.npz")["y"]
    assert (run_ir(graph, mnist_images).argmax(axis=1) == labels).mean() >= 0.99  # measured 0.996 (255/256)


def test_mnist_canonicalized_still_matches(mnist_images):
    """After fold-batchnorm and friends the ANN still computes the same function (float rounding aside)."""
    path = EXAMPLE / "mnist_cnn.onnx"
    graph = import_onnx(path)
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    assert "BatchNorm" not in op_types(graph)
    x = mnist_images[:64]
    np.testing.assert_allclose(run_ir(graph, x), run_ort(onnx.load(str(path)), x), atol=1e-4, rtol=0)


def _residual_model(opset: int) -> onnx.ModelProto:
    """conv-bn-relu, two branches (1x1 conv and 3x3 conv), residual Add, Concat with the input, pools,
    flatten, Gemm, Softmax."""
    c = 4
    r = np.random.default_rng(7)
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c0", "s", "sh", "m", "v"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], name="branch_a", pads=[1, 1, 1, 1], group=2),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["a"], name="relu6"),
        helper.make_node("Conv", ["a", "w2", "b2"], ["c2"], name="branch_b", auto_pad="SAME_UPPER"),
        helper.make_node("Add", ["c2", "r0"], ["res"], name="residual"),
        helper.make_node("Relu", ["res"], ["r1"], name="relu1"),
        helper.make_node("Concat", ["r1", "x"], ["cat"], name="concat", axis=1),
        helper.make_node("MaxPool", ["cat"], ["mp"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["mp"], ["ap"], name="avgpool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["ap"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    inits = [
        const("w0", randn((c, 3, 3, 3), seed=1, scale=0.4)),
        const("b0", randn((c,), seed=2)),
        const("s", r.uniform(0.5, 1.5, c)),
        const("sh", r.standard_normal(c)),
        const("m", r.standard_normal(c)),
        const("v", r.uniform(0.2, 2.0, c)),
        const("w1", randn((c, c // 2, 3, 3), seed=3, scale=0.4)),
        const("lo", np.float32(0.0)),
        const("hi", np.float32(6.0)),
        const("w2", randn((c, c, 1, 1), seed=4, scale=0.4)),
        const("b2", randn((c,), seed=5)),
        const("wf", randn((5, (c + 3) * 4 * 4), seed=6, scale=0.1)),
        const("bf", randn((5,), seed=8)),
    ]
    return make_model(nodes, ("N", 3, 8, 8), initializers=inits, opset=opset)


@pytest.mark.parametrize("opset", [13, 17, 21])
@pytest.mark.parametrize("batch", [1, 3])
def test_residual_concat_model(opset, batch):
    graph, expected = check(_residual_model(opset), randn((batch, 3, 8, 8), seed=11))
    assert expected.shape == (batch, 5)
    assert op_types(graph) == [
        "Conv2d", "BatchNorm", "Relu", "Conv2d", "Clip", "Conv2d", "Add", "Relu", "Concat",
        "MaxPool2d", "AvgPool2d", "Reshape", "Dense", "Softmax",
    ]  # fmt: skip


def test_importing_a_model_proto_leaves_it_intact():
    """import_onnx(ModelProto) must not release the caller's initializers: onnxruntime and a second import still
    see the weights."""
    model = _residual_model(17)
    before = model.SerializeToString()
    x = randn((2, 3, 8, 8), seed=12)
    first = run_ir(import_onnx(model), x)
    assert model.SerializeToString() == before
    second = run_ir(import_onnx(model), x)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, run_ort(model, x), atol=1e-5, rtol=0)
