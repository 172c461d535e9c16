"""Calibration data for threshold balancing: a named data set's training split, or a user file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.data.arrays import load_array_file
from neurodeploy.data.datasets import _LOADERS, load_dataset
from neurodeploy.data.policy import check_values
from neurodeploy.errors import DataError

DEFAULT_SAMPLES = 1024


@dataclass(frozen=True)
class Calibration:
    """Calibration inputs (float32, batch first) and a description of where they came from."""

    x: np.ndarray
    source: str

    def describe(self) -> dict[str, Any]:
        """What the manifest records: the source, how many samples, and a checksum of the exact inputs."""
        return {
            "source": self.source,
            "samples": len(self.x),
            "sha256": hashlib.sha256(np.ascontiguousarray(self.x).tobytes()).hexdigest(),
        }


def load_calibration(spec: str, samples: int = DEFAULT_SAMPLES) -> Calibration:
    """``spec`` is a data set name (its training split is used, never the test split) or an .npy/.npz path.
    The first ``samples`` inputs are kept."""
    if samples < 1:
        raise DataError(f"calibration needs at least one sample, got {samples}")
    if spec in _LOADERS:
        data = load_dataset(spec, "train", limit=samples, analog=True)  # what the ANN takes (event data: mean)
        return Calibration(data.x, f"{spec}:train[:{len(data.x)}]")
    path = Path(spec)
    if path.suffix not in (".npy", ".npz") and not path.exists():
        raise DataError(
            f"--calibration {spec!r} is neither a known data set ({', '.join(sorted(_LOADERS))}) nor an .npy/.npz file"
        )
    x, _ = load_array_file(path)
    if x.ndim < 2:
        raise DataError(f"calibration file {path} holds {x.dtype} of shape {x.shape}; expected numbers, batch first")
    if len(x) == 0:
        raise DataError(f"calibration file {path} holds no samples (x has shape {x.shape})")
    x = check_values(x[:samples], where=f"calibration file {path}", role="calibration")  # the input policy
    return Calibration(x, f"{path.name}[:{len(x)}]")
