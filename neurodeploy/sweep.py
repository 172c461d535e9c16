"""Sweeps: many compile-and-evaluate runs from one spec file, each point's result kept, reruns doing only what
changed.

``neurodeploy sweep SPEC.toml [-o DIR]`` reads a TOML spec::

    [sweep]                                  # the settings every point starts from
    model = "../mnist/mnist_cnn.onnx"        # paths are relative to the spec file
    data = "../mnist/test_images.npz"        # an .npz with x and y, or a data set name (its test split)
    calibration = "../mnist/calibration.npz"
    limit = 200
    steps = [4, 8, 16, 32]
    output = "mnist-sweep"                   # the sweep's folder (default: the spec's name beside it)

    [grid]                                   # every combination of these lists
    target = ["reference", "loihi"]
    conversion = ["norm=max", "norm=percentile,percentile=99.9"]

    [[points]]                               # and these points, each over the base settings
    target = "speck"

A point's settings are ``model``, ``target``, ``data``, ``limit``, ``steps``, ``calibration``,
``calibration_samples``, ``conversion``, ``target_options`` (a table), ``import_options`` (a table) and
``workers``, ``emulator`` (numpy, or torch where the target has it: ``--emulator``) and ``device`` (its torch
device). Every point is checked before any work starts: an unknown key, a target that is not installed, a
target option or conversion option the target refuses, an emulator engine the target lacks or a device torch cannot
use, a file that does not exist is an error naming the point.

Each point's result is the evaluation report (:func:`neurodeploy.evaluate.evaluate`), written whole to
``DIR/points/KEY.json``; KEY is the SHA-256 of the point's settings, the contents of the files it reads (model,
data, calibration) and the neurodeploy version, so a rerun reuses every point whose inputs did not change, and a
sweep that was interrupted resumes where it stopped. A point that fails is recorded with its error and the others
go on.

The pending points' chunks are one flat set of tasks, data shard x point, on the local engine's worker processes
(:mod:`neurodeploy.evaluation.local`, started once for the whole sweep: ``--workers``, else the largest
``workers`` a point sets, else one per CPU) or with ``--engine dask`` on a Dask cluster
(:mod:`neurodeploy.evaluation.cluster`): each point is compiled here in turn (its model, data and calibration
files are read only here, the ANN reference is measured here) and its chunks are submitted at once, while the
workers already run the tasks of the points before it, so no worker waits between points (at most
:data:`POINTS_AHEAD` points out at once). Each point's chunk results are merged in chunk order once its last one is
in, so its report equals a single-process run's, and it is written to ``DIR/points`` then (an interrupted sweep
keeps every point that ended). A chunk that fails for good fails its point alone (its other tasks are cancelled),
with an error naming its samples and the engine; a chunk whose worker died is run again and counted once. With
one local worker the points run in this process, one after another.

Progress is a line per point as it is found cached, starts running, is done or fails, with the counts of points
``done`` (run now, its result written), ``cached`` (its result read back), ``failed``, ``running`` and ``left``.
A point is running from the moment its work starts (its compile here, before its tasks are submitted; in this
process, the call of :func:`~neurodeploy.evaluate.evaluate`) until its result is in or it fails; left are the
points not yet started; on worker processes or a cluster, also the tasks done of those submitted (one line, here
broken)::

    point 3 (target=loihi, conversion=norm=max): running [done 1, cached 0, failed 0, running 2, left 1;
    tasks 3/6 done]

``DIR/results.csv`` and ``DIR/results.json`` hold one row per point and T: the point's settings, the SNN's
accuracy, the ANN's, spikes per neuron and SynOps per sample. ``DIR/accuracy.svg`` and ``DIR/spikes.svg`` draw the
SNN's accuracy and the spikes per neuron against T, a line per point (:mod:`neurodeploy.charts`, no plotting
library needed); with matplotlib installed, ``accuracy.png`` and ``spikes.png`` draw the same.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import itertools
import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodeploy._version import __version__
from neurodeploy.artifact import sha256_file
from neurodeploy.backends.registry import get_backend
from neurodeploy.data.datasets import is_dataset
from neurodeploy.emulation import check_engine
from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.evaluate import Prepared, evaluate, prepare_evaluation
from neurodeploy.evaluation.cluster import Cluster
from neurodeploy.evaluation.local import LocalPool
from neurodeploy.evaluation.plot import plot_sweep, sweep_chart
from neurodeploy.evaluation.runner import available_cpus, check_workers
from neurodeploy.fileio import check_output_file, read_regular_file, write_file_atomic
from neurodeploy.ir.serialize import dumps_json
from neurodeploy.passes import conversion_pass

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the Python 3.10 environments
    import tomli as tomllib

KEYS = {
    "model": str,
    "target": str,
    "data": str,
    "limit": int,
    "steps": list,
    "calibration": str,
    "calibration_samples": int,
    "conversion": str,
    "target_options": dict,
    "import_options": dict,
    "workers": int,
    "emulator": str,
    "device": str,
}
"""The settings of a point, and their TOML types."""
REQUIRED = ("model", "target", "data", "steps")
FILES = ("model", "data", "calibration")
"""Settings that may name a file, whose contents go into the point's key."""
POINTS_AHEAD = 4
"""On worker processes or a cluster, the points whose tasks may be out at once: the next one is compiled and
submitted when one of them ends (each holds its compiled artifact and the ANN reference here, its data in its tasks
there); enough to keep the workers busy across a point's last chunks, few enough that a sweep of hundreds of points
does not hold them all."""
PLOTTED = (("snn_accuracy", "accuracy"), ("spikes_per_neuron", "spikes"))
"""The plotted columns, against T a line per point, and the names of their files (.svg, and .png)."""
PLOTS = tuple(f"{name}.{kind}" for _, name in PLOTTED for kind in ("svg", "png"))
COLUMNS = ("point", "model", "target", "conversion", "target_options", "import_options", "data", "limit", "T")


