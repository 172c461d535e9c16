"""Measure a QCFS CIFAR-10 model on every Loihi 2 mode and profile against the float SNN, at the same T.

Run from the repository root after ``train.py`` (``.venv`` has everything it needs)::

    python examples/cifar10_qcfs/measure.py --arch vgg [--steps 1,2,4,8,16,32] [--limit 1000] [--workers 2]

Each configuration is one ``neurodeploy evaluate`` (the :func:`neurodeploy.evaluate.evaluate` function) of
``<arch>_qcfs.onnx`` on the first ``--limit`` CIFAR-10 (JPEG copy) test images, which hold every class equally:

* ``reference``: the float SNN as the reference target converts it by default: windowed QCFS neurons
  (``qcfs=window``, :class:`neurodeploy.ir.neurons.WindowIF`), the quantized ANN exactly at every T that is a whole
  number of L-step windows, after a fill of one window per layer;
* ``reference rate``: the float SNN with rate-coded IF neurons (``-C qcfs=rate``: reset by subtraction,
  thresholds the trained λ, exact at T = L only), the accuracy the Loihi modes, which run the same neurons, are
  held to;
* ``loihi binary exact`` / ``loihi graded exact``: the default profile (SubtractiveLIF binary spikes; GradedReLU
  graded spikes, each QCFS population sending its level 0..L: the QCFS ANN with 8-bit weights);
* ``loihi graded exact relu``: ``-X graded_staircase=false``, each population's activation rounded to
  8 bits instead of its QCFS level (what graded mode computed before it kept the staircase);
* ``loihi binary board`` / ``loihi graded board``: ``-X profile=board``, stock processes a Loihi 2 board runs
  (LIF with reset to zero; SDNN), with their cost next to the accuracy. A configuration the compiler refuses is
  recorded with its error (e.g. the board's SDNN takes chains only).

Writes ``<arch>_snn_accuracy.json`` next to the model: per configuration the accuracy at every T, the ANN
accuracy (onnxruntime), the quantized ANN's accuracy where the mode has one, SynOps per sample, spikes per
neuron, the cores and chips of the resource report, and the seconds it took; and prints a table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError
from neurodeploy.evaluate import evaluate

HERE = Path(__file__).resolve().parent
CONFIGS: dict[str, tuple[str, str | None, dict[str, str], str | None]] = {
    "reference": ("reference", None, {}, None),
    "reference rate": ("reference", None, {}, "qcfs=rate"),
    "loihi binary exact": ("loihi", "binary", {}, None),
    "loihi graded exact": ("loihi", "graded", {}, None),
    "loihi graded exact relu": ("loihi", "graded", {"graded_staircase": "false"}, None),
    "loihi binary board": ("loihi", "binary", {"profile": "board"}, None),
    "loihi graded board": ("loihi", "graded", {"profile": "board"}, None),
}
"""name: (target, mode, target options, conversion options)."""
FLOAT_SNN = "reference rate"
"""The float SNN the Loihi modes are compared with: the same rate-coded IF neurons."""


def resources(model: Path, options: dict[str, str]) -> dict:
    """Cores, chips, neurons and synapses of the loihi target's resource report for ``options``, and whether the
    artifact is board-ready."""
    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(model, "loihi", Path(tmp) / "a", target_options=options)
        report = json.loads((artifact.root / "report.json").read_text())
    used = report["resources"]
    target = report["target"]
    return {
        "cores": used["cores_used"],
        "chips": target["chips"]["used"],
        "neurons": used["neurons"],
        "synapses": used["synapses"],
        "board_ready": target["board"]["board_ready"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("vgg", "resnet20"), required=True)
    parser.add_argument("--steps", default="1,2,4,8,16,32", help="time steps to report (default: 1,2,4,8,16,32)")
    parser.add_argument("--limit", type=int, default=1000, help="test images (default: the first 1000)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    parser.add_argument("--only", default=",".join(CONFIGS), help="configurations to run, comma-separated")
    parser.add_argument("--model", type=Path, help="the model (default: <arch>_qcfs.onnx in this folder)")
    parser.add_argument("--output", type=Path, help="the record (default: <arch>_snn_accuracy.json beside the model)")
    args = parser.parse_args()
    model = args.model or HERE / f"{args.arch}_qcfs.onnx"
    steps = sorted({int(s) for s in args.steps.split(",")})
    output = args.output or model.parent / f"{args.arch}_snn_accuracy.json"
    results = json.loads(output.read_text()) if output.is_file() else {}
    results.update({"model": model.name, "data": "CIFAR-10 (JPEG copy), test split", "test_images": args.limit})
    runs = results.setdefault("runs", {})
    for name in args.only.split(","):
        target, mode, options, conversion = CONFIGS[name]
        start = time.perf_counter()
        try:
            report = evaluate(
                model,
                "cifar10",
                steps,
                target=target,
                limit=args.limit,
                mode=mode,
                target_options=options,
                conversion=conversion,
                workers=args.workers,
            ).report
        except NeurodeployError as exc:
            runs[name] = {"refused": str(exc)}
            print(f"{name}: refused: {exc}", flush=True)
            continue
        entry = {
            "target_options": options,
            "conversion": conversion,
            "ann_accuracy": report["ann_accuracy"],
            "quantized_ann_accuracy": report["quantized_ann_accuracy"],
            "snn_accuracy": report["snn_accuracy"],
            "synops": report["synops"],
            "spikes_per_neuron": report["spikes_per_neuron"],
            "seconds": round(time.perf_counter() - start, 1),
        }
        if target == "loihi":
            entry["resources"] = resources(model, options)
        runs[name] = entry
        accuracy = " ".join(f"T={t}: {100 * a:.2f}" for t, a in report["snn_accuracy"].items())
        print(f"{name}: ANN {100 * report['ann_accuracy']:.2f}; {accuracy} ({entry['seconds']} s)", flush=True)
        output.write_text(json.dumps(results, indent=2) + "\n")  # after every configuration: a partial run keeps
    if FLOAT_SNN in runs and "snn_accuracy" in runs[FLOAT_SNN]:
        float_snn = runs[FLOAT_SNN]["snn_accuracy"]
        for name, entry in runs.items():
            if name.startswith("loihi") and "snn_accuracy" in entry:
                entry["points_below_float_snn"] = {
                    t: round(100 * (float_snn[t] - a), 2) for t, a in entry["snn_accuracy"].items() if t in float_snn
                }
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
