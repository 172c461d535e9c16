"""Named data sets read from the shared data folder.

The folder comes from ``$NEURODEPLOY_DATA``; without it, ``../shared/data`` next to the source checkout or the
current directory is used. Nothing is downloaded: a missing folder is a :class:`DataError` that says where it
looked.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurodeploy.errors import DataError

_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The folder holding the shared data sets."""
    if env := os.environ.get("NEURODEPLOY_DATA"):
        root = Path(env)
        if not root.is_dir():
            raise DataError(f"NEURODEPLOY_DATA={env} is not a folder.")
        return root
    candidates = [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(f"No data folder found (looked in {looked}); set NEURODEPLOY_DATA to the shared data folder.")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not: big-endian header, then raw unsigned bytes."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip: EOFError when truncated, zlib.error when corrupt
        raise DataError(f"Cannot read {path}: {exc}") from exc
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an IDX file.")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (header {raw[:4].hex()}).")
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path} is too short for its header ({ndim} dimensions).")
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {body.size} values, its header promises {int(np.prod(shape))}.")
    return body.reshape(shape)


@dataclass(frozen=True)
class Dataset:
    """Images as float32 in the layout a model takes, (N, C, H, W), and integer labels."""

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray


def _load_mnist(split: str) -> Dataset:
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = data_root() / "mnist"
    images = read_idx(folder / f"{prefix}-images.idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels.idx1-ubyte.gz")
    # Pixels scaled to [0, 1]: the bundled models take exactly this, with no mean/std normalization.
    x = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return Dataset("mnist", split, x, labels.astype(np.int64))


_LOADERS = {"mnist": _load_mnist}


def load_dataset(name: str, split: str = "test", limit: int | None = None) -> Dataset:
    """Load a named data set ("mnist") split ("train" or "test"), optionally only its first ``limit`` samples."""
    if (loader := _LOADERS.get(name)) is None:
        raise DataError(f"Unknown data set {name!r}; known: {', '.join(sorted(_LOADERS))}, or pass an .npy/.npz file.")
    if split not in ("train", "test"):
        raise DataError(f"Unknown split {split!r} for {name}; use 'train' or 'test'.")
    data = loader(split)
    if limit is not None:
        data = Dataset(data.name, data.split, data.x[:limit], data.y[:limit])
    return data
