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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.data import cifar10, nmnist
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


def data_folder(subfolder: str) -> Path | None:
    """The shared data's ``subfolder`` (e.g. ``nmnist-small``), or None when there is no data folder or it lacks
    that subfolder (for callers that can go without, such as tests that then skip)."""
    try:
        folder = data_root() / subfolder
    except DataError:
        return None
    return folder if folder.is_dir() else None


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
    """Inputs as float32 in the layout a model takes, batch first, and integer labels.

    ``encoding`` says what ``x`` holds: ``direct``, images (N, C, H, W); ``events``, event frames
    (N, T, C, H, W), one per time step, whose mean over time is what the ANN sees (:meth:`analog`).
    ``options`` records how the data was prepared (e.g. the bin width of event frames).
    """

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    encoding: str = "direct"
    options: dict[str, Any] = field(default_factory=dict)

    def analog(self) -> np.ndarray:
        """The ANN's input: ``x``, or for event frames their mean over time."""
        if self.encoding == "events":
            return self.x.mean(axis=1, dtype=np.float32)
        return self.x

    def describe(self) -> dict[str, Any]:
        """What reports record: name, split, sample count, encoding and options."""
        return {
            "name": self.name,
            "split": self.split,
            "samples": len(self.x),
            "encoding": self.encoding,
            "options": dict(self.options),
        }


def _load_mnist(split: str, limit: int | None, analog: bool) -> Dataset:
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = data_root() / "mnist"
    images = read_idx(folder / f"{prefix}-images.idx3-ubyte.gz")[:limit]  # converting only what is kept
    labels = read_idx(folder / f"{prefix}-labels.idx1-ubyte.gz")[:limit]
    # Pixels scaled to [0, 1]: the bundled models take exactly this, with no mean/std normalization.
    x = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return Dataset("mnist", split, x, labels.astype(np.int64))


def _load_nmnist(
    split: str,
    limit: int | None,
    analog: bool,
    bin_us: int = nmnist.DEFAULT_BIN_US,
    window_us: int = nmnist.DEFAULT_WINDOW_US,
) -> Dataset:
    x, y = nmnist.load_nmnist(data_root() / nmnist.FOLDER, split, limit, bin_us, window_us, frames=not analog)
    options = {"bin_us": bin_us, "window_us": window_us, "frames": nmnist.frame_count(bin_us, window_us)}
    return Dataset("nmnist", split, x, y, "direct" if analog else "events", options)


def _load_cifar10(split: str, limit: int | None, analog: bool) -> Dataset:
    x, y = cifar10.load_cifar10(data_root(), split, limit)
    return Dataset("cifar10", split, x, y, options={"order": "interleaved by class"})


_LOADERS: dict[str, Callable[..., Dataset]] = {"mnist": _load_mnist, "nmnist": _load_nmnist, "cifar10": _load_cifar10}


def is_dataset(name: str) -> bool:
    """Whether ``name`` names a data set (rather than a file)."""
    return name in _LOADERS


_OPTIONS: dict[str, tuple[str, ...]] = {"mnist": (), "nmnist": ("bin_us", "window_us"), "cifar10": ()}


def load_dataset(
    name: str, split: str = "test", limit: int | None = None, *, analog: bool = False, **options: Any
) -> Dataset:
    """Load a named data set split ("train" or "test"), optionally only its first ``limit`` samples.

    ``mnist``: images (N, 1, 28, 28) in [0, 1]. ``cifar10``: images (N, 3, 32, 32) in [0, 1], classes
    interleaved (see :mod:`neurodeploy.data.cifar10`; needs Pillow). ``nmnist``: event frames (N, T, 2, 34, 34),
    options ``bin_us`` (default 1000) and ``window_us`` (default 300000), T = window / bin; see
    :mod:`neurodeploy.data.nmnist`.
    ``analog=True`` gives what the ANN takes instead: for event data the mean frame (N, 2, 34, 34), computed
    without building the frames; other data sets are unchanged.
    """
    if (loader := _LOADERS.get(name)) is None:
        raise DataError(f"Unknown data set {name!r}; known: {', '.join(sorted(_LOADERS))}, or pass an .npy/.npz file.")
    if split not in ("train", "test"):
        raise DataError(f"Unknown split {split!r} for {name}; use 'train' or 'test'.")
    if unknown := sorted(set(options) - set(_OPTIONS[name])):
        allowed = ", ".join(_OPTIONS[name]) or "none"
        raise DataError(f"data set {name} has no option {', '.join(unknown)} (its options: {allowed})")
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    data = loader(split, limit, analog, **options)
    if limit is not None:
        data = replace(data, x=data.x[:limit], y=data.y[:limit])
    return data
