"""Train a MobileNet-style MNIST model with ReLU6 activations and export it to ONNX.

Run from the repository root with the project's environment (``.venv``)::

    python examples/mnist_relu6/train.py [--epochs 3] [--seed 0]

The network is what a MobileNet block looks like, shrunk to MNIST: a 3x3 convolution, then depthwise 3x3 +
pointwise 1x1 pairs, each followed by BatchNorm and ReLU6 (``nn.ReLU6``, which the exporter writes as
``Clip(0, 6)``), average pooling and a global average pool before a linear classifier. ReLU6 is a fixed cap, not
a trained threshold: the conversion should take the thresholds from the data where the activations stay below
6 (``convert-to-snn{clip=auto}``, the default), which ``README.md`` measures against keeping 6
(``clip=trained``). The training loop, augmentation, export and checks are the bundled MNIST example's
(``examples/mnist/train.py``).

Writes ``mnist_relu6.onnx`` and ``training_log.json`` next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "mnist"))
from train import parse_args, seed_everything, train_and_export  # noqa: E402


def block(c_in: int, c_out: int, kernel: int = 1, groups: int = 1) -> list[nn.Module]:
    """Convolution, BatchNorm, ReLU6."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU6()]


class MobileMnist(nn.Module):
    """3x3 conv (16) -> [dw 3x3, pw 1x1 (32)] -> avgpool -> [dw 3x3, pw 1x1 (64)] -> avgpool -> [dw 3x3, pw 1x1
    (64)] -> global average pool -> linear (10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *block(1, 16, 3),
            *block(16, 16, 3, groups=16),
            *block(16, 32),
            nn.AvgPool2d(2),
            *block(32, 32, 3, groups=32),
            *block(32, 64),
            nn.AvgPool2d(2),
            *block(64, 64, 3, groups=64),
            *block(64, 64),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], epochs=3, out_dir=HERE)
    seed_everything(args.seed)
    keys = ("seed", "epochs", "batch_size", "lr", "weight_decay")
    train_and_export(MobileMnist(), args, args.out_dir / "mnist_relu6.onnx", keys)


if __name__ == "__main__":
    main()
