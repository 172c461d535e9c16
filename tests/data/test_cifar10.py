"""CIFAR-10 from the JPEG archive: interleaved class order, pixels in [0, 1], errors naming the archive."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from neurodeploy.data.cifar10 import CLASSES, load_cifar10, member_name
from neurodeploy.errors import DataError

Image = pytest.importorskip("PIL.Image")


def fake_archive(root, images: dict[str, np.ndarray]) -> None:
    (root / "cifar10").mkdir(parents=True)
    with tarfile.open(root / "cifar10" / "cifar10-jpg.tar.gz", "w:gz") as archive:
        for name, pixels in images.items():
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")  # lossless, so the test can compare pixels
            info = tarfile.TarInfo(name)
            info.size = buffer.tell()
            buffer.seek(0)
            archive.addfile(info, buffer)


def test_interleaved_order_and_pixels(tmp_path):
    rng = np.random.default_rng(0)
    images = {member_name("test", i): rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(12)}
    fake_archive(tmp_path, images)
    x, y = load_cifar10(tmp_path, "test", limit=12)
    assert member_name("test", 11) == "test/automobile/0001.jpg"
    assert y.tolist() == [*range(10), 0, 1]
    assert x.shape == (12, 3, 32, 32)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[11], images["test/automobile/0001.jpg"].transpose(2, 0, 1) / 255.0, rtol=1e-6)
    with pytest.raises(DataError, match="lacks 8 test image"):
        load_cifar10(tmp_path, "test", limit=20)
    with pytest.raises(DataError, match=r"cifar10-jpg\.tar\.gz does not exist"):
        load_cifar10(tmp_path / "elsewhere", "train", limit=1)


def test_real_archive_first_samples():
    from neurodeploy.data import data_root, load_dataset

    try:
        present = (data_root() / "cifar10" / "cifar10-jpg.tar.gz").is_file()
    except DataError:
        present = False
    if not present:
        pytest.skip("the shared data has no CIFAR-10 archive")
    data = load_dataset("cifar10", "test", limit=10)
    assert data.x.shape == (10, 3, 32, 32)
    assert data.y.tolist() == list(range(len(CLASSES)))
    assert 0.0 <= data.x.min() < 0.2
    assert 0.8 < data.x.max() <= 1.0
