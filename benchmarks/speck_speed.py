"""Speck emulator speed against sinabs on the same network: the bundled MNIST CNN compiled for Speck.

Both run the artifact's integer network time-binned on the same input events (the direct input's events, T
steps): the emulator (``Network.run_binned``: its compiled step where numba is installed, and its numpy step)
and sinabs 3.1.3 layers (Conv2d + IAFSqueeze + SumPool2d, in float64 and in float32, built from speck.json by
``neurodeploy_speck.sinabs_model``, torch on the CPU with its default threads; the compiled step also runs the
samples on every core). The spikes of every core are checked equal first; then each is timed ``--repeats``
times (median) and the ratio printed against the goal (emulator at least 2x faster). Then the event mode:
compiled against numpy loop on ``--event-samples`` samples.
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
    parser.add_argument("--event-samples", type=int, default=16, help="samples for the event mode (default 16)")
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

    from neurodeploy_speck import _compiled

    compiled = _compiled.kernels() is not None
    network.engine = "numpy"
    numpy_step = timed(lambda: network.run_binned(frames))
    network.engine = "auto"
    emulator = timed(lambda: network.run_binned(frames)) if compiled else numpy_step
    reference = timed(lambda: run_sinabs(document, frames, "float64"))
    reference32 = timed(lambda: run_sinabs(document, frames, "float32"))
    e, s, s32 = statistics.median(emulator), statistics.median(reference), statistics.median(reference32)
    print(f"bundled MNIST CNN on Speck: {len(cores)} cores ({', '.join(map(str, sorted(cores)))})")
    threads = torch.get_num_threads()
    print(f"{args.samples} samples x {args.steps} steps, torch {torch.__version__} with {threads} thread(s)")
    print(f"spikes equal in every core (sinabs in float64 and float32): yes ({sum(int(w.sum()) for w in expected):,})")
    name = "compiled" if compiled else "numpy (numba not installed)"
    print(f"emulator, {name}: {e:.2f} s (min {min(emulator):.2f}, max {max(emulator):.2f})")
    if compiled:
        n = numpy_step
        print(f"emulator, numpy step: {statistics.median(n):.2f} s (min {min(n):.2f}, max {max(n):.2f})")
    print(f"sinabs float64:   {s:.2f} s (min {min(reference):.2f}, max {max(reference):.2f})")
    print(f"sinabs float32:   {s32:.2f} s (min {min(reference32):.2f}, max {max(reference32):.2f})")
    for label, ref in (("float64", s), ("float32", s32)):
        ratio = ref / e
        print(f"ratio sinabs {label} / emulator: {ratio:.2f}x ({'goal met' if ratio >= 2 else 'goal missed'}: >= 2x)")
    event_mode(network, frames[: args.event_samples], args.repeats, timed)


def event_mode(network, frames: np.ndarray, repeats: int, timed) -> None:
    """Event mode (one event at a time, chip semantics): the compiled loop (numba) against the numpy one, spikes
    checked equal first; the binned mode on the same input for scale."""
    from neurodeploy_speck import _compiled

    if _compiled.kernels() is None:
        print("event mode: numba is not installed (pip install 'neurodeploy-speck[fast]'); numpy loop only")
    cores = tuple(c.index for c in network.cores)
    network.engine = "numpy"
    slow = network.run_events(frames, record=cores)
    network.engine = "auto"
    fast = network.run_events(frames, record=cores)  # also compiles (or loads the cached) loop
    for core in cores:
        np.testing.assert_array_equal(fast.counts[core], slow.counts[core], err_msg=f"core {core}")
    total = sum(int(slow.counts[c].sum()) for c in cores)
    compiled = timed(lambda: network.run_events(frames))
    network.engine = "numpy"
    numpy_loop = timed(lambda: network.run_events(frames))
    network.engine = "auto"
    binned = timed(lambda: network.run_binned(frames))
    c, n, b = (statistics.median(x) for x in (compiled, numpy_loop, binned))
    print(f"event mode, {len(frames)} samples: spikes equal in both loops: yes ({total:,})")
    print(f"event mode, compiled: {c:.2f} s (min {min(compiled):.2f}); numpy: {n:.2f} s (min {min(numpy_loop):.2f})")
    print(f"ratio numpy / compiled: {n / c:.1f}x; event (compiled) / binned: {c / b:.1f}x (binned {b:.2f} s)")


if __name__ == "__main__":
    main()
