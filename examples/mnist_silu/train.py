"""Train a small MNIST CNN with SiLU (Swish) activations and export it to ONNX.

Run from the repository root with the project's environment (``.venv``)::

    python examples/mnist_silu/train.py [--epochs 2] [--seed 0]

Two 3x3 convolutions (16 and 32 channels), each followed by BatchNorm, SiLU (``nn.SiLU``, which the exporter
writes as ``Mul(x, Sigmoid(x))``) and a 2x2 average pool, then a linear classifier. SiLU is no ReLU: integrate-and-
fire neurons do not approximate it, few-spike neurons fitted to it do (``convert-to-snn{coding=fs}``, ``README.md``).
The training loop, augmentation, export and checks are the bundled MNIST example's (``examples/mnist/train.py``).

Writes ``mnist_silu.onnx``, ``calibration.npz`` (the first 256 training images and labels) and
``training_log.json`` next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "mnist"))
from train import parse_args, save_samples, seed_everything, train_and_export  # noqa: E402

from neurodeploy.data import load_dataset  # noqa: E402


class SiluMnist(nn.Module):
    """[conv 3x3 (16), BN, SiLU, avgpool] -> [conv 3x3 (32), BN, SiLU, avgpool] -> linear (10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.SiLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.SiLU(),
            nn.AvgPool2d(2),
        )
        self.classifier = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], epochs=2, out_dir=HERE)
    seed_everything(args.seed)
    keys = ("seed", "epochs", "batch_size", "lr", "weight_decay")
    train_and_export(SiluMnist(), args, args.out_dir / "mnist_silu.onnx", keys)
    train_set = load_dataset("mnist", "train", limit=256)
    save_samples(args.out_dir / "calibration.npz", train_set.x, train_set.y)


if __name__ == "__main__":
    main()
