"""``neurodeploy evaluate``: ANN against SNN accuracy over time steps, with activity and cost metrics.

One evaluation compiles the model for a target into a temporary folder, measures the ANN's accuracy with
onnxruntime (the independent reference), and runs the SNN once up to the largest T, reading the accuracy at
every requested T from the emulator's checkpoints. The data is processed ``batch_size`` samples at a time, and
everything is reduced as it goes, so memory does not grow with the number of samples.

Metrics, per sample and averaged over the evaluated samples:

* ``spikes_per_neuron[T]``: spikes of all spiking layers up to step T divided by their neurons.
* ``synops[T]``: synaptic operations up to T (:mod:`neurodeploy.metrics`: each spike times its neuron's
  fan-out; rate and event inputs count their events the same way; a direct, analog input counts as dense,
  every element every step, which ``synops_input[T]`` reports separately). ``ann_macs``: the ANN's
  multiply-accumulates (output size x fan-in per weighted layer); ``synops_per_mac[T]`` is their ratio.
* ``layers``: per spiking layer, the firing rate (spikes per neuron per step) at the largest T, and the
  Pearson correlation over all evaluated samples and neurons between the ANN's activation and the SNN's spike
  rate times the layer's scale λ (what a spike is worth); 1 means the SNN reproduces the ANN's activations.
* ``fill_steps``: steps run before the readout's first (windowed QCFS neurons send each layer's result one
  window later, so the readout waits one window per layer; 0 for rate-coded neurons). T counts the steps
  after the fill; spikes, SynOps and firing rates count every step run, the fill included.
* ``readout_delay`` and ``readout_skip[T]``: the artifact's readout delay D where the mode applies it
  (:mod:`neurodeploy.readout`): the accuracy at T reads the output over steps min(D, T // 2) + 1 .. T; spikes,
  SynOps and firing rates count all T steps.
"""

from __future__ import annotations

import logging
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy import inspect
from neurodeploy._version import __version__
from neurodeploy.artifact import Artifact
from neurodeploy.backends.registry import get_backend
from neurodeploy.compiler import compile_model
from neurodeploy.data.calibration import DEFAULT_SAMPLES
from neurodeploy.data.datasets import Dataset
from neurodeploy.data.policy import check_labels, check_values, input_range
from neurodeploy.emulation import check_engine
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError
from neurodeploy.evaluation.cluster import Cluster
from neurodeploy.evaluation.data import calibration_for, data_name, load_evaluation_data, parse_steps
from neurodeploy.evaluation.local import LocalPool
from neurodeploy.evaluation.plot import plot_accuracy, require_matplotlib
from neurodeploy.evaluation.raster import spike_raster
from neurodeploy.evaluation.reference import import_onnxruntime, onnxruntime_outputs
from neurodeploy.evaluation.report import Evaluation, Run, build_report
from neurodeploy.evaluation.runner import Job, available_cpus, check_workers, simulate_chunks
from neurodeploy.evaluation.statistics import Pearson, Sums, spiking_layers
from neurodeploy.frontend import model_format
from neurodeploy.ir.graph import Graph
from neurodeploy.limits import check_steps
from neurodeploy.metrics import layer_macs
from neurodeploy.torch_support import resolve_device

__all__ = [
    "Evaluation",
    "Pearson",
    "Prepared",
    "available_cpus",
    "evaluate",
    "load_evaluation_data",
    "onnxruntime_outputs",
    "parse_steps",
    "plot_accuracy",
    "prepare_evaluation",
    "require_matplotlib",
]

log = logging.getLogger(__name__)


def evaluate(
    model: str | Path,
    data: str,
    steps: Sequence[int],
    *,
    target: str = "reference",
    limit: int | None = None,
    calibration: str | None = None,
    calibration_samples: int = DEFAULT_SAMPLES,
    encoding: Encoding | None = None,
    batch_size: int = 256,
    pipeline: str | None = None,
    conversion: str | None = None,
    data_options: dict[str, Any] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    mode: str | None = None,
    target_options: dict[str, str] | None = None,
    import_options: dict[str, str] | None = None,
    details: bool = False,
    cluster: Cluster | None = None,
    emulator: str = "numpy",
    device: str | None = None,
) -> Evaluation:
    """Compile ``model`` for ``target`` and measure ANN and SNN accuracy at every T in ``steps`` on ``data``
    (a data set name, whose test split is used, or an .npz with x and y). See the module for the metrics.

    The samples are simulated ``batch_size`` at a time by ``workers`` processes (default: one per CPU; 1 runs
    them in this process); the results do not depend on either (beyond float rounding: BLAS may sum in another
    order with another number of threads). ``mode`` is the target's emulation mode (default: its first);
    ``target_options`` go to the compiler (the target's own settings), ``import_options`` to the model's reader
    (NIR's time step and conventions). A model that arrives spiking (a NIR file) has no ANN: its report has the
    SNN's numbers alone. ``details``: the result also carries the compiled artifact's summary and the spike
    raster of the first sample (what ``--report`` draws). ``cluster``: run the chunks as tasks on that Dask cluster
    (:func:`neurodeploy.evaluation.cluster.connect`) instead of ``workers`` local processes; the same numbers.
    ``emulator``: the emulator engine the SNN runs on (numpy, or torch where the target has it), ``device`` the
    torch device (None: cuda when there is one, else cpu)."""
    with prepare_evaluation(
        model,
        data,
        steps,
        target=target,
        limit=limit,
        calibration=calibration,
        calibration_samples=calibration_samples,
        encoding=encoding,
        batch_size=batch_size,
        pipeline=pipeline,
        conversion=conversion,
        data_options=data_options,
        workers=workers,
        mode=mode,
        target_options=target_options,
        import_options=import_options,
        details=details,
        emulator=emulator,
        device=device,
    ) as prepared:
        totals = _simulate(prepared.job, prepared.chunks, workers, progress, cluster)
        return prepared.finish(totals)


