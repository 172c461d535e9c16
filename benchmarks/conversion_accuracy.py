"""Conversion accuracy: how close the converted SNNs of the bundled models come to their ANNs, against T.

    .venv/bin/python benchmarks/conversion_accuracy.py                      # everything (tens of minutes)
    .venv/bin/python benchmarks/conversion_accuracy.py --limit 500 --only relu --json out.json

Parts (each one call of ``neurodeploy.evaluate.evaluate`` per model or option: compile for the reference
target, ANN accuracy with onnxruntime, one SNN simulation up to the largest T, reading the accuracy at every
smaller T from the emulator's checkpoints):

  (a) qcfs    examples/mnist_qcfs/mnist_qcfs.onnx, MNIST test set, direct encoding; thresholds are the trained
              QCFS λ (calibration data is not used); windowed neurons (``qcfs=window``, the reference target's
              default: T counts the steps after the fill) and rate-coded IF neurons (``qcfs=rate``);
              T = 1, 2, 4, ..., 256.
  (b) relu    examples/mnist/mnist_cnn.onnx, MNIST test set, direct encoding; thresholds from the first 1024
              MNIST training images: the largest activation per layer, the 99.9th percentile per layer, the
              99.9th percentile per channel (``convert-to-snn{norm=...,percentile=...,granularity=...}`` after
              the canonicalization passes); T = 1, 2, 4, ..., 256.
  (d) fs      few-spike coding (``coding=fs``, Stöckl & Maass 2021): the ReLU CNN of (b) with K = 4, 6 and 8
              steps per layer, and the ReLU6 MobileNet of examples/mnist_relu6 with K = 6; thresholds the 99.9th
              percentile per layer of the first 1024 MNIST training images; T = 1, 2, 4, ..., 64 counted after
              the fill (K steps per layer); spikes per neuron and window at the largest T.
  (e) signed  signed neurons with memory (``coding=signed``) on the ReLU CNN of (b), p99.9 per layer and per
              channel, and thresholds fitted to T = 4 and 8 (``norm=mse,mse-steps=T``); and
              examples/mnist_maxpool (two max pools) with ``maxpool=avg`` (the default),
              ``maxpool=exact`` (max pooling of spike counts) and both with signed neurons; T = 1, 2, ..., 256.
  (c) nmnist  examples/nmnist/nmnist_cnn.onnx, the 100 N-MNIST test samples as 1 ms event frames over 300 ms
              (events encoding: frame t at step t); the ANN sees the mean frame. Thresholds from the 1000
              training samples' mean frames: largest activation per layer, and 99.9th percentile per channel
              with IF neurons and with signed neurons (``coding=signed``), and few-spike neurons (``coding=fs``,
              run past the last frame on empty ones); T = 1, 2, 4, ..., 256 and 300 (the full window).

  (f) cifar   examples/cifar10_qcfs/resnet20_qcfs.onnx (QCFS, L = 4, trained λ as thresholds), the first
              ``--cifar-limit`` CIFAR-10 test images (default 1000), direct encoding: windowed neurons
              (``qcfs=window``), IF neurons (``qcfs=rate``), signed neurons with memory (``coding=signed``) and
              few-spike neurons with K = 3 steps per layer (``coding=fs,fs-steps=3``: the QCFS staircase's 4
              levels exactly); T = 1, 2, 4, ..., 64 (windowed and few-spike: counted after the fill).
  (g) fs-silu few-spike coding fitted to SiLU: examples/mnist_silu/mnist_silu.onnx (two SiLU layers) with K = 8,
              12 and 16 steps per layer (``coding=fs,fs-steps=K``; each layer's code fitted at its λ, the 99.9th
              percentile of the first 1024 MNIST training images, over their range); T = K, 2K and 4K (whole
              windows) counted after the fill; each layer's fit errors (in units of λ); spikes per neuron and
              window at the largest T; and the same conversion on the loihi target in graded mode (the codes in
              integers, signed graded spikes).

For each run: the ANN's accuracy (onnxruntime), the SNN's accuracy per T, and the smallest T at which the SNN
is within 0.5 (and 0.3) points of the ANN. Accuracy differences are in percentage points.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy._version import __version__
from neurodeploy.encoding import Encoding
from neurodeploy.evaluate import available_cpus, evaluate
from neurodeploy.passes import CANONICALIZE

ROOT = Path(__file__).resolve().parents[1]
QCFS_MODEL = ROOT / "examples" / "mnist_qcfs" / "mnist_qcfs.onnx"
RELU_MODEL = ROOT / "examples" / "mnist" / "mnist_cnn.onnx"
NMNIST_MODEL = ROOT / "examples" / "nmnist" / "nmnist_cnn.onnx"
RELU6_MODEL = ROOT / "examples" / "mnist_relu6" / "mnist_relu6.onnx"
MAXPOOL_MODEL = ROOT / "examples" / "mnist_maxpool" / "mnist_maxpool.onnx"
CIFAR_MODEL = ROOT / "examples" / "cifar10_qcfs" / "resnet20_qcfs.onnx"
CIFAR_RUNS = {
    "ResNet-20 QCFS, windows": "qcfs=window",
    "ResNet-20 QCFS, rate": "qcfs=rate",
    "ResNet-20 QCFS, signed": "coding=signed",
    "ResNet-20 QCFS, FS K=3": "coding=fs,fs-steps=3",
}
SIGNED_RUNS = {
    "ReLU CNN, signed, p99.9 per layer": (RELU_MODEL, "coding=signed"),
    "ReLU CNN, signed, p99.9 per channel": (RELU_MODEL, "coding=signed,granularity=channel"),
    "ReLU CNN, signed, mse-steps=4": (RELU_MODEL, "coding=signed,norm=mse,mse-steps=4"),
    "ReLU CNN, signed, mse-steps=8": (RELU_MODEL, "coding=signed,norm=mse,mse-steps=8"),
    "max-pool CNN, maxpool=avg": (MAXPOOL_MODEL, "maxpool=avg"),
    "max-pool CNN, maxpool=exact": (MAXPOOL_MODEL, "maxpool=exact"),
    "max-pool CNN, signed, maxpool=avg": (MAXPOOL_MODEL, "coding=signed,maxpool=avg"),
    "max-pool CNN, signed, maxpool=exact": (MAXPOOL_MODEL, "coding=signed,maxpool=exact"),
}
SILU_MODEL = ROOT / "examples" / "mnist_silu" / "mnist_silu.onnx"
SILU_STEPS = (8, 12, 16)
FS_RUNS = {
    "ReLU CNN, FS K=4": (RELU_MODEL, 4),
    "ReLU CNN, FS K=6": (RELU_MODEL, 6),
    "ReLU CNN, FS K=8": (RELU_MODEL, 8),
    "ReLU6 MobileNet, FS K=6": (RELU6_MODEL, 6),
}
POWERS = [2**k for k in range(9)]  # 1 .. 256
NMNIST_OPTIONS = {"bin_us": 1000, "window_us": 300_000}  # the loader's defaults: 300 frames of 1 ms
NMNIST_FRAMES = NMNIST_OPTIONS["window_us"] // NMNIST_OPTIONS["bin_us"]
CALIBRATION_SAMPLES = 1024
GOAL_POINTS, GOAL_T = 0.5, 64  # (b): the percentile-normalized SNN within 0.5 points of the ANN at T <= 64

NORMS = {
    "max, per layer": "convert-to-snn{norm=max,granularity=layer}",
    "p99.9, per layer": "convert-to-snn{norm=percentile,percentile=99.9,granularity=layer}",
    "p99.9, per channel": "convert-to-snn{norm=percentile,percentile=99.9,granularity=channel}",
}
NMNIST_RUNS = {
    "max, per layer": NORMS["max, per layer"],
    "p99.9, per channel": NORMS["p99.9, per channel"],
    "p99.9, per channel, signed": "convert-to-snn{norm=percentile,percentile=99.9,granularity=channel,coding=signed}",
    "few-spike (coding=fs)": "convert-to-snn{coding=fs}",
}
"""(c)'s conversions. Few-spike networks run T steps after their pipeline has filled, past the recording's last
frame: the frames after it are empty (``Encoding(pad=True)``)."""


def training_seed(model: Path) -> int | None:
    """The seed recorded in the model's training_log.json, if any."""
    log = model.parent / "training_log.json"
    return json.loads(log.read_text()).get("seed") if log.is_file() else None


