"""Train the bundled MNIST example CNN and export it to ONNX.

Run from the repository root, with the project installed (or ``PYTHONPATH`` pointing at it)::

    python examples/mnist/train.py [--epochs 8] [--seed 0] [--out-dir examples/mnist]

The network uses only layers the toolchain converts to spiking form: 3x3 convolutions with BatchNorm and
ReLU, average pooling (no max pooling), a flatten and a final linear layer producing logits (no softmax).
Inputs are MNIST images scaled to [0, 1] without mean/std normalization, as ``neurodeploy.data`` loads them.

The script writes into ``--out-dir`` (default: this folder):

* ``mnist_cnn.onnx``     the trained model in eval mode, opset 17, dynamic batch axis;
* ``test_images.npz``    the first 256 test images (``x``, float32 (256, 1, 28, 28)) and labels (``y``, int64);
* ``calibration.npz``    the first 256 training images and labels, in the same layout;
* ``training_log.json``  seed, per-epoch loss and time, torch and onnxruntime test accuracy, sizes, versions.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.data import load_dataset

SAMPLE_COUNT = 256
MAX_SHIFT = 2
OPSET = 17


class MnistCnn(nn.Module):
    """Three conv-BN-ReLU-avgpool stages (28 -> 14 -> 7 -> 3) and a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *self._stage(1, 16),
            *self._stage(16, 32),
            *self._stage(32, 64),
        )
        self.classifier = nn.Linear(64 * 3 * 3, 10)

    @staticmethod
    def _stage(in_channels: int, out_channels: int) -> list[nn.Module]:
        return [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.AvgPool2d(2),
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and pin torch to two threads."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)


def random_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to MAX_SHIFT pixels in each direction, filling with zeros (the background)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (MAX_SHIFT,) * 4)
    dy, dx = torch.randint(0, 2 * MAX_SHIFT + 1, (2, n, 1), generator=generator)
    rows = (dy + torch.arange(h))[:, None, :, None]
    cols = (dx + torch.arange(w))[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    channel = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, channel, rows, cols]


