"""CIFAR-10 from the shared data's JPEG copy (``cifar10/cifar10-jpg.tar.gz``).

The archive holds ``train/<class>/0000.jpg ... 4999.jpg`` and ``test/<class>/0000.jpg ... 0999.jpg``, classes in
the canonical order (airplane, automobile, ..., truck). The images are JPEG re-encodings of the original
pixels, so accuracies are comparable with published CIFAR-10 numbers to within a few tenths of a point; report
them as "CIFAR-10 (JPEG copy)". Decoding needs Pillow.

Samples are interleaved by class: sample i is image ``i // 10`` of class ``i % 10``, so the first N samples
(a calibration set, a ``--limit``) hold every class equally. Pixels are float32 in [0, 1], layout (N, 3, 32,
32), with no mean/std normalization: a model trained on normalized inputs must carry its normalization.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import Path

import numpy as np

from neurodeploy.errors import DataError

ARCHIVE = Path("cifar10") / "cifar10-jpg.tar.gz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_CLASS = {"train": 5000, "test": 1000}


def member_name(split: str, index: int) -> str:
    """The archive member of sample ``index`` in the interleaved order."""
    return f"{split}/{CLASSES[index % 10]}/{index // 10:04d}.jpg"


def load_cifar10(root: Path, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: (N, 3, 32, 32) float32 in [0, 1] and int64 labels; only the first ``limit`` samples are
    decoded."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading CIFAR-10 needs Pillow to decode its JPEGs; pip install pillow") from None
    path = root / ARCHIVE
    if not path.is_file():
        raise DataError(f"CIFAR-10 archive {path} does not exist; expected the shared data's {ARCHIVE}")
    total = 10 * PER_CLASS[split]
    count = total if limit is None else min(limit, total)
    wanted = {member_name(split, i): i for i in range(count)}
    x = np.zeros((count, 3, 32, 32), np.float32)
    seen: set[str] = set()
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                index = wanted.get(member.name)
                if index is None or not member.isfile():
                    continue
                data = archive.extractfile(member)
                if data is None:
                    continue
                with Image.open(io.BytesIO(data.read())) as image:
                    pixels = np.asarray(image.convert("RGB"), np.uint8)
                if pixels.shape != (32, 32, 3):
                    raise DataError(f"{path}: {member.name} is {pixels.shape[1]}x{pixels.shape[0]}, expected 32x32")
                x[index] = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
                seen.add(member.name)
                if len(seen) == count:
                    break
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if len(seen) != count:
        missing = sorted(set(wanted) - seen)
        raise DataError(f"{path} lacks {len(missing)} {split} image(s), e.g. {', '.join(missing[:3])}")
    return x, np.arange(count, dtype=np.int64) % 10
