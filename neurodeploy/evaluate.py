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
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy._version import __version__
from neurodeploy.artifact import load_artifact
from neurodeploy.backends.registry import get_backend
from neurodeploy.compiler import compile_model, require_finite_outputs
from neurodeploy.data.arrays import load_array_file
from neurodeploy.data.calibration import DEFAULT_SAMPLES, Calibration, load_calibration
from neurodeploy.data.datasets import _LOADERS, Dataset, load_dataset
from neurodeploy.data.policy import check_labels, check_values, input_range
from neurodeploy.emulation import Emulation
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.fileio import write_file_atomic
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.limits import check_steps
from neurodeploy.metrics import layer_macs

log = logging.getLogger(__name__)

NOT_YET: tuple[str, ...] = ()
"""Data sets in the shared folder that ``evaluate`` cannot read yet."""


def parse_steps(text: str) -> list[int]:
    """``"1,2,4,8"`` -> [1, 2, 4, 8]: positive integers, sorted, duplicates dropped."""
    try:
        steps = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"bad steps {text!r}: write positive integers separated by commas, e.g. 1,2,4,8") from None
    if not steps:
        raise ValueError(f"bad steps {text!r}: give at least one number of time steps")
    if steps[0] < 1:
        raise ValueError(f"bad steps {text!r}: time steps must be at least 1")
    return steps


# -- data -----------------------------------------------------------------------------------------------------
def load_evaluation_data(spec: str, limit: int | None = None, options: dict[str, Any] | None = None) -> Dataset:
    """The evaluation inputs and labels: a named data set's test split, or an .npz with ``x`` and ``y``."""
    options = options or {}
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be at least 1, got {limit}")
    if spec in NOT_YET:
        raise DataError(
            f"data set {spec!r} is not available to evaluate yet; use {', '.join(sorted(_LOADERS))}, or an .npz file "
            "with x (inputs, batch first) and y (labels)"
        )
    if spec in _LOADERS:
        return load_dataset(spec, "test", limit=limit, **options)
    path = Path(spec)
    if path.suffix not in (".npz", ".npy") and not path.exists():
        raise DataError(
            f"--data {spec!r} is neither a known data set ({', '.join(sorted(_LOADERS))}) nor an .npz file with x and y"
        )
    if options:
        raise DataError(f"options {', '.join(sorted(options))} apply to named event data sets, not to {path.name}")
    x, y = load_array_file(path)
    if y is None:
        raise DataError(f"{path} has no labels; evaluating needs an .npz with x (inputs) and y (labels)")
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{path}: x has shape {x.shape}; expected a batch of inputs, batch first")
    y = check_labels(y, samples=len(x), where=f"{path} (y)")  # whole numbers, one per sample
    if limit is not None:
        x, y = x[:limit], y[:limit]
    # x keeps its dtype: evaluate applies the input policy (integer images may be rescaled) once it knows the range
    return Dataset(path.name, "file", x, y)


def _data_name(dataset: Dataset) -> str:
    """How messages name the evaluation data: the file, or the data set and split."""
    return dataset.name if dataset.split == "file" else f"{dataset.name} ({dataset.split} split)"


def _calibration(
    spec: str | None, data: Dataset, data_spec: str, samples: int, options: dict[str, Any]
) -> Calibration | None:
    """The calibration inputs: ``spec`` as compile takes it, else the training split of a named data set (never
    the evaluation images), else None (weight-based normalization)."""
    name = spec if spec is not None else (data_spec if data_spec in _LOADERS else None)
    if name is None:  # compile warns that thresholds then come from weight bounds
        return None
    if name in _LOADERS:  # same preparation as the evaluation data (e.g. the bin width of event frames)
        train = load_dataset(name, "train", limit=samples, analog=True, **(options if name == data_spec else {}))
        return Calibration(train.x, f"{name}:train[:{len(train.x)}]")
    return load_calibration(name, samples)


# -- the ANN reference ----------------------------------------------------------------------------------------
def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise NeurodeployError(
            "evaluate measures the ANN with onnxruntime, which is not installed; pip install neurodeploy[ort]"
        ) from None
    return onnxruntime


