"""Compile the QCFS MNIST model for the reference target and measure the SNN's accuracy against time steps.

Run from the repository root after ``train.py``::

    python examples/mnist_qcfs/measure.py [--steps 1,2,4,8,16,32,64] [--limit 10000]

Compiles ``mnist_qcfs.onnx`` (no calibration data: every threshold is a trained QCFS λ) twice: as the
reference target converts it by default (``qcfs=window``: windowed neurons, the quantized ANN exactly at every
T that is a whole number of L-step windows, read after a fill of one window per layer) and with rate-coded IF
neurons (``qcfs=rate``: exact at T = L only). Emulates each artifact on the MNIST test images once for the
largest T, reading the readout at every smaller T on the way, and writes ``snn_accuracy.json`` next to the
model: the ANN accuracy (the artifact's ANN, ``--mode ann``), per coding the accuracy per T, the fill, and the
smallest T within 0.5 and 0.3 points of the ANN.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data import load_dataset

HERE = Path(__file__).resolve().parent
CODINGS = {"window": None, "rate": "qcfs=rate"}
"""Name: the conversion options (None: the reference target's default, windowed neurons)."""


def measure(model: Path, conversion: str | None, x: np.ndarray, y: np.ndarray, steps: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(model, "reference", Path(tmp) / "artifact", conversion=conversion)
        conversion_record = json.loads((artifact.root / "report.json").read_text())["conversion"]["convert-to-snn"]
        ann = emulate_artifact(artifact, x, mode="ann")
        start = time.perf_counter()
        snn = emulate_artifact(artifact, x, steps=steps[-1], checkpoints=tuple(steps[:-1]))
        seconds = time.perf_counter() - start
    ann_acc = float((ann.outputs.argmax(1) == y).mean())
    readouts = {**snn.checkpoints, steps[-1]: snn.outputs}
    accuracy = {t: float((readouts[t].argmax(1) == y).mean()) for t in steps}
    agreement = {t: float((readouts[t].argmax(1) == ann.outputs.argmax(1)).mean()) for t in steps}

    def first_within(points: float) -> int | None:
        return next((t for t in steps if accuracy[t] >= ann_acc - points / 100), None)

    return {
        "conversion": conversion_record,
        "ann_accuracy": ann_acc,
        "fill_steps": snn.delay,
        "snn_accuracy": {str(t): accuracy[t] for t in steps},
        "same_prediction_as_ann": {str(t): agreement[t] for t in steps},
        "smallest_T_within_0.5_points": first_within(0.5),
        "smallest_T_within_0.3_points": first_within(0.3),
        "emulation_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=HERE / "mnist_qcfs.onnx")
    parser.add_argument("--steps", default="1,2,4,8,16,32,64", help="time steps to report (default: 1,2,...,64)")
    parser.add_argument("--limit", type=int, default=10000, help="test images to use (default: all 10000)")
    parser.add_argument("--output", type=Path, default=HERE / "snn_accuracy.json")
    args = parser.parse_args()
    steps = sorted({int(s) for s in args.steps.split(",")})

    test = load_dataset("mnist", "test")
    x, y = test.x[: args.limit], test.y[: args.limit]
    runs = {name: measure(args.model, conversion, x, y, steps) for name, conversion in CODINGS.items()}
    window = runs["window"]["conversion"]
    result = {
        "model": args.model.name,
        "test_images": len(x),
        "levels": window.get("levels"),
        "lambda": window["lambda"],
        "ann_accuracy": runs["window"]["ann_accuracy"],
        "codings": runs,
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ANN (artifact, --mode ann): {100 * result['ann_accuracy']:.2f}%  ({len(x)} test images)")
    print("    T  " + "  ".join(f"{name:>16}" for name in runs))
    for t in steps:
        cells = [
            f"{100 * r['snn_accuracy'][str(t)]:6.2f}% ({100 * (r['snn_accuracy'][str(t)] - r['ann_accuracy']):+.2f})"
            for r in runs.values()
        ]
        print(f"  {t:3d}  " + "  ".join(f"{c:>16}" for c in cells))
    for name, r in runs.items():
        print(f"{name}: fill {r['fill_steps']} steps, smallest T within 0.3 points {r['smallest_T_within_0.3_points']}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
