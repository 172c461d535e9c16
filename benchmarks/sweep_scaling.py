"""Wall time of one ``evaluate`` on the local engine (1 and 2 worker processes) and on a 2-worker Dask
LocalCluster, side by side in one run; then of the example sweep's four points (examples/sweep/mnist.toml) point
after point locally (processes started for each point), on local processes started once as one flat set of tasks
(the local engine's sweep), and on the cluster point after point and as one flat set of tasks (nothing is asserted
about time).

    .venv/bin/python benchmarks/sweep_scaling.py                     # 256 bundled MNIST images, T up to 64
    .venv/bin/python benchmarks/sweep_scaling.py --steps 8,32 --batch-size 64 --repeats 3
    .venv/bin/python benchmarks/sweep_scaling.py --only sweep        # the sweep's part alone

Every engine runs the same call (compile, onnxruntime, the simulation in chunks of ``--batch-size``), the best of
``--repeats``; the Dask cluster is started once before its runs and its start-up is printed apart. The reports
are checked to agree (accuracies, spikes and SynOps).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

from neurodeploy.evaluate import evaluate
from neurodeploy.evaluation.cluster import Cluster, connect
from neurodeploy.evaluation.local import LocalPool
from neurodeploy.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
SPEC = ROOT / "examples" / "sweep" / "mnist.toml"
SAME = ("snn_accuracy", "spikes_per_neuron", "synops")


def _best(repeats: int, **kwargs) -> tuple[float, dict]:
    times, report = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        report = evaluate(MNIST / "mnist_cnn.onnx", str(MNIST / "test_images.npz"), **kwargs).to_dict()
        times.append(time.perf_counter() - started)
    return min(times), report


def _sweep(repeats: int, limit: int, steps: list[int], batch_size: int, engine: str, cluster: Cluster):
    """The best wall time of the example sweep (a fresh folder each time: nothing cached) and its rows. ``engine``:
    ``local`` (point after point, each evaluation starting its two processes: what the local engine did before),
    ``pool`` (two local processes started once, in the time, and the points' chunks as one flat set of tasks),
    ``dask`` (point after point, each point's chunks on the cluster) or ``dask-flat`` (one flat set of tasks)."""
    times, rows = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            sweep = load_sweep(SPEC, tmp)
            for point in sweep.points:
                point.settings.update(limit=limit, steps=steps, workers=2)
            started = time.perf_counter()
            if engine == "pool":
                with LocalPool(2) as pool:
                    document = run_sweep(sweep, cluster=pool, batch_size=batch_size)
            else:
                fn = functools.partial(evaluate, cluster=cluster) if engine == "dask" else evaluate
                flat = cluster if engine == "dask-flat" else None
                document = run_sweep(sweep, evaluate_fn=fn, cluster=flat, batch_size=batch_size)
            times.append(time.perf_counter() - started)
            rows = document["rows"]
    return min(times), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="4,16,64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--limit", type=int, default=256, help="the sweep's samples per point")
    parser.add_argument("--only", choices=("evaluate", "sweep"), help="one part alone")
    args = parser.parse_args()
    steps = [int(t) for t in args.steps.split(",")]
    started = time.perf_counter()
    with connect(None, 2) as cluster:
        start_up = time.perf_counter() - started
        if args.only != "sweep":
            _evaluations(args, steps, cluster)
        if args.only != "evaluate":
            rows = []
            for name, engine in (
                ("local, 2 processes a point, point after point", "local"),
                ("local, 2 processes, one flat set of tasks", "pool"),
                ("dask, 2 workers, point after point", "dask"),
                ("dask, 2 workers, one flat set of tasks", "dask-flat"),
            ):
                seconds, result = _sweep(args.repeats, args.limit, steps, args.batch_size, engine, cluster)
                rows.append((name, seconds, result))
            print(f"sweep: 4 points x {args.limit} samples, steps {args.steps}, batch {args.batch_size}")
            print(f"{'engine':48} {'wall s':>8} {'vs first':>9}")
            for name, seconds, result in rows:
                print(f"{name:48} {seconds:8.2f} {rows[0][1] / seconds:8.2f}x")
                assert result == rows[0][2], f"{name}: the rows differ"
    print(f"(the Dask cluster's start-up, not counted above: {start_up:.2f} s)")
    return 0


def _evaluations(args: argparse.Namespace, steps: list[int], cluster: Cluster) -> None:
    common = dict(
        steps=steps,
        calibration=str(MNIST / "calibration.npz"),
        calibration_samples=128,
        batch_size=args.batch_size,
    )
    rows = []
    for workers in (1, 2):
        seconds, report = _best(args.repeats, workers=workers, **common)
        rows.append((f"local, --workers {workers}", seconds, report))
    seconds, report = _best(args.repeats, cluster=cluster, **common)
    rows.append(("dask LocalCluster, 2 workers", seconds, report))
    base = rows[0][1]
    print(f"{rows[0][2]['samples']} samples, steps {args.steps}, batch {args.batch_size}, best of {args.repeats}")
    print(f"{'engine':32} {'wall s':>8} {'vs 1 worker':>12}")
    for name, seconds, report in rows:
        print(f"{name:32} {seconds:8.2f} {base / seconds:11.2f}x")
        assert all(report[k] == rows[0][2][k] for k in SAME), f"{name}: the report differs"


if __name__ == "__main__":
    raise SystemExit(main())
