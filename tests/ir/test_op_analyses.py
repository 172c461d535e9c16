"""What each op states for the analyses (fan-in, fan-out maps, bounds, scales), and the defaults on Op."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurodeploy.errors import ConversionError
from neurodeploy.ir import IF, OP_TYPES, Add, Concat, Conv2d, Dense, Op, Softmax
from neurodeploy.ir.kernels import kernel_taps
from neurodeploy.ir.scales import channel_vector, compress

METHODS = ("fan_in", "interior_fan_out", "fan_out_map", "bounds", "carry_scales")
WEIGHTED = {"fan_in", "interior_fan_out", "fan_out_map", "bounds", "carry_scales"}
LINEAR = {"fan_out_map", "bounds", "carry_scales"}

STATES: dict[str, tuple[set[str], bool]] = {
    # op type: (the methods it defines, passes_target_scale); a new op adds its line here
    "Conv2d": (WEIGHTED, False),
    "Dense": (WEIGHTED, False),
    "BatchNorm": (set(), False),
    "Relu": ({"fan_out_map", "bounds"}, False),
    "Clip": ({"fan_out_map", "bounds"}, False),
    "SiLU": ({"fan_out_map", "bounds"}, False),
    "Floor": ({"bounds"}, False),
    "QCFS": ({"bounds"}, False),
    "AvgPool2d": (LINEAR, True),
    "MaxPool2d": ({"fan_out_map", "bounds"}, False),
    "GlobalAvgPool": (LINEAR, True),
    "Reshape": (LINEAR, True),
    "Add": (LINEAR, True),
    "Bias": (LINEAR, False),
    "Scale": (LINEAR, False),
    "Concat": (LINEAR, True),
    "Softmax": (set(), False),
    "IF": ({"fan_out_map"}, False),
    "WindowIF": ({"fan_out_map"}, False),
    "FewSpike": ({"fan_out_map"}, False),
    "SignedIF": ({"fan_out_map"}, False),
    "LIF": ({"fan_out_map"}, False),
    "Threshold": ({"fan_out_map", "bounds"}, False),
    "SpikeMaxPool2d": (LINEAR, True),
    "Delay": (LINEAR, True),
}


CORE_OPS = sorted(name for name, cls in OP_TYPES.items() if cls.__module__.startswith("neurodeploy.ir."))


@pytest.mark.parametrize("op_type", CORE_OPS)
def test_every_op_states_what_the_analyses_ask(op_type):
    cls = OP_TYPES[op_type]
    defined = {m for m in METHODS if getattr(cls, m) is not getattr(Op, m)}
    assert op_type in STATES, f"{op_type}: say which analyses it supports in STATES"
    assert (defined, cls.passes_target_scale) == STATES[op_type]


def _nothing_downstream() -> np.ndarray:
    raise AssertionError("not asked")


def test_defaults_are_no_weights_unknown_wiring_and_no_rule():
    op = Softmax(name="s", inputs=("x",), output="y", axis=0)
    assert op.fan_in() is None
    assert op.interior_fan_out() is None
    assert op.fan_out_map(0, [(3,)], _nothing_downstream) is None
    assert op.carry_scales([np.float32(1)], [(3,)], (3,), lambda: None) is None
    with pytest.raises(ValueError, match="Softmax 's': no bound propagation rule"):
        op.bounds([(-1.0, 1.0)])


def test_neurons_read_one_element_each():
    op = IF(name="n", inputs=("x",), output="y", threshold=np.float32(1))
    fan = op.fan_out_map(0, [(2, 3)], _nothing_downstream)
    assert fan.dtype == np.int64
    assert np.array_equal(fan, np.ones((2, 3)))


def test_weighted_layers_count_fan_in_and_interior_fan_out():
    conv = Conv2d(name="c", inputs=("x",), output="y", weight=np.ones((8, 2, 3, 5)), stride=(2, 2), groups=2)
    assert (conv.fan_in(), conv.interior_fan_out()) == (2 * 3 * 5, 4 * 2 * 3)
    dense = Dense(name="d", inputs=("x",), output="y", weight=np.ones((4, 7)))
    assert (dense.fan_in(), dense.interior_fan_out()) == (7, 4)


def test_dense_bounds_take_the_worst_signs():
    dense = Dense(name="d", inputs=("x",), output="y", weight=np.array([[1.0, -2.0], [0.5, 0.5]]), bias=np.ones(2))
    assert dense.bounds([(-1.0, 1.0)]) == (-2.0, 4.0)


def test_concat_hands_each_input_its_slice_of_the_map():
    op = Concat(name="c", inputs=("a", "b"), output="y", axis=0)
    down = np.arange(5 * 2).reshape(5, 2)
    assert np.array_equal(op.fan_out_map(1, [(2, 2), (3, 2)], lambda: down), down[2:])


def test_add_brings_its_branches_to_the_wanted_scale():
    op = Add(name="a", inputs=("p", "q"), output="y")
    scale, factors = op.carry_scales([np.float32(2), np.float32(4)], [(3,), (3,)], (3,), lambda: np.float32(2))
    assert float(scale) == 2.0
    assert factors[0] is None
    assert float(factors[1]) == 2.0


def test_a_weighted_layer_absorbs_its_input_scale():
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    op = Dense(name="d", inputs=("x",), output="y", weight=weight, bias=np.ones(2, np.float32))
    scale, factors = op.carry_scales([np.float32(2)], [(3,)], (2,), lambda: np.float32(4))
    assert float(scale) == 4.0
    assert factors == [None]
    np.testing.assert_array_equal(op.weight, weight * 2 / 4)
    np.testing.assert_array_equal(op.bias, np.full(2, 0.25, np.float32))


def test_scale_helpers_compress_and_refuse_a_scale_varying_within_a_channel():
    assert compress(np.full((2, 3, 3), 2.0), (2, 3, 3)).shape == ()
    per_channel = np.arange(2, dtype=np.float32).reshape(2, 1, 1) + 1
    assert compress(per_channel, (2, 3, 3)).shape == (2, 1, 1)
    with pytest.raises(ConversionError, match="varies within a channel"):
        channel_vector(np.arange(6, dtype=np.float32).reshape(2, 3), (2, 3), 0, "Dense 'd'")


@pytest.mark.parametrize(
    ("size", "out", "kernel", "stride", "pad", "dilation"),
    [(5, 3, 3, 2, 1, 1), (4, 4, 3, 1, 1, 1), (6, 2, 2, 1, 0, 3), (3, 1, 5, 1, 2, 1)],
)
def test_kernel_taps_are_where_each_window_reads(size, out, kernel, stride, pad, dilation):
    taps = kernel_taps(size, out, kernel, stride, pad, dilation)
    assert taps.shape == (out, kernel, size)
    assert taps.dtype == np.int64
    for o, k in itertools.product(range(out), range(kernel)):
        position = o * stride - pad + k * dilation
        expected = np.zeros(size, np.int64)
        if 0 <= position < size:
            expected[position] = 1
        np.testing.assert_array_equal(taps[o, k], expected)
