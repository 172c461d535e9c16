"""The best a rate-coded SNN with these thresholds can do at T: the ANN with every activation rounded to T levels.

    .venv/bin/python benchmarks/quantized_ann.py [--granularity layer|channel] [--steps 1,2,3,4,8,16] [--limit N]
        [--conversion norm=mse,mse-steps=4]

A converted IF neuron that runs T steps sends a count 0..T; at best (every spike where the charge says, v(0) =
θ/2) that count is its activation rounded to T levels of [0, λ]: λ·clip(floor(x·T/λ + 1/2), 0, T)/T. This script
compiles the bundled MNIST CNN's conversion for the reference target (thresholds from the first 1024 training
images, the 99.9th percentile per layer or per channel), takes each activation's λ from the conversion record,
and runs the canonical ANN (the IR interpreter) with every ReLU replaced by that rounding, on the MNIST test
images: no spikes, no timing, only the quantization. Where the SNN's accuracy at T is far below this, the
spiking dynamics lose it (over-firing, uneven arrival: what signed neurons correct); where this is low too, the
thresholds hold too few levels for T, and no neuron model with T binary spikes per layer recovers it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from neurodeploy.data import load_dataset
from neurodeploy.data.calibration import load_calibration
from neurodeploy.frontend import load_model
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Relu
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "mnist" / "mnist_cnn.onnx"
CALIBRATION = ROOT / "examples" / "mnist" / "calibration.npz"


def run_rounded(graph: Graph, x: np.ndarray, lambdas: dict[str, object], steps: int) -> np.ndarray:
    """The output of ``graph`` on ``x`` with each ReLU's output rounded to ``steps`` levels of [0, λ] (its λ from
    ``lambdas``), op by op in graph order."""
    (name,) = graph.inputs
    values = {name: x}
    for op in graph.ops:
        out = op.forward([values[v] for v in op.inputs])
        if isinstance(op, Relu):
            lam = np.asarray(lambdas[op.name], np.float32)
            lam = lam.reshape((1, -1) + (1,) * (out.ndim - 2)) if lam.ndim else lam
            out = (lam * np.clip(np.floor(out / lam * steps + 0.5), 0, steps) / steps).astype(np.float32)
        values[op.output] = out
    return values[graph.outputs[0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--granularity", choices=("layer", "channel"), default="layer")
    parser.add_argument("--steps", default="1,2,3,4,8,16,32", help="T values (default: 1,2,3,4,8,16,32)")
    parser.add_argument("--limit", type=int, default=10000, help="test images (default: all 10000)")
    parser.add_argument("--conversion", default="", help="more convert-to-snn options, e.g. norm=mse,mse-steps=4")
    args = parser.parse_args()
    graph = load_model(MODEL)
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    snn = graph.copy()
    calibration = load_calibration(str(CALIBRATION))
    ctx = PassContext(calibration=calibration.x)
    options = ",".join(filter(None, [f"granularity={args.granularity}", args.conversion]))
    PassManager(build_pipeline(f"convert-to-snn{{{options}}}")).run(snn, ctx)
    lambdas = ctx.records["convert-to-snn"]["lambda"]
    test = load_dataset("mnist", "test")
    x, y = test.x[: args.limit], test.y[: args.limit]
    exact = interpret.run(graph, x)[graph.outputs[0]]
    ann = 100 * (exact.argmax(1) == y).mean()
    print(f"{MODEL.name}, convert-to-snn{{{options}}}, {len(x)} test images; ANN {ann:.2f}%")
    for t in sorted({int(s) for s in args.steps.split(",")}):
        out = run_rounded(graph, x, lambdas, t)
        print(f"  T = {t:3d}: {100 * (out.argmax(1) == y).mean():6.2f}%")


if __name__ == "__main__":
    main()