@dataclass
class Prepared:
    """An evaluation compiled and checked, its simulation not yet run (:func:`prepare_evaluation`): the job and
    its chunks of samples, to run on any engine, and what :meth:`finish` needs to make the report of their sums."""

    job: Job
    chunks: list[tuple[int, int]]
    tmp: Path
    """The evaluation's temporary folder (the compiled artifact is in it), removed when the context ends."""
    run: Run
    artifact: Artifact
    snn: Graph
    details: bool
    started: float

    def finish(self, totals: Sums) -> Evaluation:
        """The evaluation's report, once ``totals`` holds every chunk's sums (merged in chunk order)."""
        job, x = self.job, self.job.inputs
        summary = inspect.summary(self.artifact, embedded=True) if self.details else None
        raster = spike_raster(self.snn, x[:1], job.steps[-1], job.encoding) if self.details else None
        elapsed = time.perf_counter() - self.started
        report = build_report(
            self.run, totals, {"neurodeploy": __version__, "python": platform.python_version(), "numpy": np.__version__}
        )
        log.info("evaluated %d samples up to T=%d in %.1f s", len(job.labels), job.steps[-1], elapsed)
        return Evaluation(report, elapsed, summary, raster)


@contextmanager
def prepare_evaluation(
    model: str | Path,
    data: str,
    steps: Sequence[int],
    *,
    target: str = "reference",
    limit: int | None = None,
    calibration: str | None = None,
    calibration_samples: int = DEFAULT_SAMPLES,
    encoding: Encoding | None = None,
    batch_size: int = 256,
    pipeline: str | None = None,
    conversion: str | None = None,
    data_options: dict[str, Any] | None = None,
    workers: int | None = None,
    mode: str | None = None,
    target_options: dict[str, str] | None = None,
    import_options: dict[str, str] | None = None,
    details: bool = False,
    emulator: str = "numpy",
    device: str | None = None,
) -> Iterator[Prepared]:
    """What :func:`evaluate` does before the simulation, with its arguments: the arguments and data checked, the
    model compiled into a temporary folder (kept while the context lasts), the ANN's accuracy measured with
    onnxruntime. The simulation of the chunks and :meth:`Prepared.finish` are the caller's: a sweep on a Dask
    cluster submits the chunks of all its points at once (:mod:`neurodeploy.sweep`). ``workers`` is only checked."""
    model = Path(model)
    steps = _check_arguments(model, steps, batch_size, workers, calibration_samples)
    device = _emulator(target, emulator, device)
    if model_format(model).name == "onnx":
        import_onnxruntime()  # fail before the work if the ANN reference is missing
    data_options = dict(data_options or {})
    dataset = load_evaluation_data(data, limit, data_options)
    encoding = encoding if encoding is not None else Encoding(dataset.encoding)
    x = _presented(dataset, encoding, steps[-1])
    cal = calibration_for(calibration, dataset, data, calibration_samples, data_options)
    # the input policy, against the range compile records from the same calibration inputs
    recorded = input_range(cal.x) if cal is not None and len(cal.x) else None
    x = check_values(x, where=data_name(dataset), kind=encoding.kind, recorded=recorded)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neurodeploy-evaluate-") as tmp:
        artifact = compile_model(
            model,
            target,
            Path(tmp) / "artifact",
            calibration=cal,
            encoding=encoding,
            pipeline=pipeline,
            conversion=conversion,
            target_options=target_options,
            import_options=import_options,
        )
        snn, ann = _graphs(artifact, model, dataset, encoding, x)
        ann_scores = onnxruntime_outputs(model, encoding.analog(x), batch_size) if ann is not None else None
        modes = artifact.manifest["target"].get("modes", [])
        if mode is not None and mode not in modes:
            raise DataError(f"target {target!r} has emulation modes {', '.join(modes)}; got {mode!r}")
        job = Job(artifact.root, x, dataset.y, tuple(steps), encoding, mode, engine=emulator, device=device)
        run = Run(
            model=model.name,
            target=target,
            mode=mode if mode is not None else (modes or [None])[0],
            steps=steps,
            dataset=dataset,
            source=data,
            limit=limit,
            encoding=encoding,
            manifest=artifact.manifest,
            ann_accuracy=None
            if ann_scores is None
            else float((ann_scores.reshape(len(x), -1).argmax(axis=1) == dataset.y).mean()),
            layers=spiking_layers(snn, ann),
            macs=int(sum(layer_macs(ann if ann is not None else snn).values())),
            emulator=emulator,
            device=device,
        )
        chunks = [(start, min(start + batch_size, len(x))) for start in range(0, len(x), batch_size)]
        yield Prepared(job, chunks, Path(tmp), run, artifact, snn, details, started)