def smallest_t(report: dict[str, Any], points: float) -> int | None:
    """The smallest measured T at which the SNN's accuracy is at least the ANN's minus ``points``."""
    ann = report["ann_accuracy"]
    return next((t for t in report["steps"] if report["snn_accuracy"][str(t)] >= ann - points / 100 - 1e-12), None)


def run(model: Path, data: str, steps: list[int], args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    """One evaluation, reduced to what the tables show (plus the evaluation's own report)."""
    started = time.perf_counter()
    evaluation = evaluate(
        model,
        data,
        steps,
        limit=args.limit,
        calibration_samples=CALIBRATION_SAMPLES,
        batch_size=args.batch_size,
        workers=args.workers,
        target_options={"readout_delay": args.readout_delay},
        **options,
    )
    wall = time.perf_counter() - started
    report = evaluation.to_dict()
    return {
        "model": str(model.relative_to(ROOT)),
        "training_seed": training_seed(model),
        "samples": report["samples"],
        "encoding": report["encoding"],
        "calibration": report["calibration"],
        "pipeline": report["pipeline"],
        "ann_accuracy": report["ann_accuracy"],
        "ann_ir_accuracy": report["ann_ir_accuracy"],
        "snn_accuracy": report["snn_accuracy"],
        "smallest_t_within_0.5": smallest_t(report, 0.5),
        "smallest_t_within_0.3": smallest_t(report, 0.3),
        "wall_seconds": round(wall, 1),
        "evaluation": report,
    }


def describe(name: str, result: dict[str, Any]) -> str:
    cal = result["calibration"]
    calibration = "none (trained thresholds)" if cal is None else f"{cal['source']} ({cal['samples']} samples)"
    return (
        f"  [{name}] {result['model']} (training seed {result['training_seed']}), {result['samples']} samples, "
        f"encoding {result['encoding']['kind']}, calibration {calibration}\n"
        f"      pipeline: {result['pipeline']}\n"
        f"      ANN {100 * result['ann_accuracy']:.2f}% (onnxruntime; the compiled ANN graph: "
        f"{100 * result['ann_ir_accuracy']:.2f}%), smallest T within 0.5 points: {result['smallest_t_within_0.5']}, "
        f"within 0.3 points: {result['smallest_t_within_0.3']}; {result['wall_seconds']:.1f} s"
        + (f"\n      note: {result['note']}" if "note" in result else "")
    )


def table(results: dict[str, dict[str, Any]]) -> str:
    """T down the side, one accuracy column (and its difference to that run's ANN) per run."""
    steps = next(iter(results.values()))["evaluation"]["steps"]
    header = ["T", *results]
    rows = [header, ["ANN", *(f"{100 * r['ann_accuracy']:.2f}%" for r in results.values())]]
    for t in steps:
        cells = [str(t)]
        for r in results.values():
            acc = r["snn_accuracy"][str(t)]
            cells.append(f"{100 * acc:6.2f}% ({100 * (acc - r['ann_accuracy']):+6.2f})")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


QCFS_CODINGS = {
    "QCFS, windows": "qcfs=window",
    "QCFS, rate": "qcfs=rate",
}


def part_qcfs(args: argparse.Namespace) -> dict[str, Any]:
    # No calibration: a QCFS λ is trained (convert-to-snn ignores data for QCFS activations anyway).
    results = {}
    for name, coding in QCFS_CODINGS.items():
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        pipeline = f"{CANONICALIZE},convert-to-snn{{{coding}}}"
        result = run(QCFS_MODEL, "mnist", args.powers, args, calibration=None, pipeline=pipeline)
        fill = result["evaluation"]["fill_steps"]
        result["note"] = "calibration data unused: every threshold is a trained QCFS λ" + (
            f"; read after a fill of {fill} steps" if fill else ""
        )
        results[name] = result
    return {"runs": results}


def part_relu(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for name, convert in NORMS.items():
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        results[name] = run(
            RELU_MODEL, "mnist", args.powers, args, calibration="mnist", pipeline=f"{CANONICALIZE},{convert}"
        )
    goals = {}
    for name, r in results.items():
        if name.startswith("p99.9"):
            t = next(
                (t for t in args.powers if r["snn_accuracy"][str(t)] >= r["ann_accuracy"] - GOAL_POINTS / 100 - 1e-12),
                None,
            )
            goals[name] = {"smallest_t_within_0.5": t, "met": t is not None and t <= GOAL_T}
    return {"runs": results, "goal": {"points": GOAL_POINTS, "max_t": GOAL_T, "by_norm": goals}}


def part_nmnist(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for name, convert in NMNIST_RUNS.items():
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        results[name] = run(
            NMNIST_MODEL,
            "nmnist",
            args.nmnist_steps,
            args,
            calibration="nmnist",
            pipeline=f"{CANONICALIZE},{convert}",
            encoding=Encoding("events", pad="coding=fs" in convert),
            data_options=dict(NMNIST_OPTIONS),
        )
    return {"runs": results, "data_options": dict(NMNIST_OPTIONS)}


def part_fs(args: argparse.Namespace) -> dict[str, Any]:
    steps = [t for t in args.powers if t <= 64] or args.powers
    results = {}
    for name, (model, k) in FS_RUNS.items():
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        pipeline = f"{CANONICALIZE},convert-to-snn{{coding=fs,fs-steps={k}}}"
        result = run(model, "mnist", steps, args, calibration="mnist", pipeline=pipeline)
        fill, last, per_window = spikes_per_window(result, k)
        result["note"] = (
            f"read after a fill of {fill} steps; {per_window:.3f} spikes per neuron and window of {k} steps "
            f"(over the {last + fill} steps run)"
        )
        results[name] = result
    return {"runs": results}


def spikes_per_window(result: dict[str, Any], k: int) -> tuple[int, int, float]:
    """A few-spike run's fill, largest T and spikes per neuron and window of ``k`` steps (the spikes over the whole
    run, fill included, divided by the windows run), the last also kept in ``result``."""
    report = result["evaluation"]
    fill, last = report["fill_steps"], report["steps"][-1]
    per_window = report["spikes_per_neuron"][str(last)] * k / (last + fill)
    result["spikes_per_neuron_and_window"] = per_window
    return fill, last, per_window


def silu_fits(k: int) -> dict[str, Any]:
    """The few-spike codes the conversion fits to the SiLU model's layers for K = ``k`` (the pass record's
    ``fs_fit``: λ, range, errors), from the calibration data evaluate uses (the first 1024 training images)."""
    from neurodeploy.data import load_dataset
    from neurodeploy.frontend import load_model
    from neurodeploy.passes import PassContext, PassManager, build_pipeline

    graph = load_model(SILU_MODEL)
    ctx = PassContext(calibration=load_dataset("mnist", "train", limit=CALIBRATION_SAMPLES).x)
    PassManager(build_pipeline(f"{CANONICALIZE},convert-to-snn{{coding=fs,fs-steps={k}}}")).run(graph, ctx)
    return dict(ctx.records["convert-to-snn"]["fs_fit"])


LOIHI_GRADED = {"target": "loihi", "mode": "graded"}
"""The loihi target's graded mode, where few-spike codes (fitted ones too) run in integers."""


def part_fs_silu(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for k in SILU_STEPS:
        name = f"SiLU CNN, FS K={k}"
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        steps = [k, 2 * k, 4 * k]
        pipeline = f"{CANONICALIZE},convert-to-snn{{coding=fs,fs-steps={k}}}"
        result = run(SILU_MODEL, "mnist", steps, args, calibration="mnist", pipeline=pipeline)
        fill, last, per_window = spikes_per_window(result, k)
        result["fits"] = silu_fits(k)
        errors = "; ".join(
            f"{layer}: λ {fit['lambda']:.2f}, r in [{fit['range'][0]:.2f}, 1], mean {fit['mean_error']:.4f}, "
            f"max {fit['max_error']:.4f}, on the data {fit['data_error']:.4f}"
            for layer, fit in result["fits"].items()
        )
        result["note"] = (
            f"read after a fill of {fill} steps; {per_window:.3f} spikes per neuron and window of {k} steps (over "
            f"the {last + fill} steps run); fit errors in units of λ: {errors}"
        )
        results[name] = result
        name = f"SiLU CNN, FS K={k}, loihi graded"
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        conversion = f"coding=fs,fs-steps={k}"
        result = run(SILU_MODEL, "mnist", steps, args, calibration="mnist", conversion=conversion, **LOIHI_GRADED)
        fill, last, per_window = spikes_per_window(result, k)
        result["note"] = (
            f"the same codes in integers on Loihi 2's graded spikes (signed 8-bit payloads, 8-bit weights); read "
            f"after a fill of {fill} steps; {per_window:.3f} spikes per neuron and window of {k} steps; the 8-bit "
            f"network's own integer forward pass (evaluate's quantized ANN): "
            f"{100 * result['evaluation']['quantized_ann_accuracy']:.2f}%"
        )
        results[name] = result
    return {"runs": results}


def silu_table(runs: dict[str, dict[str, Any]]) -> str:
    """One row per K: the ANN, the SNN at 1, 2 and 4 windows, spikes per neuron and window."""
    rows = [["run", "ANN", "1 window", "2 windows", "4 windows", "spikes/neuron/window"]]
    for name, r in runs.items():
        cells = [name, f"{100 * r['ann_accuracy']:.2f}%"]
        for t in r["evaluation"]["steps"]:
            acc = r["snn_accuracy"][str(t)]
            cells.append(f"{100 * acc:.2f}% ({100 * (acc - r['ann_accuracy']):+.2f})")
        rows.append([*cells, f"{r['spikes_per_neuron_and_window']:.3f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def part_signed(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for name, (model, options) in SIGNED_RUNS.items():
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        pipeline = f"{CANONICALIZE},convert-to-snn{{{options}}}"
        results[name] = run(model, "mnist", args.powers, args, calibration="mnist", pipeline=pipeline)
    return {"runs": results}


def part_cifar(args: argparse.Namespace) -> dict[str, Any]:
    # No calibration: every threshold is a trained QCFS λ. The same images for every run.
    steps = [t for t in args.powers if t <= 64] or args.powers
    limited = argparse.Namespace(**{**vars(args), "limit": args.cifar_limit})
    results = {}
    for name, coding in CIFAR_RUNS.items():
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        pipeline = f"{CANONICALIZE},convert-to-snn{{{coding}}}"
        result = run(CIFAR_MODEL, "cifar10", steps, limited, calibration=None, pipeline=pipeline)
        report = result["evaluation"]
        fill, last = report["fill_steps"], steps[-1]
        result["spikes_per_neuron"] = report["spikes_per_neuron"][str(last)]
        result["note"] = (
            f"trained QCFS λ as thresholds; {result['spikes_per_neuron']:.3f} spikes per neuron over the "
            f"{last + fill} steps run" + (f" (read after a fill of {fill} steps)" if fill else "")
        )
        results[name] = result
    return {"runs": results, "limit": args.cifar_limit}


PARTS = {
    "qcfs": ("(a) QCFS-trained CNN on MNIST, direct input", part_qcfs),
    "relu": ("(b) ReLU CNN on MNIST, direct input, data-based normalization", part_relu),
    "nmnist": ("(c) N-MNIST CNN, event input (1 ms frames, one per step)", part_nmnist),
    "fs": ("(d) few-spike coding on MNIST, direct input", part_fs),
    "signed": ("(e) signed neurons and max pooling of spike counts on MNIST, direct input", part_signed),
    "fs-silu": ("(g) few-spike coding fitted to SiLU on MNIST, direct input", part_fs_silu),
    "cifar": ("(f) QCFS ResNet-20 on CIFAR-10, direct input: every method", part_cifar),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="evaluate only the first N test samples (default: all)")
    parser.add_argument(
        "--steps",
        type=int,
        help="largest T to simulate (default: 256 for MNIST, 300 = the full window for N-MNIST); the powers of two "
        "up to it are reported, and for N-MNIST also this T itself when it is below the full window",
    )
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="run only this part (repeatable)")
    parser.add_argument("--json", type=Path, help="write the results (with each evaluation's report) here")
    parser.add_argument("--batch-size", type=int, default=256, help="samples simulated at once (default: 256)")
    parser.add_argument(
        "--readout-delay",
        default="auto",
        help="the reference target's readout_delay option (default auto; 0 reads every step, as the tables in "
        "benchmarks/README.md measured before the delay were)",
    )
    parser.add_argument("--workers", type=int, help="simulation processes (default: one per CPU)")
    parser.add_argument(
        "--cifar-limit", type=int, default=1000, help="CIFAR-10 test images of part (f) (default: the first 1000)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    limit_t = args.steps if args.steps is not None else NMNIST_FRAMES
    args.powers = [t for t in POWERS if t <= limit_t] or [limit_t]
    args.nmnist_steps = sorted({*args.powers, min(NMNIST_FRAMES, limit_t)})

    print(
        f"neurodeploy {__version__}, python {platform.python_version()}, numpy {np.__version__}, "
        f"{available_cpus()} CPU(s) available ({os.cpu_count()} in the machine), target reference, "
        f"limit {args.limit if args.limit is not None else 'none (whole test sets)'}"
    )
    document: dict[str, Any] = {
        "limit": args.limit,
        "cpus": available_cpus(),
        "versions": {"neurodeploy": __version__, "python": platform.python_version(), "numpy": np.__version__},
        "parts": {},
    }
    total = time.perf_counter()
    for key in [k for k in PARTS if args.only is None or k in args.only]:
        title, function = PARTS[key]
        print(f"\n{title}", flush=True)
        started = time.perf_counter()
        part = function(args)
        part["wall_seconds"] = round(time.perf_counter() - started, 1)
        document["parts"][key] = part
        for name, result in part["runs"].items():
            print(describe(name, result))
        print(silu_table(part["runs"]) if key == "fs-silu" else table(part["runs"]))
        for name, goal in part.get("goal", {}).get("by_norm", {}).items():
            verdict = "goal met" if goal["met"] else "goal missed"
            print(
                f"  goal ({name}): within {GOAL_POINTS} points of the ANN at T <= {GOAL_T}: smallest T "
                f"{goal['smallest_t_within_0.5']}: {verdict}"
            )
        print(f"  part wall time: {part['wall_seconds']:.1f} s", flush=True)
    document["wall_seconds"] = round(time.perf_counter() - total, 1)
    print(f"\ntotal wall time: {document['wall_seconds']:.1f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
