"""Train a small MNIST CNN with max pooling and export it to ONNX.

Run from the repository root with the project's environment (``.venv``)::

    python examples/mnist_maxpool/train.py [--epochs 2] [--seed 0]

Two 5x5 convolutions with ReLU, each followed by 2x2 max pooling, then a linear classifier: the LeNet shape most
tutorials train. Max pooling has no exact rate-coded form with IF neurons alone; ``README.md`` measures the
conversion's three answers to it (``maxpool=avg``, the default; ``maxpool=exact``, max pooling of spike counts;
and the two with signed neurons). The training loop, augmentation, export and checks are the bundled MNIST
example's (``examples/mnist/train.py``).

Writes ``mnist_maxpool.onnx`` and ``training_log.json`` next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "mnist"))
from train import parse_args, seed_everything, train_and_export  # noqa: E402


class LeNetMax(nn.Module):
    """conv 5x5 (16) -> ReLU -> maxpool 2 -> conv 5x5 (32) -> ReLU -> maxpool 2 -> linear (10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], epochs=2, out_dir=HERE)
    seed_everything(args.seed)
    keys = ("seed", "epochs", "batch_size", "lr", "weight_decay")
    train_and_export(LeNetMax(), args, args.out_dir / "mnist_maxpool.onnx", keys)


if __name__ == "__main__":
    main()