@dataclass
class Point:
    """One run: its settings (paths resolved) and the key of its inputs."""

    index: int
    settings: dict[str, Any]
    key: str = ""

    def label(self) -> str:
        shown = {k: v for k, v in self.settings.items() if k in ("target", "conversion", "target_options")}
        return f"point {self.index} ({', '.join(f'{k}={v}' for k, v in shown.items()) or 'base settings'})"


@dataclass
class Sweep:
    """A parsed spec: its points and the folder its results go to."""

    points: list[Point]
    output: Path
    source: Path
    results: dict[str, Any] = field(default_factory=dict)


def _check_value(key: str, value: Any, where: str) -> None:
    if key not in KEYS:
        raise DataError(f"{where}: unknown key {key!r}; a point takes {', '.join(sorted(KEYS))}")
    kind = KEYS[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise DataError(f"{where}: {key} must be a whole number, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise DataError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    if key == "steps" and (
        not value or not all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in value)
    ):
        raise DataError(f"{where}: steps must be a list of positive whole numbers, got {value!r}")
    if kind is dict and not all(isinstance(v, (str, int, float, bool)) for v in value.values()):
        raise DataError(f"{where}: {key} holds KEY = value settings (strings or numbers), got {value!r}")


def load_sweep(path: str | Path, output: str | Path | None = None) -> Sweep:
    """The points of the spec file ``path``, every one checked (see the module)."""
    path = Path(path)
    try:
        raw = read_regular_file(path, what=f"sweep spec {path}")
    except FileNotFoundError:
        raise DataError(f"sweep spec {path} does not exist") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"sweep spec {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"sweep", "grid", "points"})
    if unknown:
        raise DataError(f"sweep spec {path}: unknown section(s) {', '.join(unknown)}; use [sweep], [grid], [[points]]")
    base = dict(document.get("sweep", {}))
    folder = base.pop("output", None)
    if folder is not None and (
        not isinstance(folder, str) or not folder or Path(folder).is_absolute() or ".." in Path(folder).parts
    ):
        # a spec names where its results go only beside itself: one from elsewhere cannot write into other folders
        raise DataError(
            f"sweep spec {path}: output {folder!r} must be a folder name beside the spec (relative, without ..); "
            "pass -o DIR for another place"
        )
    for key, value in base.items():
        _check_value(key, value, f"{path}: [sweep]")
    grid = document.get("grid", {})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise DataError(f"{path}: [grid] {key} must be a non-empty list of values")
        for value in values:
            _check_value(key, value, f"{path}: [grid]")
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else []
    extra = document.get("points", [])
    if not isinstance(extra, list):
        raise DataError(f"{path}: points must be a list of tables ([[points]])")
    for k, point in enumerate(extra):
        for key, value in point.items():
            _check_value(key, value, f"{path}: [[points]] {k + 1}")
    settings = [{**base, **c} for c in combos] + [{**base, **p} for p in extra] or [dict(base)]
    points = [Point(i + 1, _resolve(s, path.parent)) for i, s in enumerate(settings)]
    for point in points:
        _validate(point, path)
        point.key = _key(point)
    out = Path(output) if output is not None else path.parent / (folder or f"{path.stem}-sweep")
    return Sweep(points, out, path)


