"""Residual Add and channel Concat on Speck (issue #16, point 4).

A converted residual block computes IF(conv(h) + a * s), s the spikes of an earlier layer: the core of conv gets s
as more input channels (its destination's feature shift), reaching each output neuron of its channel through the
kernel's centre tap with weight a. A Concat of spike maps is the same shift without the identity; an Add of two
spike maps is two sources on the same channels (the chip's merge, sinabs' ``Merge``). Checked here: the lowered
float layers against the graph's own arithmetic (to float rounding), the emulator's event mode against the
chip's rule one event at a time, the compiled artifact against sinabs (test_speck_against_sinabs.py), and what
is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy_speck.backend import direct_events, placement
from neurodeploy_speck.config import build_config
from neurodeploy_speck.emulator import Network, sum_pool
from neurodeploy_speck.lowering import INPUT, limit_spikes_per_event, lower
from neurodeploy_speck.quantize import quantize_layer
from test_speck_event_mode_reference import sequential_reference

from neurodeploy.errors import ResourceError
from neurodeploy.ir import interpret, kernels
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import IF
from neurodeploy.ir.ops import Add, AvgPool2d, Concat, Conv2d, Dense, Reshape, Scale
from neurodeploy.ir.types import TensorType


def _conv(rng, name, src, out, c, k=3, stride=1, pad=1):
    return Conv2d(
        name=name,
        inputs=(src,),
        output=name + ":y",
        weight=(rng.normal(size=(out, c, k, k)) * 0.4).astype(np.float32),
        bias=(rng.normal(size=out) * 0.05).astype(np.float32),
        stride=(stride, stride),
        padding=(pad,) * 4,
    )


def _if(name, src, threshold=1.0):
    return IF(name=name, inputs=(src,), output=name + ":s", threshold=np.float32(threshold))


def _head(rng, src, c, h, classes=3, pool=2):
    return [
        AvgPool2d(name="pool", inputs=(src,), output="p", kernel=(pool, pool), stride=(pool, pool)),
        Reshape(name="flat", inputs=("p",), output="f", shape=(c * (h // pool) ** 2,)),
        Dense(
            name="fc",
            inputs=("f",),
            output="logits",
            weight=(rng.normal(size=(classes, c * (h // pool) ** 2)) * 0.3).astype(np.float32),
            bias=np.zeros(classes, np.float32),
        ),
    ]


def residual_graph(seed: int = 0, per_channel: bool = True) -> Graph:
    """x (2, 8, 8) -> stem -> IF = s; conv1 -> IF -> conv2; Add(conv2, Scale(s)) -> IF -> pool -> readout."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 1.5, size=(6, 1, 1)) if per_channel else np.array(0.8)
    ops = [
        _conv(rng, "stem", "x", 6, 2),
        _if("n0", "stem:y", 0.7),
        _conv(rng, "conv1", "n0:s", 6, 6),
        _if("n1", "conv1:y", 0.9),
        _conv(rng, "conv2", "n1:s", 6, 6),
        Scale(name="rescale", inputs=("n0:s",), output="skip", value=scale.astype(np.float32)),
        Add(name="add", inputs=("conv2:y", "skip"), output="sum"),
        _if("n2", "sum", 1.1),
        *_head(rng, "n2:s", 6, 8),
    ]
    return Graph("residual", {"x": TensorType((2, 8, 8))}, ["logits"], ops)


def concat_graph(seed: int = 0) -> Graph:
    """x -> stem -> IF; two branches (1x1 conv, pooled 3x3 conv) -> IF each -> Concat -> conv -> IF -> readout."""
    rng = np.random.default_rng(seed)
    ops = [
        _conv(rng, "stem", "x", 4, 2),
        _if("n0", "stem:y"),
        _conv(rng, "a", "n0:s", 3, 4, k=1, pad=0),
        _if("na", "a:y", 0.8),
        _conv(rng, "b", "n0:s", 5, 4),
        _if("nb", "b:y", 1.2),
        Concat(name="cat", inputs=("na:s", "nb:s"), output="joined", axis=0),
        _conv(rng, "mix", "joined", 6, 8),
        _if("n3", "mix:y"),
        *_head(rng, "n3:s", 6, 8),
    ]
    return Graph("concat", {"x": TensorType((2, 8, 8))}, ["logits"], ops)


