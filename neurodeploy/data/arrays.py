"""User arrays: ``.npy`` files, or ``.npz`` files holding ``x`` (and optionally ``y``)."""

from __future__ import annotations

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
        if isinstance(loaded, np.ndarray):
            return loaded, None
        with loaded:
            if "x" not in loaded.files:
                raise DataError(f"{path} has arrays {loaded.files}; expected 'x' (inputs) and optionally 'y' (labels).")
            # an .npz is read lazily: a damaged member (bad CRC, bad deflate data, pickled) fails only here
            x = loaded["x"]
            y = loaded["y"] if "y" in loaded.files else None
    except DataError:
        raise
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, BadZipFile, zlib.error, TokenError, ...
        raise DataError(f"Cannot read {path} as .npy/.npz: {type(exc).__name__}: {exc}") from exc
    if y is not None and len(y) != len(x):
        raise DataError(f"{path}: 'x' has {len(x)} samples but 'y' has {len(y)}.")
    return x, y
