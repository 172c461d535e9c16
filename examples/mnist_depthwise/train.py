"""Train a depthwise-separable MNIST CNN that ends in a global average pool, and export it to ONNX.

Run from the repository root with the project's environment (``.venv``)::

    python examples/mnist_depthwise/train.py [--epochs 2] [--seed 0]

The MobileNet shape at MNIST size: a strided 3x3 convolution, then two depthwise-separable blocks (a 3x3
depthwise convolution and a 1x1 pointwise one, each with BatchNorm and ReLU; the second block strided), a global
average pool and a linear classifier. Depthwise convolutions and the global average pool at the end are what
Speck's lowering expands (a full convolution, zeros between the channels) and folds (sum pooling and a kernel over
the whole map); ``README.md`` measures the network on the reference, Loihi and Speck targets. The training loop,
augmentation, export and checks are the bundled MNIST example's (``examples/mnist/train.py``).

Writes ``mnist_depthwise.onnx`` and ``training_log.json`` next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "mnist"))
from train import parse_args, seed_everything, train_and_export  # noqa: E402


def _block(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU()]


class DepthwiseNet(nn.Module):
    """conv 3x3/2 (16) -> dw 3x3 (16) -> pw 1x1 (32) -> dw 3x3/2 (32) -> pw 1x1 (64) -> global avg pool -> linear
    (10); BatchNorm and ReLU after every convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_block(1, 16, 3, stride=2),
            *_block(16, 16, 3, groups=16),
            *_block(16, 32, 1),
            *_block(32, 32, 3, stride=2, groups=32),
            *_block(32, 64, 1),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], epochs=2, out_dir=HERE)
    seed_everything(args.seed)
    keys = ("seed", "epochs", "batch_size", "lr", "weight_decay")
    train_and_export(DepthwiseNet(), args, args.out_dir / "mnist_depthwise.onnx", keys)


if __name__ == "__main__":
    main()
