"""The emulator against hand-derived integer traces (event-driven and time-binned modes)."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy_speck.backend import direct_events
from neurodeploy_speck.emulator import Network
from speck_graphs import integer_document


def one_neuron(weight, threshold, *, bias=0, low=-(2**15), initial=0, reset="subtract", pixels=1):
    spec = {
        "weight": np.asarray(weight).reshape(1, pixels, 1, 1),
        "bias": [bias],
        "threshold": threshold,
        "low": low,
        "initial": initial,
        "reset": reset,
    }
    return Network.from_config(integer_document([spec], (pixels, 1, 1)))


def frames(counts, pixels=1):
    """(T,) or (T, pixels) event counts -> (1, T, pixels, 1, 1)."""
    return np.asarray(counts).reshape(1, -1, pixels, 1, 1)


def spikes(run, network):
    return run.counts[network.output_core].reshape(-1).tolist()


def test_event_mode_fires_at_most_once_per_input_event():
    # w = 10, thr = 5: an event lifts v to 10, the neuron fires once and keeps v = 5 (silent until the next event,
    # as the chip's asynchronous neuron); the next event: 15 -> fires -> 10. Binned (MultiSpike) fires 2 then 2.
    net = one_neuron(10, 5)
    x = frames([1, 1])
    assert spikes(net.run_events(x), net) == [1, 1]
    assert spikes(net.run_binned(x), net) == [2, 2]


def test_event_mode_several_events_in_one_step():
    # w = 3, thr = 5, counts [1, 2, 0, 3]: v = 3 | 6 -> fire -> 1, 4 | 4 | 7 -> fire -> 2, 5 -> fire -> 0, 3
    net = one_neuron(3, 5)
    x = frames([1, 2, 0, 3])
    assert spikes(net.run_events(x), net) == [0, 1, 0, 2]
    # binned: v = 3 | 9 -> 1 spike, 4 | 4 | 13 -> 2 spikes, 3
    assert spikes(net.run_binned(x), net) == [0, 1, 0, 2]


def test_event_order_matters_in_event_mode_only():
    # pixel 0 (w = +6) comes before pixel 1 (w = -6) in raster order: +6 -> fire -> 1, then -6 -> -5.
    # Binned mode sums the step first: v = 0, no spike.
    net = one_neuron([6, -6], 5, pixels=2)
    x = frames([[1, 1]], pixels=2)
    assert spikes(net.run_events(x), net) == [1]
    assert spikes(net.run_binned(x), net) == [0]


@pytest.mark.parametrize("mode", ["events", "binned"])
def test_threshold_low_clips_the_state(mode):
    # w = -7, threshold_low = -10: v = -7, -10 (clipped from -14), -10; then a +12 event (second pixel) gives 2.
    net = one_neuron([-7, 12], 5, low=-10, pixels=2)
    x = frames([[1, 0], [1, 0], [1, 0], [0, 1]], pixels=2)
    run = net.run_events(x) if mode == "events" else net.run_binned(x)
    assert spikes(run, net) == [0, 0, 0, 0]
    x2 = frames([[1, 0], [1, 0], [0, 1], [0, 1]], pixels=2)
    # v = -7, -10, 2, 14 -> spikes: event mode 1 (v = 9), binned 2 (v = 4)
    run = net.run_events(x2) if mode == "events" else net.run_binned(x2)
    assert spikes(run, net) == [0, 0, 0, 1 if mode == "events" else 2]


def test_bias_is_one_leak_tick_per_step():
    # bias 2, thr 5, no input: v = 2, 4, 6 -> fire -> 1, 3, 5 -> fire -> 0
    net = one_neuron(0, 5, bias=2)
    x = frames([0, 0, 0, 0, 0])
    assert spikes(net.run_events(x), net) == [0, 0, 1, 0, 1]
    assert spikes(net.run_binned(x), net) == [0, 0, 1, 0, 1]


def test_initial_value_and_return_to_zero():
    # v0 = 4, w = 3, thr = 5, reset to zero: 7 -> fire -> 0, 3, 6 -> fire -> 0
    net = one_neuron(3, 5, initial=4, reset="zero")
    x = frames([1, 1, 1])
    assert spikes(net.run_events(x), net) == [1, 0, 1]
    assert spikes(net.run_binned(x), net) == [1, 0, 1]
    # binned with reset to zero: 4 + 12 = 16 -> trunc(16 / 5) = 3 spikes (sinabs MultiSpike), then v = 0
    assert spikes(net.run_binned(frames([4])), net) == [3]


def test_return_to_zero_event_trace():
    # v0 = 4, w = 3, thr = 5, four events in one step: 7 -> fire -> 0, 3, 6 -> fire -> 0, 3: 2 spikes
    net = one_neuron(3, 5, initial=4, reset="zero")
    assert spikes(net.run_events(frames([4])), net) == [2]


def test_sum_pooling_between_two_cores():
    # layer 0: 1 channel 2x2, kernel 1, w = 5, thr = 5 (every event makes a spike); sum pooling 2 -> layer 1:
    # one neuron, w = 1, thr = 3. Four input events -> four spikes -> four events on one position: v = 1, 2, 3
    # -> fire -> 0, 1: one spike. Binned: v = 4 -> one spike, v = 1.
    doc = integer_document(
        [
            {"weight": np.full((1, 1, 1, 1), 5), "threshold": 5, "pool": 2},
            {"weight": np.ones((1, 1, 1, 1)), "threshold": 3},
        ],
        (1, 2, 2),
    )
    net = Network.from_config(doc)
    x = np.ones((1, 1, 1, 2, 2), np.int64)
    for run in (net.run_events(x, record=(0, 1)), net.run_binned(x, record=(0, 1))):
        assert run.counts[0].sum() == 4
        assert run.counts[1].reshape(-1).tolist() == [1]


def test_return_to_zero_one_event_per_step():
    net = one_neuron(3, 5, initial=4, reset="zero")
    # one event per step: 7 -> 0 | 3 | 6 -> 0 | 3
    assert spikes(net.run_events(frames([1, 1, 1, 1])), net) == [1, 0, 1, 0]


def test_direct_events_carry_x_per_step():
    x = np.array([[0.0, 0.25, 0.5, 1.0, 2.5]])
    counts = direct_events(x, 8)
    assert counts.shape == (1, 8, 5)
    assert counts.sum(axis=1).tolist() == [[0, 2, 4, 8, 20]]
    assert counts[0, :, 1].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]  # floor(t/4 + 1/2) steps up at t = 2 and 6
    assert counts[0, :, 4].tolist() == [3, 2, 3, 2, 3, 2, 3, 2]


def test_dvs_pooling_of_the_input_in_both_modes():
    # a 1 x 5 x 5 input pooled 2 x 2 by the DVS layer (the last row and column cut) into a 1x1 kernel with
    # w = thr: every input event inside the 4 x 4 window is one spike at its pooled position, in both modes
    doc = integer_document([{"weight": np.full((1, 1, 1, 1), 7), "threshold": 7}], (1, 5, 5), input_pooling=2)
    net = Network.from_config(doc)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(2, 3, 1, 5, 5))
    want = x[:, :, :, :4, :4].reshape(2, 3, 1, 2, 2, 2, 2).sum(axis=(4, 6))
    for run in (net.run_events(x), net.run_binned(x)):
        np.testing.assert_array_equal(run.counts[net.output_core], want)


@pytest.mark.parametrize("seed", range(6))
def test_fan_out_maps_match_the_core_metrics(seed):
    from neurodeploy.ir.ops import Conv2d
    from neurodeploy.metrics import conv_fan_out

    rng = np.random.default_rng(seed)
    k, stride, pad = int(rng.integers(1, 5)), int(rng.choice([1, 2])), int(rng.integers(0, 2))
    weight = rng.integers(-2, 3, size=(3, 2, k, k))  # zeros included: they are no synapses
    doc = integer_document([{"weight": weight, "threshold": 5, "stride": stride, "padding": pad}], (2, 9, 9))
    core = Network.from_config(doc).cores[0]
    op = Conv2d(
        name="c", inputs=("x",), output="y", weight=weight.astype(np.float32), stride=(stride,) * 2, padding=(pad,) * 4
    )
    np.testing.assert_array_equal(core.fan_out, conv_fan_out(op, (2, 9, 9)))


def test_synops_count_spikes_times_synapses_reached():
    # 3x3 kernel, padding 1, 2 output channels, all weights non-zero: an input event in the centre of a 3x3 map
    # reaches 2 * 9 synapses, one in a corner 2 * 4; the output core is read out (no SynOps)
    doc = integer_document([{"weight": np.ones((2, 1, 3, 3)), "threshold": 100, "padding": 1}], (1, 3, 3))
    net = Network.from_config(doc)
    x = np.zeros((1, 2, 1, 3, 3), np.int64)
    x[0, 0, 0, 1, 1] = 1
    x[0, 1, 0, 0, 0] = 2
    for run in (net.run_binned(x), net.run_events(x)):
        assert run.synops[-1].tolist() == [[18, 16]]
        assert run.synops[net.output_core].sum() == 0