@torch.no_grad()
def torch_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` in eval mode."""
    model.eval()
    correct = sum(
        (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Top-1 accuracy of the exported model under onnxruntime on the CPU."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    correct = sum(
        int((session.run(["logits"], {"input": x[i : i + batch_size]})[0].argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    """Adam with a one-cycle learning-rate schedule and random-shift augmentation; returns per-epoch stats."""
    generator = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = (len(x) + args.batch_size - 1) // args.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=generator)
        total_loss = 0.0
        for i in range(0, len(x), args.batch_size):
            index = order[i : i + args.batch_size]
            inputs = random_shift(x[index], generator)
            loss = F.cross_entropy(model(inputs), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
        seconds = time.perf_counter() - start
        history.append({"epoch": epoch, "train_loss": total_loss / len(x), "seconds": round(seconds, 2)})
        print(f"epoch {epoch}/{args.epochs}: loss {total_loss / len(x):.4f}, {seconds:.1f} s", flush=True)
    return history


def export_onnx(model: nn.Module, path: Path) -> None:
    """Export ``model`` in eval mode with the legacy (TorchScript) exporter as a single file.

    ``TrainingMode.PRESERVE`` on a model in eval mode exports inference-mode BatchNormalization nodes: with
    ``TrainingMode.EVAL`` and constant folding, the exporter would fuse each BatchNorm into its convolution
    instead. Constant folding still applies to the rest of the graph.
    """
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    with warnings.catch_warnings():
        # The exporter warns against constant folding under PRESERVE for models in training mode; ours is not.
        warnings.filterwarnings("ignore", message="It is recommended that constant folding be turned off")
        torch.onnx.export(
            model,
            dummy,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.PRESERVE,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    onnx.checker.check_model(onnx.load(str(path)))


def train_and_export(model: nn.Module, args: argparse.Namespace, path: Path, keys: tuple[str, ...]) -> dict:
    """Train ``model`` on the MNIST training set as :func:`train` does, export it to ``path``, check that
    onnxruntime's test accuracy is torch's, and write ``training_log.json`` beside it (``keys``: the arguments it
    records). Returns the log."""
    train_set, test_set = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    start = time.perf_counter()
    history = train(model, torch.from_numpy(train_set.x), torch.from_numpy(train_set.y), args)
    seconds = time.perf_counter() - start
    torch_acc = torch_accuracy(model, torch.from_numpy(test_set.x), torch.from_numpy(test_set.y))
    export_onnx(model, path)
    onnx_acc = onnx_accuracy(path, test_set.x, test_set.y)
    if onnx_acc != torch_acc:
        raise SystemExit(f"onnxruntime accuracy {onnx_acc} differs from torch accuracy {torch_acc}")
    log = {
        **{k: getattr(args, k) for k in keys},
        "history": history,
        "training_seconds": round(seconds, 2),
        "torch_test_accuracy": torch_acc,
        "onnxruntime_test_accuracy": onnx_acc,
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "onnx_op_types": sorted({node.op_type for node in onnx.load(str(path)).graph.node}),
        "torch_version": torch.__version__,
    }
    (path.parent / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"test accuracy {onnx_acc:.4f}; wrote {path}")
    return log


def save_samples(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Save the first SAMPLE_COUNT images and labels as a compressed ``.npz`` with arrays ``x`` and ``y``."""
    np.savez_compressed(
        path, x=np.ascontiguousarray(x[:SAMPLE_COUNT], dtype=np.float32), y=y[:SAMPLE_COUNT].astype(np.int64)
    )


def parse_args(description: str | None = None, epochs: int = 8, out_dir: Path | None = None) -> argparse.Namespace:
    """The training options (an example that reuses this script passes its own description, default epochs and
    folder)."""
    parser = argparse.ArgumentParser(description=description or __doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default: {epochs})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    out_dir = out_dir or Path(__file__).resolve().parent
    parser.add_argument("--out-dir", type=Path, default=out_dir, help="output folder (default: the script's folder)")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch size (default: 128)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="Adam weight decay (default: 1e-4)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    seed_everything(args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    train_set = load_dataset("mnist", "train")
    test_set = load_dataset("mnist", "test")
    x_train, y_train = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    x_test, y_test = torch.from_numpy(test_set.x), torch.from_numpy(test_set.y)

    model = MnistCnn()
    parameter_count = sum(p.numel() for p in model.parameters())
    print(f"{parameter_count} parameters, training on {len(x_train)} images", flush=True)
    start = time.perf_counter()
    history = train(model, x_train, y_train, args)
    training_seconds = time.perf_counter() - start

    torch_acc = torch_accuracy(model, x_test, y_test)
    print(f"torch test accuracy: {torch_acc:.4f} ({len(x_test)} images), training {training_seconds:.1f} s")

    onnx_path = args.out_dir / "mnist_cnn.onnx"
    export_onnx(model, onnx_path)
    graph = onnx.load(str(onnx_path)).graph
    op_types = sorted({node.op_type for node in graph.node})
    onnx_acc = onnx_accuracy(onnx_path, test_set.x, test_set.y)
    print(f"onnxruntime test accuracy: {onnx_acc:.4f}; ONNX ops: {', '.join(op_types)}")
    if onnx_acc != torch_acc:
        raise SystemExit(f"onnxruntime accuracy {onnx_acc} differs from torch accuracy {torch_acc}")

    save_samples(args.out_dir / "test_images.npz", test_set.x, test_set.y)
    save_samples(args.out_dir / "calibration.npz", train_set.x, train_set.y)

    log = {
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "history": history,
        "training_seconds": round(training_seconds, 2),
        "torch_test_accuracy": torch_acc,
        "onnxruntime_test_accuracy": onnx_acc,
        "test_images": len(x_test),
        "parameter_count": parameter_count,
        "onnx_bytes": onnx_path.stat().st_size,
        "onnx_opset": OPSET,
        "onnx_op_types": op_types,
        "torch_version": torch.__version__,
    }
    (args.out_dir / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"wrote {onnx_path} ({log['onnx_bytes']} bytes) and samples, log in {args.out_dir}")


if __name__ == "__main__":
    main()
