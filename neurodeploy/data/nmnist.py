"""N-MNIST: event-camera recordings of MNIST digits (Orchard et al. 2015), in its original binary format.

A sample is one file of 5-byte events: x (8 bits), y (8 bits), then 24 bits whose top bit is the polarity and
whose low 23 bits are the timestamp in microseconds. The sensor is 34 x 34 pixels with two polarities; a
sample lasts about 300 ms. The shared subset (``nmnist-small/``) holds ``1.bs2 ... 1000.bs2`` (training,
labels in ``train1K.txt``) and ``60001.bs2 ... 60100.bs2`` (test, labels in ``test100.txt``).

For an SNN the events are binned into frames, ``(T, 2, 34, 34)`` event counts with T = window / bin, laid out
(polarity, y, x), polarity 0 first; an SNN run with the ``events`` encoding takes frame t at step t. The ANN
sees the mean of those frames over time (:func:`mean_frames`), so its input is exactly the SNN's input
averaged over the run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodeploy.errors import DataError
from neurodeploy.limits import check_steps

SENSOR = (2, 34, 34)
"""(polarity, height = y, width = x)."""
DEFAULT_BIN_US = 1000
DEFAULT_WINDOW_US = 300_000
FOLDER = "nmnist-small"
LABEL_FILES = {"train": "train1K.txt", "test": "test100.txt"}

EVENT_DTYPE = np.dtype([("x", np.uint8), ("y", np.uint8), ("p", np.uint8), ("t", np.uint32)])
"""One event: pixel column x, row y, polarity p (0 or 1) and timestamp t in microseconds."""


def decode_events(raw: bytes | np.ndarray, where: str = "events") -> np.ndarray:
    """Decode N-MNIST's 5-byte events (vectorised) into a structured array of ``EVENT_DTYPE``."""
    data = np.frombuffer(raw, np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) else np.asarray(raw)
    if data.dtype != np.uint8 or data.ndim != 1:
        raise DataError(f"{where}: expected raw bytes, got {data.dtype} of shape {data.shape}")
    if data.size % 5:
        raise DataError(
            f"{where}: {data.size} bytes is not a whole number of 5-byte N-MNIST events (truncated or not an "
            "N-MNIST file)"
        )
    fields = data.reshape(-1, 5)
    events = np.empty(len(fields), EVENT_DTYPE)
    events["x"] = fields[:, 0]
    events["y"] = fields[:, 1]
    events["p"] = fields[:, 2] >> 7  # the top bit of the 24-bit word
    low = fields[:, 2].astype(np.uint32) & 0x7F  # the 24-bit word's low 23 bits: the timestamp
    events["t"] = (low << 16) | (fields[:, 3].astype(np.uint32) << 8) | fields[:, 4].astype(np.uint32)
    return events


def read_events(path: str | Path) -> np.ndarray:
    """The events of one N-MNIST file (see :func:`decode_events`)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read N-MNIST sample {path}: {exc}") from exc
    return decode_events(raw, str(path))


def frame_count(bin_us: int, window_us: int) -> int:
    """T = window / bin; both positive, the window a whole number of bins, T within ``NEURODEPLOY_MAX_STEPS``
    (one frame per time step)."""
    if bin_us < 1 or window_us < 1:
        raise DataError(f"bin and window must be positive microseconds, got bin_us={bin_us}, window_us={window_us}")
    if window_us % bin_us:
        raise DataError(f"window_us={window_us} is not a whole number of bins of {bin_us} us; pick a divisor")
    frames = window_us // bin_us
    check_steps(frames, f"event frames of {bin_us} us over {window_us} us (one per time step)")
    return frames


def bin_events(
    events: np.ndarray, bin_us: int, window_us: int, shape: tuple[int, int, int] = SENSOR, where: str = "events"
) -> np.ndarray:
    """Event counts per time bin: ``(T, polarities, height, width)`` float32, T = window / bin. Events at or
    after ``window_us`` are dropped; an event outside ``shape`` is an error."""
    frames = frame_count(bin_us, window_us)
    polarities, height, width = shape
    t = events["t"].astype(np.int64)
    keep = t < window_us
    x, y, p, t = (events["x"][keep].astype(np.int64), events["y"][keep].astype(np.int64), events["p"][keep], t[keep])
    if len(t) and (x.max() >= width or y.max() >= height or int(p.max()) >= polarities):
        raise DataError(
            f"{where}: an event at x={int(x.max())}, y={int(y.max())}, polarity {int(p.max())} lies outside the "
            f"{width}x{height} sensor with {polarities} polarities"
        )
    index = (((t // bin_us) * polarities + p) * height + y) * width + x
    counts = np.bincount(index, minlength=frames * polarities * height * width)
    return counts.astype(np.float32).reshape(frames, polarities, height, width)


def mean_frames(frames: np.ndarray) -> np.ndarray:
    """The ANN's input: the mean over time (axis 1) of a batch of frames (N, T, ...)."""
    return np.asarray(frames, np.float32).mean(axis=1, dtype=np.float32)


def read_labels(path: Path) -> list[tuple[int, int]]:
    """(sample id, class) per line of a label file; lines starting with ``#`` are comments."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read N-MNIST labels {path}: {exc}") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        try:
            sample, label = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise DataError(f"{path}, line {number}: expected 'sample-id class', got {line!r}") from None
        if not 0 <= label <= 9:
            raise DataError(f"{path}, line {number}: class {label} is not a digit")
        rows.append((sample, label))
    if not rows:
        raise DataError(f"{path} lists no samples")
    return rows


def load_nmnist(
    folder: Path,
    split: str,
    limit: int | None = None,
    bin_us: int = DEFAULT_BIN_US,
    window_us: int = DEFAULT_WINDOW_US,
    frames: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a split: x is (N, T, 2, 34, 34) frames, or with ``frames=False`` their mean over time
    (N, 2, 34, 34), computed without building the frames. Only the first ``limit`` samples are read."""
    count = frame_count(bin_us, window_us)
    if not folder.is_dir():
        raise DataError(f"N-MNIST folder {folder} does not exist; expected the shared data's {FOLDER}/")
    rows = read_labels(folder / LABEL_FILES[split])
    if limit is not None:
        rows = rows[:limit]
    x = np.zeros((len(rows), count, *SENSOR) if frames else (len(rows), *SENSOR), np.float32)
    for i, (sample, _) in enumerate(rows):
        path = folder / f"{sample}.bs2"
        events = read_events(path)
        if frames:
            x[i] = bin_events(events, bin_us, window_us, where=str(path))
        else:  # one bin over the whole window holds the sum of the frames
            x[i] = bin_events(events, window_us, window_us, where=str(path))[0] / np.float32(count)
    return x, np.array([label for _, label in rows], np.int64)
