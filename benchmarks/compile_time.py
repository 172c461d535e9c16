"""Compile time and memory: the bundled MNIST CNN end to end, and the import of a ResNet-18-sized model.

    .venv/bin/python benchmarks/compile_time.py [--repeats 3] [--rebuild]

Cases (each run is a fresh subprocess, so one case's imports and caches never help another):

  (a) mnist compile    load_calibration(examples/mnist/calibration.npz) + compile_model(mnist_cnn.onnx, "reference")
                       into a fresh temporary folder (import, every pass, resources, artifact written)
  (b) resnet18 import  neurodeploy.frontend.onnx.import_onnx(path) of the ResNet-18-sized model
  (c) onnx.load + ort  onnx.load(path), then onnxruntime.InferenceSession(path) (CPU), for context
  (c') onnx.load       onnx.load(path) alone: the protobuf parse every ONNX tool pays

The child imports its libraries first, then reads its RSS (VmRSS in /proc/self/status; nothing is reset, no
garbage collection is forced), times the work with time.perf_counter and reads ru_maxrss (getrusage) after it.
ru_maxrss is the peak over the whole process lifetime, so the reported memory is "peak RSS - RSS before the
work"; a run where the work never raised the lifetime peak (interpreter start or library imports peaked higher)
is marked, as its figure is then an upper bound. Each case runs --repeats times (round robin); the table shows
medians. The ResNet model is generated into benchmarks/.cache/ when missing (make_resnet18_onnx.py).

Goals (from the issue): importing the ResNet-18-sized model takes <= 5 s and its peak memory increase is <= 3x
the model's file size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
RESNET = CACHE / "resnet18.onnx"
MNIST = ROOT / "examples" / "mnist" / "mnist_cnn.onnx"
CALIBRATION = ROOT / "examples" / "mnist" / "calibration.npz"

GOAL_SECONDS = 5.0
GOAL_MEMORY_MULTIPLE = 3.0
MIB = 2**20

CASES = {
    "mnist-compile": ("(a) mnist compile (reference, calibrated)", MNIST),
    "resnet-import": ("(b) resnet18 import_onnx", RESNET),
    "resnet-ort": ("(c) resnet18 onnx.load + ort session", RESNET),
    "resnet-onnx-load": ("(c') resnet18 onnx.load only", RESNET),
}


# -- child side ------------------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB (KiB)
    raise RuntimeError("no VmRSS in /proc/self/status")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _child(case: str, model: Path) -> dict:
    """Import the libraries the case needs, then measure the work alone."""
    if case == "mnist-compile":
        import tempfile

        import neurodeploy.backends.reference  # noqa: F401  (module import cost stays out of the timing)
        from neurodeploy.compiler import compile_model
        from neurodeploy.data.calibration import load_calibration

        tmp = tempfile.TemporaryDirectory(prefix="neurodeploy-bench-")

        def work() -> None:
            calibration = load_calibration(str(CALIBRATION))
            compile_model(model, "reference", Path(tmp.name) / "out", calibration=calibration)

    elif case == "resnet-import":
        from neurodeploy.frontend.onnx import import_onnx

        def work() -> None:
            graph = import_onnx(model)
            assert graph.ops

    elif case in ("resnet-ort", "resnet-onnx-load"):
        import onnx
        import onnxruntime

        def work() -> None:
            proto = onnx.load(str(model))
            if case == "resnet-ort":
                session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
                assert session.get_inputs()
            assert proto.graph.node

    else:
        raise SystemExit(f"unknown case {case!r}")

    rss_before = _rss_bytes()
    maxrss_before = _maxrss_bytes()
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    maxrss_after = _maxrss_bytes()
    return {
        "seconds": seconds,
        "rss_before": rss_before,
        "maxrss_before": maxrss_before,
        "maxrss_after": maxrss_after,
        "peak_increase": maxrss_after - rss_before,
        "work_set_peak": maxrss_after > maxrss_before,
    }


# -- parent side -----------------------------------------------------------------------------------------------
def _run_child(case: str, model: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", case, "--model", str(model)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ensure_resnet(rebuild: bool) -> None:
    if RESNET.is_file() and not rebuild:
        return
    # In a subprocess: this process must stay small. A child started by vfork/exec begins with ru_maxrss at least
    # the parent's peak RSS (Linux carries the old mm's high-water mark over exec), which would hide the child's.
    print(f"generating {RESNET.relative_to(ROOT)} ...", flush=True)
    subprocess.run([sys.executable, str(HERE / "make_resnet18_onnx.py"), "--out", str(RESNET)], check=True)


def _goal_line(what: str, value: float, goal: float, unit: str, extra: str = "") -> str:
    if value <= goal:
        return f"{what}: {value:.2f}{unit} <= {goal:g}{unit}: goal met"
    return f"{what}: {value:.2f}{unit} > {goal:g}{unit}: goal missed by {value - goal:.2f}{unit}{extra}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="compile time and peak memory of neurodeploy")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the table shows medians (default 3)")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the ResNet-18-sized model first")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.model)))
        return

    _ensure_resnet(args.rebuild)
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    for _ in range(args.repeats):  # round robin, so a slow phase of the machine hits every case alike
        for case, (_, model) in CASES.items():
            results[case].append(_run_child(case, model))

    resnet_mib = RESNET.stat().st_size / MIB
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeats} runs per case (median shown)")
    print(f"models: {MNIST.relative_to(ROOT)} ({MNIST.stat().st_size / 1024:.0f} KiB)")
    print(f"        {RESNET.relative_to(ROOT)} ({resnet_mib:.1f} MiB, x file = peak increase / this size)")
    print("memory: peak RSS (ru_maxrss, process lifetime) minus RSS right before the work (VmRSS)\n")
    header = f"{'case':<42} {'wall s':>7} {'(min-max)':>13} {'RSS before':>11} {'peak incr.':>11} {'x file':>7}"
    print(header)
    print("-" * len(header))
    medians: dict[str, tuple[float, float]] = {}
    for case, (label, model) in CASES.items():
        runs = results[case]
        seconds = [r["seconds"] for r in runs]
        increase = statistics.median(r["peak_increase"] for r in runs) / MIB
        before = statistics.median(r["rss_before"] for r in runs) / MIB
        multiple = increase / (model.stat().st_size / MIB)
        medians[case] = (statistics.median(seconds), multiple)
        mark = "" if all(r["work_set_peak"] for r in runs) else "*"
        print(
            f"{label:<42} {statistics.median(seconds):>7.3f} {f'({min(seconds):.3f}-{max(seconds):.3f})':>13} "
            f"{before:>7.1f} MiB {increase:>7.1f} MiB{mark:1}"
            f"{(f'{multiple:.2f}x' if model == RESNET else '-'):>7}"
        )
    if any(not r["work_set_peak"] for runs in results.values() for r in runs):
        print("* the lifetime peak came before the work in some run: the increase is an upper bound")

    seconds, multiple = medians["resnet-import"]
    print("\nGoals for (b), importing the ResNet-18-sized model:")
    print("  " + _goal_line("time", seconds, GOAL_SECONDS, " s"))
    over_mib = (multiple - GOAL_MEMORY_MULTIPLE) * resnet_mib
    print(
        "  "
        + _goal_line(
            "peak memory increase / file size", multiple, GOAL_MEMORY_MULTIPLE, "x", f" ({over_mib:.1f} MiB too much)"
        )
    )


if __name__ == "__main__":
    main()
