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
go on. With ``--engine dask`` the points run one after another, each one's chunks as tasks on a Dask cluster
(:mod:`neurodeploy.evaluation.cluster`), with the same results; a worker's error names the point and its samples.
``DIR/results.csv`` and ``DIR/results.json`` hold one row per point and T: the point's settings, the SNN's
accuracy, the ANN's, spikes per neuron and SynOps per sample; with matplotlib installed, ``DIR/accuracy.png`` draws
the SNN's accuracy against T, a line per point.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurodeploy._version import __version__
from neurodeploy.artifact import sha256_file
from neurodeploy.backends.registry import get_backend
from neurodeploy.data.datasets import is_dataset
from neurodeploy.emulation import check_engine
from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.evaluate import evaluate
from neurodeploy.evaluation.cluster import Cluster
from neurodeploy.evaluation.plot import plot_sweep
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
    except NeurodeployError as exc:
        raise DataError(f"{where}: {exc}") from None


def _key(point: Point) -> str:
    """SHA-256 of the settings, the contents of the files they name and the version."""
    files = {k: sha256_file(Path(v)) for k in FILES if (v := point.settings.get(k)) is not None and not is_dataset(v)}
    document = {"settings": point.settings, "files": files, "neurodeploy": __version__}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def run_sweep(
    sweep: Sweep,
    progress: Callable[[str], None] | None = None,
    evaluate_fn: Callable[..., Any] = evaluate,
    cluster: Cluster | None = None,
) -> dict[str, Any]:
    """Run every point not already in ``sweep.output/points``, then write the results table; return the results
    document. ``progress`` sees one line per point (done, cached, failed) with the count left. ``cluster``: the
    points run one after another, each one's chunks as tasks on that Dask cluster (the same results)."""
    say = progress or (lambda line: None)
    folder = sweep.output / "points"
    for path in (sweep.output, folder):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise DataError(f"the sweep's folder {path} exists and is not a folder (a file or a symbolic link)")
    folder.mkdir(parents=True, exist_ok=True)
    for out in (sweep.output / "results.csv", sweep.output / "results.json"):
        check_output_file(out)
    entries = []
    for n, point in enumerate(sweep.points, 1):
        stored = folder / f"{point.key}.json"
        left = len(sweep.points) - n
        entry = _stored(stored, point)
        if entry is not None:
            say(f"{point.label()}: cached ({left} left)")
        else:
            say(f"{point.label()}: running ({left} left after it)")
            entry = {"settings": point.settings, "key": point.key}
            try:
                entry["report"] = _evaluate(point, evaluate_fn, cluster)
            except NeurodeployError as exc:
                entry["error"] = str(exc)
                say(f"{point.label()}: failed: {exc}")
            if "report" in entry:  # a failure is not cached: the next run tries it again
                write_file_atomic(stored, dumps_json(entry))
        entry["point"] = point.index
        entries.append(entry)
    rows = _rows(entries)
    document = {"spec": str(sweep.source), "points": entries, "rows": rows, "neurodeploy": __version__}
    write_file_atomic(sweep.output / "results.json", dumps_json(document))
    write_file_atomic(sweep.output / "results.csv", _csv(rows))
    if importlib.util.find_spec("matplotlib") is not None:  # the plot extra: accuracy against T, a line per point
        check_output_file(sweep.output / "accuracy.png")
        plot_sweep(rows, sweep.output / "accuracy.png", f"{sweep.source.name}: {len(sweep.points)} point(s)")
    return document


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


def _evaluate(point: Point, evaluate_fn: Callable[..., Any], cluster: Cluster | None = None) -> dict[str, Any]:
    s = point.settings
    result = evaluate_fn(
        s["model"],
        s["data"],
        s["steps"],
        target=s["target"],
        limit=s.get("limit"),
        calibration=s.get("calibration"),
        **({"calibration_samples": s["calibration_samples"]} if "calibration_samples" in s else {}),
        conversion=s.get("conversion"),
        workers=s.get("workers"),
        target_options={k: str(v) for k, v in s.get("target_options", {}).items()} or None,
        import_options={k: str(v) for k, v in s.get("import_options", {}).items()} or None,
        **({"cluster": cluster} if cluster is not None else {}),
        **{key: s[key] for key in ("emulator", "device") if key in s},
    )
    return result.to_dict()


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
