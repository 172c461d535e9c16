"""Graded mode against Lava's bit-accurate process models (``Loihi2SimCfg(select_tag="fixed_pt")``): Lava's
``Dense`` / ``Conv`` with ``num_message_bits > 0`` feeding our ``GradedReLU`` (its ``fixed_pt`` model), payload
for payload and u and v for u and v at every step, on random graded networks (dense, conv, pooled and grouped
conv then dense; per-neuron biases with exponents; shifts; 4- to 24-bit payloads; built to saturate v, clip
payloads at their top, and wrap Conv's 24-bit sum) and on the bundled MNIST model, whose Lava readout also
equals the 8-bit quantized ANN's integer forward pass after the pipeline delay.
"""

import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from lava_checks import assert_same, require_lava

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Trace
from neurodeploy_loihi.graded import GradedLayer, GradedNetwork, GradedNeuron, GradedProgram

require_lava()


STEPS = 10
"""Enough for three synapses' delay, the settled network, and steps the emulator replays once every population
has repeated itself (``GradedNetwork.run``): Lava computes them all."""
BATCH = 2
MNIST_SAMPLES = 20
EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "mnist"
MODEL, CALIBRATION, TEST_IMAGES = (EXAMPLE / f for f in ("mnist_cnn.onnx", "calibration.npz", "test_images.npz"))
KINDS = ("dense", "conv", "conv_dense")
PER_KIND = 4


@dataclass
class Case:
    id: str
    network: GradedNetwork
    inputs: np.ndarray


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _neuron(rng: np.random.Generator, shape: tuple[int, ...], bits: int, relu: bool = True) -> GradedNeuron:
    mant = rng.integers(-4096, 4096, shape)
    exp = rng.integers(0, 8, shape)
    return GradedNeuron(relu=relu, shift=int(rng.integers(0, 12)), message_bits=bits, bias_mant=mant, bias_exp=exp)


def _even(rng: np.random.Generator, shape: tuple[int, ...], extreme: bool) -> np.ndarray:
    """8-bit weights on the MIXED grid; ``extreme``: large magnitudes of one sign per output (saturation, wraps)."""
    if extreme:
        sign = rng.choice([-1, 1], size=(shape[0],) + (1,) * (len(shape) - 1))
        return sign * rng.choice([248, 250, 252, 254], size=shape)
    return 2 * rng.integers(-128, 128, shape)


