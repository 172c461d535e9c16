"""Loihi target: the emulator's throughput against Lava's bit-accurate simulation of the same compiled network for
the same steps, measured side by side in one run, and the loihi target's compile time.

Runs in .venv-lava, the only environment with both Lava and the plugin:

    .venv-lava/bin/python benchmarks/loihi_throughput.py [--network mnist|vgg|resnet20|vgg-cifar|resnet20-cifar]
        [--steps 16] [--batch 64] [--lava-batch 8]

``--network mnist`` (the default) is the bundled MNIST CNN compiled for ``loihi`` (binary mode, reset by
subtraction): an input population of 28 x 28 x 16 neurons driven by the host-computed current, two pooled
convolutions (Lava ``Conv``, 14 x 14 x 32 and 7 x 7 x 64 SubtractiveLIF neurons) and a dense readout of 10.
``vgg`` is a CIFAR-sized VGG (six 3x3 convolutions of 64-256 channels, 229,386 neurons) and ``resnet20`` a CIFAR
ResNet-20 (188,416 neurons, Sparse / DelaySparse shortcuts), both built from IR ops with random weights
(``backends/loihi/tests/loihi_graphs.py``) and random inputs: what is timed is the arithmetic, not accuracy.
``vgg-cifar`` and ``resnet20-cifar`` are the same shapes trained with QCFS on CIFAR-10
(``examples/cifar10_qcfs``) on CIFAR-10 test images: the spike rates of a trained network, which decide how much
the event loops save.
Both simulators run the artifact read back from its
folder, for ``steps`` graph steps (``steps`` + the pipeline delay Loihi steps), and must produce the same
outputs (checked). What is timed:

* emulator: ``Program.run`` (what ``neurodeploy emulate`` runs: the host graph, then every Loihi step, no
  per-step recording), at batch 1 and at ``--batch`` samples per call; median of ``--emulator-repeats`` after an
  untimed run of the same call; four ways, each giving the same outputs: step by step on its numpy path (every
  weight every step); step by step with numba's event loops (work per spike) and fused neuron step, every
  population at every step; the same trimmed: each population computes only the steps that can change the
  outputs and spike counts, from its first input (when it is quiet before it) to the last step whose spikes
  still reach the readout; and **fused** (``Program.run``'s default with numba, what the emulator uses): the
  trimmed run as one compiled call per sample (``neurodeploy_loihi.fused``), the batch split between the CPUs
  (at batch 1, the populations split between two threads that share the sample);
* Lava: ``run_program_in_lava(..., record_all=False)`` (only the readout population is recorded, which the
  outputs need) under ``Loihi2SimCfg(select_tag="fixed_pt")``: the steps alone (``sink.run``), without building
  the processes or Lava's compile and start-up, which are reported separately; at batch 1 (one network per
  sample, Lava's own way) and at ``--lava-batch`` samples merged into one network (the runner's block-diagonal
  Dense and grouped Conv, which shares Lava's per-step overhead between samples).

The ratios are per sample and Loihi step: Lava's best (the faster of its two batch sizes) against the emulator at
batch 1 and at ``--batch``. With numba, the run also prints the floor of one vector addition per synapse: the
synaptic additions per sample on the chip (spikes times fan-out) at this machine's rate of the fused
convolution's inner loop, measured in the same run on one thread and on two, next to the emulator's batch-1 time
and what the goal asks at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist"
GOAL = 1000.0
TRAINED = {"vgg-cifar": "vgg_qcfs.onnx", "resnet20-cifar": "resnet20_qcfs.onnx"}


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _compiled(args, tmp: Path, compile_model, load_calibration):
    """(program, inputs, compile times, label, calibration samples) of the chosen network, compiled ``repeats``
    times."""
    from neurodeploy_loihi.program import Program

    times = []
    if args.network == "mnist":
        calibration = load_calibration(str(EXAMPLE / "calibration.npz"))
        x = np.load(EXAMPLE / "test_images.npz")["x"].astype(np.float32)
        for i in range(args.repeats):
            start = time.perf_counter()
            artifact = compile_model(EXAMPLE / "mnist_cnn.onnx", "loihi", tmp / f"a{i}", calibration=calibration)
            times.append(time.perf_counter() - start)
        return Program.load(artifact.root), x, times, "bundled MNIST CNN", len(calibration.x)
    if args.network in TRAINED:
        from neurodeploy.data import load_dataset

        model = ROOT / "examples" / "cifar10_qcfs" / TRAINED[args.network]
        x = load_dataset("cifar10", "test", limit=max(args.batch, args.lava_batch)).x
        for i in range(args.repeats):  # no calibration: every threshold is a trained QCFS λ
            start = time.perf_counter()
            artifact = compile_model(model, "loihi", tmp / f"a{i}")
            times.append(time.perf_counter() - start)
        return Program.load(artifact.root), x, times, f"{model.name} (trained, CIFAR-10 test images)", 0
    sys.path.insert(0, str(ROOT / "backends" / "loihi" / "tests"))
    import loihi_graphs

    graph = getattr(loihi_graphs, args.network)()
    rng = np.random.default_rng(0)
    calibration = rng.random((16, 3, 32, 32)).astype(np.float32)
    for i in range(args.repeats):
        (tmp / f"a{i}").mkdir()
        start = time.perf_counter()
        loihi_graphs.emit_graph(graph, tmp / f"a{i}", calibration)
        times.append(time.perf_counter() - start)
    x = rng.random((max(args.batch, args.lava_batch), 3, 32, 32)).astype(np.float32)
    return Program.load(tmp / "a0"), x, times, f"{args.network} (random weights)", len(calibration)


def _spike_work(program, x: np.ndarray, steps: int) -> tuple[float, float]:
    """Spikes per neuron and Loihi step over the spiking populations (what an event-driven step walks), and the
    synaptic additions per sample on the chip: every spike times its neuron's fan-out, summed over the spiking
    populations (the host's dense input, computed before the chip's steps, left out)."""
    result = program.run(x, steps)
    neurons = sum(result.neurons.values())
    spikes = sum(int(v.sum()) for v in result.spikes.values())
    (host_input,) = program.host.inputs
    adds = sum(float(v.sum()) for name, v in result.synops.items() if name != host_input) / len(x)
    return spikes / max(1, neurons * len(x) * steps), adds


ADD_RUN = 192
"""The length of the runs the add-rate probe adds: a convolution's tap row (kY x C_out: 3 x 64 on the MNIST CNN)."""


