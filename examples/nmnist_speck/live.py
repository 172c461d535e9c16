"""Stream N-MNIST recordings through the Speck emulator and print a classification per time window, as a live
demo on the chip's event camera would.

Run from the repository root with the environment of `make test` (`.venv`)::

    .venv/bin/python examples/nmnist_speck/live.py [--samples 10] [--window-ms 50] [--mode binned|event]

The model (``nmnist_cnn.onnx`` here, trained by ``examples/nmnist/train.py --widths 16,32,64 --epochs 100``, see
this folder's README) is compiled for the ``speck`` target with thresholds from the mean frames of the first
``--calibration-samples`` training recordings (1000), with the target option ``spikes_per_event``
(``--spikes-per-event``, default 8: thresholds raised so that one input event adds at most 8 thresholds, as the
chip sends one spike per event; see this folder's README), into ``--artifact`` (default: a temporary folder). Each
test recording is binned into 1 ms frames of event counts, (2, 34, 34) polarity first, 300 frames; frame t is
time step t. The Speck artifact takes the frames as input events through its DVS layer (34 x 34 of the
sensor's 128 x 128, no pooling). After every window the script prints the class with the most output spikes in
that window and since the start.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data import load_dataset
from neurodeploy.data.calibration import load_calibration
from neurodeploy.encoding import Encoding

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", type=Path, default=HERE / "nmnist_cnn.onnx", help="the ONNX model")
    parser.add_argument("--samples", type=int, default=10, help="test recordings to stream (default 10)")
    parser.add_argument("--window-ms", type=int, default=50, help="window of each printed decision (default 50)")
    parser.add_argument("--mode", choices=("binned", "event"), default="binned", help="emulation mode")
    parser.add_argument("--artifact", type=Path, help="compile into this folder (default: a temporary one)")
    parser.add_argument("--calibration-samples", type=int, default=1000, help="training recordings (1000)")
    parser.add_argument(
        "--spikes-per-event",
        default="8",
        help="the speck target option spikes_per_event (default 8, chosen on training recordings; off: none)",
    )
    args = parser.parse_args()

    test = load_dataset("nmnist", "test", limit=args.samples)  # (N, 300, 2, 34, 34) event counts per 1 ms
    steps = test.x.shape[1]
    marks = tuple(range(args.window_ms, steps + 1, args.window_ms))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.artifact or Path(tmp) / "nmnist-speck"
        calibration = load_calibration("nmnist", args.calibration_samples)
        # windows are counted here from the first frame on: no readout delay (the default ignores the first steps)
        options = {"readout_delay": "0"}
        if args.spikes_per_event != "off":
            options["spikes_per_event"] = args.spikes_per_event
        artifact = compile_model(
            args.model, "speck", out, calibration=calibration, encoding=Encoding("events"), target_options=options
        )
        print(f"compiled {args.model.name} for speck -> {len(artifact.manifest['files'])} files")
        result = emulate_artifact(artifact, test.x, steps=steps, mode=args.mode, checkpoints=marks)

    # checkpoints hold (spikes up to t) * value / t: turn them back into spike counts per window
    totals = {t: result.checkpoints[t] * t for t in marks}
    correct_windows = 0
    for i, label in enumerate(test.y):
        line, previous = [], np.zeros_like(totals[marks[0]][i])
        for t in marks:
            window = totals[t][i] - previous
            previous = totals[t][i]
            decision = int(np.argmax(window)) if window.max() > 0 else None
            so_far = int(np.argmax(totals[t][i])) if totals[t][i].max() > 0 else None
            correct_windows += decision == label
            line.append(f"{t:3d} ms: {'-' if decision is None else decision}/{'-' if so_far is None else so_far}")
        final = result.predictions[i]
        print(f"recording {i:3d} label {label}: " + "  ".join(line) + f"  -> {final} {'ok' if final == label else 'x'}")
    accuracy = float((result.predictions == test.y).mean())
    print(
        f"{len(test.y)} recordings, {args.mode} mode: {100 * accuracy:.1f}% after {steps} ms; "
        f"{100 * correct_windows / (len(test.y) * len(marks)):.1f}% of {args.window_ms} ms windows right "
        "(window decision/decision so far; - = no output spike)"
    )


if __name__ == "__main__":
    main()
