"""Speck emulator speed against sinabs on the same network: the bundled MNIST CNN compiled for Speck.

Both run the artifact's integer network time-binned on the same input events (the direct input's events, T
steps): the emulator (``Network.run_binned``, numpy) and sinabs 3.1.3 layers (Conv2d + IAFSqueeze +
SumPool2d, in float64 and in float32, built from speck.json by ``neurodeploy_speck.sinabs_model``, torch on
the CPU). The spikes of every core are checked equal first; then each is timed ``--repeats`` times (median)
and the ratio printed against the goal (emulator at least 2x faster).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=64, help="test images (default 64)")
    parser.add_argument("--steps", type=int, default=64, help="time steps (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    args = parser.parse_args()

    import torch
    from neurodeploy_speck import SpeckBackend
    from neurodeploy_speck.backend import direct_events
    from neurodeploy_speck.emulator import Network
    from neurodeploy_speck.sinabs_model import run_sinabs

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    with tempfile.TemporaryDirectory() as tmp:
        artifact = compile_model(
            MNIST / "mnist_cnn.onnx",
            "speck",
            Path(tmp) / "speck",
            calibration=load_calibration(str(MNIST / "calibration.npz")),
        )
        document = SpeckBackend.load_config(artifact)
    network = Network.from_config(document)
    frames = direct_events(np.load(MNIST / "test_images.npz")["x"][: args.samples], args.steps)
    cores = tuple(c.index for c in network.cores)
    run = network.run_binned(frames, record=cores)
    for dtype in ("float64", "float32"):
        expected = run_sinabs(document, frames, dtype)
        for core, want in zip(cores, expected):
            np.testing.assert_array_equal(run.counts[core], want, err_msg=f"core {core}, sinabs in {dtype}")

    def timed(fn) -> list[float]:
        out = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
        return out

    emulator = timed(lambda: network.run_binned(frames))
    reference = timed(lambda: run_sinabs(document, frames, "float64"))
    reference32 = timed(lambda: run_sinabs(document, frames, "float32"))
    e, s, s32 = statistics.median(emulator), statistics.median(reference), statistics.median(reference32)
    print(f"bundled MNIST CNN on Speck: {len(cores)} cores ({', '.join(map(str, sorted(cores)))})")
    threads = torch.get_num_threads()
    print(f"{args.samples} samples x {args.steps} steps, torch {torch.__version__} with {threads} thread(s)")
    print(f"spikes equal in every core (sinabs in float64 and float32): yes ({sum(int(w.sum()) for w in expected):,})")
    print(f"emulator (numpy): {e:.2f} s (min {min(emulator):.2f}, max {max(emulator):.2f})")
    print(f"sinabs float64:   {s:.2f} s (min {min(reference):.2f}, max {max(reference):.2f})")
    print(f"sinabs float32:   {s32:.2f} s (min {min(reference32):.2f}, max {max(reference32):.2f})")
    for name, ref in (("float64", s), ("float32", s32)):
        ratio = ref / e
        print(f"ratio sinabs {name} / emulator: {ratio:.2f}x ({'goal met' if ratio >= 2 else 'goal missed'}: >= 2x)")


if __name__ == "__main__":
    main()
