"""The SpiNNaker and BrainScaleS-2 emulators against NEST on the same netlist and inputs, in one run.

Per target, compiles its bundled MNIST model (``spinnaker``: the CNN of ``examples/mnist``; ``brainscales2``:
the MLP of ``examples/mnist_bss2``; both with the calibration data of ``examples/mnist``), then runs the same
test images for T graph steps through

* the emulator (one batch; timed after a warm-up run on two images, so that numba's compilation and the
  connection tables are not counted), and
* NEST 3.10 through the artifact's own PyNN script (``run_pynn.py --simulator nest``, under ``--python``, by
  default ``.venv-pynn/bin/python``, which ``make .venv-pynn/.installed`` builds): the script times building the
  network and running the samples apart.

Prints both times, their ratios (the goal: the emulator at least 10x faster than NEST running the samples), how
well the two agree (per-population spike-count correlation, top-class agreement, output difference) and each
one's accuracy on the images.

    .venv/bin/python benchmarks/pynn_vs_nest.py [--targets spinnaker,brainscales2] [--samples 64] [--steps 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist"
MODELS = {"spinnaker": EXAMPLE / "mnist_cnn.onnx", "brainscales2": ROOT / "examples" / "mnist_bss2" / "mnist_bss2.onnx"}
GOAL = 10.0


def _emulate(target: str, artifact: Any, x: np.ndarray, steps: int) -> tuple[dict[str, Any], float, str]:
    from neurodeploy_pynn import brainscales2, spinnaker

    module: Any = spinnaker if target == "spinnaker" else brainscales2
    netlist = module.load(artifact)
    neurons = sum(p.size for p in netlist.populations)
    size = f"{neurons} neurons, {sum(len(q.pre_index) for q in netlist.projections)} synapses"
    module.run(netlist, x[:2], steps)  # warm-up
    start = time.perf_counter()
    emulated = module.run(netlist, x, steps, counts=True)
    seconds = time.perf_counter() - start
    emulated["counts"] = {k: v.reshape(len(x), -1) for k, v in emulated["counts"].items()}
    return emulated, seconds, size


def measure(target: str, x: np.ndarray, y: np.ndarray, steps: int, python: str) -> None:
    from neurodeploy_pynn import pynn_check

    from neurodeploy import compile_model, load_calibration

    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(
            MODELS[target], target, Path(tmp) / "a", calibration=load_calibration(str(EXAMPLE / "calibration.npz"), 64)
        )
        emulated, t_emulator, size = _emulate(target, artifact, x, steps)
        simulated = pynn_check.simulate(artifact.root, x, steps, python)
    t_build, t_run = simulated["seconds"]["build"], simulated["seconds"]["run"]
    agreement = pynn_check.compare(emulated, simulated)
    print(f"== {target}: {MODELS[target].relative_to(ROOT)}, {size}; {len(x)} images, T = {steps}")
    print(f"{'':28} {'seconds':>9} {'ms/image':>9} {'accuracy':>9}")
    acc_e = float((emulated["outputs"].argmax(1) == y).mean())
    acc_s = float((simulated["outputs"].argmax(1) == y).mean())
    print(f"{'emulator':28} {t_emulator:9.2f} {1e3 * t_emulator / len(x):9.1f} {acc_e:9.2%}")
    print(f"{'NEST: build the network':28} {t_build:9.2f}")
    print(f"{'NEST: run the images':28} {t_run:9.2f} {1e3 * t_run / len(x):9.1f} {acc_s:9.2%}")
    ratio_run, ratio_all = t_run / t_emulator, (t_build + t_run) / t_emulator
    print(f"ratio NEST run / emulator: {ratio_run:.1f}x; NEST build + run / emulator: {ratio_all:.1f}x")
    verdict = "goal met" if ratio_run >= GOAL else f"goal missed by {GOAL / ratio_run:.1f}x"
    print(f"goal: the emulator >= {GOAL:.0f}x faster than NEST running the samples: {verdict}")
    for name, a in agreement["populations"].items():
        print(
            f"  {name}: spike-count correlation {a['correlation']:.5f}, spikes {a['spikes_emulator']} (emulator) "
            f"vs {a['spikes_simulator']} (NEST), {a['differing']:.2%} of counts differ"
        )
    print(
        f"  outputs: top class agrees on {agreement['top_class_agreement']:.2%}, largest difference "
        f"{agreement['outputs_max_difference']:.3f} (largest |output| {agreement['outputs_largest']:.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="spinnaker,brainscales2")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--python", default=str(ROOT / ".venv-pynn" / "bin" / "python"))
    args = parser.parse_args(argv)
    with np.load(EXAMPLE / "test_images.npz") as data:
        x, y = data["x"][: args.samples], data["y"][: args.samples]
    for target in args.targets.split(","):
        if target not in MODELS:
            parser.error(f"--targets: {target!r} is not one of {', '.join(MODELS)}")
        measure(target, x, y, args.steps, args.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
