"""N-MNIST: the 5-byte event decoder, binning into frames, and the data set (real files when present)."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.data import load_dataset
from neurodeploy.data.calibration import load_calibration
from neurodeploy.data.nmnist import bin_events, decode_events, load_nmnist, mean_frames, read_events
from neurodeploy.errors import DataError


def event_bytes(x: int, y: int, polarity: int, t: int) -> bytes:
    """One event as N-MNIST writes it: x, y, then polarity in the top bit of a 24-bit big-endian timestamp."""
    word = (polarity << 23) | t
    return bytes([x, y, (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF])


def events_of(*rows: tuple[int, int, int, int]) -> np.ndarray:
    return decode_events(b"".join(event_bytes(*r) for r in rows))


def test_decode_hand_built_events():
    raw = bytes([0x05, 0x21, 0x80, 0x00, 0x01]) + bytes([0x21, 0x00, 0x7F, 0xFF, 0xFF])
    events = decode_events(raw)
    assert events["x"].tolist() == [5, 33]
    assert events["y"].tolist() == [33, 0]
    assert events["p"].tolist() == [1, 0]  # top bit of byte 2
    assert events["t"].tolist() == [1, (1 << 23) - 1]  # the low 23 bits, the polarity bit excluded
    both = events_of((1, 2, 1, 8_000_000), (3, 4, 0, 8_000_000))
    assert both["t"].tolist() == [8_000_000, 8_000_000]
    assert both["p"].tolist() == [1, 0]


def test_decode_rejects_a_partial_event():
    with pytest.raises(DataError, match=r"sample\.bs2: 7 bytes"):
        decode_events(bytes(7), "sample.bs2")


def test_bin_events_counts_per_bin_polarity_and_pixel():
    events = events_of(
        (0, 0, 0, 0),
        (0, 0, 0, 999),  # same bin, same pixel: counts 2
        (3, 1, 1, 1000),  # second bin, polarity 1, row y=1, column x=3
        (3, 1, 1, 2999),
        (5, 5, 0, 3000),  # at the window's end: dropped
    )
    frames = bin_events(events, bin_us=1000, window_us=3000, shape=(2, 4, 6))
    assert frames.shape == (3, 2, 4, 6)
    assert frames.dtype == np.float32
    assert frames[0, 0, 0, 0] == 2
    assert frames[1, 1, 1, 3] == 1
    assert frames[2, 1, 1, 3] == 1
    assert frames.sum() == 4
    with pytest.raises(DataError, match="whole number of bins"):
        bin_events(events, bin_us=700, window_us=3000)
    with pytest.raises(DataError, match="outside the 6x4 sensor"):
        bin_events(events_of((6, 0, 0, 0)), bin_us=1000, window_us=3000, shape=(2, 4, 6))


def test_loader_reads_labels_and_names_missing_files(tmp_path):
    folder = tmp_path / "nmnist-small"
    folder.mkdir()
    (folder / "test100.txt").write_text("#sample #class\n60001\t7\n60002\t2\n")
    (folder / "60001.bs2").write_bytes(event_bytes(1, 2, 1, 10) + event_bytes(1, 2, 0, 1500))
    with pytest.raises(DataError, match=r"60002\.bs2"):
        load_nmnist(folder, "test")
    x, y = load_nmnist(folder, "test", limit=1, bin_us=1000, window_us=2000)
    assert x.shape == (1, 2, 2, 34, 34)
    assert y.tolist() == [7]
    assert x[0, 0, 1, 2, 1] == 1
    assert x[0, 1, 0, 2, 1] == 1
    hist, _ = load_nmnist(folder, "test", limit=1, bin_us=1000, window_us=2000, frames=False)
    np.testing.assert_array_equal(hist, mean_frames(x))
    (folder / "train1K.txt").write_text("1 five\n")
    with pytest.raises(DataError, match=r"train1K\.txt, line 1"):
        load_nmnist(folder, "train")


@pytest.fixture(scope="module")
def nmnist_folder():
    from neurodeploy.data import data_folder

    folder = data_folder("nmnist-small")
    if folder is None:
        pytest.skip("the shared data (or its nmnist-small/) is not here")
    return folder


def test_real_first_training_sample(nmnist_folder):
    events = read_events(nmnist_folder / "1.bs2")
    assert len(events) == 4681
    assert events["x"].max() == 33
    assert events["y"].max() == 33
    assert set(np.unique(events["p"]).tolist()) == {0, 1}
    assert np.all(np.diff(events["t"].astype(np.int64)) >= 0)
    data = load_dataset("nmnist", "train", limit=2)
    assert data.y.tolist()[0] == 5
    assert data.x.shape == (2, 300, 2, 34, 34)
    assert data.encoding == "events"
    inside = events["t"] < 300_000
    assert data.x[0].sum() == inside.sum()
    # the ANN's input is the mean of the SNN's frames, also when loaded directly
    analog = load_dataset("nmnist", "train", limit=2, analog=True)
    assert analog.x.shape == (2, 2, 34, 34)
    np.testing.assert_array_equal(analog.x, data.analog())
    np.testing.assert_array_equal(analog.x, data.x.mean(axis=1))


def test_real_test_split_options_and_calibration(nmnist_folder):
    data = load_dataset("nmnist", "test", limit=3, bin_us=10_000, window_us=300_000)
    assert data.x.shape == (3, 30, 2, 34, 34)
    assert data.options == {"bin_us": 10_000, "window_us": 300_000, "frames": 30}
    assert data.y.tolist() == [7, 2, 1]
    calibration = load_calibration("nmnist", 4)
    assert calibration.x.shape == (4, 2, 34, 34)
    assert calibration.source == "nmnist:train[:4]"
    with pytest.raises(DataError, match="no option"):
        load_dataset("nmnist", "test", limit=1, bins=3)
    with pytest.raises(DataError, match="no option"):
        load_dataset("mnist", "test", limit=1, bin_us=3)
