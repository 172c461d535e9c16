"""The seed corpus: the repository's real models and small models built with onnx.helper, and the base artifacts
(compiled once per campaign) that the artifact and input mutators start from.

Every seed knows its per-sample input shape and class count, so a case can make inputs that fit it, and the
targets it compiles for. Nothing here depends on time or paths outside the repository: the same seed name always
gives the same bytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CALIBRATION = EXAMPLES / "mnist" / "calibration.npz"
TEST_IMAGES = EXAMPLES / "mnist" / "test_images.npz"
OPSET = 17


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes  # the serialized ModelProto
    input_shape: tuple[int, ...]  # per sample
    classes: int
    targets: tuple[str, ...]  # targets it compiles for (none: a seed for mutations only)
    real: bool  # one of the repository's models

    def model(self) -> onnx.ModelProto:
        return onnx.load_from_string(self.data)


def _input_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(int(d.dim_value) for d in dims[1:])


def _classes(model: onnx.ModelProto) -> int:
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if dims and dims[-1].dim_value else 10


def real_models() -> dict[str, Seed]:
    """The bundled models: mnist, mnist_qcfs, nmnist and nmnist_speck (those present)."""
    found = [EXAMPLES / "mnist" / "mnist_cnn.onnx", *sorted(EXAMPLES.glob("mnist_qcfs/*.onnx"))]
    found += sorted(EXAMPLES.glob("nmnist*/*.onnx"))
    seeds = {}
    for path in found:
        if not path.is_file():
            continue
        model = onnx.load(str(path))
        name = f"{path.parent.name}/{path.stem}"
        targets = {"mnist": ("reference", "loihi", "speck"), "nmnist_speck": ("reference", "speck")}.get(
            path.parent.name, ("reference",)
        )
        seeds[name] = Seed(name, path.read_bytes(), _input_shape(model), _classes(model), targets, True)
    return seeds


# --- small models built with onnx.helper ----------------------------------------------------------------------


class _Builder:
    """Collects nodes and initializers with a seeded generator; ``finish`` makes the checked model."""

    def __init__(self, name: str, input_shape: tuple[int, ...], seed: int) -> None:
        self.name, self.input_shape = name, input_shape
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def weight(self, shape: tuple[int, ...], scale: float = 0.5, name: str | None = None) -> str:
        name = name or f"w{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(self.rng.normal(0, scale, shape).astype(np.float32), name))
        return name

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        name = name or f"k{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"{op.lower()}{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op.lower()}_{self.count}", **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, pad: int = 1, stride: int = 1) -> str:
        w, b = self.weight((cout, cin, k, k)), self.weight((cout,), 0.1)
        return self.node("Conv", [x, w, b], kernel_shape=[k, k], pads=[pad] * 4, strides=[stride, stride])

    def gemm(self, x: str, fin: int, fout: int) -> str:
        return self.node("Gemm", [x, self.weight((fout, fin)), self.weight((fout,), 0.1)], transB=1)

    def finish(self, out: str, classes: int) -> onnx.ModelProto:
        """The model whose output is ``out`` (the last node's output), renamed ``logits``."""
        if out != self.nodes[-1].output[0]:
            raise ValueError(f"{self.name}: the model's output must be the last node's, not {out!r}")
        self.nodes[-1].output[0] = "logits"
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *self.input_shape])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
            initializer=self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fuzz-seeds")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _conv_gemm() -> onnx.ModelProto:
    b = _Builder("conv_gemm", (1, 8, 8), 1)
    x = b.node("Relu", [b.conv("input", 1, 4)])
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    return b.finish(b.gemm(x, 4, 3), 3)


def _matmul_add() -> onnx.ModelProto:
    b = _Builder("matmul_add", (1, 8, 8), 2)
    x = b.node("Flatten", ["input"], axis=1)
    x = b.node("Relu", [b.node("Add", [b.node("MatMul", [x, b.weight((64, 8), 0.2)]), b.weight((8,), 0.1)])])
    x = b.node("Add", [b.node("MatMul", [x, b.weight((8, 3), 0.3)]), b.weight((3,), 0.1)])
    return b.finish(x, 3)


