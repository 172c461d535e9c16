"""Train a QCFS VGG or ResNet-20 on CIFAR-10 (JPEG copy) and export it to ONNX.

Run from the repository root, with the project installed::

    python examples/cifar10_qcfs/train.py --arch vgg [--epochs 8] [--levels 4] [--threads 1]
    python examples/cifar10_qcfs/train.py --arch resnet20 [--epochs 12]

The networks are the CIFAR-sized ones the Loihi 2 backend is sized against:

* ``vgg``: six 3x3 conv-BN-activation layers of 64, 64, 128, 128, 256 and 256 channels, a 2x2 average pool
  after each pair (32 -> 16 -> 8 -> 4 pixels), flatten, linear (10);
* ``resnet20``: He et al.'s CIFAR ResNet-20: a 3x3 conv of 16 channels, then three stages of three basic blocks
  (16, 32, 64 channels at 32, 16, 8 pixels; conv-BN-activation-conv-BN, plus the shortcut, then the
  activation), identity shortcuts within a stage and a 1x1 stride-2 conv-BN shortcut where one starts
  (option B), global average pooling, linear (10).

Every activation is a QCFS with ``--levels`` steps (Bu et al., ICLR 2022; ``neurodeploy.training.qcfs``), λ
initialised to 8.0 and trained. Inputs are the raw pixels in [0, 1] (the first BatchNorm does the
normalisation); training augments with a random crop (4 pixels of zero padding) and a horizontal flip; SGD with
Nesterov momentum under a one-cycle schedule, λ in its own parameter group without weight decay.

Writes into ``--out-dir`` (default: this folder) ``<arch>_qcfs.onnx`` (eval mode, opset 17, dynamic batch axis,
input ``input``, output ``logits``) and ``<arch>_training_log.json`` (arguments, per-epoch loss and time, λ per
layer, torch and onnxruntime accuracy on the 10,000 test images, versions).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.data import load_dataset
from neurodeploy.training import qcfs

PAD = 4
VGG_WIDTHS = (64, 64, 128, 128, 256, 256)


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)]


class Vgg(nn.Module):
    def __init__(self, widths: tuple[int, ...] = VGG_WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, c_out in enumerate(widths):
            layers += [*conv_bn(c_in, c_out), nn.ReLU()]
            if i % 2 == 1:
                layers.append(nn.AvgPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        side = 32 >> (len(widths) // 2)
        self.classifier = nn.Linear(c_in * side * side, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c_in, c_out, 3, stride), nn.ReLU(), *conv_bn(c_out, c_out))
        projected = stride != 1 or c_in != c_out
        self.shortcut = nn.Sequential(*conv_bn(c_in, c_out, 1, stride)) if projected else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [*conv_bn(3, 16), nn.ReLU()]
        c_in = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for k in range(3):
                blocks.append(BasicBlock(c_in, c_out, stride if k == 0 else 1))
                c_in = c_out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


ARCHS = {"vgg": Vgg, "resnet20": ResNet20}


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random crop of the zero-padded image (up to PAD pixels each way) and a horizontal flip, per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (PAD,) * 4)
    dy, dx = torch.randint(0, 2 * PAD + 1, (2, n, 1), generator=generator)
    rows = (dy + torch.arange(h))[:, None, :, None]
    cols = dx + torch.arange(w)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


@torch.no_grad()
def accuracy(predict, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    correct = sum(
        int((predict(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), required=True)
    parser.add_argument("--levels", type=int, default=4, help="QCFS quantization steps L (default: 4)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default: 8)")
    parser.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate (default: 0.1)")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default: 5e-4)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    train_set, test_set = load_dataset("cifar10", "train"), load_dataset("cifar10", "test")
    x_train, y_train = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    model = qcfs.replace_activations(ARCHS[args.arch](), args.levels, lam=8.0)
    lambdas = [p for name, p in model.named_parameters() if name.endswith(".lam")]
    others = [p for name, p in model.named_parameters() if not name.endswith(".lam")]
    optimizer = torch.optim.SGD(
        [{"params": others, "weight_decay": args.weight_decay}, {"params": lambdas, "weight_decay": 0.0}],
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
    )
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )
    history = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        began = time.perf_counter()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for i in range(0, len(x_train), args.batch_size):
            index = order[i : i + args.batch_size]
            loss = F.cross_entropy(model(augment(x_train[index], generator)), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(index)
        seconds = time.perf_counter() - began
        history.append({"epoch": epoch, "train_loss": total / len(x_train), "seconds": round(seconds, 1)})
        print(f"{args.arch} epoch {epoch}/{args.epochs}: loss {total / len(x_train):.4f}, {seconds:.0f} s", flush=True)
    training_seconds = time.perf_counter() - start

    model.eval()
    torch_acc = accuracy(lambda b: model(torch.from_numpy(b)).numpy(), test_set.x, test_set.y)
    trained = {name: m.lam.item() for name, m in model.named_modules() if isinstance(m, qcfs.QCFS)}
    path = qcfs.export_onnx(
        model,
        args.out_dir / f"{args.arch}_qcfs.onnx",
        torch.zeros(1, 3, 32, 32),
        input_name="input",
        output_name="logits",
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    onnx_acc = accuracy(lambda b: session.run(["logits"], {"input": b})[0], test_set.x, test_set.y)
    print(
        f"{args.arch} QCFS L={args.levels}: torch {torch_acc:.4f}, onnxruntime {onnx_acc:.4f} on CIFAR-10 (JPEG copy)"
    )
    log = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out_dir"},
        "dataset": "CIFAR-10 (JPEG copy), 50,000 train / 10,000 test",
        "lambda_initial": 8.0,
        "lambda_trained": trained,
        "history": history,
        "training_seconds": round(training_seconds, 1),
        "torch_test_accuracy": torch_acc,
        "onnxruntime_test_accuracy": onnx_acc,
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "onnx_bytes": path.stat().st_size,
        "onnx_op_types": sorted({node.op_type for node in onnx.load(str(path)).graph.node}),
        "torch_version": torch.__version__,
    }
    (args.out_dir / f"{args.arch}_training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"wrote {path} and {args.arch}_training_log.json")


if __name__ == "__main__":
    main()
