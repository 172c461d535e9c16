"""The evaluation data: a named data set's test split or an .npz of inputs and labels, the steps to read,
and the calibration inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurodeploy.data.arrays import load_array_file
from neurodeploy.data.calibration import Calibration, load_calibration
from neurodeploy.data.datasets import _LOADERS, Dataset, load_dataset
from neurodeploy.data.policy import check_labels
from neurodeploy.errors import DataError

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


def data_name(dataset: Dataset) -> str:
    """How messages name the evaluation data: the file, or the data set and split."""
    return dataset.name if dataset.split == "file" else f"{dataset.name} ({dataset.split} split)"


def calibration_for(
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
