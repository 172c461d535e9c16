"""Compile the QCFS MNIST model for the reference target and measure the SNN's accuracy against time steps.

Run from the repository root after ``train.py``::

    python examples/mnist_qcfs/measure.py [--steps 1,2,4,8,16,32] [--limit 10000]

Compiles ``mnist_qcfs.onnx`` (no calibration data: every threshold is a trained QCFS λ), emulates the
artifact on the MNIST test images once for the largest T, reading the readout at every smaller T on the way,
and writes ``snn_accuracy.json`` next to the model: the ANN accuracy (the artifact's ANN, ``--mode ann``),
accuracy per T, and the smallest T within 0.5 and 0.3 points of the ANN.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data import load_dataset

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=HERE / "mnist_qcfs.onnx")
    parser.add_argument("--steps", default="1,2,4,8,16,32", help="time steps to report (default: 1,2,4,8,16,32)")
    parser.add_argument("--limit", type=int, default=10000, help="test images to use (default: all 10000)")
    parser.add_argument("--output", type=Path, default=HERE / "snn_accuracy.json")
    args = parser.parse_args()
    steps = sorted({int(s) for s in args.steps.split(",")})

    test = load_dataset("mnist", "test")
    x, y = test.x[: args.limit], test.y[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(args.model, "reference", Path(tmp) / "artifact")
        conversion = json.loads((artifact.root / "report.json").read_text())["conversion"]
        ann = emulate_artifact(artifact, x, mode="ann")
        start = time.perf_counter()
        snn = emulate_artifact(artifact, x, steps=steps[-1], checkpoints=tuple(steps[:-1]))
        seconds = time.perf_counter() - start
    ann_acc = float((ann.outputs.argmax(1) == y).mean())
    readouts = {**snn.checkpoints, steps[-1]: snn.outputs}
    accuracy = {t: float((readouts[t].argmax(1) == y).mean()) for t in steps}

    def first_within(points: float) -> int | None:
        return next((t for t in steps if accuracy[t] >= ann_acc - points / 100), None)

    result = {
        "model": args.model.name,
        "test_images": len(x),
        "levels": conversion["convert-to-snn"].get("levels"),
        "lambda": conversion["convert-to-snn"]["lambda"],
        "ann_accuracy": ann_acc,
        "snn_accuracy": {str(t): accuracy[t] for t in steps},
        "smallest_T_within_0.5_points": first_within(0.5),
        "smallest_T_within_0.3_points": first_within(0.3),
        "emulation_seconds": round(seconds, 1),
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ANN (artifact, --mode ann): {100 * ann_acc:.2f}%  ({len(x)} test images)")
    for t in steps:
        print(f"T = {t:3d}: {100 * accuracy[t]:.2f}%  ({100 * (accuracy[t] - ann_acc):+.2f} points)")
    print(f"smallest T within 0.5 points: {result['smallest_T_within_0.5_points']}; wrote {args.output}")


if __name__ == "__main__":
    main()
