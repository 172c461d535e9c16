"""Train the MNIST example CNN with QCFS activations (Bu et al., ICLR 2022) and export it to ONNX.

Run from the repository root, with the project installed (or ``PYTHONPATH`` pointing at it)::

    python examples/mnist_qcfs/train.py [--levels 4] [--qcfs-epochs 8] [--relu-epochs 0] [--seed 0]

The network is the one of ``examples/mnist/train.py`` (three conv-BN-activation-avgpool stages, flatten,
linear) with every ReLU replaced by a QCFS activation with ``--levels`` steps (``neurodeploy.training.qcfs``).
By default it is trained with QCFS from the start, λ initialised to 8.0 and trained, as in the reference
code. With ``--relu-epochs N`` the ReLU network is trained first, each λ is set to the 99.9th percentile of its
ReLU's outputs on 1024 training images, and the QCFS network is fine-tuned (λ always sits in its own parameter
group, without weight decay). The exported model imports as one ``QCFS`` op per activation (the
``detect-qcfs`` pass), which converts to IF neurons that reproduce one layer exactly at T = L steps;
``measure.py`` reports the converted network's accuracy against T.

The script writes into ``--out-dir`` (default: this folder):

* ``mnist_qcfs.onnx``    the trained model in eval mode, opset 17, dynamic batch axis (input ``input``,
  output ``logits``);
* ``training_log.json``  seed, L, per-epoch loss and time, λ per layer (initial and trained), torch and
  onnxruntime test accuracy on the 10000 test images, sizes and versions.
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

MAX_SHIFT = 2
LAMBDA_SAMPLES = 1024


class MnistCnn(nn.Module):
    """Three conv-BN-ReLU-avgpool stages (28 -> 14 -> 7 -> 3) and a linear classifier (as examples/mnist)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(*self._stage(1, 16), *self._stage(16, 32), *self._stage(32, 64))
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
        return self.classifier(torch.flatten(self.features(x), 1))


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
    model.eval()
    correct = sum(
        (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    correct = sum(
        int((session.run(["logits"], {"input": x[i : i + batch_size]})[0].argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    phase: str,
) -> list[dict]:
    """Epochs of random-shift-augmented training with a one-cycle schedule; returns per-epoch stats."""
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=generator)
        total_loss = 0.0
        for i in range(0, len(x), batch_size):
            index = order[i : i + batch_size]
            loss = F.cross_entropy(model(random_shift(x[index], generator)), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
        seconds = time.perf_counter() - start
        history.append(
            {"phase": phase, "epoch": epoch, "train_loss": total_loss / len(x), "seconds": round(seconds, 2)}
        )
        print(f"{phase} epoch {epoch}/{epochs}: loss {total_loss / len(x):.4f}, {seconds:.1f} s", flush=True)
    return history


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, default=4, help="QCFS quantization steps L (default: 4)")
    parser.add_argument("--qcfs-epochs", type=int, default=8, help="epochs of QCFS training (default: 8)")
    parser.add_argument(
        "--relu-epochs", type=int, default=0, help="epochs of ReLU training before QCFS fine-tuning (default: 0)"
    )
    parser.add_argument("--lam-init", type=float, default=8.0, help="initial λ without a ReLU phase (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--out-dir", type=Path, default=Path(__file__).resolve().parent, help="output folder (default: this folder)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="training batch size (default: 128)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the ReLU phase (default: 3e-3)")
    parser.add_argument("--qcfs-lr", type=float, default=3e-3, help="peak learning rate with QCFS (default: 3e-3)")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="Adam weight decay (default: 1e-4)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    seed_everything(args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)

    train_set = load_dataset("mnist", "train")
    test_set = load_dataset("mnist", "test")
    x_train, y_train = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    x_test, y_test = torch.from_numpy(test_set.x), torch.from_numpy(test_set.y)
    start = time.perf_counter()

    model = MnistCnn()
    history, relu_acc = [], None
    if args.relu_epochs:
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        history = train(model, x_train, y_train, optimizer, args.relu_epochs, args.batch_size, generator, "relu")
        relu_acc = torch_accuracy(model, x_test, y_test)
        print(f"ReLU network: test accuracy {relu_acc:.4f}", flush=True)
        qcfs.replace_activations(model, args.levels)
        initial = qcfs.init_lambdas(model, x_train[:LAMBDA_SAMPLES])
    else:  # QCFS from the start, λ initialised as in the reference code
        qcfs.replace_activations(model, args.levels, lam=args.lam_init)
        initial = {name: m.lam.item() for name, m in model.named_modules() if isinstance(m, qcfs.QCFS)}
    print("initial λ: " + ", ".join(f"{v:.3f}" for v in initial.values()), flush=True)
    lambdas = [p for name, p in model.named_parameters() if name.endswith(".lam")]
    others = [p for name, p in model.named_parameters() if not name.endswith(".lam")]
    optimizer = torch.optim.Adam(
        [
            {"params": others, "lr": args.qcfs_lr, "weight_decay": args.weight_decay},
            {"params": lambdas, "lr": args.qcfs_lr, "weight_decay": 0.0},
        ]
    )
    history += train(model, x_train, y_train, optimizer, args.qcfs_epochs, args.batch_size, generator, "qcfs")
    training_seconds = time.perf_counter() - start

    torch_acc = torch_accuracy(model, x_test, y_test)
    trained = {name: m.lam.item() for name, m in model.named_modules() if isinstance(m, qcfs.QCFS)}
    print(f"QCFS network (L={args.levels}): torch test accuracy {torch_acc:.4f}, training {training_seconds:.1f} s")
    print("trained λ: " + ", ".join(f"{v:.3f}" for v in trained.values()))

    onnx_path = qcfs.export_onnx(
        model, args.out_dir / "mnist_qcfs.onnx", torch.zeros(1, 1, 28, 28), input_name="input", output_name="logits"
    )
    op_types = sorted({node.op_type for node in onnx.load(str(onnx_path)).graph.node})
    onnx_acc = onnx_accuracy(onnx_path, test_set.x, test_set.y)
    print(f"onnxruntime test accuracy: {onnx_acc:.4f}; ONNX ops: {', '.join(op_types)}")

    log = {
        "seed": args.seed,
        "levels": args.levels,
        "relu_epochs": args.relu_epochs,
        "qcfs_epochs": args.qcfs_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "qcfs_lr": args.qcfs_lr,
        "weight_decay": args.weight_decay,
        "lambda_init": (
            f"99.9th percentile of each ReLU's outputs on the first {LAMBDA_SAMPLES} training images"
            if args.relu_epochs
            else f"{args.lam_init} (no ReLU phase)"
        ),
        "lambda_initial": initial,
        "lambda_trained": trained,
        "history": history,
        "training_seconds": round(training_seconds, 2),
        "relu_test_accuracy": relu_acc,
        "torch_test_accuracy": torch_acc,
        "onnxruntime_test_accuracy": onnx_acc,
        "test_images": len(x_test),
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "onnx_bytes": onnx_path.stat().st_size,
        "onnx_opset": qcfs.OPSET,
        "onnx_op_types": op_types,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    (args.out_dir / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"wrote {onnx_path} ({log['onnx_bytes']} bytes) and training_log.json in {args.out_dir}")


if __name__ == "__main__":
    main()
