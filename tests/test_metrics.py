"""SynOps fan-out maps (exact with stride, padding, dilation, groups, pooling) and ANN MACs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurodeploy.ir import IF, AvgPool2d, Conv2d, Dense, Graph, Reshape, TensorType
from neurodeploy.ir.kernels import pool_output_size
from neurodeploy.metrics import conv_fan_out, fan_out_maps, layer_macs
from neurodeploy.simulate import simulate


def brute_force_conv_fan_out(op: Conv2d, shape: tuple[int, int, int]) -> np.ndarray:
    """Walk every output neuron and every nonzero weight; count where each tap lands inside the input."""
    _c, h, w = shape
    o, cg, kh, kw = op.weight.shape
    oh = pool_output_size(h, kh, op.stride[0], op.padding[0], op.padding[2], op.dilation[0], False)
    ow = pool_output_size(w, kw, op.stride[1], op.padding[1], op.padding[3], op.dilation[1], False)
    counts = np.zeros(shape, np.int64)
    og = o // op.groups
    for oc, oy, ox, ci, ky, kx in itertools.product(range(o), range(oh), range(ow), range(cg), range(kh), range(kw)):
        if op.weight[oc, ci, ky, kx] == 0:
            continue
        y = oy * op.stride[0] - op.padding[0] + ky * op.dilation[0]
        x = ox * op.stride[1] - op.padding[1] + kx * op.dilation[1]
        if 0 <= y < h and 0 <= x < w:
            counts[(oc // og) * cg + ci, y, x] += 1
    return counts


@pytest.mark.parametrize(
    ("shape", "out", "kernel", "stride", "padding", "dilation", "groups"),
    [
        ((2, 7, 6), 3, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
        ((3, 9, 8), 4, (3, 2), (2, 3), (0, 2, 1, 0), (2, 1), 1),
        ((4, 6, 6), 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
        ((2, 5, 5), 2, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 2),
    ],
)
def test_conv_fan_out_matches_a_brute_force_count(shape, out, kernel, stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(out, shape[0] // groups, *kernel)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.3] = 0.0  # zero weights are no synapses
    op = Conv2d(
        name="c",
        inputs=("x",),
        output="y",
        weight=weight,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    np.testing.assert_array_equal(conv_fan_out(op, shape), brute_force_conv_fan_out(op, shape))


def one_conv_graph() -> Graph:
    """x (1, 4, 4) -> IF n0 -> Conv 3x3 stride 2 pad 1 (2 channels) -> IF n1 (the output)."""
    weight = np.zeros((2, 1, 3, 3), np.float32)
    weight[0] = 1.0  # channel 0: all nine taps
    weight[1, 0, 1, 1] = 1.0  # channel 1: the centre tap only
    return Graph(
        "one_conv",
        {"x": TensorType((1, 4, 4))},
        ["s1"],
        [
            IF(name="n0", inputs=("x",), output="s0", threshold=np.float32(1.0), initial=0.0),
            Conv2d(name="conv", inputs=("s0",), output="c", weight=weight, stride=(2, 2), padding=(1, 1, 1, 1)),
            IF(name="n1", inputs=("c",), output="s1", threshold=np.float32(1.0), initial=0.0),
        ],
    )


def test_synops_of_a_one_conv_graph_equal_a_hand_count():
    # Output rows 0, 1 read input rows {-1, 0, 1} and {1, 2, 3}. Row taps per input row: row 0 one (ky=1), row 1
    # two (ky=2 of output 0, ky=0 of output 1), row 2 one, row 3 one; the same for columns. Channel 0 (all taps)
    # gives the outer product [1,2,1,1] x [1,2,1,1]; channel 1 (centre tap) adds 1 where both taps are ky=kx=1:
    # (0,0), (0,2), (2,0), (2,2). Total 29 = 25 (channel 0: 5 x 5 in-bounds taps) + 4 (channel 1).
    expected = np.array([[2, 2, 2, 1], [2, 4, 2, 2], [2, 2, 2, 1], [1, 2, 1, 1]])
    graph = one_conv_graph()
    maps = fan_out_maps(graph)
    np.testing.assert_array_equal(maps["s0"][0], expected)
    np.testing.assert_array_equal(maps["x"], np.ones((1, 4, 4)))  # the input feeds n0 one to one
    np.testing.assert_array_equal(maps["s1"], np.zeros((2, 2, 2)))  # the output is read out: no synapses
    # Input 1.0 at (1,1) spikes every step (fan-out 4), 0.5 at (3,3) every other step (fan-out 1).
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1], x[0, 0, 3, 3] = 1.0, 0.5
    sim = simulate(graph, {"x": x}, 4, checkpoints=(1, 2), fan_out=maps)
    assert sim.synops["n0"].tolist() == [4 * 4 + 2 * 1]
    assert sim.checkpoint_synops[1]["n0"].tolist() == [4]
    assert sim.checkpoint_synops[2]["n0"].tolist() == [2 * 4 + 1]
    assert sim.synops["x"].tolist() == [4 * 16]  # direct input: every element, every step, one synapse each
    assert sim.synops["n1"].tolist() == [0]
    assert sim.spikes["n0"].tolist() == [6]


def test_fan_out_through_pooling_and_flatten_adds_the_windows_fan_out():
    rng = np.random.default_rng(1)
    dense = rng.normal(size=(3, 8)).astype(np.float32)
    dense[0, 5] = 0.0
    graph = Graph(
        "g",
        {"x": TensorType((2, 4, 4))},
        ["y"],
        [
            IF(name="n", inputs=("x",), output="s", threshold=np.float32(1.0)),
            AvgPool2d(name="pool", inputs=("s",), output="p", kernel=(2, 2), stride=(2, 2)),
            Reshape(name="flat", inputs=("p",), output="f", shape=(8,)),
            Dense(name="fc", inputs=("f",), output="y", weight=dense),
        ],
    )
    fan = fan_out_maps(graph)["s"]
    per_feature = (dense != 0).sum(axis=0).reshape(2, 2, 2)  # fan-out of each pooled cell
    expected = np.repeat(np.repeat(per_feature, 2, axis=1), 2, axis=2)  # every cell of a 2x2 window
    np.testing.assert_array_equal(fan, expected)
    assert (fan[0] == 3).all()  # features 0-3 (channel 0) reach all three outputs
    assert (fan[1, 0:2, 2:4] == 2).all()  # feature 5 = pooled cell (1, 0, 1) has one zero weight


def test_layer_macs_are_output_size_times_fan_in():
    graph = one_conv_graph()
    assert layer_macs(graph) == {"conv": 2 * 2 * 2 * 9}