def merge_graph(seed: int = 0) -> Graph:
    """Two spike maps added before a convolution: the chip's merge (two sources on the same channels)."""
    rng = np.random.default_rng(seed)
    ops = [
        _conv(rng, "stem", "x", 4, 2),
        _if("n0", "stem:y"),
        _conv(rng, "a", "n0:s", 4, 4),
        _if("na", "a:y"),
        Add(name="add", inputs=("n0:s", "na:s"), output="both"),
        _conv(rng, "mix", "both", 5, 4),
        _if("n3", "mix:y"),
        *_head(rng, "n3:s", 5, 8),
    ]
    return Graph("merge", {"x": TensorType((2, 8, 8))}, ["logits"], ops)


def lowered_rates(lowered, x: np.ndarray, clip: bool = True) -> np.ndarray:
    """The lowered float layers' rate function, every source summed onto its channels after sum pooling:
    rate = clip((conv + b) / theta, 0, 1) (without the upper clip where ``clip`` is off); the readout's
    pre-activation is returned."""
    rates = {INPUT: x.astype(np.float64)}
    z = None
    for i, layer in enumerate(lowered.layers):
        total = np.zeros((len(x), *layer.in_shape))
        for src, pool, shift in layer.sources:
            pooled = sum_pool(rates[src], pool)
            total[:, shift : shift + pooled.shape[1]] += pooled[:, :, : layer.in_shape[1], : layer.in_shape[2]]
        pads = (layer.padding[0], layer.padding[1], layer.padding[0], layer.padding[1])
        z = kernels.conv2d(total, layer.weight, None, layer.stride, pads, (1, 1), 1) + layer.bias.reshape(1, -1, 1, 1)
        rates[i] = np.clip(z / layer.threshold, 0.0, 1.0 if clip else None)
    return z.reshape(len(x), -1)


def document_of(graph: Graph) -> dict:
    lowered = lower(graph)
    return build_config("speck", lowered, [quantize_layer(layer) for layer in lowered.layers], placement(lowered), 1.0)


