"""Build a ResNet-18-sized ONNX model (torchvision's layout, random weights) for the compile benchmark.

The model has the torchvision ResNet-18 structure and parameter count (11,689,512, plus the 9,600
BatchNormalization running statistics torchvision keeps as buffers): a 7x7 stride-2 conv, BatchNormalization,
Relu and a 3x3 stride-2 MaxPool; four stages of two BasicBlocks (64, 128, 256, 512 channels; the first block of
stages 2-4 has a stride-2 1x1 conv + BatchNormalization downsample); each block ends in a residual Add then Relu;
GlobalAveragePool, Flatten and a Gemm to 1000 classes. Weights are seeded numpy random numbers
(BatchNormalization variances are positive). Opset 17, one input "input" of shape [N, 3, 224, 224] with a dynamic
batch dimension N, one output "logits"; saved as one .onnx file (no external data). No torch needed.

    .venv/bin/python benchmarks/make_resnet18_onnx.py --out benchmarks/.cache/resnet18.onnx [--check]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
SEED = 0
NUM_CLASSES = 1000
STAGES = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.parameters = 0

    def _init(self, name: str, array: np.ndarray) -> str:
        array = np.ascontiguousarray(array, dtype=np.float32)
        self.initializers.append(numpy_helper.from_array(array, name))
        self.parameters += array.size
        return name

    def conv(self, name: str, x: str, cin: int, cout: int, kernel: int, stride: int, pad: int) -> str:
        fan_in = cin * kernel * kernel
        w = self.rng.standard_normal((cout, cin, kernel, kernel), dtype=np.float32) * np.float32(np.sqrt(2 / fan_in))
        weight = self._init(f"{name}.weight", w)
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, weight],
                [f"{name}_out"],
                name=name,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
            )
        )
        return f"{name}_out"

    def bn(self, name: str, x: str, channels: int) -> str:
        rng = self.rng
        params = [
            self._init(f"{name}.weight", rng.uniform(0.5, 1.5, channels)),
            self._init(f"{name}.bias", rng.uniform(-0.1, 0.1, channels)),
            self._init(f"{name}.running_mean", rng.uniform(-0.1, 0.1, channels)),
            self._init(f"{name}.running_var", rng.uniform(0.5, 1.5, channels)),
        ]
        self.nodes.append(
            helper.make_node("BatchNormalization", [x, *params], [f"{name}_out"], name=name, epsilon=1e-5)
        )
        return f"{name}_out"

    def relu(self, name: str, x: str) -> str:
        self.nodes.append(helper.make_node("Relu", [x], [f"{name}_out"], name=name))
        return f"{name}_out"

    def basic_block(self, name: str, x: str, cin: int, cout: int, stride: int) -> str:
        y = self.relu(
            f"{name}.relu1", self.bn(f"{name}.bn1", self.conv(f"{name}.conv1", x, cin, cout, 3, stride, 1), cout)
        )
        y = self.bn(f"{name}.bn2", self.conv(f"{name}.conv2", y, cout, cout, 3, 1, 1), cout)
        identity = x
        if stride != 1 or cin != cout:
            identity = self.bn(
                f"{name}.downsample.1", self.conv(f"{name}.downsample.0", x, cin, cout, 1, stride, 0), cout
            )
        self.nodes.append(helper.make_node("Add", [y, identity], [f"{name}.add_out"], name=f"{name}.add"))
        return self.relu(f"{name}.relu2", f"{name}.add_out")


def make_model(seed: int = SEED) -> onnx.ModelProto:
    """The ResNet-18-sized ModelProto (weights drawn from ``numpy.random.default_rng(seed)``)."""
    b = _Builder(seed)
    x = b.relu("relu", b.bn("bn1", b.conv("conv1", "input", 3, 64, 7, 2, 3), 64))
    b.nodes.append(
        helper.make_node(
            "MaxPool", [x], ["maxpool_out"], name="maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
        )
    )
    x, cin = "maxpool_out", 64
    for stage, cout in enumerate(STAGES, start=1):
        for block in range(BLOCKS_PER_STAGE):
            stride = 2 if stage > 1 and block == 0 else 1
            x = b.basic_block(f"layer{stage}.{block}", x, cin, cout, stride)
            cin = cout
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["avgpool_out"], name="avgpool"))
    b.nodes.append(helper.make_node("Flatten", ["avgpool_out"], ["flatten_out"], name="flatten", axis=1))
    limit = 1 / np.sqrt(cin)
    fc_w = b._init("fc.weight", b.rng.uniform(-limit, limit, (NUM_CLASSES, cin)))
    fc_b = b._init("fc.bias", b.rng.uniform(-limit, limit, NUM_CLASSES))
    b.nodes.append(helper.make_node("Gemm", ["flatten_out", fc_w, fc_b], ["logits"], name="fc", transB=1))

    graph = helper.make_graph(
        b.nodes,
        "resnet18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", NUM_CLASSES])],
        initializer=b.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="neurodeploy-benchmarks"
    )
    model.ir_version = 8  # the IR version that opset 17 shipped with; readable by older runtimes too
    return model


def parameter_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def build(path: str | Path) -> Path:
    """Write the model to ``path`` (one file, parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = make_model()
    tmp = path.with_name(path.name + ".partial")
    onnx.save_model(model, str(tmp), save_as_external_data=False)
    tmp.replace(path)
    return path


def self_check(path: Path) -> None:
    """onnx.checker on the file, then one batch-2 forward pass in onnxruntime."""
    import onnxruntime as ort

    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
    (logits,) = session.run(None, {"input": x})
    if logits.shape != (2, NUM_CLASSES) or not np.isfinite(logits).all():
        raise SystemExit(f"self-check failed: logits of shape {logits.shape}, finite={np.isfinite(logits).all()}")
    print(
        f"check ok: {parameter_count(model):,} initializer values, {len(model.graph.node)} nodes, "
        f"onnxruntime logits {logits.shape}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / ".cache" / "resnet18.onnx")
    parser.add_argument("--check", action="store_true", help="run onnx.checker and one onnxruntime forward pass")
    args = parser.parse_args(argv)
    path = build(args.out)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    if args.check:
        self_check(path)


if __name__ == "__main__":
    main()
