"""The event-driven synapse loops (numba) against the numpy matrix products they replace, value for value.

Both paths compute Lava's integer sums; the numpy ones are checked against Lava's ``fixed_pt`` models in
``tests/lava``. Here every geometry a compiled artifact can hold (stride, padding, dilation, groups, folded
average pooling, binary and graded input, batch) gives equal arrays on both paths, and a sparse synapse list
(one-to-one skips, delayed convolution taps, zero weights) equals its bincount. Without numba the module skips,
unless NEURODEPLOY_REQUIRE_NUMBA=1 (``make test-main``) demands it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from neurodeploy_loihi import _compiled
from neurodeploy_loihi.emulator import ConvSynapse, SparseSynapse

if os.environ.get("NEURODEPLOY_REQUIRE_NUMBA") == "1":
    import numba  # noqa: F401  (must be installed here: fail, not skip)
else:
    pytest.importorskip("numba", reason="numba is not installed (set NEURODEPLOY_REQUIRE_NUMBA=1 to fail instead)")


def both_paths(monkeypatch, synapse, spikes, graded):
    """The synapse's accumulation with the events walked (density cut 1.0) and as a matrix product (cut -1)."""
    monkeypatch.setattr(_compiled, "EVENT_DENSITY", 1.0)
    monkeypatch.setattr(_compiled, "EVENT_ADDS", float("inf"))
    events = synapse.accumulate(spikes, graded=graded)
    monkeypatch.setattr(_compiled, "EVENT_DENSITY", -1.0)
    monkeypatch.setattr(_compiled, "kernels", lambda: None)  # as without numba
    dense = synapse.accumulate(spikes, graded=graded)
    monkeypatch.undo()
    return events, dense


CONVS = [
    # (input X, Y, C), C_out, kernel, stride, padding, dilation, groups, pool
    ((9, 7, 3), 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, (1, 1)),
    ((10, 10, 4), 6, (3, 2), (2, 1), (1, 0), (1, 1), 2, (1, 1)),
    ((11, 9, 2), 3, (3, 3), (1, 2), (2, 2), (2, 1), 1, (1, 1)),
    ((8, 8, 6), 6, (3, 3), (1, 1), (1, 1), (1, 1), 6, (1, 1)),  # depthwise
    ((8, 8, 3), 5, (1, 1), (2, 2), (0, 0), (1, 1), 1, (1, 1)),  # a 1x1 stride-2 projection
    ((12, 12, 4), 5, (3, 3), (2, 2), (2, 2), (1, 1), 1, (2, 2)),  # average pool folded into the conv
    ((9, 8, 2), 3, (2, 2), (3, 3), (0, 3), (1, 1), 1, (3, 3)),
]