def _bn_clip_pool() -> onnx.ModelProto:
    b = _Builder("bn_clip_pool", (1, 8, 8), 3)
    x = b.conv("input", 1, 4)
    scale, bias = b.const(np.float32([1.0, 0.5, 2.0, 1.5])), b.const(np.float32([0.1, 0.0, -0.1, 0.2]))
    mean, var = b.const(np.float32([0.0, 0.1, -0.1, 0.05])), b.const(np.float32([1.0, 0.5, 2.0, 0.8]))
    x = b.node("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-5)
    x = b.node("Clip", [x, b.const(np.float32(0.0)), b.const(np.float32(6.0))])
    x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("Flatten", [x], axis=1)
    return b.finish(b.gemm(x, 16, 3), 3)


def _concat_add() -> onnx.ModelProto:
    b = _Builder("concat_add", (1, 8, 8), 4)
    left, right = b.conv("input", 1, 2), b.conv("input", 1, 2)
    x = b.node("Relu", [b.node("Concat", [left, right], axis=1)])
    y = b.node("Relu", [b.node("Add", [b.conv(x, 4, 4), x])])
    x = b.node("Flatten", [b.node("GlobalAveragePool", [y])], axis=1)
    return b.finish(b.gemm(x, 4, 3), 3)


def _reshape_const() -> onnx.ModelProto:
    b = _Builder("reshape_const", (1, 8, 8), 5)
    x = b.node("Relu", [b.conv("input", 1, 2, stride=2)])
    shape = b.node("Constant", [], value=numpy_helper.from_array(np.int64([-1, 32]), "shape"))
    x = b.node("Reshape", [x, shape])
    return b.finish(b.gemm(x, 32, 3), 3)


def _folding() -> onnx.ModelProto:
    """Shape arithmetic and weights made by the constant-only ops: Shape, Gather, Unsqueeze, Concat, Constant,
    ConstantOfShape, Slice, Cast, Transpose."""
    b = _Builder("folding", (1, 8, 8), 6)
    x = b.node("Relu", [b.conv("input", 1, 2, stride=2)])
    batch = b.node("Gather", [b.node("Shape", [x]), b.const(np.int64(0))], axis=0)
    minus_one = b.node("Constant", [], value_ints=[-1])
    shape = b.node("Concat", [b.node("Unsqueeze", [batch, b.const(np.int64([0]))]), minus_one], axis=0)
    x = b.node("Reshape", [x, shape])
    weight_t = b.node("Transpose", [b.weight((32, 3), 0.2)], perm=[1, 0])
    x = b.node("MatMul", [x, b.node("Transpose", [weight_t], perm=[1, 0])])
    bias64 = b.const(np.float64([0.1, -0.2, 0.05, 0.3, 0.7]))
    bias = b.node(
        "Slice", [b.node("Cast", [bias64], to=TensorProto.FLOAT), b.const(np.int64([1])), b.const(np.int64([4]))]
    )
    x = b.node("Add", [x, bias])
    zeros = b.node("ConstantOfShape", [b.const(np.int64([3]))], value=numpy_helper.from_array(np.float32([0.25]), "v"))
    return b.finish(b.node("Add", [x, zeros]), 3)


def _pad_conv() -> onnx.ModelProto:
    b = _Builder("pad_conv", (1, 8, 8), 7)
    x = b.node("Pad", ["input", b.const(np.int64([0, 0, 1, 1, 0, 0, 1, 1]))], mode="constant")
    x = b.node("Relu", [b.conv(x, 1, 4, pad=0)])
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    return b.finish(b.gemm(x, 4, 3), 3)


def _speck_cnn() -> onnx.ModelProto:
    """Conv -> Relu -> AvgPool 2 -> Conv -> Relu -> AvgPool 2 -> Flatten -> Gemm: maps onto Speck."""
    b = _Builder("speck_cnn", (1, 8, 8), 8)
    x = b.node("AveragePool", [b.node("Relu", [b.conv("input", 1, 4)])], kernel_shape=[2, 2], strides=[2, 2])
    x = b.node("AveragePool", [b.node("Relu", [b.conv(x, 4, 4)])], kernel_shape=[2, 2], strides=[2, 2])
    return b.finish(b.gemm(b.node("Flatten", [x], axis=1), 16, 3), 3)


SMALL_BUILDERS = {
    "conv_gemm": (_conv_gemm, ("reference", "loihi")),
    "matmul_add": (_matmul_add, ("reference", "loihi")),
    "bn_clip_pool": (_bn_clip_pool, ("reference", "loihi")),
    "concat_add": (_concat_add, ("reference",)),
    "reshape_const": (_reshape_const, ("reference", "loihi")),
    "folding": (_folding, ("reference",)),
    "pad_conv": (_pad_conv, ()),  # Pad is not imported: a seed for mutations only
    "speck_cnn": (_speck_cnn, ("reference", "loihi", "speck")),
}


def small_models() -> dict[str, Seed]:
    seeds = {}
    for name, (build, targets) in SMALL_BUILDERS.items():
        model = build()
        seeds[name] = Seed(name, model.SerializeToString(), _input_shape(model), 3, targets, False)
    return seeds


@functools.cache
def corpus() -> dict[str, Seed]:
    """Every seed by name: the small models first (they are fast), then the real ones."""
    return {**small_models(), **real_models()}


def inputs_for(seed: Seed, n: int = 3, rng: np.random.Generator | None = None) -> np.ndarray:
    """``n`` inputs in [0, 1) that fit ``seed`` (real MNIST digits for the 1x28x28 models)."""
    if seed.input_shape == (1, 28, 28) and TEST_IMAGES.is_file():
        with np.load(TEST_IMAGES) as data:
            return data["x"][:n].astype(np.float32)
    rng = rng or np.random.default_rng(0)
    return rng.random((n, *seed.input_shape), dtype=np.float32)


# --- base artifacts ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """An artifact compiled once per campaign from a seed; artifact and input mutations start from it."""

    name: str
    seed: str
    target: str
    calibration: bool


BASES = [
    Base("conv_gemm-reference", "conv_gemm", "reference", False),
    Base("conv_gemm-loihi", "conv_gemm", "loihi", False),
    Base("speck_cnn-speck", "speck_cnn", "speck", False),
    Base("speck_cnn-loihi", "speck_cnn", "loihi", False),
    Base("mnist-reference", "mnist/mnist_cnn", "reference", True),
    Base("mnist-loihi", "mnist/mnist_cnn", "loihi", True),
    Base("mnist-speck", "mnist/mnist_cnn", "speck", True),
]


def base_argv(base: Base, model: Path, out: Path) -> list[str]:
    """The command line that compiles ``base`` from ``model`` into ``out``."""
    argv = ["compile", str(model), "--target", base.target, "-o", str(out), "-q"]
    if base.calibration:
        argv += ["--calibration", str(CALIBRATION), "--calibration-samples", "64"]
    return argv
