"""QCFS and Floor: semantics traced by hand, attribute checks."""

import numpy as np
import pytest

from neurodeploy.ir import QCFS, Floor, TensorType


def test_floor_by_hand():
    x = np.array([[-1.5, -1.0, -0.0, 0.25, 0.999, 2.0]], np.float32)
    y = Floor(name="f", inputs=("x",), output="y").forward([x])
    assert y.dtype == np.float32
    assert y.tolist() == [[-2.0, -1.0, 0.0, 0.0, 0.0, 2.0]]


def test_qcfs_by_hand():
    # λ = 2, L = 4: steps of 0.5; x·L/λ + 1/2 = 2x + 1/2, floored, over 4, clipped to [0, 1], times 2.
    op = QCFS(name="q", inputs=("x",), output="y", lam=2.0, levels=4)
    x = np.array([[-3.0, -0.25, 0.0, 0.24, 0.25, 0.74, 0.75, 1.0, 1.75, 1.76, 2.0, 9.0]], np.float32)
    expected = [[0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]]
    assert op.forward([x]).tolist() == expected


@pytest.mark.parametrize("levels", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("lam", [0.5, 1.0, 3.7])
def test_qcfs_takes_levels_plus_one_values_and_is_the_clipped_relu_rounded(levels, lam):
    op = QCFS(name="q", inputs=("x",), output="y", lam=lam, levels=levels)
    x = np.linspace(-1, 2 * lam, 10001, dtype=np.float32)[None]
    y = op.forward([x])
    assert len(np.unique(y)) == levels + 1
    assert np.abs(y - np.clip(x, 0, lam)).max() <= lam / (2 * levels) * (1 + 1e-5)
    assert op.infer([TensorType((10001,))]) == TensorType((10001,))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lam": 0.0}, "lam must be a positive"),
        ({"lam": float("inf")}, "lam must be a positive"),
        ({"levels": 0}, "levels must be an int >= 1"),
        ({"levels": 2.5}, "levels must be an int >= 1"),
        ({"shift": 1.0}, r"shift must be in \[0, 1\)"),
        ({"shift": -0.5}, r"shift must be in \[0, 1\)"),
    ],
)
def test_qcfs_rejects_bad_attributes(changes, message):
    op = QCFS(name="q", inputs=("x",), output="y", **{"lam": 1.0, "levels": 4, **changes})
    with pytest.raises(ValueError, match=rf"QCFS 'q': {message}"):
        op.verify()
