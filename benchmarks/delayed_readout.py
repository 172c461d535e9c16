"""Accuracy with the readout counted from step 0 and after the first D steps, on any target whose outputs are
the mean over the steps run (reference, loihi, speck with ``-X readout_delay=0``).

    .venv/bin/python benchmarks/delayed_readout.py examples/mnist/mnist_cnn.onnx --delay 4 --steps 8,16,32,64
    .venv/bin/python benchmarks/delayed_readout.py examples/mnist_depthwise/mnist_depthwise.onnx --delay 6 \\
        --steps 32,64,128,256 --limit 1000

The model is compiled with the first 1024 MNIST training images as calibration (as ``neurodeploy evaluate
--data mnist`` does) and run on the first ``--limit`` test images. The delayed readout is (T out(T) - d out(d))
/ (T - d) with d = min(D, T // 2), from one run with a checkpoint at d: the output's change after step d, the
transient of the first steps (every layer filling from its initial potential at once) left out.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data.calibration import load_calibration
from neurodeploy.data.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--target", default="reference")
    parser.add_argument("--delay", type=int, required=True, help="D: steps left out at the start")
    parser.add_argument("--steps", default="16,32,64", help="comma-separated T")
    parser.add_argument("--limit", type=int, default=500, help="test images (default 500)")
    parser.add_argument("-X", dest="options", action="append", default=[], help="target option KEY=VALUE")
    args = parser.parse_args()
    options = dict(o.split("=", 1) for o in args.options)
    data = load_dataset("mnist", "test", args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(
            args.model,
            args.target,
            Path(tmp) / "a",
            calibration=load_calibration("mnist", 1024),
            target_options=options or None,
        )
        print(f"{args.model.name} on {args.target}, {len(data.y)} test images")
        print(" T  from step 0  after step d  d")
        for steps in (int(s) for s in args.steps.split(",")):
            d = min(args.delay, steps // 2)
            result = emulate_artifact(artifact, data.x, steps=steps, checkpoints=(d,) if d else ())
            total = steps * result.outputs.astype(np.float64)
            delayed = (total - d * result.checkpoints[d]) / (steps - d) if d else total / steps
            plain = 100 * float((result.predictions == data.y).mean())
            late = 100 * float((delayed.reshape(len(data.y), -1).argmax(axis=1) == data.y).mean())
            print(f"{steps:3d}  {plain:10.1f}%  {late:11.1f}%  {d}")


if __name__ == "__main__":
    main()
