"""The simulation of an evaluation: chunks of samples run on the target's emulator (in this process or in
spawned worker processes) and the artifact's ANN, each reduced to :class:`~.statistics.Sums` and merged in chunk
order."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from neurodeploy.artifact import load_artifact
from neurodeploy.backends.registry import get_backend
from neurodeploy.compiler import require_finite_outputs
from neurodeploy.emulation import Emulation
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError
from neurodeploy.evaluation.statistics import Pearson, Sums, spiking_layers
from neurodeploy.ir import interpret


@dataclass(frozen=True)
class Job:
    """Everything a chunk's simulation needs, picklable for worker processes: the compiled artifact, the inputs,
    labels, steps and encoding. ``offset`` is the index of the first input in the whole data (a task of a worker
    process or a cluster carries its chunk alone; rate spikes are keyed by that index).
    ``engine`` and ``device``: what the emulator computes with."""

    artifact: Path
    inputs: np.ndarray
    labels: np.ndarray
    steps: tuple[int, ...]
    encoding: Encoding
    mode: str | None = None
    offset: int = 0
    engine: str = "numpy"
    """The emulator engine (``Run.engine``: numpy, or torch where the target has it)."""
    device: str | None = None
    """The torch engine's device (None: cuda when there is one, else cpu)."""


class Runner:
    """Runs chunks of a job: the SNN on the target's emulator up to the largest T, the artifact's ANN for the
    activations, and reduces both to :class:`Sums`."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.artifact = load_artifact(job.artifact, verify=False)
        self.emulation = Emulation(get_backend(self.artifact.target), self.artifact, job.mode)
        snn = self.artifact.read_graph("snn")  # through the artifact's checks, in workers too
        self.ann = self.artifact.read_graph("ann") if self.artifact.has_ann else None
        self.layers = spiking_layers(snn, self.ann)
        self.inputs = set(snn.inputs)
        self.x = job.inputs

    def use(self, job: Job) -> Runner:
        """This runner (its artifact and emulator, loaded once) on ``job``'s data; the artifact and mode stay."""
        self.job = job
        self.x = job.inputs
        return self

    def run(self, bounds: tuple[int, int]) -> Sums:
        start, stop = bounds
        job, steps = self.job, self.job.steps
        x = np.ascontiguousarray(self.x[start:stop])
        labels = job.labels[start:stop]
        n, t_max = len(x), steps[-1]
        result = self.emulation.run(
            x,
            steps=t_max,
            checkpoints=steps,
            encoding=replace(
                job.encoding, offset=job.offset + start
            ),  # rate spikes keyed by the sample's index in the data
            neuron_counts=True,
            engine=job.engine,
            device=job.device,
        )
        require_finite_outputs(result, self.artifact.target)
        keep = [layer.ann_value for layer in self.layers if layer.ann_value is not None]
        ann = interpret.run(self.ann, job.encoding.analog(x), keep=keep) if self.ann is not None else {}
        sums = Sums(samples=n, fill=result.delay, readout_delay=result.readout_delay)
        if self.ann is None:
            sums.ir_correct = None
        else:
            sums.ir_correct = int((ann[self.ann.outputs[0]].reshape(n, -1).argmax(axis=1) == labels).sum())
        # a mode that computes a quantized ANN exactly (e.g. loihi's graded mode) may offer that ANN's outputs
        reference = self.emulation.quantized_outputs(x, encoding=job.encoding)
        if reference is not None:
            sums.quantized_correct = int((reference.reshape(n, -1).argmax(axis=1) == labels).sum())
        for t in steps:
            sums.correct[t] = int((result.checkpoints[t].reshape(n, -1).argmax(axis=1) == labels).sum())
            sums.spikes[t] = sum(float(v.sum()) for v in result.checkpoint_spikes.get(t, {}).values())
            marks = result.checkpoint_synops.get(t, {})
            sums.synops_measured = sums.synops_measured and bool(marks)
            sums.synops[t] = sum(float(v.sum()) for v in marks.values())
            sums.synops_input[t] = sum(float(v.sum()) for k, v in marks.items() if k in self.inputs)
        for layer in self.layers:
            sums.layer_spikes[layer.name] = float(result.spikes[layer.name].sum())
            sums.layer_synops[layer.name] = float(result.synops[layer.name].sum()) if layer.name in result.synops else 0
            # what the layer sent: its spike counts, or for graded and signed spikes their values summed (a count
            # of events is not the activation: a few-spike neuron's one spike may carry half of it)
            sent = (result.sent if layer.graded else result.counts).get(layer.name)
            if layer.ann_value is not None and layer.scale is not None and sent is not None:
                run_steps = np.float32(t_max + result.delay)  # the counts include the fill
                rate = sent / run_steps * layer.scale  # in the ANN's units
                sums.pearson[layer.name] = Pearson.of(ann[layer.ann_value], rate)
        return sums


_RUNNERS: OrderedDict[tuple[str, str | None], Runner] = OrderedDict()
"""This worker process's runners, by a key of the job (its artifact) and mode, the most recently used last: an
artifact is loaded once per worker while it is among the last :data:`RUNNERS_KEPT` used."""
RUNNERS_KEPT = 2
"""Runners a worker keeps: a flat sweep's worker moves from one point's chunks to the next's, and may take a rerun
chunk of the one before (a worker died); older networks are not needed again."""


def cached_runner(key: tuple[str, str | None], job: Job) -> Runner:
    """This worker's runner of ``key`` (made from ``job`` the first time), on ``job``'s chunk."""
    runner = _RUNNERS.get(key)
    if runner is None:
        while len(_RUNNERS) >= RUNNERS_KEPT:
            _RUNNERS.popitem(last=False)
        runner = _RUNNERS[key] = Runner(job)
    _RUNNERS.move_to_end(key)
    return runner.use(job)


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NEURODEPLOY_EMULATOR_THREADS")


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Spawned workers read these when they load numpy (and a backend's emulator when it runs): one BLAS and
    emulator thread each (unless the user set them), since the workers already use the cores and BLAS threads on
    small matrices mostly wait."""
    saved = {name: os.environ.get(name) for name in _BLAS_THREADS}
    for name in _BLAS_THREADS:
        os.environ.setdefault(name, "1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


MAX_WORKERS_PER_CPU = 4
"""``--workers`` above this many per CPU is refused (a typo could otherwise spawn thousands of processes)."""


def check_workers(workers: int | None, option: str = "--workers") -> None:
    """Refuse a count of worker processes below one or above :data:`MAX_WORKERS_PER_CPU` per CPU."""
    if workers is not None and workers < 1:
        raise DataError(f"{option} must be at least 1, got {workers}")
    if workers is not None and workers > MAX_WORKERS_PER_CPU * available_cpus():
        raise DataError(
            f"{option} {workers:,} is more than {MAX_WORKERS_PER_CPU} processes per CPU ({available_cpus()} CPUs "
            "here); each worker holds a copy of the network, so more only costs memory"
        )


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def simulate_chunks(job: Job, chunks: list[tuple[int, int]], progress: Callable[[int, int], None] | None) -> Sums:
    """Run every chunk in this process and merge the sums in chunk order (the same numbers as on worker
    processes, :mod:`~.local`, or a cluster)."""
    total, done = Sums(), 0
    n = chunks[-1][1]
    runner = Runner(job)
    for bounds in chunks:
        sums = runner.run(bounds)
        total.merge(sums)
        done += sums.samples
        if progress is not None:
            progress(done, n)
    return total