def _resolve(settings: dict[str, Any], root: Path) -> dict[str, Any]:
    """Paths relative to the spec's folder; a data set name stays a name."""
    resolved = dict(settings)
    for key in FILES:
        value = resolved.get(key)
        if isinstance(value, str) and not (key in ("data", "calibration") and is_dataset(value)):
            resolved[key] = str((root / value).resolve()) if not Path(value).is_absolute() else value
    return resolved


def _validate(point: Point, spec: Path) -> None:
    """Everything that can be checked before any work (see the module)."""
    where = f"{spec}: {point.label()}"
    missing = [k for k in REQUIRED if k not in point.settings]
    if missing:
        raise DataError(f"{where}: no {', '.join(missing)} (set it in [sweep], [grid] or the point)")
    s = point.settings
    for key in FILES:
        value = s.get(key)
        if value is not None and not is_dataset(value) and not Path(value).is_file():
            raise DataError(f"{where}: {key} {value} does not exist")
    try:
        backend = get_backend(s["target"])
        backend.parse_target_options({k: str(v) for k, v in s.get("target_options", {}).items()})
        if "conversion" in s:
            conversion_pass(s["conversion"])
        check_engine(backend.target, backend.engines, s.get("emulator", "numpy"), s.get("device"))
        check_workers(s.get("workers"), "workers")
    except NeurodeployError as exc:
        raise DataError(f"{where}: {exc}") from None


def _key(point: Point) -> str:
    """SHA-256 of the settings, the contents of the files they name and the version."""
    files = {k: sha256_file(Path(v)) for k in FILES if (v := point.settings.get(k)) is not None and not is_dataset(v)}
    document = {"settings": point.settings, "files": files, "neurodeploy": __version__}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass
class Progress:
    """The sweep's points by state, as the progress lines show them (see the module): ``done`` (run now, result
    written), ``cached`` (result read back), ``failed``, ``running`` (work begun, result not yet in) and the rest
    ``left``; on a Dask cluster also the tasks (data shard x point) done and submitted."""

    total: int
    done: int = 0
    cached: int = 0
    failed: int = 0
    running: int = 0
    tasks: tuple[int, int] | None = None

    @property
    def left(self) -> int:
        return self.total - self.done - self.cached - self.failed - self.running

    def line(self, point: Point, event: str, detail: str = "") -> str:
        counts = (
            f"done {self.done}, cached {self.cached}, failed {self.failed}, running {self.running}, left {self.left}"
        )
        if self.tasks is not None:
            counts += f"; tasks {self.tasks[0]}/{self.tasks[1]} done"
        return f"{point.label()}: {event} [{counts}]" + (f": {detail}" if detail else "")


