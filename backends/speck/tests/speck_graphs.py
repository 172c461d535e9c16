"""Small converted graphs and integer networks for the Speck tests."""

from __future__ import annotations

import numpy as np
from neurodeploy_speck.config import build_config
from neurodeploy_speck.lowering import INPUT, Layer, Lowered
from neurodeploy_speck.quantize import QuantizedLayer

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.neurons import IF
from neurodeploy.ir.ops import AvgPool2d, Conv2d, Dense, Reshape
from neurodeploy.ir.types import TensorType


def conv_chain(
    in_shape=(1, 8, 8),
    convs=((4, 3, 1, 1),),
    pools=(2,),
    classes=3,
    seed=0,
    threshold=1.0,
) -> Graph:
    """input -> [Conv2d(out, k, stride, pad) -> IF -> AvgPool(p)]* -> flatten -> Dense (the readout)."""
    rng = np.random.default_rng(seed)
    ops, value, (c, h, w) = [], "x", in_shape
    for i, ((out, k, stride, pad), pool) in enumerate(zip(convs, pools)):
        ops.append(
            Conv2d(
                name=f"conv{i}",
                inputs=(value,),
                output=f"c{i}",
                weight=rng.normal(size=(out, c, k, k)).astype(np.float32) * 0.5,
                bias=rng.normal(size=out).astype(np.float32) * 0.05,
                stride=(stride, stride),
                padding=(pad,) * 4,
            )
        )
        ops.append(IF(name=f"if{i}", inputs=(f"c{i}",), output=f"s{i}", threshold=np.float32(threshold)))
        value = f"s{i}"
        c, h, w = out, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        if pool > 1:
            ops.append(
                AvgPool2d(name=f"pool{i}", inputs=(value,), output=f"p{i}", kernel=(pool, pool), stride=(pool, pool))
            )
            value, h, w = f"p{i}", h // pool, w // pool
    ops.append(Reshape(name="flat", inputs=(value,), output="f", shape=(c * h * w,)))
    ops.append(
        Dense(
            name="fc",
            inputs=("f",),
            output="logits",
            weight=rng.normal(size=(classes, c * h * w)).astype(np.float32) * 0.3,
            bias=np.zeros(classes, np.float32),
        )
    )
    return Graph("chain", {"x": TensorType(tuple(in_shape))}, ["logits"], ops)


def integer_document(specs, in_shape, target="speck", input_pooling=1):
    """A speck.json document of a chain of integer layers. ``specs``: dicts with weight (F, C, k, k) ints, bias,
    stride, padding, threshold, low, initial, reset, pool (the sum pooling after the layer). ``input_pooling`` is
    the DVS layer's pooling of the input."""
    layers, quantized = [], []
    c, h, w = in_shape
    pool_in, shape = 1, (c, h // input_pooling, w // input_pooling)
    for i, s in enumerate(specs):
        weight = np.asarray(s["weight"], np.int64)
        f, _, k, _ = weight.shape
        _, h, w = shape
        st, pd = s.get("stride", 1), s.get("padding", 0)
        out = (f, (h + 2 * pd - k) // st + 1, (w + 2 * pd - k) // st + 1)
        layers.append(
            Layer(
                name=f"l{i}",
                neuron=f"n{i}",
                in_shape=shape,
                out_shape=out,
                weight=weight.astype(np.float64),
                bias=np.asarray(s.get("bias", np.zeros(f)), np.float64),
                stride=(st, st),
                padding=(pd, pd),
                threshold=float(s["threshold"]),
                initial=0.0,
                reset=s.get("reset", "subtract"),
                source=INPUT if i == 0 else i - 1,
                source_pooling=pool_in,
            )
        )
        quantized.append(
            QuantizedLayer(
                weight=weight,
                bias=np.asarray(s.get("bias", np.zeros(f)), np.int64),
                threshold_high=int(s["threshold"]),
                threshold_low=int(s.get("low", -(2**15))),
                initial=int(s.get("initial", 0)),
                scale=1.0,
                report={},
            )
        )
        pool_in = s.get("pool", 1)
        shape = (out[0], out[1] // pool_in, out[2] // pool_in)
    for i in range(len(layers) - 1):
        layers[i].destinations.append((i + 1, layers[i + 1].source_pooling, 0))
    lowered = Lowered(
        layers=layers,
        input_name="x",
        input_shape=tuple(in_shape),
        input_pooling=input_pooling,
        input_destinations=[0],
        output="out",
        output_shape=layers[-1].out_shape,
        readout_layer=len(layers) - 1,
        readout_threshold=1.0,
    )
    cores = {i: i for i in range(len(layers))}
    return build_config(target, lowered, quantized, cores, 1.0)


def random_layer(rng, f, c, k, stride, pad, pool):
    return {
        "weight": rng.integers(-100, 128, size=(f, c, k, k)),  # leaning positive, so the networks fire
        "bias": rng.integers(-20, 21, size=f) if rng.random() < 0.5 else np.zeros(f, np.int64),
        "stride": stride,
        "padding": pad,
        "threshold": int(rng.integers(1, 400)),
        "low": int(rng.choice([-(2**15), -int(rng.integers(0, 400))])),
        "initial": int(rng.integers(-50, 300)),
        "reset": "zero" if rng.random() < 0.25 else "subtract",
        "pool": pool,
    }


def random_network(rng: np.random.Generator, shape: tuple[int, int, int]) -> list[dict]:
    """Layer specs of a random chain the chip could hold: 1-3 convolutions with sum pooling, then a readout
    whose kernel covers the whole map."""
    specs = []
    for _ in range(int(rng.integers(1, 4))):
        c, h, _ = shape
        k = int(rng.integers(1, min(5, h) + 1))
        stride = int(rng.choice([1, 2])) if h >= 4 else 1
        pad = int(rng.integers(0, min(2, k - 1) + 1))
        out_h = (h + 2 * pad - k) // stride + 1
        pool = int(rng.choice([p for p in (1, 2, 4) if out_h // p >= 2] or [1]))
        f = int(rng.integers(1, 7))
        specs.append(random_layer(rng, f, c, k, stride, pad, pool))
        shape = (f, out_h // pool, out_h // pool)
    c, h, _ = shape
    specs.append(random_layer(rng, int(rng.integers(2, 6)), c, h, 1, 0, 1))
    return specs