@pytest.mark.parametrize("geometry", CONVS, ids=[f"conv{i}" for i in range(len(CONVS))])
@pytest.mark.parametrize("graded", [False, True], ids=["binary", "graded"])
def test_conv_events_equal_the_matrix_product(monkeypatch, geometry, graded):
    shape, c_out, kernel, stride, padding, dilation, groups, pool = geometry
    rng = np.random.default_rng(sum(shape) + c_out + groups)
    weights = rng.integers(-256, 256, (c_out, *kernel, shape[2] // groups))
    weights[rng.random(weights.shape) < 0.2] = 0
    synapse = ConvSynapse(weights, shape, stride, padding, dilation, groups, pool)
    for batch, density in ((1, 0.05), (3, 0.3), (2, 1.0), (2, 0.0)):
        spikes = rng.random((batch, *shape)) < density
        if graded:
            spikes = spikes * rng.integers(-(1 << 20), 1 << 20, spikes.shape)
        events, dense = both_paths(monkeypatch, synapse, spikes, graded)
        assert events.shape == dense.shape == (batch, *synapse.output_shape)
        np.testing.assert_array_equal(events, dense)


def test_conv_event_sums_wrap_to_24_bits_like_lava(monkeypatch):
    """Payloads large enough that the sum leaves 24 bits: both paths wrap it the same (Lava's signed_clamp)."""
    weights = np.full((1, 3, 3, 2), 255, np.int64)
    synapse = ConvSynapse(weights, (3, 3, 2), padding=(1, 1))
    spikes = np.full((1, 3, 3, 2), 1 << 15, np.int64)
    events, dense = both_paths(monkeypatch, synapse, spikes, graded=True)
    assert np.abs(255 * 18 * (1 << 15)) >= 1 << 23  # the center sum wraps
    np.testing.assert_array_equal(events, dense)


def test_conv_sums_in_the_narrowest_type_that_holds_them(monkeypatch):
    """Spikes sum in int16 where the positive weights' sum (and the negative ones') fits; payloads of both signs
    are bounded by the sum of |weights| instead: here every term of the center output is +510, a sum of 55080
    that int16 cannot hold, where the one-sign bound alone (27540) would have chosen it."""
    weights = np.full((1, 3, 3, 12), 255, np.int64)
    weights[..., 6:] = -255
    synapse = ConvSynapse(weights, (3, 3, 12), padding=(1, 1))
    table = _compiled.conv_table(weights, 1)
    assert _compiled.reach(table) == 9 * 6 * 255
    assert _compiled.reach(table, mixed_signs=True) == 9 * 12 * 255
    assert [_compiled.sum_type(b) for b in ((1 << 15) - 1, 1 << 15, (1 << 31) - 1, 1 << 31)] == [
        np.int16,
        np.int32,
        np.int32,
        np.int64,
    ]
    signs = np.where(np.arange(12) < 6, 2, -2)
    for spikes, graded, center in (
        (np.ones((1, 3, 3, 12), bool), False, 0),  # the six positive channels cancel the six negative ones
        (np.broadcast_to(signs, (1, 3, 3, 12)).copy(), True, 9 * 12 * 510),
        (np.full((1, 3, 3, 12), 1 << 18), True, None),  # beyond int32: int64, wrapped to 24 bits
    ):
        events, dense = both_paths(monkeypatch, synapse, spikes, graded)
        np.testing.assert_array_equal(events, dense)
        if center is not None:
            assert events[0, 1, 1, 0] == center


@pytest.mark.parametrize("kind", ["one_to_one", "taps", "zeros"])
@pytest.mark.parametrize("graded", [False, True], ids=["binary", "graded"])
def test_sparse_events_equal_the_sum(monkeypatch, kind, graded):
    rng = np.random.default_rng(len(kind))
    n_in, n_out = 40, 30
    if kind == "one_to_one":
        rows, cols = rng.permutation(n_out), rng.permutation(n_in)[:n_out]
    else:
        rows, cols = rng.integers(0, n_out, 200), rng.integers(0, n_in, 200)
    weights = rng.integers(-128, 128, len(rows))
    if kind == "zeros":
        weights[::3] = 0
    synapse = SparseSynapse(rows, cols, weights, (n_out, n_in), weight_exp=-1)
    assert synapse._one_to_one == (kind == "one_to_one")
    # stored narrow (12 bytes a synapse, not 32), the sums below in int64 all the same
    assert (synapse.rows.dtype, synapse.cols.dtype) == (np.int32, np.int32)
    assert (synapse.weights.dtype, synapse.effective_weights.dtype) == (np.int16, np.int16)
    spikes = rng.random((4, n_in)) < 0.3
    if graded:
        spikes = spikes * rng.integers(-(1 << 20), 1 << 20, spikes.shape)
    events, dense = both_paths(monkeypatch, synapse, spikes, graded)
    # and against the synapse list summed one by one, in Python integers
    expected = np.zeros((4, n_out), np.int64)
    s = np.asarray(spikes, np.int64)
    for r, c, w in zip(rows, cols, synapse.effective_weights):
        expected[:, r] += s[:, c] * int(w)
    expected = ((expected >> 1) + (1 << 31)) % (1 << 32) - (1 << 31)
    np.testing.assert_array_equal(events, expected)
    np.testing.assert_array_equal(dense, expected)


def test_dense_input_takes_the_matrix_product(monkeypatch):
    """Above EVENT_DENSITY, or EVENT_ADDS additions per input, the loops are not called (BLAS is faster there)."""
    synapse = ConvSynapse(np.ones((2, 3, 3, 2), np.int64), (5, 5, 2), padding=(1, 1))

    def refuse(*args, **kwargs):
        raise AssertionError("the event loop ran on dense input")

    monkeypatch.setattr(_compiled, "conv", refuse)
    synapse.accumulate(np.ones((1, 5, 5, 2), bool))
    one = np.arange(50).reshape(1, 5, 5, 2) == 7  # 2% of the inputs
    with pytest.raises(AssertionError, match="event loop"):
        synapse.accumulate(one)
    wide = ConvSynapse(np.ones((4096, 3, 3, 2), np.int64), (5, 5, 2), padding=(1, 1))
    wide.accumulate(one)  # 2% x 4096 outputs = 82 additions per input: the matrix product


@pytest.mark.parametrize("kind", ["lif", "subtractive"])
@pytest.mark.parametrize("decays", [(4095, 0), (0, 0), (1000, 300), (4095, 4095), (17, 4000)])
def test_fused_neuron_step_equals_the_numpy_step(kind, decays):
    """u, v, spikes, folds and saturations of the compiled step against the numpy functions, with messages and
    states at and beyond every wrap (int32 shift and sum), fold (24-bit u) and saturation (24-bit v)."""
    from neurodeploy_loihi import fixed_point as fp
    from neurodeploy_loihi.emulator import Neuron, _subthreshold

    rng = np.random.default_rng(decays[0] + decays[1])
    du, dv = decays
    neuron = Neuron(du=du, dv=dv, vth=int(rng.integers(0, 1 << 17)), kind=kind)
    shape = (3, 5, 4, 2)
    limit = fp.STATE_LIMIT
    edges = np.array([0, 1, -1, limit - 1, -limit + 1, limit, -limit, (1 << 17) - 1, 1 << 17, -(1 << 17)])
    for draw in range(6):
        message = rng.integers(-(1 << 31), 1 << 31, shape)
        if draw % 2:
            message = rng.integers(-(1 << 18), 1 << 18, shape)
        message.flat[: len(edges)] = edges
        u = rng.integers(-limit + 1, limit, shape)
        v = rng.integers(-limit + 1, limit, shape)
        u.flat[-len(edges) :] = np.clip(edges, -limit + 1, limit - 1)
        bias = rng.integers(-(1 << 19), 1 << 19, shape[1:]) if draw > 2 else np.int64(draw * 1000 - 2000)
        stats = np.zeros((4, shape[0]), np.int64)
        stats[2:, 0] = limit  # a maximum from earlier steps: kept unless this step exceeds it
        u_c, v_c, fired_c, folded_c, saturated_c = _compiled.neurons(message, u.copy(), v.copy(), bias, neuron, stats)
        u_n, v_sum, folded_n, saturated_n = _subthreshold(neuron, u, v, message, np.asarray(bias, np.int64))
        fired_n = fp.spikes_of(v_sum, neuron.threshold)
        if kind == "lif":
            v_n = fp.reset_to_zero(v_sum, fired_n)
        else:
            v_n = fp.reset_by_subtraction(v_sum, fired_n, neuron.threshold)
        for got, want in ((u_c, u_n), (v_c, v_n), (fired_c, fired_n), (folded_c, folded_n), (saturated_c, saturated_n)):
            np.testing.assert_array_equal(got, want)
        assert folded_n.any() or draw % 2  # the edges are reached
        per_sample = [np.count_nonzero(f.reshape(shape[0], -1), axis=1) for f in (folded_n, saturated_n)]
        per_sample += [np.abs(a).reshape(shape[0], -1).max(axis=1) for a in (u_n, v_n)]
        per_sample[2][0], per_sample[3][0] = max(per_sample[2][0], limit), max(per_sample[3][0], limit)
        np.testing.assert_array_equal(stats, np.stack(per_sample))