def _case(kind: str, index: int) -> Case:
    name = f"{kind}-{index}"
    rng = _rng(name)
    extreme = index % 2 == 1
    bits_in = 12 if extreme else int(rng.choice([4, 8, 12]))
    bits = int(rng.choice([4, 8, 12, 24])) if kind == "dense" else int(rng.choice([4, 8, 12]))
    layers: list[GradedLayer]
    if kind == "dense":
        n0, n1, n2 = (int(v) for v in rng.integers(9 if extreme else 3, 16, 3))
        layers = [
            GradedLayer(None, GradedNeuron(message_bits=bits_in), "in", (n0,)),
            GradedLayer(
                DenseSynapse(_even(rng, (n1, n0), extreme), sign_mode=fp.SignMode.MIXED),
                _neuron(rng, (n1,), bits),
                "hidden",
            ),
            GradedLayer(
                DenseSynapse(_even(rng, (n2, n1), extreme), sign_mode=fp.SignMode.MIXED),
                _neuron(rng, (n2,), bits, relu=False),
                "readout",
            ),
        ]
        shape0 = (n0,)
    else:
        c0, c1 = int(rng.integers(2 if extreme else 1, 4)), 2 * int(rng.integers(1, 3))
        shape0 = (6, 5, c0)
        conv1 = ConvSynapse(_even(rng, (c1, 3, 3, c0), extreme), shape0, padding=(1, 1))
        groups = int(rng.choice([1, 2]))
        pool = (2, 2) if kind == "conv_dense" else (1, 1)
        stride = (2, 2) if kind == "conv_dense" else (1, 1)
        conv2 = ConvSynapse(
            _even(rng, (4, 2, 2, c1 // groups), extreme),
            conv1.output_shape,
            stride=stride,
            padding=(2, 2) if kind == "conv_dense" else (1, 1),
            groups=groups,
            pool=pool,
        )
        layers = [
            GradedLayer(None, GradedNeuron(message_bits=bits_in), "in", shape0),
            GradedLayer(conv1, _neuron(rng, conv1.output_shape, bits), "conv1"),
            GradedLayer(conv2, _neuron(rng, conv2.output_shape, bits, relu=kind == "conv_dense"), "conv2"),
        ]
        if kind == "conv_dense":
            n_in, n_out = int(np.prod(conv2.output_shape)), int(rng.integers(2, 6))
            layers.append(
                GradedLayer(
                    DenseSynapse(_even(rng, (n_out, n_in), extreme), sign_mode=fp.SignMode.MIXED),
                    _neuron(rng, (n_out,), bits, relu=False),
                    "readout",
                )
            )
    inputs = rng.integers(0, 1 << bits_in, (BATCH, *shape0))
    if extreme:  # most inputs at the payload's top
        inputs = np.where(rng.random(inputs.shape) < 0.8, (1 << bits_in) - 1, inputs)
    return Case(name, GradedNetwork(layers), inputs)


CASES = [_case(kind, i) for kind in KINDS for i in range(PER_KIND)]


@pytest.fixture(scope="module")
def lava_traces() -> dict[str, Trace]:
    from neurodeploy_loihi.lava_graded import run_graded_in_lava

    traces: dict[str, Trace] = {}
    half = len(CASES) // 2  # two mid-sized runs start faster than one large one
    for part in (CASES[:half], CASES[half:]):
        for case, trace in zip(part, run_graded_in_lava([(c.network, c.inputs) for c in part], STEPS)):
            traces[case.id] = trace
    return traces


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_graded_network_equals_lava_fixed_pt(case: Case, lava_traces: dict[str, Trace]) -> None:
    ours = case.network.run(case.inputs, STEPS)
    assert_same(ours, lava_traces[case.id], [layer.name for layer in case.network.layers])


def test_random_graded_networks_cover_what_they_claim() -> None:
    """Saturation of v, payloads at their top, payloads cut to 0 by the ReLU, and wrapped Conv sums all occur."""
    saturated = top = zero = wrapped = 0
    for case in CASES:
        trace = case.network.run(case.inputs, STEPS)
        for k, layer in enumerate(case.network.layers):
            saturated += int(trace.v_saturations[k].sum())
            if layer.neuron.relu and k:
                top += int(np.count_nonzero(trace.spikes[k] == layer.neuron.top))
                zero += int(np.count_nonzero(trace.spikes[k] == 0))
            if isinstance(layer.synapse, ConvSynapse):
                below = trace.spikes[k - 1][:, 0].astype(np.int64)
                exact = fp.conv_accumulate(
                    below, layer.synapse.lava_weights, layer.synapse.stride, layer.synapse.padding, (1, 1),
                    layer.synapse.groups, graded=True,
                )  # fmt: skip
                wide = _conv_unwrapped(below, layer.synapse)
                wrapped += int(np.count_nonzero(exact != wide))
    assert len(CASES) >= 10
    assert saturated > 0
    assert top > 0
    assert zero > 0
    assert wrapped > 0


def _conv_unwrapped(x: np.ndarray, synapse: ConvSynapse) -> np.ndarray:
    """The Conv sum without the 24-bit wrap (float64, exact here)."""
    from neurodeploy_loihi.graded import conv2d_nchw

    w = synapse.lava_weights.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]  # (O, C, kH, kW) cross-correlation
    chw = np.moveaxis(x, (1, 2, 3), (3, 2, 1))  # (B, X, Y, C) -> (B, C, Y, X)
    out = conv2d_nchw(chw, w, synapse.stride[::-1], synapse.padding[::-1], (1, 1), synapse.groups)
    return np.rint(np.moveaxis(out, (1, 2, 3), (3, 2, 1))).astype(np.int64)


def test_bundled_mnist_graded_equals_lava_fixed_pt_and_the_quantized_ann(tmp_path: Path) -> None:
    from neurodeploy_loihi.lava_graded import run_graded_in_lava
    from neurodeploy_loihi.quantize import to_lava

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    artifact = compile_model(MODEL, "loihi", tmp_path / "mnist", calibration=load_calibration(str(CALIBRATION), 256))
    program = GradedProgram.load(artifact.root)
    x = np.load(TEST_IMAGES)["x"][:MNIST_SAMPLES]
    q0 = to_lava(program.input_payload(x), program.shapes[0])
    steps = 2 * program.delay + 4  # the settled network, then replayed steps
    (lava,) = run_graded_in_lava([(program.network, q0)], steps)
    assert_same(program.network.run(q0, steps), lava, program.names)
    expected = program.integer_forward(x)
    for k, q in enumerate(expected):  # Lava's population k holds the quantized ANN's layer k from step k + 1 on
        got = lava.v[k] if program.roles[k] == "readout" else lava.spikes[k]
        for t in range(k, steps):
            np.testing.assert_array_equal(got[:, t], to_lava(q, program.shapes[k]), err_msg=f"population {k}, t={t}")


BRANCHED = ["residual-identity", "residual-conv", "residual-scale-shallow", "inception-deep", "concat-pool-conv"]


def _branched(name: str):
    from loihi_graphs import concat_block, inception_block, residual_block

    return {
        "residual-identity": lambda: residual_block(seed=1, skip="identity"),
        "residual-conv": lambda: residual_block(seed=2, skip="conv"),
        "residual-scale-shallow": lambda: residual_block(seed=3, skip="scale", deep=False),
        "inception-deep": lambda: inception_block(deep=True),
        "concat-pool-conv": lambda: concat_block(seed=1, head="pool_conv", order=("sb", "sc", "sa")),
    }[name]()


@pytest.mark.parametrize("name", BRANCHED)
def test_graded_branches_equal_lava_fixed_pt_and_the_quantized_ann(name: str, tmp_path: Path) -> None:
    """Residual Adds, Concats and parallel branches in graded mode: every synapse into a population (Sparse /
    DelaySparse shortcuts, DelaySparse conv taps, Conv slices) carries graded payloads; Lava's InPort sums them.
    Payloads, u and v equal Lava's at every step, and from the pipeline delay on the readout is the quantized
    ANN's (the plain integer forward pass)."""
    from loihi_graphs import emit_graph
    from neurodeploy_loihi.lava_graded import run_graded_in_lava
    from neurodeploy_loihi.quantize import to_lava

    graph = _branched(name)
    x = np.random.default_rng(9).random((3, 1, 6, 6)).astype(np.float32)
    emitted = emit_graph(graph, tmp_path, x)
    assert emitted.manifest["graded"]["available"], emitted.manifest["graded"]
    program = GradedProgram.load(tmp_path)
    assert any(layer.skips or layer.source is not None for layer in program.network.layers)
    q0 = to_lava(program.input_payload(x), program.shapes[0])
    steps = 2 * program.delay + 4  # and replayed steps: the longest delay is below the pipeline's
    (lava,) = run_graded_in_lava([(program.network, q0)], steps)
    assert_same(program.network.run(q0, steps), lava, program.names)
    k = program.readout["population"]
    want = to_lava(program.integer_forward(x)[k], program.shapes[k])
    for t in range(program.delay, steps):
        np.testing.assert_array_equal(lava.v[k][:, t], want, err_msg=f"readout at t={t}")


def test_qcfs_staircase_equals_lava_fixed_pt_and_the_qcfs_ann(tmp_path: Path) -> None:
    """QCFS populations in graded mode (GradedReLU with ``levels``: payloads clipped at L): payloads, u and v equal
    Lava's at every step, and from the pipeline delay on every population's payload is the level of the trained
    staircase the float QCFS ANN computes (a model whose weights 8-bit integers hold exactly)."""
    from loihi_graphs import convert, emit_graph, qcfs_cnn
    from neurodeploy_loihi.lava_graded import run_graded_in_lava
    from neurodeploy_loihi.quantize import to_lava

    from neurodeploy.ir import interpret

    ann = qcfs_cnn(seed=3)
    x = (np.random.default_rng(5).integers(0, 9, size=(3, 1, 6, 6)) / 8).astype(np.float32)
    emit_graph(convert(ann, x), tmp_path, x)
    program = GradedProgram.load(tmp_path)
    assert [layer.neuron.levels for layer in program.network.layers] == [4, 8, 2, 0]
    q0 = to_lava(program.input_payload(x), program.shapes[0])
    steps = 2 * program.delay + 4
    (lava,) = run_graded_in_lava([(program.network, q0)], steps)
    assert_same(program.network.run(q0, steps), lava, program.names)
    floats = interpret.run(ann, x, keep=("a1", "a2", "a3"))
    for k, (value, lam, levels) in enumerate([("a1", 1.0, 4), ("a2", 2.0, 8), ("a3", 0.5, 2)]):
        want = to_lava(np.rint(floats[value] * levels / lam).astype(np.int64), program.shapes[k])
        for t in range(k, steps):
            np.testing.assert_array_equal(lava.spikes[k][:, t], want, err_msg=f"{value} at t={t}")