def onnxruntime_outputs(model: Path, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's first output on ``x`` with onnxruntime (CPU), in batches (the model's own if fixed)."""
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise DataError(f"{model.name} has {len(inputs)} inputs; evaluate handles one-input models")
    fixed = inputs[0].shape[0] if inputs[0].shape and isinstance(inputs[0].shape[0], int) else None
    step = fixed or batch_size
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        if fixed is not None and len(chunk) < fixed:  # a fixed batch size: pad the last chunk, drop the padding
            chunk = np.concatenate([chunk, np.zeros((fixed - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        try:
            out = session.run(None, {inputs[0].name: np.ascontiguousarray(chunk, np.float32)})[0]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DataError(f"onnxruntime cannot run {model.name} on inputs of shape {chunk.shape}: {exc}") from exc
        outputs.append(np.asarray(out)[: min(step, len(x) - start)])
    return np.concatenate(outputs)


# -- statistics merged chunk by chunk ------------------------------------------------------------------------
@dataclass
class Pearson:
    """Pearson correlation of two equally long streams, merged chunk by chunk (Chan et al.'s pairwise update);
    merging the same chunks in the same order gives the same bits."""

    n: int = 0
    mean_a: float = 0.0
    mean_b: float = 0.0
    m2_a: float = 0.0
    m2_b: float = 0.0
    c_ab: float = 0.0

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray) -> Pearson:
        a = np.asarray(a, np.float64).reshape(-1)
        b = np.asarray(b, np.float64).reshape(-1)
        if a.size == 0:
            return cls()
        da, db = a - a.mean(), b - b.mean()
        return cls(a.size, float(a.mean()), float(b.mean()), float(da @ da), float(db @ db), float(da @ db))

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        self.merge(Pearson.of(a, b))

    def merge(self, other: Pearson) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        weight = self.n * other.n / n
        delta_a, delta_b = other.mean_a - self.mean_a, other.mean_b - self.mean_b
        self.m2_a += other.m2_a + delta_a * delta_a * weight
        self.m2_b += other.m2_b + delta_b * delta_b * weight
        self.c_ab += other.c_ab + delta_a * delta_b * weight
        self.mean_a += delta_a * other.n / n
        self.mean_b += delta_b * other.n / n
        self.n = n

    @property
    def r(self) -> float | None:
        """The correlation, or None when either stream is constant (no correlation is defined)."""
        if self.n < 2 or self.m2_a <= 0 or self.m2_b <= 0:
            return None
        return float(np.clip(self.c_ab / np.sqrt(self.m2_a * self.m2_b), -1.0, 1.0))


@dataclass(frozen=True)
class _Layer:
    """One spiking layer: its neurons, the ANN value it reproduces and its scale λ (what a spike is worth)."""

    name: str
    neurons: int
    ann_value: str | None
    scale: np.ndarray | None


def _layers(snn: Graph, ann: Graph) -> list[_Layer]:
    snn_types, ann_values = snn.types(), set(ann.types())
    layers = []
    for op in snn.ops:
        if not op.is_stateful:
            continue
        shape = snn_types[op.output].shape
        lam = op.meta.get("lambda")
        scale = None
        if lam is not None:
            lam = np.asarray(lam, np.float32)
            scale = lam if lam.ndim == 0 else lam.reshape((-1,) + (1,) * (len(shape) - 1))
        # only neurons that replaced an ANN activation have an ANN counterpart (not e.g. inserted readout neurons)
        converted = op.output in ann_values and "inserted_by" not in op.meta
        value = op.output if converted and scale is not None else None
        layers.append(_Layer(op.name, snn_types[op.output].size, value, scale))
    return layers


@dataclass
class _Sums:
    """Sums over samples, per T (and per layer at the largest T); one per chunk, merged in chunk order."""

    samples: int = 0
    correct: dict[int, int] = field(default_factory=dict)
    ir_correct: int = 0
    quantized_correct: int | None = None
    spikes: dict[int, float] = field(default_factory=dict)
    synops: dict[int, float] = field(default_factory=dict)
    synops_input: dict[int, float] = field(default_factory=dict)
    synops_measured: bool = True
    layer_spikes: dict[str, float] = field(default_factory=dict)
    layer_synops: dict[str, float] = field(default_factory=dict)
    pearson: dict[str, Pearson] = field(default_factory=dict)

    def merge(self, other: _Sums) -> None:
        self.samples += other.samples
        self.ir_correct += other.ir_correct
        if other.quantized_correct is not None:
            self.quantized_correct = (self.quantized_correct or 0) + other.quantized_correct
        self.synops_measured = self.synops_measured and other.synops_measured
        for mine, theirs in (
            (self.correct, other.correct),
            (self.spikes, other.spikes),
            (self.synops, other.synops),
            (self.synops_input, other.synops_input),
            (self.layer_spikes, other.layer_spikes),
            (self.layer_synops, other.layer_synops),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        for key, value in other.pearson.items():
            self.pearson.setdefault(key, Pearson()).merge(value)


@dataclass(frozen=True)
class _Job:
    """Everything a chunk's simulation needs, picklable for worker processes: the compiled artifact, the inputs
    (an array, or an .npy file workers map), labels, steps and encoding."""

    artifact: Path
    inputs: np.ndarray | Path
    labels: np.ndarray
    steps: tuple[int, ...]
    encoding: Encoding
    mode: str | None = None


class _Runner:
    """Runs chunks of a job: the SNN on the target's emulator up to the largest T, the artifact's ANN for the
    activations, and reduces both to :class:`_Sums`."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.artifact = load_artifact(job.artifact, verify=False)
        self.emulation = Emulation(get_backend(self.artifact.target), self.artifact, job.mode)
        snn = self.artifact.read_graph("snn")  # through the artifact's checks, in workers too
        self.ann = self.artifact.read_graph("ann")
        self.layers = _layers(snn, self.ann)
        self.inputs = set(snn.inputs)
        self.x = np.load(job.inputs, mmap_mode="r") if isinstance(job.inputs, Path) else job.inputs

    def run(self, bounds: tuple[int, int]) -> _Sums:
        start, stop = bounds
        job, steps = self.job, self.job.steps
        x = np.ascontiguousarray(self.x[start:stop])
        labels = job.labels[start:stop]
        n, t_max = len(x), steps[-1]
        result = self.emulation.run(
            x,
            steps=t_max,
            checkpoints=steps,
            encoding=replace(job.encoding, offset=start),  # rate spikes keyed by the sample's index in the data
            neuron_counts=True,
        )
        require_finite_outputs(result, self.artifact.target)
        keep = [layer.ann_value for layer in self.layers if layer.ann_value is not None]
        ann = interpret.run(self.ann, job.encoding.analog(x), keep=keep)
        sums = _Sums(samples=n)
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
            if layer.ann_value is not None and layer.name in result.counts:
                rate = result.counts[layer.name] / np.float32(t_max) * layer.scale  # in the ANN's units
                sums.pearson[layer.name] = Pearson.of(ann[layer.ann_value], rate)
        return sums


_WORKER: dict[str, _Runner] = {}
"""The runner of a worker process, made once by :func:`_start_worker`."""


def _start_worker(job: _Job) -> None:
    _WORKER["runner"] = _Runner(job)


def _run_in_worker(bounds: tuple[int, int]) -> _Sums:
    return _WORKER["runner"].run(bounds)


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Spawned workers read these when they load numpy: one BLAS thread each (unless the user set them), since
    the workers already use the cores and BLAS threads on small matrices mostly wait."""
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


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _simulate_chunks(
    job: _Job, chunks: list[tuple[int, int]], workers: int, progress: Callable[[int, int], None] | None
) -> _Sums:
    """Run every chunk, in this process (``workers`` <= 1) or in spawned worker processes, and merge the sums in
    chunk order, so the result does not depend on ``workers``."""
    total, done = _Sums(), 0
    n = chunks[-1][1]
    if workers <= 1:
        runner = _Runner(job)
        results: Iterator[_Sums] = (runner.run(bounds) for bounds in chunks)
        pool = None
    else:
        with _single_threaded_blas():  # a Pool starts its processes when it is made
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_start_worker, initargs=(job,))
        results = pool.imap(_run_in_worker, chunks)
    try:
        for sums in results:
            total.merge(sums)
            done += sums.samples
            if progress is not None:
                progress(done, n)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return total


# -- the evaluation -------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """The result of :func:`evaluate`; ``to_dict`` is the JSON document, ``format_table`` the printed table.
    ``seconds`` is the wall time of compiling and simulating (not part of the document, which is reproducible)."""

    report: dict[str, Any]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return self.report

    def format_table(self) -> str:
        r = self.report
        lines = [
            f"ANN accuracy (onnxruntime): {100 * r['ann_accuracy']:.2f}% on {r['samples']} samples; "
            f"ANN MACs per sample: {r['ann_macs']:,}"
        ]
        if r.get("quantized_ann_accuracy") is not None:
            lines.append(
                f"quantized ANN accuracy ({r['mode']} mode computes it): {100 * r['quantized_ann_accuracy']:.2f}%"
            )
        rows = [("T", "accuracy", "spikes/neuron", "SynOps", "SynOps/MAC")]
        for t in r["steps"]:
            key = str(t)
            synops = r["synops"].get(key)
            ratio = r["synops_per_mac"].get(key)
            rows.append(
                (
                    key,
                    f"{100 * r['snn_accuracy'][key]:.2f}%",
                    f"{r['spikes_per_neuron'][key]:.3f}",
                    "-" if synops is None else f"{synops:,.0f}",
                    "-" if ratio is None else f"{ratio:.3f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
        lines.append(f"per layer at T={r['steps'][-1]}:")
        rows = [("layer", "neurons", "rate/step", "r(ANN, SNN)")]
        for layer in r["layers"]:
            corr = layer["correlation"]
            rows.append(
                (
                    layer["name"],
                    str(layer["neurons"]),
                    f"{layer['firing_rate']:.4f}",
                    "-" if corr is None else f"{corr:.3f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines) + "\n"


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
) -> Evaluation:
    """Compile ``model`` for ``target`` and measure ANN and SNN accuracy at every T in ``steps`` on ``data``
    (a data set name, whose test split is used, or an .npz with x and y). See the module for the metrics.

    The samples are simulated ``batch_size`` at a time by ``workers`` processes (default: one per CPU; 1 runs
    them in this process); the results do not depend on either (beyond float rounding: BLAS may sum in another
    order with another number of threads). ``mode`` is the target's emulation mode (default: its first);
    ``target_options`` go to the compiler (the target's own settings)."""
    model = Path(model)
    steps = sorted({int(s) for s in steps})
    if not steps or steps[0] < 1:
        raise DataError(f"steps must be positive integers, got {list(steps)}")
    check_steps(steps[-1], "--steps (its largest T)")  # before any data is read or allocated
    if batch_size < 1:
        raise DataError(f"--batch-size must be at least 1, got {batch_size}")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    if workers is not None and workers > MAX_WORKERS_PER_CPU * available_cpus():
        raise DataError(
            f"--workers {workers:,} is more than {MAX_WORKERS_PER_CPU} processes per CPU ({available_cpus()} "
            "CPUs here); each worker holds a copy of the network, so more only costs memory"
        )
    if calibration_samples < 1:
        raise DataError(f"calibration needs at least one sample, got --calibration-samples {calibration_samples}")
    if not model.is_file():
        raise DataError(f"model {model} does not exist")
    _import_onnxruntime()  # fail before the work if the ANN reference is missing
    data_options = dict(data_options or {})
    dataset = load_evaluation_data(data, limit, data_options)
    encoding = encoding if encoding is not None else Encoding(dataset.encoding)
    x = dataset.x
    if dataset.encoding == "events" and encoding.kind != "events":
        x = dataset.analog()  # event frames presented as their mean: direct or rate-coded
    elif dataset.encoding != "events" and encoding.kind == "events" and dataset.split != "file":
        raise DataError(f"data set {dataset.name} holds static inputs, not event frames; use --encoding direct or rate")
    if encoding.kind == "events" and x.ndim > 1 and x.shape[1] < steps[-1] and not encoding.pad:
        raise DataError(
            f"{dataset.name} has {x.shape[1]} frames per sample, fewer than the {steps[-1]} steps asked for; ask for "
            "at most that many steps, bin events more finely (--bin-us), or pass --pad-events to feed zeros after "
            "the last frame"
        )
    n, t_max = len(x), steps[-1]
    cal = _calibration(calibration, dataset, data, calibration_samples, data_options)
    # the input policy, against the range compile records from the same calibration inputs
    recorded = input_range(cal.x) if cal is not None and len(cal.x) else None
    x = check_values(x, where=_data_name(dataset), kind=encoding.kind, recorded=recorded)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neurodeploy-evaluate-") as tmp:
        artifact = compile_model(
            model,
            target,
            Path(tmp) / "artifact",
            calibration=cal,
            pipeline=pipeline,
            conversion=conversion,
            target_options=target_options,
        )
        if not artifact.has_ann:
            raise DataError(
                f"{model.name} arrived already spiking: there is no ANN to compare the emulation with; run it with "
                "neurodeploy compile and neurodeploy emulate --labels"
            )
        snn, ann = artifact.read_graph("snn"), artifact.read_graph("ann")
        try:
            encoding.check_inputs(snn, x[:1])
        except DataError as exc:
            raise DataError(f"the data ({dataset.name}) does not fit {model.name}: {exc}") from None
        classes = snn.types()[snn.outputs[0]].size
        check_labels(dataset.y, samples=n, classes=classes, where=f"the labels of {_data_name(dataset)}")
        ann_scores = onnxruntime_outputs(model, encoding.analog(x), batch_size)
        ann_accuracy = float((ann_scores.reshape(n, -1).argmax(axis=1) == dataset.y).mean())
        chunks = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        workers = min(workers if workers is not None else available_cpus(), len(chunks))
        inputs: np.ndarray | Path = x
        if workers > 1:  # workers map the inputs from a file rather than receive a copy each
            inputs = Path(tmp) / "inputs.npy"
            np.save(inputs, x)
        modes = artifact.manifest["target"].get("modes", [])
        if mode is not None and mode not in modes:
            raise DataError(f"target {target!r} has emulation modes {', '.join(modes)}; got {mode!r}")
        job = _Job(artifact.root, inputs, dataset.y, tuple(steps), encoding, mode)
        totals = _simulate_chunks(job, chunks, workers, progress)
        layers = _layers(snn, ann)
        manifest = artifact.manifest
    elapsed = time.perf_counter() - started

    macs = sum(layer_macs(ann).values())
    neurons = sum(layer.neurons for layer in layers)
    measured = totals.synops_measured
    warnings = list(manifest.get("warnings", []))
    if not measured:
        warnings.append(f"target {target!r} does not report SynOps; synops are null")

    def per_t(values: dict[int, float], divisor: float, measured: bool = True) -> dict[str, float | None]:
        return {str(t): (values[t] / divisor if measured and divisor else None) for t in steps}

    report = {
        "model": model.name,
        "target": target,
        "mode": mode if mode is not None else (manifest["target"].get("modes") or [None])[0],
        "pipeline": manifest["pipeline"],
        "data": dataset.describe() | {"source": data, "limit": limit},
        "samples": n,
        "limit": limit,
        "encoding": encoding.describe(),
        "seed": int(encoding.seed),
        "calibration": manifest["options"]["calibration"],
        "steps": steps,
        "ann_accuracy": ann_accuracy,
        "ann_ir_accuracy": totals.ir_correct / n,
        "quantized_ann_accuracy": None if totals.quantized_correct is None else totals.quantized_correct / n,
        "snn_accuracy": per_t(totals.correct, n),
        "spikes_per_neuron": per_t(totals.spikes, n * max(neurons, 1)),
        "synops": per_t(totals.synops, n, measured),
        "synops_input": per_t(totals.synops_input, n, measured),
        "ann_macs": int(macs),
        "synops_per_mac": per_t(totals.synops, n * macs, measured),
        "neurons": neurons,
        "layers": [
            {
                "name": layer.name,
                "neurons": layer.neurons,
                "firing_rate": totals.layer_spikes[layer.name] / (n * layer.neurons * t_max),
                "spikes_per_neuron": totals.layer_spikes[layer.name] / (n * layer.neurons),
                "synops": totals.layer_synops[layer.name] / n if measured else None,
                "correlation": totals.pearson[layer.name].r if layer.name in totals.pearson else None,
                "ann_value": layer.ann_value,
            }
            for layer in layers
        ],
        "warnings": warnings,
        "versions": {"neurodeploy": __version__, "python": platform.python_version(), "numpy": np.__version__},
    }
    report["firing_rates"] = {layer["name"]: layer["firing_rate"] for layer in report["layers"]}
    report["correlations"] = {layer["name"]: layer["correlation"] for layer in report["layers"]}
    log.info("evaluated %d samples up to T=%d in %.1f s", n, t_max, elapsed)
    return Evaluation(report, elapsed)


def require_matplotlib() -> Any:
    """matplotlib.pyplot on the Agg backend, or an error naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NeurodeployError(
            "--plot needs matplotlib, which is not installed; pip install neurodeploy[plot]"
        ) from None
    return plt


def plot_accuracy(report: dict[str, Any], path: str | Path) -> None:
    """Accuracy against T (log2 x axis), the ANN's accuracy as a horizontal line, drawn in memory in the format
    ``path``'s suffix names (PNG without one), then written whole (:func:`neurodeploy.fileio.write_file_atomic`:
    only a regular file is replaced); needs matplotlib."""
    plt = require_matplotlib()
    steps = report["steps"]
    accuracy = [100 * report["snn_accuracy"][str(t)] for t in steps]
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.plot(steps, accuracy, marker="o", label=f"SNN ({report['encoding']['kind']} input)")
        ax.axhline(100 * report["ann_accuracy"], color="gray", linestyle="--", label="ANN (onnxruntime)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps)
        ax.set_xticklabels([str(t) for t in steps])
        ax.set_xlabel("time steps T")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{report['model']} on {report['data']['name']} ({report['samples']} samples, {report['target']})")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        image = io.BytesIO()
        kind = Path(path).suffix.lstrip(".").lower() or "png"  # as savefig(path) would choose
        try:
            fig.savefig(image, dpi=120, format=kind)  # drawn in memory, then written whole
        except ValueError as exc:  # a format matplotlib does not know
            raise DataError(f"cannot write the plot {path}: {exc}") from None
    finally:
        plt.close(fig)
    write_file_atomic(path, image.getvalue())
