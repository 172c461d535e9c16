"""Train a spiking CNN directly on N-MNIST events with snnTorch (surrogate gradients, backpropagation through time),
export it to NIR with snnTorch's own exporter, and log its accuracy as snnTorch runs it.

    .venv/bin/python examples/nmnist_snntorch/train.py --seed 0
    .venv/bin/python examples/nmnist_snntorch/train.py --seed 0 --neurons if

The network reads 10 ms event frames (30 over the 300 ms recording, polarity first) one per step: two strided
convolutions of leaky integrate-and-fire neurons (snnTorch ``Leaky``, reset to zero) and a dense layer of 10 such
neurons, whose spike counts are the prediction (snnTorch's rate-coded cross-entropy). No biases: a bias on a leaky
neuron is a constant drive, which every target here maps, but none is needed. Writes ``nmnist_snn.nir`` and
``training_log.json`` (seed, settings, per-epoch loss, test accuracy in snnTorch) beside this script.

``--neurons if`` trains the same network with integrate-and-fire neurons instead (``Leaky`` with β = 1: no leak,
reset to zero), which Speck runs too, and writes
``nmnist_snn_if.nir`` and ``training_log_if.json``. snnTorch's exporter would write β = 1 as a LIF with an infinite
time constant, so those nodes are written as NIR's IF (R = 1, the same threshold), what snnTorch ran. Needs snnTorch
0.9.4 (the main environment has it); the data comes from ``$NEURODEPLOY_DATA`` or ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
BIN_US = 10_000
BETA = 0.9


def network(neurons: str = "lif"):
    import snntorch as snn

    def leaky(**kwargs):
        if neurons == "if":
            return snn.Leaky(beta=1.0, reset_mechanism="zero", init_hidden=True, **kwargs)
        return snn.Leaky(beta=BETA, reset_mechanism="zero", init_hidden=True, **kwargs)

    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 8, 5, stride=2, padding=2, bias=False),  # 34 -> 17
        leaky(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),  # 17 -> 9
        leaky(),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 9 * 9, 10, bias=False),
        leaky(output=True),
    )


def run(net, frames: torch.Tensor) -> torch.Tensor:
    """Output spikes at every step, (T, B, 10), for frames (B, T, 2, 34, 34), from rest."""
    from snntorch import utils

    utils.reset(net)
    out = []
    for t in range(frames.shape[1]):
        spikes, _ = net(frames[:, t])
        out.append(spikes)
    return torch.stack(out)


def accuracy(net, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        counts = run(net, torch.from_numpy(x)).sum(0)
    return float((counts.argmax(1).numpy() == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--neurons", choices=("lif", "if"), default="lif")
    args = parser.parse_args()

    import nir
    from snntorch import functional
    from snntorch.export_nir import export_to_nir

    from neurodeploy.data import load_dataset

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = load_dataset("nmnist", "train", bin_us=BIN_US)
    test = load_dataset("nmnist", "test", bin_us=BIN_US)
    net = network(args.neurons)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = functional.ce_rate_loss()
    beta = 1.0 if args.neurons == "if" else BETA
    log: dict = {"seed": args.seed, "bin_us": BIN_US, "frames": int(train.x.shape[1]), "beta": beta, "epochs": []}
    log["neurons"] = args.neurons
    started = time.time()
    for epoch in range(args.epochs):
        order = rng.permutation(len(train.x))
        total = 0.0
        for start in range(0, len(order), args.batch):
            idx = order[start : start + args.batch]
            spikes = run(net, torch.from_numpy(train.x[idx]))
            loss = loss_fn(spikes, torch.from_numpy(train.y[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        entry = {"epoch": epoch + 1, "loss": total / len(order), "test_accuracy": accuracy(net, test.x, test.y)}
        log["epochs"].append(entry)
        print(json.dumps(entry), flush=True)
    log["test_accuracy"] = accuracy(net, test.x, test.y)
    log["train_seconds"] = round(time.time() - started, 1)

    graph = export_to_nir(net, torch.from_numpy(test.x[:1, 0]))
    # snnTorch 0.9.4 leaves Conv2d.input_shape and Flatten.input_type empty, which nir 1.0.4's writer refuses
    graph.nodes["0"].input_shape = (34, 34)
    graph.nodes["2"].input_shape = (17, 17)
    graph.nodes["4"].input_type = {"input": np.array([16, 9, 9])}
    suffix = "_if" if args.neurons == "if" else ""
    if args.neurons == "if":  # β = 1: v += input, what NIR's IF with R = 1 says
        for name, node in list(graph.nodes.items()):
            if isinstance(node, nir.LIF):
                threshold = np.asarray(node.v_threshold, np.float32)
                graph.nodes[name] = nir.IF(r=np.ones_like(threshold), v_threshold=threshold)
    nir.write(str(args.out / f"nmnist_snn{suffix}.nir"), graph)
    (args.out / f"training_log{suffix}.json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"test accuracy (snnTorch): {100 * log['test_accuracy']:.0f}% on {len(test.y)} recordings")


if __name__ == "__main__":
    main()
