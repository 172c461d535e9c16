"""The SpiNNaker emulator against NEST on the same netlist and inputs, in one run.

Compiles the bundled MNIST CNN for the ``spinnaker`` target (with its calibration data), then runs the same test
images for T graph steps (T + 3 ticks) through

* the emulator (``neurodeploy_pynn.spinnaker.run``, one batch; timed after a warm-up run on two images, so that
  numba's compilation is not counted), and
* NEST 3.10 through the artifact's PyNN script (``run_pynn.py --simulator nest``, under ``--python``, by default
  ``.venv-pynn/bin/python``, which ``make .venv-pynn/.installed`` builds): the script times building the network
  and running the samples apart.

Prints both times, their ratios (the goal: the emulator at least 10x faster than NEST), how well the two agree
(per-population spike-count correlation, top-class agreement) and each one's accuracy on the images.

    .venv/bin/python benchmarks/spinnaker_vs_nest.py [--samples 64] [--steps 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist"
GOAL = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--python", default=str(ROOT / ".venv-pynn" / "bin" / "python"))
    args = parser.parse_args(argv)

    from neurodeploy_pynn import pynn_check, spinnaker

    from neurodeploy import compile_model, load_calibration

    with np.load(EXAMPLE / "test_images.npz") as data:
        x, y = data["x"][: args.samples], data["y"][: args.samples]
    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(
            EXAMPLE / "mnist_cnn.onnx",
            "spinnaker",
            Path(tmp) / "a",
            calibration=load_calibration(str(EXAMPLE / "calibration.npz"), 64),
        )
        netlist = spinnaker.load(artifact)
        synapses = sum(len(q.words) for q in netlist.projections)
        neurons = sum(p.size for p in netlist.populations)
        print(f"netlist: {neurons} neurons, {synapses} synapses; {len(x)} images, T = {args.steps}")
        spinnaker.run(netlist, x[:2], args.steps)  # warm-up: connection tables built, numba compiled
        start = time.perf_counter()
        emulated = spinnaker.run(netlist, x, args.steps, counts=True)
        t_emulator = time.perf_counter() - start
        emulated["counts"] = {k: v.reshape(len(x), -1) for k, v in emulated["counts"].items()}
        simulated = pynn_check.simulate(artifact.root, x, args.steps, args.python)
    t_build, t_run = simulated["seconds"]["build"], simulated["seconds"]["run"]
    agreement = pynn_check.compare(emulated, simulated)

    print(f"{'':28} {'seconds':>9} {'ms/image':>9} {'accuracy':>9}")
    acc_e = float((emulated["outputs"].argmax(1) == y).mean())
    acc_s = float((simulated["outputs"].argmax(1) == y).mean())
    print(f"{'emulator (numpy/numba)':28} {t_emulator:9.2f} {1e3 * t_emulator / len(x):9.1f} {acc_e:9.2%}")
    print(f"{'NEST: build the network':28} {t_build:9.2f}")
    print(f"{'NEST: run the images':28} {t_run:9.2f} {1e3 * t_run / len(x):9.1f} {acc_s:9.2%}")
    ratio_run, ratio_all = t_run / t_emulator, (t_build + t_run) / t_emulator
    print(f"ratio NEST run / emulator: {ratio_run:.1f}x; NEST build + run / emulator: {ratio_all:.1f}x")
    verdict = "goal met" if ratio_run >= GOAL else f"goal missed by {GOAL / ratio_run:.1f}x"
    print(f"goal: the emulator >= {GOAL:.0f}x faster than NEST running the samples: {verdict}")
    for name, a in agreement["populations"].items():
        print(
            f"  {name}: spike-count correlation {a['correlation']:.5f}, spikes {a['spikes_emulator']} (emulator) "
            f"vs {a['spikes_simulator']} (NEST)"
        )
    print(
        f"  outputs: top class agrees on {agreement['top_class_agreement']:.2%}, largest difference "
        f"{agreement['outputs_max_difference']:.3f} (largest |output| {agreement['outputs_largest']:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
