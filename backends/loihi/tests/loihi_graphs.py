"""Small converted (spiking) graphs for the Loihi lowering, quantization and program tests, built directly from IR
ops (no ONNX): the shapes the bundled MNIST model has, in miniature."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodeploy.backends.base import CompiledModel, Emitted
from neurodeploy.encoding import Encoding
from neurodeploy.ir import Add, AvgPool2d, Concat, Conv2d, Dense, Graph, MaxPool2d, Reshape, Scale, TensorType
from neurodeploy.ir.neurons import IF


def _w(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.normal(size=shape) * scale / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def small_cnn(seed: int = 0, reset: str = "subtract", initial: float = 0.5, thresholds: str = "scalar") -> Graph:
    """x (1, 8, 8) -> conv 3x3 -> IF (4, 8, 8) -> avgpool 2 -> conv 3x3 -> IF (6, 4, 4) -> avgpool 2 -> flatten
    -> dense (5). ``thresholds``: ``scalar`` or ``channel`` (per-channel thresholds on the second IF)."""
    rng = np.random.default_rng(seed)
    theta2 = np.float32(1.3) if thresholds == "scalar" else rng.uniform(0.5, 2.0, 6).astype(np.float32)
    ops = [
        Conv2d(
            name="conv1",
            inputs=("x",),
            output="c1",
            weight=_w(rng, 4, 1, 3, 3, scale=2),
            bias=rng.normal(size=4).astype(np.float32) * 0.1,
            padding=(1, 1, 1, 1),
        ),
        IF(name="if1", inputs=("c1",), output="s1", threshold=np.float32(0.8), reset=reset, initial=initial),
        AvgPool2d(name="pool1", inputs=("s1",), output="p1", kernel=(2, 2), stride=(2, 2)),
        Conv2d(
            name="conv2",
            inputs=("p1",),
            output="c2",
            weight=_w(rng, 6, 4, 3, 3, scale=2),
            bias=rng.normal(size=6).astype(np.float32) * 0.1,
            padding=(1, 1, 1, 1),
        ),
        IF(name="if2", inputs=("c2",), output="s2", threshold=theta2, reset=reset, initial=initial),
        AvgPool2d(name="pool2", inputs=("s2",), output="p2", kernel=(2, 2), stride=(2, 2)),
        Reshape(name="flat", inputs=("p2",), output="f", shape=(24,)),
        Dense(
            name="fc",
            inputs=("f",),
            output="logits",
            weight=_w(rng, 5, 24, scale=3),
            bias=rng.normal(size=5).astype(np.float32) * 0.1,
        ),
    ]
    return Graph("small_cnn", {"x": TensorType((1, 8, 8))}, ["logits"], ops)


def dense_net(
    w1: np.ndarray, w2: np.ndarray, b2: np.ndarray | None = None, threshold: float = 1.0, reset: str = "subtract"
) -> Graph:
    """x (n) -> dense w1 -> IF -> dense w2 (+ b2) -> IF -> dense identity (the membrane readout). For
    hand-derived values."""
    n_in, n_out = w1.shape[1], w2.shape[0]
    ops = [
        Dense(name="fc1", inputs=("x",), output="a1", weight=np.asarray(w1, np.float32)),
        IF(name="if1", inputs=("a1",), output="s1", threshold=np.float32(threshold), reset=reset),
        Dense(
            name="fc2",
            inputs=("s1",),
            output="a2",
            weight=np.asarray(w2, np.float32),
            bias=None if b2 is None else np.asarray(b2, np.float32),
        ),
        IF(name="if2", inputs=("a2",), output="s2", threshold=np.float32(threshold), reset=reset),
        Dense(name="out", inputs=("s2",), output="y", weight=np.eye(n_out, dtype=np.float32)),
    ]
    return Graph("dense_net", {"x": TensorType((n_in,))}, ["y"], ops)


def residual(seed: int = 0) -> Graph:
    """conv -> IF -> conv -> Add(skip) -> IF -> dense: a residual Add, which the loihi target refuses."""
    rng = np.random.default_rng(seed)
    ops = [
        Conv2d(name="conv1", inputs=("x",), output="c1", weight=_w(rng, 2, 2, 3, 3), padding=(1, 1, 1, 1)),
        IF(name="if1", inputs=("c1",), output="s1", threshold=np.float32(1)),
        Conv2d(name="conv2", inputs=("s1",), output="c2", weight=_w(rng, 2, 2, 3, 3), padding=(1, 1, 1, 1)),
        Add(name="skip_add", inputs=("c2", "s1"), output="a"),
        IF(name="if2", inputs=("a",), output="s2", threshold=np.float32(1)),
        Reshape(name="flat", inputs=("s2",), output="f", shape=(32,)),
        Dense(name="fc", inputs=("f",), output="y", weight=_w(rng, 3, 32)),
    ]
    return Graph("residual", {"x": TensorType((2, 4, 4))}, ["y"], ops)


def with_maxpool(seed: int = 0) -> Graph:
    """conv -> IF -> maxpool -> conv -> IF -> dense: MaxPool has no Loihi equivalent."""
    rng = np.random.default_rng(seed)
    ops = [
        Conv2d(name="conv1", inputs=("x",), output="c1", weight=_w(rng, 2, 1, 3, 3), padding=(1, 1, 1, 1)),
        IF(name="if1", inputs=("c1",), output="s1", threshold=np.float32(1)),
        MaxPool2d(name="maxpool1", inputs=("s1",), output="m1", kernel=(2, 2), stride=(2, 2)),
        Conv2d(name="conv2", inputs=("m1",), output="c2", weight=_w(rng, 2, 2, 3, 3), padding=(1, 1, 1, 1)),
        IF(name="if2", inputs=("c2",), output="s2", threshold=np.float32(1)),
        Reshape(name="flat", inputs=("s2",), output="f", shape=(8,)),
        Dense(name="fc", inputs=("f",), output="y", weight=_w(rng, 3, 8)),
    ]
    return Graph("with_maxpool", {"x": TensorType((1, 4, 4))}, ["y"], ops)


def residual_block(
    seed: int = 0, skip: str = "identity", deep: bool = True, reset: str = "subtract", channels: int = 4
) -> Graph:
    """x (1, 6, 6) -> conv -> IF a -> conv -> IF b -> conv -> Add(skip from a) -> IF c -> flatten -> dense (3): a
    residual block whose skip (``identity``, ``scale``: times 0.5, the Scale conversion puts on an unabsorbable
    branch, or ``conv``: a 1x1 convolution) reads IF a, one synapse shorter than the main path, so it must be
    delayed a step. ``deep=False`` drops IF b: the skip and the main path then have the same length."""
    rng = np.random.default_rng(seed)
    c = channels
    ops = [
        Conv2d(
            name="conv1",
            inputs=("x",),
            output="c1",
            weight=_w(rng, c, 1, 3, 3, scale=3),
            bias=rng.normal(size=c).astype(np.float32) * 0.2 + 0.2,
            padding=(1, 1, 1, 1),
        ),
        IF(name="if_a", inputs=("c1",), output="sa", threshold=np.float32(1), reset=reset),
    ]
    main = "sa"
    if deep:
        ops += [
            Conv2d(
                name="conv2",
                inputs=("sa",),
                output="c2",
                weight=_w(rng, c, c, 3, 3, scale=2),
                bias=rng.normal(size=c).astype(np.float32) * 0.1 + 0.1,
                padding=(1, 1, 1, 1),
            ),
            IF(name="if_b", inputs=("c2",), output="sb", threshold=np.float32(0.9), reset=reset),
        ]
        main = "sb"
    ops.append(
        Conv2d(
            name="conv3",
            inputs=(main,),
            output="c3",
            weight=_w(rng, c, c, 3, 3, scale=1.5),
            bias=rng.normal(size=c).astype(np.float32) * 0.1,
            padding=(1, 1, 1, 1),
        )
    )
    if skip == "identity":
        branch = "sa"
    elif skip == "scale":
        ops.append(Scale(name="skip_scale", inputs=("sa",), output="k", value=np.float32(0.5)))
        branch = "k"
    else:
        ops.append(Conv2d(name="skip_conv", inputs=("sa",), output="k", weight=_w(rng, c, c, 1, 1, scale=1.5)))
        branch = "k"
    ops += [
        Add(name="skip_add", inputs=("c3", branch), output="r"),
        IF(name="if_c", inputs=("r",), output="sc", threshold=np.float32(1.2), reset=reset),
        Reshape(name="flat", inputs=("sc",), output="f", shape=(c * 36,)),
        Dense(name="fc", inputs=("f",), output="y", weight=_w(rng, 3, c * 36, scale=3)),
    ]
    return Graph(f"residual_{skip}", {"x": TensorType((1, 6, 6))}, ["y"], ops)


def concat_block(
    seed: int = 0,
    head: str = "conv",
    order: tuple[str, ...] = ("sa", "sb"),
    reset: str = "subtract",
    channels: tuple[int, int, int] = (3, 2, 2),
) -> Graph:
    """x (1, 6, 6) -> conv -> IF a -> conv -> IF b -> conv -> IF c -> Concat(``order``, channels) -> ``head`` ->
    IF d -> flatten -> dense (3): a DenseNet-style Concat of spike maps of different depths (a 0, b 1, c 2; IF c
    is left out when ``order`` does not name ``sc``), so the shallower inputs reach IF d through delayed synapses.
    ``head``: ``conv`` (a 3x3 Conv2d of the concatenated channels), ``pool_conv`` (AvgPool 2 then a 3x3 Conv2d)
    or ``dense`` (flatten, then a Dense of 8 IF neurons)."""
    rng = np.random.default_rng(seed)
    sizes = dict(zip(("sa", "sb", "sc"), channels, strict=True))
    ops = [
        Conv2d(
            name="conv1",
            inputs=("x",),
            output="c1",
            weight=_w(rng, sizes["sa"], 1, 3, 3, scale=3),
            bias=rng.normal(size=sizes["sa"]).astype(np.float32) * 0.2 + 0.2,
            padding=(1, 1, 1, 1),
        ),
        IF(name="if_a", inputs=("c1",), output="sa", threshold=np.float32(1), reset=reset),
        Conv2d(
            name="conv2",
            inputs=("sa",),
            output="c2",
            weight=_w(rng, sizes["sb"], sizes["sa"], 3, 3, scale=2.5),
            bias=rng.normal(size=sizes["sb"]).astype(np.float32) * 0.1 + 0.2,
            padding=(1, 1, 1, 1),
        ),
        IF(name="if_b", inputs=("c2",), output="sb", threshold=np.float32(0.9), reset=reset),
    ]
    if "sc" in order:
        ops += [
            Conv2d(
                name="conv3",
                inputs=("sb",),
                output="c3",
                weight=_w(rng, sizes["sc"], sizes["sb"], 3, 3, scale=2.5),
                bias=rng.normal(size=sizes["sc"]).astype(np.float32) * 0.1 + 0.2,
                padding=(1, 1, 1, 1),
            ),
            IF(name="if_c", inputs=("c3",), output="sc", threshold=np.float32(1.1), reset=reset),
        ]
    total = sum(sizes[name] for name in order)
    ops.append(Concat(name="cat", inputs=tuple(order), output="cat_out", axis=0))
    if head == "dense":
        n, side = 8, 6
        ops += [
            Reshape(name="cat_flat", inputs=("cat_out",), output="cf", shape=(total * 36,)),
            Dense(
                name="fc_d",
                inputs=("cf",),
                output="cd",
                weight=_w(rng, n, total * 36, scale=4),
                bias=rng.normal(size=n).astype(np.float32) * 0.1 + 0.1,
            ),
        ]
    else:
        n, side = 4, 6 if head == "conv" else 3
        source = "cat_out"
        if head == "pool_conv":
            ops.append(AvgPool2d(name="cat_pool", inputs=("cat_out",), output="cp", kernel=(2, 2), stride=(2, 2)))
            source = "cp"
        ops.append(
            Conv2d(
                name="conv_d",
                inputs=(source,),
                output="cd",
                weight=_w(rng, n, total, 3, 3, scale=3),
                bias=rng.normal(size=n).astype(np.float32) * 0.1 + 0.1,
                padding=(1, 1, 1, 1),
            )
        )
    width = n if head == "dense" else n * side * side
    ops += [
        IF(name="if_d", inputs=("cd",), output="sd", threshold=np.float32(1.2), reset=reset),
        Reshape(name="flat", inputs=("sd",), output="f", shape=(width,)),
        Dense(name="fc", inputs=("f",), output="y", weight=_w(rng, 3, width, scale=3)),
    ]
    return Graph(f"concat_{head}_{len(order)}", {"x": TensorType((1, 6, 6))}, ["y"], ops)


def delay_alignment(graph: Graph, program, x: np.ndarray, population: str, steps: int = 32) -> tuple[float, float]:
    """The fraction of ``population``'s neurons firing as often as in the float SNN, with the program's delays
    and with every skip's delay removed (its spikes arriving early): (aligned, early)."""
    import dataclasses

    from neurodeploy_loihi.emulator import Network

    from neurodeploy.simulate import simulate

    ref = simulate(graph, {"x": x}, steps).counts[population]
    aligned = float(np.mean(program.run(x, steps, counts=True).counts[population] == ref))
    layers = [
        dataclasses.replace(layer, skips=tuple(dataclasses.replace(s, delay=0) for s in layer.skips))
        for layer in program.network.layers
    ]
    program.network = Network(layers)
    early = float(np.mean(program.run(x, steps, counts=True).counts[population] == ref))
    return aligned, early


