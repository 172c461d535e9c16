"""Small IR graphs built directly (no ONNX), shared by the IR, pass and backend tests."""

from __future__ import annotations

import numpy as np

from neurodeploy.ir import (
    LIF,
    QCFS,
    Add,
    AvgPool2d,
    BatchNorm,
    Bias,
    Clip,
    Concat,
    Conv2d,
    Delay,
    Dense,
    Floor,
    GlobalAvgPool,
    Graph,
    MaxPool2d,
    Op,
    Relu,
    Reshape,
    Scale,
    SiLU,
    Softmax,
    TensorType,
    Threshold,
)


def _w(rng, *shape, scale=0.5):
    return (rng.normal(size=shape) * scale / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def conv_net(seed: int = 0, softmax: bool = False, maxpool: bool = False) -> Graph:
    """conv-bn-relu-pool, conv-relu-gap, flatten, dense (optionally softmax)."""
    rng = np.random.default_rng(seed)
    c1 = rng.uniform(0.5, 1.5, 4).astype(np.float32)
    pool = MaxPool2d if maxpool else AvgPool2d
    ops = [
        Conv2d(name="conv1", inputs=("x",), output="c1", weight=_w(rng, 4, 2, 3, 3, scale=2), padding=(1, 1, 1, 1)),
        BatchNorm(
            name="bn1",
            inputs=("c1",),
            output="b1",
            scale=c1,
            shift=rng.normal(size=4).astype(np.float32) * 0.1,
            mean=rng.normal(size=4).astype(np.float32) * 0.1,
            var=c1,
        ),
        Relu(name="relu1", inputs=("b1",), output="r1"),
        pool(name="pool1", inputs=("r1",), output="p1", kernel=(2, 2), stride=(2, 2)),
        Conv2d(
            name="conv2",
            inputs=("p1",),
            output="c2",
            weight=_w(rng, 6, 4, 3, 3, scale=2),
            bias=rng.normal(size=6).astype(np.float32) * 0.1,
            padding=(1, 1, 1, 1),
        ),
        Relu(name="relu2", inputs=("c2",), output="r2"),
        GlobalAvgPool(name="gap", inputs=("r2",), output="g"),
        Reshape(name="flat", inputs=("g",), output="f", shape=(6,)),
        Dense(
            name="fc",
            inputs=("f",),
            output="logits",
            weight=_w(rng, 5, 6, scale=3),
            bias=rng.normal(size=5).astype(np.float32) * 0.1,
        ),
    ]
    outputs = ["logits"]
    if softmax:
        ops.append(Softmax(name="softmax", inputs=("logits",), output="probs", axis=0))
        outputs = ["probs"]
    return Graph("conv_net", {"x": TensorType((2, 8, 8))}, outputs, ops)


def residual_net(seed: int = 0) -> Graph:
    """A residual block (conv-relu-conv + skip, Add, ReLU), a Concat of two branches, clipped ReLU, dense."""
    rng = np.random.default_rng(seed)
    ops = [
        Conv2d(name="stem", inputs=("x",), output="s", weight=_w(rng, 4, 1, 3, 3, scale=2), padding=(1, 1, 1, 1)),
        Relu(name="stem_relu", inputs=("s",), output="sr"),
        Conv2d(name="b1", inputs=("sr",), output="b1o", weight=_w(rng, 4, 4, 3, 3), padding=(1, 1, 1, 1)),
        Relu(name="b1_relu", inputs=("b1o",), output="b1r"),
        Conv2d(name="b2", inputs=("b1r",), output="b2o", weight=_w(rng, 4, 4, 3, 3), padding=(1, 1, 1, 1)),
        Add(name="add", inputs=("b2o", "sr"), output="a"),
        Relu(name="add_relu", inputs=("a",), output="ar"),
        Conv2d(name="left", inputs=("ar",), output="l", weight=_w(rng, 3, 4, 1, 1)),
        Clip(name="left_clip", inputs=("l",), output="lc", low=0.0, high=0.4),
        Conv2d(name="right", inputs=("ar",), output="rt", weight=_w(rng, 2, 2, 3, 3), padding=(1, 1, 1, 1), groups=2),
        Relu(name="right_relu", inputs=("rt",), output="rr"),
        Concat(name="cat", inputs=("lc", "rr"), output="cat_o", axis=0),
        AvgPool2d(name="pool", inputs=("cat_o",), output="p", kernel=(2, 2), stride=(2, 2)),
        Reshape(name="flat", inputs=("p",), output="f", shape=(5 * 3 * 3,)),
        Dense(name="fc", inputs=("f",), output="h", weight=_w(rng, 8, 45, scale=2)),
        Bias(name="fc_bias", inputs=("h",), output="hb", value=rng.normal(size=8).astype(np.float32) * 0.1),
        Relu(name="fc_relu", inputs=("hb",), output="hr"),
        Dense(name="out", inputs=("hr",), output="logits", weight=_w(rng, 4, 8, scale=2)),
    ]
    return Graph("residual_net", {"x": TensorType((1, 6, 6))}, ["logits"], ops)


def qcfs_chain(x: str, y: str, lam: float, levels: int, prefix: str = "q", shift: float = 0.5) -> list:
    """What the reference QCFS code (``x / λ``, ``floor(x * L + φ) / L``, ``clamp(0, 1)``, ``* λ``) imports as:
    Scale(1/λ) -> Scale(L) -> Bias(φ) -> Floor -> Scale(1/L) -> Clip(0, 1) -> Scale(λ), from ``x`` to ``y``."""
    f32 = np.float32
    return [
        Scale(name=f"{prefix}_div_lam", inputs=(x,), output=f"{prefix}1", value=np.array([1 / f32(lam)], f32)),
        Scale(name=f"{prefix}_mul_levels", inputs=(f"{prefix}1",), output=f"{prefix}2", value=f32(levels)),
        Bias(name=f"{prefix}_add_shift", inputs=(f"{prefix}2",), output=f"{prefix}3", value=f32(shift)),
        Floor(name=f"{prefix}_floor", inputs=(f"{prefix}3",), output=f"{prefix}4"),
        Scale(name=f"{prefix}_div_levels", inputs=(f"{prefix}4",), output=f"{prefix}5", value=f32(1 / levels)),
        Clip(name=f"{prefix}_clip", inputs=(f"{prefix}5",), output=f"{prefix}6", low=0.0, high=1.0),
        Scale(name=f"{prefix}_mul_lam", inputs=(f"{prefix}6",), output=y, value=np.array([lam], f32)),
    ]


def qcfs_net(seed: int = 0, levels2: int = 8) -> Graph:
    """dense, a QCFS as exported (the op chain of ``qcfs_chain``, L = 4), dense, a QCFS op (L = ``levels2``),
    dense."""
    rng = np.random.default_rng(seed)
    ops = [
        Dense(name="fc1", inputs=("x",), output="h1", weight=_w(rng, 8, 6, scale=2), bias=_w(rng, 8, 1)[:, 0]),
        *qcfs_chain("h1", "a1", lam=0.75, levels=4, prefix="act1"),
        Dense(name="fc2", inputs=("a1",), output="h2", weight=_w(rng, 8, 8, scale=2)),
        QCFS(name="act2", inputs=("h2",), output="a2", lam=0.5, levels=levels2),
        Dense(name="fc3", inputs=("a2",), output="logits", weight=_w(rng, 3, 8, scale=2)),
    ]
    return Graph("qcfs_net", {"x": TensorType((6,))}, ["logits"], ops)


def two_layer(levels: int | None, readout: bool = True, seed: int = 0, silu: bool = False) -> Graph:
    """x (6) -> fc1 (16, no bias) -> act1 -> fc2 (8, with bias) -> act2 [-> fc3 (3)] -> y: QCFS activations with
    ``levels`` (λ 2 and 1.5), or ReLU when ``levels`` is None (SiLU with ``silu``); without ``readout`` act2's
    output is y."""
    rng = np.random.default_rng(seed)
    f32 = np.float32

    def act(name: str, src: str, out: str, lam: float) -> Op:
        if silu:
            return SiLU(name=name, inputs=(src,), output=out)
        if levels is None:
            return Relu(name=name, inputs=(src,), output=out)
        return QCFS(name=name, inputs=(src,), output=out, lam=lam, levels=levels)

    ops = [
        Dense(name="fc1", inputs=("x",), output="z1", weight=rng.normal(size=(16, 6)).astype(f32)),
        act("act1", "z1", "a1", 2.0),
        Dense(
            name="fc2",
            inputs=("a1",),
            output="z2",
            weight=(rng.normal(size=(8, 16)) * 0.4).astype(f32),
            bias=(rng.normal(size=8) * 0.3).astype(f32),
        ),
        act("act2", "z2", "a2" if readout else "y", 1.5),
    ]
    if readout:
        ops.append(Dense(name="fc3", inputs=("a2",), output="y", weight=rng.normal(size=(3, 8)).astype(f32)))
    return Graph("two_layer", {"x": TensorType((6,))}, ["y"], ops)


def leaky_net(seed: int = 0) -> Graph:
    """A spiking network as a NIR file arrives: leaky neurons with a synaptic current and a v_reset per neuron,
    several spikes a step, a stateless threshold, a delay and a leaky-integrator readout."""
    rng = np.random.default_rng(seed)
    graph = Graph(name="leaky", inputs={"x": TensorType((6,))}, outputs=["v"])
    graph.ops = [
        Dense(name="fc1", inputs=("x",), output="h1", weight=_w(rng, 5, 6), bias=None),
        LIF(
            name="cuba",
            inputs=("h1",),
            output="s1",
            decay=np.float32(0.9),
            gain=np.float32(0.1),
            drive=np.float32(0.0),
            threshold=rng.uniform(0.5, 1, 5),
            syn_decay=np.float32(0.8),
            syn_gain=np.float32(0.2),
            v_reset=rng.uniform(0, 0.1, 5),
            strict=True,
        ),
        Dense(name="fc2", inputs=("s1",), output="h2", weight=_w(rng, 4, 5), bias=None),
        LIF(
            name="multi",
            inputs=("h2",),
            output="s2",
            decay=np.float32(1),
            gain=np.float32(1),
            drive=np.float32(0),
            threshold=np.float32(0.5),
            reset="subtract",
            multi=True,
        ),
        Threshold(name="thr", inputs=("s2",), output="z", threshold=np.float32(0.5), strict=False),
        Delay(name="late", inputs=("z",), output="zd", steps=2),
        Dense(name="fc3", inputs=("zd",), output="h3", weight=_w(rng, 3, 4), bias=None),
        LIF(name="li", inputs=("h3",), output="v", decay=np.float32(0.95), gain=np.float32(0.05), drive=np.float32(0)),
    ]
    return graph


def inputs_for(graph: Graph, batch: int = 16, seed: int = 1) -> np.ndarray:
    (t,) = graph.inputs.values()
    return np.random.default_rng(seed).uniform(0, 1, size=(batch, *t.shape)).astype(np.float32)
