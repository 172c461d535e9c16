"""Compare the brainscales2 model with the float SNN on MNIST, for several refractory times.

Run from the repository root with the project's environment (``.venv``) and the shared data::

    python examples/mnist_bss2/measure.py [--limit 500] [--steps 16,64] [--tau-refrac 0.1,0.3,0.5,0.9]

For each refractory time (µs; the planner's ``TAU_REFRAC``, set before compiling) the model is compiled for
``brainscales2`` and, once, for ``reference`` with ``reset=zero`` (the float SNN the target converts to), both
calibrated on the first 1024 training images; the first ``--limit`` test images run for each T. Printed per T:
accuracy of both, the share of equal argmax, the hidden layer's spikes relative to the float SNN's, and the mean
|output difference| relative to the float SNN's mean |output|.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from neurodeploy_pynn import brainscales2 as bss2

from neurodeploy import compile_model, emulate_artifact, load_calibration
from neurodeploy.data import load_dataset

MODEL = Path(__file__).resolve().parent / "mnist_bss2.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--steps", default="16,64")
    parser.add_argument("--tau-refrac", default="0.1,0.3,0.5,0.9")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    data = load_dataset("mnist", "test", limit=args.limit)
    calibration = load_calibration("mnist", 1024)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        floats = compile_model(MODEL, "reference", folder / "ref", calibration=calibration, conversion="reset=zero")
        want = {t: emulate_artifact(floats, data.x, steps=t) for t in steps}
        hidden = list(want[steps[0]].spikes)[1]
        print("tau_refrac  T  chip acc  float acc  same argmax  hidden spikes / float  |output diff| / |output|")
        for k, refrac in enumerate(float(r) for r in args.tau_refrac.split(",")):
            bss2.TAU_REFRAC = refrac
            chip = compile_model(MODEL, "brainscales2", folder / f"chip{k}", calibration=calibration)
            for t in steps:
                got, ref = emulate_artifact(chip, data.x, steps=t), want[t]
                print(
                    f"{refrac:10}  {t:>3}  {np.mean(got.predictions == data.y):8.1%}  "
                    f"{np.mean(ref.predictions == data.y):9.1%}  {np.mean(got.predictions == ref.predictions):11.1%}  "
                    f"{got.spikes[hidden].sum() / ref.spikes[hidden].sum():21.3f}  "
                    f"{np.abs(got.outputs - ref.outputs).mean() / np.abs(ref.outputs).mean():24.3f}"
                )


if __name__ == "__main__":
    main()