def emit_graph(graph: Graph, folder: Path, calibration: np.ndarray | None, encoding: str = "direct") -> Emitted:
    """Plan and emit a converted graph for loihi2 into ``folder``, as the compiler does (without the graphs);
    ``encoding="events"``: the input arrives as spikes (event frames)."""
    from neurodeploy_loihi import Loihi2Backend

    backend = Loihi2Backend()
    model = CompiledModel(snn=graph, calibration=calibration, encoding=Encoding(encoding))
    return backend.emit(backend.plan(model), folder)


def resnet20(seed: int = 0, reset: str = "subtract") -> Graph:
    """A CIFAR ResNet-20 of IR ops (He et al. 2016, batch norm folded): a 3x3 stem of 16 channels, three stages of
    three basic blocks (16, 32, 64 channels at 32, 16, 8 pixels; conv -> IF -> conv + shortcut -> IF), identity
    shortcuts, and a 1x1 stride-2 convolution shortcut where a stage starts (option B), then global average pooling
    and a dense readout of 10: 19 convolutions, 188,426 neurons."""
    from neurodeploy.ir import GlobalAvgPool

    rng = np.random.default_rng(seed)
    ops: list = []

    def conv(name: str, x: str, c_in: int, c_out: int, k: int = 3, stride: int = 1) -> str:
        pad = (k // 2,) * 4
        weight = _w(rng, c_out, c_in, k, k, scale=1.5)
        ops.append(
            Conv2d(
                name=name,
                inputs=(x,),
                output=f"{name}_o",
                weight=weight,
                padding=pad,
                stride=(stride,) * 2,
                bias=(rng.normal(size=c_out) * 0.05).astype(np.float32),
            )
        )
        return f"{name}_o"

    def neurons(name: str, x: str) -> str:
        ops.append(IF(name=name, inputs=(x,), output=f"{name}_s", threshold=np.float32(1.0), reset=reset))
        return f"{name}_s"

    x, c = neurons("stem_if", conv("stem", "x", 3, 16)), 16
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            name, stride = f"s{stage}b{block}", 2 if stage and not block else 1
            h = neurons(f"{name}_if1", conv(f"{name}_c1", x, c, width, stride=stride))
            main = conv(f"{name}_c2", h, width, width)
            short = x if stride == 1 else conv(f"{name}_short", x, c, width, k=1, stride=2)
            ops.append(Add(name=f"{name}_add", inputs=(main, short), output=f"{name}_sum"))
            x, c = neurons(f"{name}_if2", f"{name}_sum"), width
    ops.append(GlobalAvgPool(name="gap", inputs=(x,), output="g"))
    ops.append(Reshape(name="flat", inputs=("g",), output="f", shape=(64,)))
    ops.append(Dense(name="fc", inputs=("f",), output="y", weight=_w(rng, 10, 64, scale=3)))
    return Graph("resnet20", {"x": TensorType((3, 32, 32))}, ["y"], ops)


def vgg(seed: int = 0) -> Graph:
    """A CIFAR-sized VGG of IR ops: 3x32x32 -> conv 64, 64 -> pool -> conv 128, 128 -> pool -> conv 256, 256 ->
    pool -> dense 10 (six 3x3 convolutions, 229,386 neurons; counting every connection as stored, the old
    placement, it was refused: "needs 1828 Loihi 2 cores")."""
    rng = np.random.default_rng(seed)
    ops, x, c_in = [], "x", 3
    for k, (c, pool) in enumerate([(64, 0), (64, 1), (128, 0), (128, 1), (256, 0), (256, 1)]):
        ops.append(
            Conv2d(
                name=f"conv{k}",
                inputs=(x,),
                output=f"c{k}",
                weight=_w(rng, c, c_in, 3, 3, scale=2),
                bias=np.zeros(c, np.float32),
                padding=(1, 1, 1, 1),
            )
        )
        ops.append(IF(name=f"if{k}", inputs=(f"c{k}",), output=f"s{k}", threshold=np.float32(1.0)))
        x, c_in = f"s{k}", c
        if pool:
            ops.append(AvgPool2d(name=f"pool{k}", inputs=(x,), output=f"p{k}", kernel=(2, 2), stride=(2, 2)))
            x = f"p{k}"
    ops.append(Reshape(name="flat", inputs=(x,), output="f", shape=(256 * 16,)))
    ops.append(Dense(name="fc", inputs=("f",), output="y", weight=_w(rng, 10, 256 * 16)))
    return Graph("vgg", {"x": TensorType((3, 32, 32))}, ["y"], ops)


def inception_block(seed: int = 0, deep: bool = False, reset: str = "subtract") -> Graph:
    """x (1, 6, 6) -> conv -> IF a (3 channels), read by two parallel branches: a 1x1 conv -> IF b1 (2) and a 3x3
    conv -> IF b2 (3) (``deep``: then a second 3x3 conv -> IF b3, one synapse longer); their channel Concat -> conv
    -> IF d (4) -> flatten -> dense (3). IF b2 reads IF a, not the population before it (b1): a parallel branch."""
    rng = np.random.default_rng(seed)

    def conv(name: str, x: str, c_in: int, c_out: int, k: int) -> Conv2d:
        return Conv2d(
            name=name,
            inputs=(x,),
            output=f"{name}_o",
            weight=_w(rng, c_out, c_in, k, k, scale=2.5),
            bias=(rng.normal(size=c_out) * 0.1 + 0.15).astype(np.float32),
            padding=(k // 2,) * 4,
        )

    def neurons(name: str, x: str, theta: float = 1.0) -> IF:
        return IF(name=name, inputs=(x,), output=f"s_{name}", threshold=np.float32(theta), reset=reset)

    ops = [conv("conv_a", "x", 1, 3, 3), neurons("a", "conv_a_o")]
    ops += [conv("conv_b1", "s_a", 3, 2, 1), neurons("b1", "conv_b1_o", 0.9)]
    ops += [conv("conv_b2", "s_a", 3, 3, 3), neurons("b2", "conv_b2_o", 1.1)]
    last = "s_b2"
    if deep:
        ops += [conv("conv_b3", "s_b2", 3, 3, 3), neurons("b3", "conv_b3_o")]
        last = "s_b3"
    ops += [
        Concat(name="cat", inputs=("s_b1", last), output="cat_o", axis=0),
        conv("conv_d", "cat_o", 5, 4, 3),
        neurons("d", "conv_d_o", 1.2),
        Reshape(name="flat", inputs=("s_d",), output="f", shape=(4 * 36,)),
        Dense(name="fc", inputs=("f",), output="y", weight=_w(rng, 3, 4 * 36, scale=3)),
    ]
    return Graph(f"inception{'_deep' if deep else ''}", {"x": TensorType((1, 6, 6))}, ["y"], ops)


def qcfs_cnn(seed: int = 0) -> Graph:
    """A QCFS ANN (not yet converted) whose 8-bit graded program is lossless: x (1, 6, 6) -> conv 3x3 -> QCFS
    (λ 1, L 4) -> avgpool 2 -> conv 3x3 in 2 groups -> QCFS (λ 2, L 8) -> flatten -> dense -> QCFS (λ 0.5, L 2) ->
    dense (3). Weights and biases are multiples of 1/16 up to 1.5 and the thresholds powers of two, so every weight
    in level units is a small dyadic number that 8-bit weights with their shift hold exactly; inputs are multiples
    of 1/8."""
    from neurodeploy.ir import QCFS

    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.integers(-24, 25, size=shape) / 16).astype(np.float32)

    ops = [
        Conv2d(name="conv1", inputs=("x",), output="c1", weight=w(4, 1, 3, 3), bias=w(4) / 4, padding=(1,) * 4),
        QCFS(name="act1", inputs=("c1",), output="a1", lam=1.0, levels=4),
        AvgPool2d(name="pool", inputs=("a1",), output="p1", kernel=(2, 2), stride=(2, 2)),
        Conv2d(
            name="conv2", inputs=("p1",), output="c2", weight=w(4, 2, 3, 3), bias=w(4) / 4, padding=(1,) * 4, groups=2
        ),
        QCFS(name="act2", inputs=("c2",), output="a2", lam=2.0, levels=8),
        Reshape(name="flat", inputs=("a2",), output="f", shape=(36,)),
        Dense(name="fc1", inputs=("f",), output="d1", weight=w(8, 36) / 4, bias=w(8) / 4),
        QCFS(name="act3", inputs=("d1",), output="a3", lam=0.5, levels=2),
        Dense(name="fc2", inputs=("a3",), output="y", weight=w(3, 8), bias=w(3)),
    ]
    return Graph("qcfs_cnn", {"x": TensorType((1, 6, 6))}, ["y"], ops)


def convert(graph: Graph, calibration: np.ndarray | None = None) -> Graph:
    """The compiler's canonicalization and default conversion of an ANN graph (a copy), as Loihi compiles it."""
    from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline

    snn = graph.copy()
    PassManager(build_pipeline(CANONICALIZE + ",convert-to-snn")).run(snn, PassContext(calibration=calibration))
    return snn


def relay_block(seed: int = 4) -> Graph:
    """x (1, 6, 6) -> conv -> IF a -> conv -> IF b -> conv, + a 3x3 conv of a (the shortcut, a step shallower)
    -> IF d -> flatten -> dense (3): a delayed convolution, listed as taps or read from a relay (test_relay.py)."""
    rng = np.random.default_rng(seed)

    def conv(name: str, source: str, out: str, c_in: int, scale: float) -> Conv2d:
        weight = rng.normal(0, scale, (4, c_in, 3, 3)).astype(np.float32)
        bias = rng.uniform(0.0, 0.15, 4).astype(np.float32)
        return Conv2d(name=name, inputs=(source,), output=out, weight=weight, bias=bias, padding=(1, 1, 1, 1))

    ops = [
        conv("conv1", "x", "c1", 1, 1.2),
        IF(name="if_a", inputs=("c1",), output="sa", threshold=np.float32(1)),
        conv("conv2", "sa", "c2", 4, 0.5),
        IF(name="if_b", inputs=("c2",), output="sb", threshold=np.float32(1)),
        conv("conv3", "sb", "c3", 4, 0.4),
        conv("shortcut", "sa", "cs", 4, 0.4),
        Add(name="join", inputs=("c3", "cs"), output="j"),
        IF(name="if_d", inputs=("j",), output="sd", threshold=np.float32(1)),
        Reshape(name="flat", inputs=("sd",), output="f", shape=(4 * 36,)),
        Dense(name="fc", inputs=("f",), output="y", weight=rng.normal(0, 0.3, (3, 4 * 36)).astype(np.float32)),
    ]
    graph = Graph("relay_block", {"x": TensorType((1, 6, 6))}, ["y"], ops)
    graph.verify()
    return graph
