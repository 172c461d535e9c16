"""IF neuron dynamics against hand-derived traces (values chosen to be exact in binary floating point)."""

import numpy as np
import pytest

from neurodeploy.ir import IF


def run(neuron: IF, current: float, steps: int, shape=(1,)):
    state = neuron.init_state(1, shape)
    spikes, potentials = [], []
    for _ in range(steps):
        spikes.append(float(neuron.step(state, [np.full((1, *shape), current, np.float32)]).ravel()[0]))
        potentials.append(float(state["v"].ravel()[0]))
    return spikes, potentials


def test_subtractive_reset_trace_by_hand():
    # theta = 1, v0 = 0.5, input 0.375 per step:
    # v: .875, 1.25 -> spike -> .25, .625, 1.0 -> spike (>=) -> 0, .375, .75, 1.125 -> spike -> .125, .5
    neuron = IF(name="n", inputs=("x",), output="y", threshold=np.float32(1.0), reset="subtract", initial=0.5)
    spikes, v = run(neuron, 0.375, 8)
    assert spikes == [0, 1, 0, 1, 0, 0, 1, 0]
    assert v == [0.875, 0.25, 0.625, 0.0, 0.375, 0.75, 0.125, 0.5]


def test_reset_to_zero_trace_by_hand():
    # v: .875, 1.25 -> spike -> 0, .375, .75, 1.125 -> spike -> 0, .375, .75, 1.125 -> spike -> 0
    neuron = IF(name="n", inputs=("x",), output="y", threshold=np.float32(1.0), reset="zero", initial=0.5)
    spikes, v = run(neuron, 0.375, 8)
    assert spikes == [0, 1, 0, 0, 1, 0, 0, 1]
    assert v == [0.875, 0.0, 0.375, 0.75, 0.0, 0.375, 0.75, 0.0]


def test_threshold_scales_dynamics_and_negative_input_never_fires():
    neuron = IF(name="n", inputs=("x",), output="y", threshold=np.float32(2.0), initial=0.0)
    spikes, v = run(neuron, 0.75, 4)  # v: .75, 1.5, 2.25 -> spike -> .25, 1.0
    assert spikes == [0, 0, 1, 0]
    assert v == [0.75, 1.5, 0.25, 1.0]
    spikes, _ = run(neuron, -0.5, 16)
    assert sum(spikes) == 0


def test_per_channel_thresholds_apply_along_the_channel_axis():
    neuron = IF(name="n", inputs=("x",), output="y", threshold=np.array([1.0, 4.0], np.float32), initial=0.0)
    state = neuron.init_state(1, (2, 1, 1))
    total = np.zeros((1, 2, 1, 1))
    for _ in range(8):
        total += neuron.step(state, [np.ones((1, 2, 1, 1), np.float32)])
    assert total.ravel().tolist() == [8.0, 2.0]


@pytest.mark.parametrize("current", [0.1, 0.33, 0.5, 0.77, 0.99])
def test_rate_converges_to_forward(current):
    neuron = IF(name="n", inputs=("x",), output="y", threshold=np.float32(1.0))
    spikes, _ = run(neuron, current, 1000)
    limit = float(neuron.forward([np.array([[current]], np.float32)]).ravel()[0])
    assert abs(np.mean(spikes) - limit) <= 1e-3  # subtractive reset: error below 1/T
