"""The BrainScaleS-2 adapter's tolerance, measured: the spike-count distances fake chips give against the noise-free
model (``neurodeploy_pynn.brainscales2_device``'s statistic), healthy ones and broken ones.

    .venv/bin/python scripts/bss2_tolerance.py [--samples 100] [--steps 16,64]

``examples/mnist_bss2`` compiled with ``examples/mnist/calibration.npz`` runs on fake BrainScaleS-2 boards (no
hardware) for the first ``--samples`` bundled test images. Per chip: the smallest, mean and largest distance over
its samples (one spiking layer), and how often its prediction equals the model's. Healthy chips are the fake's
default variation (mismatch 0.05, membrane noise 0.05) for six chip instances; the broken ones change one thing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import load_calibration
from neurodeploy.hil.device import Board
from neurodeploy.hil.harness import run_on_board

ROOT = Path(__file__).resolve().parents[1]
CHIPS = {
    **{f"healthy, instance {k}": {"mismatch_seed": k, "noise_seed": k} for k in range(1, 7)},
    "mismatch 0.3": {"mismatch": 0.3},
    "mismatch 0.2": {"mismatch": 0.2},
    "synaptic gain 0.7": {"gain": 0.7},
    "synaptic gain 1.3": {"gain": 1.3},
    "half the spikes lost": {"drop": 0.5},
    "a fifth lost": {"drop": 0.2},
    "a tenth lost": {"drop": 0.1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--steps", default="16,64")
    args = parser.parse_args()
    images = np.load(ROOT / "examples" / "mnist" / "test_images.npz")["x"][: args.samples]
    calibration = load_calibration(str(ROOT / "examples" / "mnist" / "calibration.npz"))
    with tempfile.TemporaryDirectory() as tmp:
        model = ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx"
        artifact = compile_model(model, "brainscales2", Path(tmp) / "bss2", calibration=calibration)
        for steps in (int(t) for t in args.steps.split(",")):
            print(f"T = {steps}, {len(images)} samples: distance min / mean / max, predictions equal")
            for name, faults in CHIPS.items():
                board = Board("fake-brainscales2", "brainscales2", "", fake=True, faults=faults)
                report = run_on_board(artifact, board, images, steps=steps)
                distances = [layer["distance"] for s in report.samples for layer in s.layers.values()]
                agree = np.mean([s.prediction["board"] == s.prediction["emulator"] for s in report.samples])
                print(
                    f"  {name:24s} {min(distances):.3f} / {np.mean(distances):.3f} / {max(distances):.3f}   {agree:.0%}"
                )


if __name__ == "__main__":
    main()
