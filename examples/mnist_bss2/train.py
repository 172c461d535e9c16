"""Train a small MNIST MLP that fits one BrainScaleS-2 chip and export it to ONNX.

Run from the repository root with the project's environment (``.venv``)::

    python examples/mnist_bss2/train.py [--epochs 30] [--seed 0] [--hidden 100]

The model takes the 28x28 MNIST images as ``neurodeploy.data`` loads them (``--data mnist`` feeds them as they
are) and downscales them itself: a 3x3 average pool with stride 3 gives 9x9 (the last row and column, where at
most 106 of the 10,000 test images have ink, are dropped). A ReLU on the pooled pixels (the identity on images
in [0, 1]) makes them the input neurons: the conversion turns it into the input population, which the
``brainscales2`` target runs on the host as 81 spike sources. Then Linear(81, hidden), ReLU, Linear(hidden, 10)
logits.

Why it fits one chip (``neurodeploy_pynn.brainscales2``): a source with weights of both signs onto a hemisphere
takes two of its 256 synapse rows, so the hidden layer's hemisphere needs 81 x 2 rows plus its bias rows, and the
readout's hemisphere hidden x 2 plus its bias rows: hidden <= 127. 100 hidden neurons leave room for the bias.

The training loop, augmentation (random shifts of up to 2 pixels), export and checks are the bundled MNIST
example's (``examples/mnist/train.py``). Writes ``mnist_bss2.onnx`` and ``training_log.json`` next to this file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import onnx
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "mnist"))
from train import export_onnx, onnx_accuracy, seed_everything, torch_accuracy, train  # noqa: E402

from neurodeploy.data import load_dataset  # noqa: E402

POOL = 3
"""28x28 -> 9x9."""


class MnistBss2(nn.Module):
    """AvgPool 3x3 (stride 3) -> ReLU (the input neurons) -> flatten -> Linear(81, hidden) -> ReLU ->
    Linear(hidden, 10)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        side = 28 // POOL
        self.net = nn.Sequential(
            nn.AvgPool2d(POOL),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(side * side, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    args = parser.parse_args()
    seed_everything(args.seed)
    train_set, test_set = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    model = MnistBss2(args.hidden)
    start = time.perf_counter()
    history = train(model, torch.from_numpy(train_set.x), torch.from_numpy(train_set.y), args)
    seconds = time.perf_counter() - start
    torch_acc = torch_accuracy(model, torch.from_numpy(test_set.x), torch.from_numpy(test_set.y))
    path = HERE / "mnist_bss2.onnx"
    export_onnx(model, path)
    onnx_acc = onnx_accuracy(path, test_set.x, test_set.y)
    if onnx_acc != torch_acc:
        raise SystemExit(f"onnxruntime accuracy {onnx_acc} differs from torch accuracy {torch_acc}")
    ops = sorted({node.op_type for node in onnx.load(str(path)).graph.node})
    log = {
        **{k: getattr(args, k) for k in ("seed", "epochs", "hidden", "batch_size", "lr", "weight_decay")},
        "history": history,
        "training_seconds": round(seconds, 2),
        "torch_test_accuracy": torch_acc,
        "onnxruntime_test_accuracy": onnx_acc,
        "test_images": len(test_set.x),
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "onnx_bytes": path.stat().st_size,
        "onnx_op_types": ops,
        "torch_version": torch.__version__,
    }
    (HERE / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"test accuracy {onnx_acc:.4f}; wrote {path}")


if __name__ == "__main__":
    main()