def run_sweep(
    sweep: Sweep,
    progress: Callable[[str], None] | None = None,
    evaluate_fn: Callable[..., Any] = evaluate,
    cluster: Cluster | LocalPool | None = None,
    *,
    prepare_fn: Callable[..., AbstractContextManager[Prepared]] = prepare_evaluation,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Run every point not already in ``sweep.output/points``, then write the results table and plots; return the
    results document. ``progress`` sees a line per point as it is found cached, starts running, is done or fails,
    with the counts of :class:`Progress`. Without ``cluster`` the points run here one after another through
    ``evaluate_fn``; with one (a Dask cluster or a :class:`~neurodeploy.evaluation.local.LocalPool`), through
    ``prepare_fn`` (compiled here one after another) and their chunks as one flat set of tasks on it (the same
    results). ``batch_size``: the samples per chunk (default
    :func:`~neurodeploy.evaluate.evaluate`'s); not a setting of the spec."""
    say = progress or (lambda line: None)
    folder = sweep.output / "points"
    for path in (sweep.output, folder):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise DataError(f"the sweep's folder {path} exists and is not a folder (a file or a symbolic link)")
    folder.mkdir(parents=True, exist_ok=True)
    outputs = [sweep.output / name for name in ("results.csv", "results.json", *PLOTS)]
    for out in outputs:
        check_output_file(out)
    state = Progress(len(sweep.points))
    entries: dict[int, dict[str, Any]] = {}
    pending = []
    for point in sweep.points:
        entry = _stored(folder / f"{point.key}.json", point)
        if entry is None:
            pending.append(point)
            continue
        entries[point.index] = entry
        state.cached += 1
        say(state.line(point, "cached"))

    def ended(point: Point, report: dict[str, Any] | None, error: NeurodeployError | None = None) -> None:
        entry: dict[str, Any] = {"settings": point.settings, "key": point.key}
        state.running -= 1
        if report is not None:
            entry["report"] = report  # a failure is not kept: the next run tries it again
            write_file_atomic(folder / f"{point.key}.json", dumps_json(entry))
            state.done += 1
            say(state.line(point, "done"))
        else:
            entry["error"] = str(error)
            state.failed += 1
            say(state.line(point, "failed", str(error)))
        entries[point.index] = entry

    options = {} if batch_size is None else {"batch_size": batch_size}
    if cluster is None:
        for point in pending:
            state.running += 1
            say(state.line(point, "running"))
            try:
                report = evaluate_fn(**_arguments(point), **options).to_dict()
            except NeurodeployError as exc:
                ended(point, None, exc)
            else:
                ended(point, report)
    else:
        _run_on_cluster(pending, cluster, prepare_fn, options, state, say, ended)
    ordered = [entries[p.index] for p in sweep.points]
    for point, entry in zip(sweep.points, ordered):
        entry["point"] = point.index
    rows = _rows(ordered)
    document = {"spec": str(sweep.source), "points": ordered, "rows": rows, "neurodeploy": __version__}
    write_file_atomic(sweep.output / "results.json", dumps_json(document))
    write_file_atomic(sweep.output / "results.csv", _csv(rows))
    _plots(rows, sweep)
    return document


def _run_on_cluster(
    pending: list[Point],
    cluster: Cluster | LocalPool,
    prepare_fn: Callable[..., AbstractContextManager[Prepared]],
    options: dict[str, Any],
    state: Progress,
    say: Callable[[str], None],
    ended: Callable[..., None],
) -> None:
    """The pending points' chunks as one flat set of tasks on ``cluster`` (see the module): each point compiled
    here in turn and its tasks submitted at once, while the workers run the tasks of the points before it; each
    point's report made, and written, as soon as its last chunk is in."""
    batch = cluster.batch()
    contexts: dict[int, ExitStack] = {}
    prepared: dict[int, Prepared] = {}
    by_index = {point.index: point for point in pending}

    def collect(block: bool, until: int = 0) -> None:
        for index, result in batch.results(block, until):
            state.tasks = (batch.tasks_done, batch.tasks)
            ready = prepared.pop(index)
            try:
                if isinstance(result, NeurodeployError):
                    raise result
                report = ready.finish(result).to_dict()
            except NeurodeployError as exc:
                ended(by_index[index], None, exc)
            else:
                ended(by_index[index], report)
            finally:
                contexts.pop(index).close()  # its compiled artifact, in a temporary folder here

    try:
        for point in pending:
            collect(block=True, until=POINTS_AHEAD - 1)  # (compiled artifacts and their data held here and there)
            state.running += 1
            state.tasks = (batch.tasks_done, batch.tasks)
            say(state.line(point, "running"))
            stack = contexts[point.index] = ExitStack()
            try:
                ready = prepared[point.index] = stack.enter_context(prepare_fn(**_arguments(point), **options))
                batch.submit(point.index, ready.job, ready.chunks)
            except NeurodeployError as exc:  # a compile or a data check: this point alone fails
                prepared.pop(point.index, None)
                contexts.pop(point.index).close()
                ended(point, None, exc)
                continue
            collect(block=False)
        collect(block=True)
    except BaseException:
        batch.cancel()  # an interruption: the points done so far are kept, the rest run on the next run
        raise
    finally:
        for stack in contexts.values():
            stack.close()


def local_workers(sweep: Sweep, workers: int | None = None) -> int:
    """The local engine's worker processes for ``sweep``: ``workers`` (``--workers``), else the largest ``workers``
    a point sets, else one per CPU; checked (1: the points run in this process)."""
    check_workers(workers)  # (each point's setting is checked by load_sweep)
    if workers is None:
        asked = [point.settings["workers"] for point in sweep.points if "workers" in point.settings]
        workers = max(asked) if asked else available_cpus()
    return workers


def _plots(rows: list[dict[str, Any]], sweep: Sweep) -> None:
    """Accuracy and spikes per neuron against T, a line per point: SVG always, PNG too with matplotlib."""
    title = f"{sweep.source.name}: {len(sweep.points)} point(s)"
    for column, name in PLOTTED:
        write_file_atomic(sweep.output / f"{name}.svg", sweep_chart(rows, column, title).encode())
        if importlib.util.find_spec("matplotlib") is not None:
            plot_sweep(rows, sweep.output / f"{name}.png", title, column)


def _stored(path: Path, point: Point) -> dict[str, Any] | None:
    """The point's kept result, or None when there is none or it cannot be read back whole (the point then runs
    again and replaces it)."""
    if not path.is_file():
        return None
    try:
        entry = json.loads(read_regular_file(path, what=str(path)))
    except (NeurodeployError, OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(entry, dict) and entry.get("key") == point.key and isinstance(entry.get("report"), dict)
    return entry if ok and all(k in entry["report"] for k in ("steps", "snn_accuracy")) else None


def _arguments(point: Point) -> dict[str, Any]:
    """The point's settings as the arguments of :func:`~neurodeploy.evaluate.evaluate` (and of
    :func:`~neurodeploy.evaluate.prepare_evaluation`)."""
    s = point.settings
    return {
        "model": s["model"],
        "data": s["data"],
        "steps": s["steps"],
        "target": s["target"],
        "limit": s.get("limit"),
        "calibration": s.get("calibration"),
        **({"calibration_samples": s["calibration_samples"]} if "calibration_samples" in s else {}),
        "conversion": s.get("conversion"),
        "workers": s.get("workers"),
        "target_options": {k: str(v) for k, v in s.get("target_options", {}).items()} or None,
        "import_options": {k: str(v) for k, v in s.get("import_options", {}).items()} or None,
        **{key: s[key] for key in ("emulator", "device") if key in s},
    }


def _rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        s = entry["settings"]
        common = {
            "point": entry["point"],
            "model": Path(s["model"]).name,
            "target": s["target"],
            "conversion": s.get("conversion", ""),
            "target_options": ",".join(f"{k}={v}" for k, v in sorted(s.get("target_options", {}).items())),
            "import_options": ",".join(f"{k}={v}" for k, v in sorted(s.get("import_options", {}).items())),
            "data": Path(s["data"]).name,
            "limit": s.get("limit", ""),
        }
        if "error" in entry:
            rows.append({**common, "T": "", "error": entry["error"]})
            continue
        report = entry["report"]
        for t in report["steps"]:
            rows.append(
                {
                    **common,
                    "T": t,
                    "snn_accuracy": report["snn_accuracy"][str(t)],
                    "ann_accuracy": report["ann_accuracy"],
                    "spikes_per_neuron": report["spikes_per_neuron"][str(t)],
                    "synops": report["synops"][str(t)],
                    "error": "",
                }
            )
    return rows


def _csv(rows: list[dict[str, Any]]) -> bytes:
    columns = [*COLUMNS, "snn_accuracy", "ann_accuracy", "spikes_per_neuron", "synops", "error"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c, "") for c in columns})
    return text.getvalue().encode()
