"""Accuracy of the Speck emulator against the float SNN, and the cores used, for the bundled MNIST CNN and the
Speck-sized N-MNIST CNN (examples/nmnist_speck).

Each model is compiled for ``reference`` and ``speck`` with the same calibration, and both artifacts are emulated
on the same inputs: MNIST's 256 bundled test images (direct input, T = 64), N-MNIST's 100 test recordings (1 ms
event frames, T = 300). Speck runs in ``binned`` mode; ``--event-samples N`` also runs the first N in ``event``
mode (about 40x slower).
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
from neurodeploy.data.calibration import load_calibration
from neurodeploy.encoding import Encoding

ROOT = Path(__file__).resolve().parents[1]


def cases():
    mnist = np.load(ROOT / "examples" / "mnist" / "test_images.npz")
    yield (
        "MNIST CNN (bundled)",
        ROOT / "examples" / "mnist" / "mnist_cnn.onnx",
        load_calibration(str(ROOT / "examples" / "mnist" / "calibration.npz")),
        Encoding(),
        mnist["x"],
        mnist["y"],
        64,
    )
    test = load_dataset("nmnist", "test")
    yield (
        "N-MNIST CNN (nmnist_speck)",
        ROOT / "examples" / "nmnist_speck" / "nmnist_cnn.onnx",
        load_calibration("nmnist"),
        Encoding("events"),
        test.x,
        test.y,
        test.x.shape[1],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--event-samples", type=int, default=0, help="also run the first N in event mode")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, calibration, encoding, x, y, steps in cases():
            row = {"model": name, "samples": len(y), "steps": steps}
            for target in ("reference", "speck"):
                artifact = compile_model(
                    model,
                    target,
                    Path(tmp) / f"{model.parent.name}-{target}",
                    calibration=calibration,
                    encoding=encoding,
                )
                start = time.perf_counter()
                result = emulate_artifact(artifact, x, steps=steps)
                row[target] = float((result.predictions == y).mean())
                row[f"{target}_s"] = time.perf_counter() - start
                if target == "speck":
                    report = json.loads((artifact.root / "report.json").read_text())
                    row["cores"] = sorted(c["core"] for c in report["target"]["cores"])
                    if args.event_samples:
                        n = args.event_samples
                        event = emulate_artifact(artifact, x[:n], steps=steps, mode="event")
                        row["event"] = (float((event.predictions == y[:n]).mean()), n)
            rows.append(row)
    for row in rows:
        line = (
            f"{row['model']}: {row['samples']} samples, T = {row['steps']}: float SNN {100 * row['reference']:.2f}% "
            f"({row['reference_s']:.0f} s), Speck binned {100 * row['speck']:.2f}% ({row['speck_s']:.0f} s), "
            f"{len(row['cores'])} cores {row['cores']}"
        )
        if "event" in row:
            line += f", Speck event {100 * row['event'][0]:.2f}% on the first {row['event'][1]}"
        print(line)


if __name__ == "__main__":
    main()
