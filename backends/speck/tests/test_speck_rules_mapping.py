"""Design rules, memory formulas and the placement of layers on cores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from neurodeploy_speck import chip
from neurodeploy_speck.backend import SpeckBackend, placement
from neurodeploy_speck.lowering import lower
from neurodeploy_speck.mapping import match
from speck_graphs import conv_chain

from neurodeploy.backends.base import CompiledModel
from neurodeploy.errors import ResourceError, UnsupportedOpError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import IF
from neurodeploy.ir.ops import Conv2d, Dense, MaxPool2d, Reshape
from neurodeploy.ir.types import TensorType


def test_memory_formula_worked_example_of_the_docs():
    # Conv2d(16 -> 32, k = 3, s = 1, p = 1) on 64 x 64: kernel 16 * 2^(4 + 5) = 8Ki; neuron 32 * 2^(6 + 6) = 128Ki
    mem = chip.Memory.of(16, 32, 3, (64, 64), bias=True)
    assert (mem.kernel, mem.neuron, mem.bias) == (8 * 1024, 128 * 1024, 32)
    assert not any(mem.fits(core) for core in range(chip.CORES))
    problem = chip.rule_memory(mem)
    assert "neuron 128Ki" in problem
    assert "64Ki" in problem


def test_memory_rounds_to_powers_of_two():
    mem = chip.Memory.of(3, 10, 5, (7, 13), bias=False)
    assert mem.kernel == 3 * 2 ** (5 + 4)  # ceil(log2 25) = 5, ceil(log2 10) = 4
    assert mem.neuron == 10 * 2 ** (3 + 4)
    assert mem.bias == 0


def test_mnist_sized_layers_fit_where_the_formulas_say():
    # 32 -> 64 channels, 3x3: kernel 32 * 2^(4 + 6) = 32Ki: only cores 3, 4, 5, 6 hold it
    mem = chip.Memory.of(32, 64, 3, (7, 7), bias=True)
    assert [c for c in range(chip.CORES) if mem.fits(c)] == [3, 4, 5, 6]


def brute_force(feasible):
    layers, cores = len(feasible), len(feasible[0])
    for chosen in itertools.permutations(range(cores), layers):
        if all(feasible[i][c] for i, c in enumerate(chosen)):
            return True
    return False


@pytest.mark.parametrize("seed", range(40))
def test_matching_finds_a_placement_exactly_when_one_exists(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(1, 7))
    feasible = (rng.random((layers, 6)) < rng.uniform(0.15, 0.6)).tolist()
    mapping = match(feasible)
    assert (mapping is not None) == brute_force(feasible)
    if mapping is not None:
        assert sorted(mapping) == list(range(layers))
        assert len(set(mapping.values())) == layers
        assert all(feasible[i][c] for i, c in mapping.items())


def test_matching_reassigns_to_make_room():
    # greedy in order would put layer 0 on core 0 and strand layer 1; the augmenting path moves layer 0 to core 1
    assert match([[True, True], [True, False]]) == {0: 1, 1: 0}


def test_no_placement_prints_the_feasibility_matrix():
    # ten layers for nine cores
    graph = conv_chain(in_shape=(1, 8, 8), convs=[(2, 3, 1, 1)] * 9, pools=[1] * 9)
    lowered = lower(graph)
    with pytest.raises(ResourceError) as err:
        placement(lowered)
    text = str(err.value)
    assert "no placement of the 10 layers on the 9 cores" in text
    assert "layer" in text
    assert " 0  1  2  3  4  5  6  7  8" in text
    assert text.count(" x") == 10 * 9  # every small layer fits every core
    assert "too few distinct cores" in text


def test_placement_of_large_layers_names_the_memory():
    # 64 -> 64 channels 3x3 on 32x32: kernel 64 * 2^(4 + 6) = 64Ki (cores 5, 6), neuron 64 * 2^10 = 64Ki
    # (cores 0-2): no core has both
    graph = conv_chain(in_shape=(64, 32, 32), convs=[(64, 3, 1, 1)], pools=[4])
    with pytest.raises(ResourceError) as err:
        lower(graph)
    assert "kernel 64Ki" in str(err.value)
    assert "neuron 64Ki" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"convs": [(4, 3, 3, 1)], "pools": [1]}, "stride 3x3 is not one of 1/2/4/8"),
        ({"convs": [(4, 17, 1, 8)], "pools": [1], "in_shape": (1, 20, 20)}, "exceeds the 16x16 limit"),
        ({"convs": [(4, 3, 1, 8)], "pools": [1]}, "padding 8 exceeds the limit of 7"),
        ({"convs": [(4, 3, 1, 1), (4, 1, 1, 0)], "pools": [8, 1], "in_shape": (1, 16, 16)}, "sum pooling 8x8 is not"),
        ({"convs": [(1025, 1, 1, 0)], "pools": [1], "in_shape": (1, 2, 2)}, "1025 output channels exceed"),
        ({"in_shape": (1, 130, 130), "convs": [(2, 3, 2, 1)], "pools": [4]}, "input map 130x130 exceeds 128x128"),
        ({"in_shape": (1, 8, 6), "convs": [(2, 3, 1, 1)], "pools": [1]}, "kernel 8x6 is not square"),
    ],
)
def test_design_rule_failures_name_layer_rule_and_limit(kwargs, expected):
    graph = conv_chain(**kwargs)
    with pytest.raises(ResourceError, match="keep graph 'chain' off Speck") as err:
        lower(graph)
    assert expected in str(err.value)
    assert "layer '" in str(err.value) or "input:" in str(err.value)


def _pooled_sums(x: np.ndarray, pool: int) -> np.ndarray:
    c, h, w = x.shape
    return x.reshape(c, h // pool, pool, w // pool, pool).sum(axis=(2, 4))


@pytest.mark.parametrize(("size", "pools", "kept", "kernel"), [(16, [8], 4, 4), (12, [3], 1, 12), (16, [2, 8], 4, 2)])
def test_a_readout_pooled_beyond_the_chip_keeps_its_sums(size, pools, kept, kernel):
    """A Dense reading a map pooled more than 4x4 in all (a global average pool before the readout): the chip's
    largest pooling that divides it stays sum pooling, the rest goes into the kernel, and the readout's sums on
    any spike map are the graph's (the average pool, then the Dense) to rounding."""
    graph = conv_chain(in_shape=(1, size, size), convs=[(5, 3, 1, 1)] * len(pools), pools=pools, classes=4)
    readout = lower(graph).layers[-1]
    assert readout.source_pooling == kept
    assert readout.weight.shape == (4, 5, kernel, kernel)
    before = int(np.prod(pools[:-1]))  # the pooling between the earlier layers
    x = np.random.default_rng(1).integers(0, 3, (5, size // before, size // before))  # the last layer's spikes
    total = pools[-1]
    fc = graph.op("fc")
    expected = fc.weight @ (_pooled_sums(x.astype(np.float64), total) / total**2).reshape(-1)
    got = np.einsum("fchw,chw->f", readout.weight, _pooled_sums(x.astype(np.float64), kept))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def _depthwise(channels: int, size: int = 8) -> Graph:
    rng = np.random.default_rng(2)
    ops = [
        Conv2d(name="c0", inputs=("x",), output="a", weight=rng.normal(size=(channels, 1, 3, 3)).astype(np.float32)),
        IF(name="n0", inputs=("a",), output="s", threshold=np.float32(1)),
        Conv2d(
            name="dw",
            inputs=("s",),
            output="b",
            weight=rng.normal(size=(channels, 1, 3, 3)).astype(np.float32),
            padding=(1, 1, 1, 1),
            groups=channels,
        ),
        IF(name="n1", inputs=("b",), output="t", threshold=np.float32(1)),
        Reshape(name="flat", inputs=("t",), output="f", shape=(channels * (size - 2) ** 2,)),
        Dense(
            name="fc",
            inputs=("f",),
            output="y",
            weight=rng.normal(size=(3, channels * (size - 2) ** 2)).astype(np.float32),
        ),
    ]
    return Graph("depthwise", {"x": TensorType((1, size, size))}, ["y"], ops)


def test_a_depthwise_convolution_becomes_the_full_one_it_equals():
    from neurodeploy.ir.kernels import conv2d

    graph = _depthwise(6)
    layer = lower(graph).layers[1]
    grouped = graph.op("dw")
    assert layer.weight.shape == (6, 6, 3, 3)
    x = np.random.default_rng(3).random((2, 6, 6, 6)).astype(np.float32)
    want = conv2d(x, grouped.weight, None, (1, 1), (1, 1, 1, 1), (1, 1), 6)
    got = conv2d(x, layer.weight.astype(np.float32), None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.count_nonzero(layer.weight) == np.count_nonzero(grouped.weight)  # zeros between the channels


def test_a_depthwise_convolution_too_big_when_full_is_refused_with_the_numbers():
    # 256 -> 256 channels 3x3 as a full convolution: kernel 256 * 2^(4 + 8) = 1Mi, beyond every core's 64Ki
    with pytest.raises(ResourceError) as err:
        lower(_depthwise(256))
    assert "layer 'dw'" in str(err.value)
    assert "kernel 1024Ki" in str(err.value)
    assert "grouped (groups=256) convolution, which Speck runs as a full one" in str(err.value)


def test_non_square_conv_kernel_is_refused():
    graph = conv_chain()
    conv = graph.op("conv0")
    conv.weight = np.ones((4, 1, 3, 1), np.float32)
    conv.padding = (1, 0, 1, 0)
    with pytest.raises(ResourceError, match=r"layer 'conv0' \(Conv2d\): kernel 3x1 is not square"):
        lower(graph)


def test_three_destinations_are_refused():
    rng = np.random.default_rng(0)
    ops = [
        Conv2d(name="c0", inputs=("x",), output="a", weight=rng.normal(size=(2, 1, 3, 3)).astype(np.float32)),
        IF(name="n0", inputs=("a",), output="s", threshold=np.float32(1)),
    ]
    for i in range(3):
        w = rng.normal(size=(2, 2, 1, 1)).astype(np.float32)
        ops += [
            Conv2d(name=f"b{i}", inputs=("s",), output=f"bc{i}", weight=w),
            IF(name=f"bn{i}", inputs=(f"bc{i}",), output=f"bs{i}", threshold=np.float32(1)),
        ]
    graph = Graph("fanout", {"x": TensorType((1, 6, 6))}, ["bs0"], ops)
    with pytest.raises(ResourceError) as err:
        lower(graph)
    assert "layer 'c0': its output goes to 3 layers but a core has at most 2 destinations" in str(err.value)


def test_unsupported_ops_are_listed():
    graph = conv_chain()
    pool = graph.op("pool0")
    graph.replace(pool, MaxPool2d(name="mp", inputs=pool.inputs, output=pool.output, kernel=(2, 2), stride=(2, 2)))
    with pytest.raises(UnsupportedOpError, match=r"'mp' \(MaxPool2d\)"):
        lower(graph)


def test_dense_layers_become_convolutions_over_the_whole_map():
    rng = np.random.default_rng(0)
    ops = [
        Reshape(name="flat", inputs=("x",), output="f", shape=(2 * 4 * 4,)),
        Dense(name="d0", inputs=("f",), output="a", weight=rng.normal(size=(8, 32)).astype(np.float32)),
        IF(name="n0", inputs=("a",), output="s", threshold=np.float32(1)),
        Dense(name="d1", inputs=("s",), output="y", weight=rng.normal(size=(3, 8)).astype(np.float32)),
    ]
    graph = Graph("mlp", {"x": TensorType((2, 4, 4))}, ["y"], ops)
    first, second = lower(graph).layers
    assert (first.in_shape, first.kernel, first.out_shape) == ((2, 4, 4), 4, (8, 1, 1))
    np.testing.assert_array_equal(first.weight, ops[1].weight.reshape(8, 2, 4, 4))  # sinabs convert_linear_to_conv
    assert (second.in_shape, second.kernel, second.out_shape) == ((8, 1, 1), 1, (3, 1, 1))
    assert second.readout
    assert first.destinations == [(1, 1, 0)]


def test_resources_report_per_core_usage():
    backend = SpeckBackend("speck")
    graph = conv_chain(convs=[(4, 3, 1, 1), (8, 3, 1, 1)], pools=[2, 2])
    report = backend.resources(backend.plan(CompiledModel(snn=graph)))
    assert report.cores_used == 3
    assert len({layer.core for layer in report.layers}) == 3
    assert all(note.startswith("core ") and "kernel" in note and "neuron" in note for note in report.notes)
    assert report.layers[-1].op_type == "IF readout"