def _add_rate() -> tuple[float, float]:
    """This machine's rate of vector multiply-adds, additions per ns: int16 runs of :data:`ADD_RUN` (p * kernel
    row into a cache-resident accumulator at a moving offset), the fused convolution's inner loop in the
    narrowest sum type it uses, on one thread and on two at once (best of 5): the floor of one addition per
    synapse, against which the emulator's batch-1 time is read."""
    import threading

    import numba

    @numba.njit(nogil=True, cache=False)
    def adds(acc, kernel, reps):  # pragma: no cover - compiled
        span = acc.shape[0] - kernel.shape[0]
        for r in range(reps):
            at = (r * 37) % span
            target = acc[at : at + kernel.shape[0]]
            p = (r & 3) + 1
            for o in range(kernel.shape[0]):
                target[o] += p * kernel[o]

    reps = 200_000
    arrays = [(np.zeros(8192, np.int16), np.arange(ADD_RUN, dtype=np.int16)) for _ in range(2)]
    adds(*arrays[0], 10)
    rates = []
    for threads in (1, 2):
        best = float("inf")
        for _ in range(5):
            workers = [threading.Thread(target=adds, args=(*arrays[i], reps)) for i in range(threads)]
            start = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            best = min(best, time.perf_counter() - start)
        rates.append(threads * reps * ADD_RUN / best / 1e9)
    return rates[0], rates[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", choices=("mnist", "vgg", "resnet20", *TRAINED), default="mnist")
    parser.add_argument("--steps", type=int, default=16, help="graph steps T (the run takes T + delay Loihi steps)")
    parser.add_argument("--batch", type=int, default=64, help="emulator samples per call for the batched figure")
    parser.add_argument("--lava-batch", type=int, default=8, help="samples merged into one Lava network")
    parser.add_argument("--repeats", type=int, default=3, help="compile repeats (median)")
    parser.add_argument("--emulator-repeats", type=int, default=10, help="emulator repeats per batch size (median)")
    args = parser.parse_args(argv)
    try:
        import lava  # noqa: F401
    except ImportError:
        print("error: this benchmark needs lava-nc; run it with .venv-lava/bin/python (make test-lava creates it)")
        return 1
    from neurodeploy_loihi import _compiled as _kernels
    from neurodeploy_loihi import fused
    from neurodeploy_loihi.lava_runner import run_program_in_lava

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    warnings.filterwarnings("ignore", message="Cannot import module")  # Lava's model search, see lava_runner
    with tempfile.TemporaryDirectory() as tmp:
        program, x, compile_times, label, samples = _compiled(args, Path(tmp), compile_model, load_calibration)
    steps, total = args.steps, args.steps + program.delay
    neurons = sum(int(np.prod(layer.shape)) for layer in program.network.layers)

    compiled = _kernels.kernels()
    if compiled is None:
        print("note: numba is not installed: the emulator runs its numpy path only")
    emulators = {}
    paths = [("numpy", False), ("events", False), ("events", True), ("fused", True)]
    accepts = fused.accepts
    for path, trim in paths if compiled else [("numpy", False), ("numpy", True)]:
        _kernels.kernels = (lambda: None) if path == "numpy" else (lambda: compiled)
        fused.accepts = accepts if path == "fused" else (lambda *_: False)
        for warm in (x[:1], x[: args.batch]):  # compiles the loops and makes the plans, outside the timing
            program.run(warm, steps, trim=trim)
        emulators[f"{path}, trimmed" if trim and path != "fused" else path] = (
            _median_time(lambda trim=trim: program.run(x[:1], steps, trim=trim), args.emulator_repeats),
            _median_time(lambda trim=trim: program.run(x[: args.batch], steps, trim=trim), args.emulator_repeats),
        )
    fastest = "fused" if compiled else "numpy, trimmed"
    _kernels.kernels, fused.accepts = (lambda: compiled), accepts
    windows = program.network.windows(total, [d + steps for d in program.network.depths])
    computed = sum(int(np.prod(layer.shape)) * (b - a + 1) for layer, (a, b) in zip(program.network.layers, windows))
    emu_1, emu_b = emulators[fastest]
    density, adds = _spike_work(program, x[: args.batch], steps)
    lava_1: dict[str, float] = {}
    lava_b: dict[str, float] = {}
    run_1 = run_program_in_lava(program, x[:1], steps, record_all=False, timings=lava_1)
    run_b = run_program_in_lava(program, x[: args.lava_batch], steps, record_all=False, timings=lava_b)
    same = np.array_equal(run_1.outputs, program.run(x[:1], steps).outputs) and np.array_equal(
        run_b.outputs, program.run(x[: args.lava_batch], steps).outputs
    )

    def per(seconds: float, batch: int) -> float:  # milliseconds per sample and Loihi step
        return 1e3 * seconds / (batch * total)

    rows = [
        (f"emulator {path}", batch, seconds, "-")
        for path, times in emulators.items()
        for batch, seconds in zip((1, args.batch), times)
    ]
    rows += [
        ("lava fixed_pt", 1, lava_1["run_s"], f"{lava_1['build_s'] + lava_1['start_s']:.1f}"),
        ("lava fixed_pt", args.lava_batch, lava_b["run_s"], f"{lava_b['build_s'] + lava_b['start_s']:.1f}"),
    ]
    print(
        f"{label} compiled for loihi: {len(program.network.layers)} populations, {neurons} neurons, "
        f"T = {steps} graph steps = {total} Loihi steps (pipeline delay {program.delay})"
    )
    print(f"spikes per neuron and graph step (the event loops' work): {density:.4f}")
    print(
        f"trimmed: each population computes only the steps that can change the outputs and counts (from its first "
        f"input to the last step that reaches the readout): {computed / (neurons * total):.1%} of the neuron-steps"
    )
    print(f"{'simulator':<26} {'batch':>5} {'wall s':>8} {'ms/sample/step':>15} {'start-up s':>11}")
    for name, batch, seconds, startup in rows:
        print(f"{name:<26} {batch:>5} {seconds:>8.2f} {per(seconds, batch):>15.3f} {startup:>11}")
    for i, at in enumerate(("batch 1", f"batch {args.batch}")):
        if "events" in emulators:
            print(f"emulator event loops vs numpy path at {at}: {emulators['numpy'][i] / emulators['events'][i]:.1f}x")
            print(f"trimmed vs every step at {at}: {emulators['events'][i] / emulators['events, trimmed'][i]:.1f}x")
            speedup = emulators["events, trimmed"][i] / emulators["fused"][i]
            print(f"fused vs step by step, trimmed, at {at}: {speedup:.1f}x")
        else:
            print(f"trimmed vs every step at {at}: {emulators['numpy'][i] / emulators[fastest][i]:.1f}x")
    lava_best = min(per(lava_1["run_s"], 1), per(lava_b["run_s"], args.lava_batch))
    for at, ours in (("batch 1", per(emu_1, 1)), (f"batch {args.batch}", per(emu_b, args.batch))):
        ratio = lava_best / ours
        verdict = "goal met" if ratio >= GOAL else f"goal ({GOAL:.0f}x) missed by {GOAL / ratio:.1f}x"
        print(f"emulator ({fastest}) at {at} vs Lava's best per sample: {ratio:.1f}x faster ({verdict})")
    if compiled:  # how far batch 1 is from one vector addition per synapse, and what the goal asks at batch 1
        one, two = _add_rate()
        print(
            f"synaptic additions per sample on the chip (spikes x fan-out, the host's input left out): {adds:,.0f}; "
            f"this machine's int16 multiply-adds in runs of {ADD_RUN}: {one:.1f} per ns on one thread, {two:.1f} "
            f"on two at once"
        )
        floor_1, floor_2 = per(adds / one / 1e9, 1), per(adds / two / 1e9, 1)
        print(
            f"one addition per synapse at that rate: {floor_1:.4f} ms per sample and step on one thread, "
            f"{floor_2:.4f} on two; the emulator at batch 1: {per(emu_1, 1):.4f} ({per(emu_1, 1) / floor_2:.1f}x "
            f"the two-thread floor); the goal at batch 1 asks for {lava_best / GOAL:.4f}"
        )
    print(f"outputs identical in both simulators: {same}")
    print(
        f"compile time (loihi target, {label}, {samples} calibration samples): median "
        f"{statistics.median(compile_times):.2f} s of {args.repeats} (min {min(compile_times):.2f}, max "
        f"{max(compile_times):.2f})"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
