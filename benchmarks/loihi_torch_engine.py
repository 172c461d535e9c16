"""Loihi target: the torch engine (``neurodeploy_loihi.torch_engine.run``) against the numpy engine
(``Program.run``: the fused numba run, or the step-by-step numpy path without numba) on the same compiled
network, inputs and steps, measured side by side in one run.

    python benchmarks/loihi_torch_engine.py [--network resnet20|mnist] [--mode binary|graded] [--limit 10000]
        [--steps 32] [--device cpu|cuda] [--batch-size N]

``--network resnet20`` (the default) is a CIFAR ResNet-20 with random weights
(``backends/loihi/tests/loihi_graphs.py``, built as ``benchmarks/loihi_throughput.py`` builds it) on random
3 x 32 x 32 inputs; ``mnist`` is the bundled MNIST CNN on its test images (repeated to ``--limit``). ``--mode
graded`` runs the same artifact's graded program (``GradedProgram.run`` against ``torch_engine.run_graded``;
the statistics compared are then the v saturations). What is timed
is each engine's whole run of ``--limit`` images for T = ``--steps`` graph steps (T + the pipeline delay Loihi
steps), the host's input stage included, after one warm-up call of a few images (numba's compile, torch's and
CUDA's start-up). The outputs, spike counts and SynOps of both engines must be identical (checked). Printed:
images/s of each engine and their ratio, and, on CUDA, whether the goal of 10,000 images at T = 32 in under 10 s
is met (on an H200). ``--limit`` small on CPU: the numpy engine takes seconds per hundred ResNet-20 images.
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
GOAL_IMAGES, GOAL_STEPS, GOAL_SECONDS = 10_000, 32, 10.0


def _program(network: str, limit: int, tmp: Path, mode: str):
    """(program, inputs of ``limit`` images, label)."""
    from neurodeploy_loihi.graded import GradedProgram
    from neurodeploy_loihi.program import Program

    load = GradedProgram.load if mode == "graded" else Program.load

    if network == "mnist":
        from neurodeploy.compiler import compile_model
        from neurodeploy.data.calibration import load_calibration

        calibration = load_calibration(str(EXAMPLE / "calibration.npz"))
        artifact = compile_model(EXAMPLE / "mnist_cnn.onnx", "loihi", tmp / "mnist", calibration=calibration)
        x = np.load(EXAMPLE / "test_images.npz")["x"].astype(np.float32)
        x = np.resize(x, (limit, *x.shape[1:]))
        return load(artifact.root), x, "bundled MNIST CNN"
    sys.path.insert(0, str(ROOT / "backends" / "loihi" / "tests"))
    import loihi_graphs

    rng = np.random.default_rng(0)
    calibration = rng.random((16, 3, 32, 32)).astype(np.float32)
    loihi_graphs.emit_graph(loihi_graphs.resnet20(), tmp, calibration)
    x = rng.random((limit, 3, 32, 32)).astype(np.float32)
    return load(tmp), x, "ResNet-20 (random weights)"


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _same(a, b) -> bool:
    stats = [(a.stats[k], b.stats[k]) for k in a.stats] if hasattr(a, "stats") else [(a.v_saturations, b.v_saturations)]
    return (
        np.array_equal(a.outputs, b.outputs)
        and all(np.array_equal(a.spikes[k], b.spikes[k]) for k in a.spikes)
        and all(np.array_equal(a.synops[k], b.synops[k]) for k in a.synops)
        and all(np.array_equal(x, y) for x, y in stats)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", choices=("resnet20", "mnist"), default="resnet20")
    parser.add_argument("--mode", choices=("binary", "graded"), default="binary", help="the artifact's mode")
    parser.add_argument("--limit", type=int, default=GOAL_IMAGES, help="images (default 10000; small on CPU)")
    parser.add_argument("--steps", type=int, default=GOAL_STEPS, help="graph steps T")
    parser.add_argument("--device", default=None, help="torch device: cpu or cuda (default: cuda when present)")
    parser.add_argument("--batch-size", type=int, default=None, help="torch engine samples per pass")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("error: this benchmark needs torch")
        return 1
    from neurodeploy_loihi import torch_engine

    device = torch_engine.resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        program, x, label = _program(args.network, args.limit, Path(tmp), args.mode)
    steps = args.steps

    def numpy_run():
        return program.run(x, steps)

    engine = torch_engine.run_graded if args.mode == "graded" else torch_engine.run

    def torch_run():
        result = engine(program, x, steps, device=device, batch_size=args.batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return result

    program.run(x[:2], 2)  # warm-up: numba's compile
    engine(program, x[:2], 2, device=device)  # torch's (and CUDA's) start-up
    reference, numpy_s = _timed(numpy_run)
    result, torch_s = _timed(torch_run)
    same = _same(result, reference)
    neurons = sum(int(np.prod(layer.shape)) for layer in program.network.layers)
    print(
        f"{label} compiled for loihi ({args.mode} mode): {len(program.network.layers)} populations, {neurons} neurons, "
        f"{len(x)} images, T = {steps} graph steps = {steps + program.delay} Loihi steps"
    )
    print(f"torch {torch.__version__} on {device} ({torch.get_num_threads()} CPU threads)")
    print(f"{'engine':<24} {'wall s':>9} {'images/s':>10}")
    print(f"{'numpy (Program.run)':<24} {numpy_s:>9.2f} {len(x) / numpy_s:>10.1f}")
    print(f"{'torch (' + str(device) + ')':<24} {torch_s:>9.2f} {len(x) / torch_s:>10.1f}")
    print(f"torch / numpy speed ratio: {numpy_s / torch_s:.2f}x")
    print(f"outputs, spike counts, SynOps and overflow statistics identical: {same}")
    if device.type == "cuda":
        scaled = torch_s * GOAL_IMAGES / len(x) * GOAL_STEPS / steps
        met = scaled < GOAL_SECONDS and len(x) >= GOAL_IMAGES and steps == GOAL_STEPS
        print(
            f"goal ({GOAL_IMAGES} images at T = {GOAL_STEPS} under {GOAL_SECONDS:.0f} s on one H200, "
            f"{torch.cuda.get_device_name(device)} here): {'met' if met else 'not met'} "
            f"({torch_s:.2f} s for {len(x)} images at T = {steps})"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
