"""The readout delay (``neurodeploy.readout``): accuracy against T with the readout over every step
(``--target-option readout_delay=0``) and with the delay chosen on the calibration data (``auto``, the default),
side by side, for the bundled models on the reference target (and the loihi target with ``--target loihi``).

    .venv/bin/python benchmarks/delayed_readout.py --limit 1000
    .venv/bin/python benchmarks/delayed_readout.py --target loihi --models mnist_cnn --limit 1000

Each row is one ``neurodeploy.evaluate.evaluate`` (compile with the first 1024 MNIST training images as
calibration, then the first ``--limit`` MNIST test images, one simulation up to the largest T read at every T).
The last columns are the largest fall in accuracy when T doubles (points; #14's point 4 asks for none above 1),
over every T and from the T whose accuracy is at least 50% (the falls below are swings at chance level).
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

from neurodeploy.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "mnist_cnn": ROOT / "examples" / "mnist" / "mnist_cnn.onnx",
    "mnist_residual": ROOT / "examples" / "mnist_residual" / "mnist_residual.onnx",
    "mnist_depthwise": ROOT / "examples" / "mnist_depthwise" / "mnist_depthwise.onnx",
    "mnist_relu6": ROOT / "examples" / "mnist_relu6" / "mnist_relu6.onnx",
    "mnist_maxpool": ROOT / "examples" / "mnist_maxpool" / "mnist_maxpool.onnx",
    "mnist_bss2": ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx",
}
STEPS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def largest_fall(accuracy: list[float], above: float = 0.0) -> float:
    """The largest drop (points) from one T to the next, from a T whose accuracy is at least ``above``; 0 when
    accuracy never falls."""
    return max([0.0, *(a - b for a, b in pairwise(accuracy) if a >= above)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="reference")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of: " + ", ".join(MODELS))
    parser.add_argument("--steps", default=",".join(map(str, STEPS)))
    parser.add_argument("--limit", type=int, default=1000, help="test images (default 1000)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    rows: list[dict[str, Any]] = []
    print(f"{args.target}, first {args.limit} MNIST test images; accuracy (%) at T = {', '.join(map(str, steps))}")
    for name in args.models.split(","):
        for option in ("0", "auto"):
            report = evaluate(
                MODELS[name],
                "mnist",
                steps,
                target=args.target,
                limit=args.limit,
                target_options={"readout_delay": option},
            ).to_dict()
            accuracy = [100 * report["snn_accuracy"][str(t)] for t in steps]
            row = {
                "model": name,
                "readout_delay": option,
                "delay": report["readout_delay"],
                "ann": 100 * report["ann_accuracy"],
                "accuracy": accuracy,
                "largest_fall": largest_fall(accuracy),
                "largest_fall_above_50": largest_fall(accuracy, 50.0),
            }
            rows.append(row)
            cells = " ".join(f"{a:5.1f}" for a in accuracy)
            print(
                f"{name:16s} {option:>4s} (D={row['delay']:2d})  ANN {row['ann']:5.1f}  {cells}  "
                f"fall {row['largest_fall']:.1f} / {row['largest_fall_above_50']:.1f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
