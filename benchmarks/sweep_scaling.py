"""Wall time of one ``evaluate`` on the local engine (1 and 2 worker processes) and on a 2-worker Dask
LocalCluster, side by side in one run (nothing is asserted about time).

    .venv/bin/python benchmarks/sweep_scaling.py                     # 256 bundled MNIST images, T up to 64
    .venv/bin/python benchmarks/sweep_scaling.py --steps 8,32 --batch-size 64 --repeats 3

Every engine runs the same call (compile, onnxruntime, the simulation in chunks of ``--batch-size``), the best of
``--repeats``; the Dask cluster is started once before its runs and its start-up is printed apart. The reports
are checked to agree (accuracies, spikes and SynOps).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from neurodeploy.evaluate import evaluate
from neurodeploy.evaluation.cluster import connect

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
SAME = ("snn_accuracy", "spikes_per_neuron", "synops")


def _best(repeats: int, **kwargs) -> tuple[float, dict]:
    times, report = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        report = evaluate(MNIST / "mnist_cnn.onnx", str(MNIST / "test_images.npz"), **kwargs).to_dict()
        times.append(time.perf_counter() - started)
    return min(times), report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="4,16,64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    common = dict(
        steps=[int(t) for t in args.steps.split(",")],
        calibration=str(MNIST / "calibration.npz"),
        calibration_samples=128,
        batch_size=args.batch_size,
    )
    rows = []
    for workers in (1, 2):
        seconds, report = _best(args.repeats, workers=workers, **common)
        rows.append((f"local, --workers {workers}", seconds, report))
    started = time.perf_counter()
    with connect(None, 2) as cluster:
        start_up = time.perf_counter() - started
        seconds, report = _best(args.repeats, cluster=cluster, **common)
    rows.append(("dask LocalCluster, 2 workers", seconds, report))
    base = rows[0][1]
    print(f"{rows[0][2]['samples']} samples, steps {args.steps}, batch {args.batch_size}, best of {args.repeats}")
    print(f"{'engine':32} {'wall s':>8} {'vs 1 worker':>12}")
    for name, seconds, report in rows:
        print(f"{name:32} {seconds:8.2f} {base / seconds:11.2f}x")
        assert all(report[k] == rows[0][2][k] for k in SAME), f"{name}: the report differs"
    print(f"(the Dask cluster's start-up, not counted above: {start_up:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
