"""User arrays: ``.npy`` files, or ``.npz`` files holding ``x`` (and optionally ``y``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from neurodeploy.errors import DataError


def load_array_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Return ``(x, y)`` from an ``.npy`` (``y`` is None) or an ``.npz`` with keys ``x`` and optionally ``y``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist.")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"Cannot read {path} as .npy/.npz: {exc}") from exc
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        if "x" not in loaded.files:
            raise DataError(f"{path} has arrays {loaded.files}; expected 'x' (inputs) and optionally 'y' (labels).")
        x = loaded["x"]
        y = loaded["y"] if "y" in loaded.files else None
    if y is not None and len(y) != len(x):
        raise DataError(f"{path}: 'x' has {len(x)} samples but 'y' has {len(y)}.")
    return x, y