@pytest.mark.parametrize("build", [residual_graph, concat_graph, merge_graph])
@pytest.mark.parametrize("seed", range(3))
def test_lowered_layers_compute_the_graph(build, seed):
    graph = build(seed)
    x = np.random.default_rng(seed).random((5, 2, 8, 8)).astype(np.float32)
    want = interpret.run(graph, x)["logits"]
    got = lowered_rates(lower(graph), x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("build", [residual_graph, concat_graph])
def test_spikes_per_event_scales_the_shifted_channels_it_feeds(build):
    """Raising a layer's thresholds by alpha multiplies, in each consumer, only the channels its spikes land on
    (its feature shift): the network's function (without the rate's upper clip) stays the same."""
    x = np.random.default_rng(3).random((5, 2, 8, 8)).astype(np.float32)
    before = lower(build(3))
    want = lowered_rates(before, x, clip=False)
    after = lower(build(3))
    report = limit_spikes_per_event(after, 1.0)
    assert max(r["alpha_max"] for r in report[:-1]) > 1  # some hidden channel was rescaled
    np.testing.assert_allclose(lowered_rates(after, x, clip=False), want, rtol=1e-6, atol=1e-9)


def test_spikes_per_event_refuses_a_merge():
    with pytest.raises(ResourceError, match=r"layer 'mix' reads two spike maps added onto the same channels"):
        limit_spikes_per_event(lower(merge_graph(0)), 2.0)


def test_a_residual_block_joins_the_skip_as_shifted_channels():
    lowered = lower(residual_graph(0))
    stem, _conv1, conv2, readout = lowered.layers
    assert conv2.in_shape == (12, 8, 8)
    assert conv2.sources == [(1, 1, 0), (0, 1, 6)]
    assert stem.destinations == [(1, 1, 0), (2, 1, 6)]
    # the skip's spikes reach only their own channel's neuron, at the kernel's centre
    identity = conv2.weight[:, 6:]
    centre = identity[:, :, 1, 1]
    assert np.count_nonzero(identity) == 6
    assert np.count_nonzero(centre - np.diag(np.diag(centre))) == 0
    assert readout.readout


def test_concat_and_merge_sources():
    cat = lower(concat_graph(0))
    mix = next(layer for layer in cat.layers if layer.name == "mix")
    assert mix.in_shape[0] == 8
    assert sorted(mix.sources) == [(1, 1, 0), (2, 1, 3)]
    merged = lower(merge_graph(0))
    mix = next(layer for layer in merged.layers if layer.name == "mix")
    assert mix.in_shape[0] == 4
    assert sorted(mix.sources) == [(0, 1, 0), (1, 1, 0)]


@pytest.mark.parametrize("build", [residual_graph, concat_graph, merge_graph])
def test_documents_carry_the_feature_shift_and_both_modes_run(build):
    document = document_of(build(1))
    shifts = [
        d.get("feature_shift", 0)
        for layer in document["configuration"]["cnn_layers"]
        if layer
        for d in layer["destinations"]
        if d["enable"]
    ]
    assert (max(shifts) > 0) == (build is not merge_graph)
    network = Network.from_config(document)
    frames = direct_events(np.random.default_rng(1).random((3, 2, 8, 8)), 12)
    want = sequential_reference(network, frames)
    for engine in ("auto", "numpy"):
        network.engine = engine
        run = network.run_events(frames, record=tuple(want))
        for core, expected in want.items():
            np.testing.assert_array_equal(run.counts[core], expected, err_msg=f"core {core}, {engine}")
        binned = network.run_binned(frames, record=tuple(want))
        assert all(int(binned.counts[c].sum()) > 0 for c in want)


def test_binned_modes_agree_with_several_sources():
    document = document_of(residual_graph(2))
    frames = direct_events(np.random.default_rng(2).random((3, 2, 8, 8)), 10)
    network = Network.from_config(document)
    cores = tuple(c.index for c in network.cores)
    network.engine = "numpy"
    plain = network.run_binned(frames, record=cores)
    network.engine = "auto"
    compiled = network.run_binned(frames, record=cores)
    for core in cores:
        np.testing.assert_array_equal(plain.counts[core], compiled.counts[core])
    for source in plain.synops:
        np.testing.assert_array_equal(plain.synops[source], compiled.synops[source])


def _refused(graph: Graph, *words: str) -> None:
    with pytest.raises(ResourceError) as caught:
        lower(graph)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_a_projection_shortcut_is_refused_with_what_to_do():
    rng = np.random.default_rng(0)
    ops = [
        _conv(rng, "stem", "x", 4, 2),
        _if("n0", "stem:y"),
        _conv(rng, "conv1", "n0:s", 4, 4),
        _if("n1", "conv1:y"),
        _conv(rng, "conv2", "n1:s", 4, 4),
        _conv(rng, "proj", "n0:s", 4, 4, k=1, pad=0),
        Add(name="add", inputs=("conv2:y", "proj:y"), output="sum"),
        _if("n2", "sum"),
        *_head(rng, "n2:s", 4, 8),
    ]
    _refused(Graph("proj", {"x": TensorType((2, 8, 8))}, ["logits"], ops), "layer 'add'", "projection shortcut")


def test_a_skip_into_a_strided_convolution_is_refused():
    rng = np.random.default_rng(0)
    ops = [
        _conv(rng, "stem", "x", 4, 2),
        _if("n0", "stem:y"),
        _conv(rng, "down", "n0:s", 4, 4, stride=2),
        AvgPool2d(name="half", inputs=("n0:s",), output="h", kernel=(2, 2), stride=(2, 2)),
        Add(name="add", inputs=("down:y", "h"), output="sum"),
        _if("n2", "sum"),
        *_head(rng, "n2:s", 4, 4),
    ]
    _refused(Graph("strided", {"x": TensorType((2, 8, 8))}, ["logits"], ops), "layer 'add'", "stride 1")


def test_a_skip_from_the_input_is_refused():
    rng = np.random.default_rng(0)
    ops = [
        _conv(rng, "stem", "x", 2, 2),
        Add(name="add", inputs=("stem:y", "x"), output="sum"),
        _if("n0", "sum"),
        *_head(rng, "n0:s", 2, 8),
    ]
    _refused(Graph("input-skip", {"x": TensorType((2, 8, 8))}, ["logits"], ops), "input", "DVS")