def _emulator(target: str, engine: str, device: str | None) -> str | None:
    """The device the emulator ``engine`` runs on, once the target is known to have the engine and torch the
    device (before any data is read): the torch device as a string (cuda when None and there is one, else cpu);
    None for numpy."""
    backend = get_backend(target)
    check_engine(backend.target, backend.engines, engine, device)
    return str(resolve_device(device)) if engine == "torch" else None


def _simulate(
    job: Job,
    chunks: list[tuple[int, int]],
    workers: int | None,
    progress: Callable[[int, int], None] | None,
    cluster: Cluster | None = None,
) -> Sums:
    """Run the job's chunks of samples here (one worker), on ``workers`` local processes (default: one per CPU, at
    most one per chunk) or as tasks on ``cluster``; each task carries its chunk."""
    if cluster is not None:
        return cluster.simulate(job, chunks, progress)
    workers = min(workers if workers is not None else available_cpus(), len(chunks))
    if workers <= 1:
        return simulate_chunks(job, chunks, progress)
    with LocalPool(workers) as pool:
        return pool.simulate(job, chunks, progress)


def _check_arguments(
    model: Path, steps: Sequence[int], batch_size: int, workers: int | None, calibration_samples: int
) -> list[int]:
    """The steps, sorted without duplicates, once every argument is checked (before any data is read)."""
    steps = sorted({int(s) for s in steps})
    if not steps or steps[0] < 1:
        raise DataError(f"steps must be positive integers, got {list(steps)}")
    check_steps(steps[-1], "--steps (its largest T)")  # before any data is read or allocated
    if batch_size < 1:
        raise DataError(f"--batch-size must be at least 1, got {batch_size}")
    check_workers(workers)
    if calibration_samples < 1:
        raise DataError(f"calibration needs at least one sample, got --calibration-samples {calibration_samples}")
    if not model.is_file():
        raise DataError(f"model {model} does not exist")
    return steps


def _presented(dataset: Dataset, encoding: Encoding, t_max: int) -> np.ndarray:
    """The data's inputs as the encoding presents them: event frames as their mean for direct or rate input;
    static inputs refused for the events encoding, and event data with fewer frames than steps unless padded."""
    x = dataset.x
    if dataset.encoding == "events" and encoding.kind != "events":
        x = dataset.analog()  # event frames presented as their mean: direct or rate-coded
    elif dataset.encoding != "events" and encoding.kind == "events" and dataset.split != "file":
        raise DataError(f"data set {dataset.name} holds static inputs, not event frames; use --encoding direct or rate")
    if encoding.kind == "events" and x.ndim > 1 and x.shape[1] < t_max and not encoding.pad:
        raise DataError(
            f"{dataset.name} has {x.shape[1]} frames per sample, fewer than the {t_max} steps asked for; ask for "
            "at most that many steps, bin events more finely (--bin-us), or pass --pad-events to feed zeros after "
            "the last frame"
        )
    return x


def _graphs(
    artifact: Artifact, model: Path, dataset: Dataset, encoding: Encoding, x: np.ndarray
) -> tuple[Graph, Graph | None]:
    """The artifact's converted graph and ANN (None for a model that arrived spiking), once the data is checked
    against them (inputs, label classes)."""
    snn, ann = artifact.read_graph("snn"), artifact.read_graph("ann") if artifact.has_ann else None
    try:
        encoding.check_inputs(snn, x[:1])
    except DataError as exc:
        raise DataError(f"the data ({dataset.name}) does not fit {model.name}: {exc}") from None
    classes = snn.types()[snn.outputs[0]].size
    check_labels(dataset.y, samples=len(x), classes=classes, where=f"the labels of {data_name(dataset)}")
    return snn, ann
