"""Loihi target: the emulator's throughput against Lava's bit-accurate simulation of the same compiled network for
the same steps, measured side by side in one run, and the loihi target's compile time.

Runs in .venv-lava, the only environment with both Lava and the plugin:

    .venv-lava/bin/python benchmarks/loihi_throughput.py [--steps 16] [--batch 64] [--lava-batch 8]

The network is the bundled MNIST CNN compiled for ``loihi`` (binary mode, reset by subtraction): an input
population of 28 x 28 x 16 neurons driven by the host-computed current, two pooled convolutions (Lava ``Conv``,
14 x 14 x 32 and 7 x 7 x 64 SubtractiveLIF neurons) and a dense readout of 10. Both simulators run the artifact
read back from its folder, for ``steps`` graph steps (``steps + 3`` Loihi steps), and must produce the same
outputs (checked). What is timed:

* emulator: ``Program.run`` (what ``neurodeploy emulate`` runs: the host graph, then every Loihi step, no
  per-step recording), at batch 1 and at ``--batch`` samples per call; median of ``--emulator-repeats``;
* Lava: ``run_program_in_lava(..., record_all=False)`` (only the readout population is recorded, which the
  outputs need) under ``Loihi2SimCfg(select_tag="fixed_pt")``: the steps alone (``sink.run``), without building
  the processes or Lava's compile and start-up, which are reported separately; at batch 1 (one network per
  sample, Lava's own way) and at ``--lava-batch`` samples merged into one network (the runner's block-diagonal
  Dense and grouped Conv, which shares Lava's per-step overhead between samples).

The ratios are per sample and Loihi step: Lava's best (the faster of its two batch sizes) against the emulator at
batch 1 and at ``--batch``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist"
GOAL = 100.0


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="graph steps T (the run takes T + 3 Loihi steps)")
    parser.add_argument("--batch", type=int, default=64, help="emulator samples per call for the batched figure")
    parser.add_argument("--lava-batch", type=int, default=8, help="samples merged into one Lava network")
    parser.add_argument("--repeats", type=int, default=3, help="compile repeats (median)")
    parser.add_argument("--emulator-repeats", type=int, default=10, help="emulator repeats per batch size (median)")
    args = parser.parse_args(argv)
    try:
        import lava  # noqa: F401
    except ImportError:
        print("error: this benchmark needs lava-nc; run it with .venv-lava/bin/python (make test-lava creates it)")
        return 1
    from neurodeploy_loihi.lava_runner import run_program_in_lava
    from neurodeploy_loihi.program import Program

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    warnings.filterwarnings("ignore", message="Cannot import module")  # Lava's model search, see lava_runner
    calibration = load_calibration(str(EXAMPLE / "calibration.npz"))
    data = np.load(EXAMPLE / "test_images.npz")
    x = data["x"].astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        compile_times = []
        for i in range(args.repeats):
            start = time.perf_counter()
            artifact = compile_model(EXAMPLE / "mnist_cnn.onnx", "loihi", Path(tmp) / f"a{i}", calibration=calibration)
            compile_times.append(time.perf_counter() - start)
        program = Program.load(artifact.root)
    steps, total = args.steps, args.steps + program.delay
    neurons = sum(int(np.prod(layer.shape)) for layer in program.network.layers)

    emu_1 = _median_time(lambda: program.run(x[:1], steps), args.emulator_repeats)
    emu_b = _median_time(lambda: program.run(x[: args.batch], steps), args.emulator_repeats)
    lava_1: dict[str, float] = {}
    lava_b: dict[str, float] = {}
    run_1 = run_program_in_lava(program, x[:1], steps, record_all=False, timings=lava_1)
    run_b = run_program_in_lava(program, x[: args.lava_batch], steps, record_all=False, timings=lava_b)
    same = np.array_equal(run_1.outputs, program.run(x[:1], steps).outputs) and np.array_equal(
        run_b.outputs, program.run(x[: args.lava_batch], steps).outputs
    )

    def per(seconds: float, batch: int) -> float:  # milliseconds per sample and Loihi step
        return 1e3 * seconds / (batch * total)

    rows = [
        ("emulator", 1, emu_1, "-"),
        ("emulator", args.batch, emu_b, "-"),
        ("lava fixed_pt", 1, lava_1["run_s"], f"{lava_1['build_s'] + lava_1['start_s']:.1f}"),
        ("lava fixed_pt", args.lava_batch, lava_b["run_s"], f"{lava_b['build_s'] + lava_b['start_s']:.1f}"),
    ]
    print(
        f"bundled MNIST CNN compiled for loihi: {len(program.network.layers)} populations, {neurons} neurons, "
        f"T = {steps} graph steps = {total} Loihi steps (pipeline delay {program.delay})"
    )
    print(f"{'simulator':<14} {'batch':>5} {'wall s':>8} {'ms/sample/step':>15} {'start-up s':>11}")
    for name, batch, seconds, startup in rows:
        print(f"{name:<14} {batch:>5} {seconds:>8.2f} {per(seconds, batch):>15.3f} {startup:>11}")
    lava_best = min(per(lava_1["run_s"], 1), per(lava_b["run_s"], args.lava_batch))
    for label, ours in (("batch 1", per(emu_1, 1)), (f"batch {args.batch}", per(emu_b, args.batch))):
        ratio = lava_best / ours
        verdict = "goal met" if ratio >= GOAL else f"goal ({GOAL:.0f}x) missed by {GOAL / ratio:.1f}x"
        print(f"emulator at {label} vs Lava's best per sample: {ratio:.1f}x faster ({verdict})")
    print(f"outputs identical in both simulators: {same}")
    print(
        f"compile time (loihi target, bundled model, {len(calibration.x)} calibration samples): median "
        f"{statistics.median(compile_times):.2f} s of {args.repeats} (min {min(compile_times):.2f}, max "
        f"{max(compile_times):.2f})"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
