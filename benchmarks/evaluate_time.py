"""Wall time and peak memory of ``neurodeploy evaluate`` on the MNIST test set (the issue's goal: the 10,000
test images at T=32 in under 2 minutes on a 2-core machine).

    .venv/bin/python benchmarks/evaluate_time.py                       # 10k images, T=32
    .venv/bin/python benchmarks/evaluate_time.py --steps 1,2,4,8,16,32,64,128,256 --json out.json
    .venv/bin/python benchmarks/evaluate_time.py --workers 1     # everything in one process

The command runs as a child process (``python -m neurodeploy.cli evaluate ...``); the wall time covers the
whole command (interpreter start, imports, data loading, compile, onnxruntime, simulation); the peak is the
child's ``ru_maxrss``. The evaluation's own figure (compile + simulation) is the ``evaluated ... in`` line.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="32")
    parser.add_argument("--limit", type=int, default=None, help="images (default: all 10,000)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, help="evaluate's --workers (default: one per CPU)")
    parser.add_argument("--json", help="keep the evaluation's JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.json or str(Path(tmp) / "eval.json")
        command = [
            sys.executable,
            "-m",
            "neurodeploy.cli",
            "evaluate",
            str(ROOT / "examples" / "mnist" / "mnist_cnn.onnx"),
            "--data",
            "mnist",
            "--calibration",
            "mnist",
            "--steps",
            args.steps,
            "--batch-size",
            str(args.batch_size),
            "--json",
            out,
        ]
        if args.limit is not None:
            command += ["--limit", str(args.limit)]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, check=False, env=os.environ.copy())
        wall = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if result.returncode != 0:
        print(f"evaluate failed with exit status {result.returncode}")
        return 1
    print(f"wall {wall:.1f} s, peak RSS {peak_mib:.0f} MiB, {os.cpu_count()} CPU(s)")
    if args.limit is None and args.steps == "32":
        verdict = "goal met" if wall <= GOAL_S else f"goal missed by {wall - GOAL_S:.1f} s"
        print(f"goal: 10,000 images at T=32 in {GOAL_S:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
