"""Train a small residual MNIST CNN (two identity blocks, a global average pool) and export it to ONNX.

Run from the repository root with the project's environment (``.venv``)::

    python examples/mnist_residual/train.py [--epochs 6] [--seed 0]

A ResNet at MNIST size and at Speck's size: a strided 3x3 convolution (16 channels, 14 x 14), an identity
residual block of two 3x3 convolutions, a strided 3x3 convolution (32 channels, 7 x 7), a second identity block,
a global average pool and a linear classifier; BatchNorm after every convolution, ReLU after the first of each
block and after each sum. Seven weighted layers: on Speck seven cores, each block's second convolution taking its
skip as more input channels (the chip's feature shift). ``README.md`` measures it on the reference, Loihi and
Speck targets. The training loop, augmentation, export and checks are the bundled MNIST example's
(``examples/mnist/train.py``).

Writes ``mnist_residual.onnx`` and ``training_log.json`` next to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "mnist"))
from train import parse_args, seed_everything, train_and_export  # noqa: E402


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out))


class Block(nn.Module):
    """relu(bn(conv(relu(bn(conv(x))))) + x): the identity block of a ResNet."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = _conv(channels, channels)
        self.second = _conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.second(torch.relu(self.first(x))) + x)


class ResidualNet(nn.Module):
    """conv 3x3/2 (16) -> block (16) -> conv 3x3/2 (32) -> block (32) -> global avg pool -> linear (10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv(1, 16, stride=2),
            nn.ReLU(),
            Block(16),
            _conv(16, 32, stride=2),
            nn.ReLU(),
            Block(32),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], epochs=6, out_dir=HERE)
    seed_everything(args.seed)
    keys = ("seed", "epochs", "batch_size", "lr", "weight_decay")
    train_and_export(ResidualNet(), args, args.out_dir / "mnist_residual.onnx", keys)


if __name__ == "__main__":
    main()
