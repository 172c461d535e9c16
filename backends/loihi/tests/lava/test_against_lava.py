"""The emulator against Lava's bit-accurate process models (``Loihi2SimCfg(select_tag="fixed_pt")``): spike for
spike, and u and v of every layer at every step, on random networks (dense, conv, conv then dense; 1 to 3
layers; biases; both neuron kinds; all sign modes, several weight exponents and weight widths; some built to
fold u and saturate v) and on hand-picked edge cases.

Lava pays for every process at start-up and at every step, so all networks run in a few Lava runs (the
runner puts a batch into one chain and joins independent networks into one run); the module-scoped fixture
runs them once, and each test compares one network.
"""

import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from lava_checks import require_lava
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron, Trace

require_lava()


STEPS = 24
"""Steps per run; the input has spikes in the first INPUT_FRAMES of them only."""
INPUT_FRAMES = 20
BATCH = 2
PROCESSES_PER_RUN = 72
"""Lava's start-up grows faster than linearly with the number of processes: a few mid-sized runs are fastest."""


@dataclass
class Case:
    id: str
    network: Network
    spikes: np.ndarray


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _spikes(rng: np.random.Generator, shape: tuple[int, ...], p: float | None = None) -> np.ndarray:
    p = rng.uniform(0.1, 0.8) if p is None else p
    return (rng.random((BATCH, INPUT_FRAMES, *shape)) < p).astype(np.int8)


def _dense(rng: np.random.Generator, n_in: int, n_out: int, extreme: bool) -> DenseSynapse:
    sign_mode = rng.choice([None, fp.SignMode.MIXED, fp.SignMode.EXCITATORY, fp.SignMode.INHIBITORY])
    shape = (n_out, n_in)
    if extreme:  # large magnitudes, the sign the mode allows
        weights = rng.integers(200, 256, shape)
        if sign_mode == fp.SignMode.INHIBITORY:
            weights = -weights
        elif sign_mode != fp.SignMode.EXCITATORY:
            weights = weights * rng.choice([-1, 1], shape)
    else:  # past the 8-bit range, and past zero for the one-signed modes, to exercise clipping
        low, high = {fp.SignMode.EXCITATORY: (-30, 300), fp.SignMode.INHIBITORY: (-300, 30)}.get(sign_mode, (-300, 300))
        weights = rng.integers(low, high + 1, shape)
    weight_exp = int(rng.integers(4, 8) if extreme else rng.integers(-3, 4))
    return DenseSynapse(weights, weight_exp=weight_exp, num_weight_bits=int(rng.integers(1, 9)), sign_mode=sign_mode)


def _conv(rng: np.random.Generator, input_shape: tuple[int, int, int], extreme: bool) -> ConvSynapse:
    while True:
        c_in = input_shape[2]
        groups = int(rng.choice([g for g in (1, 2) if c_in % g == 0]))
        c_out = groups * int(rng.integers(1, 3))
        kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
        stride = tuple(int(s) for s in rng.integers(1, 3, 2))
        dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
        padding = tuple(int(p) for p in rng.integers(0, 2, 2))
        low, high = (150, 255) if extreme else (-256, 255)
        weights = rng.integers(low, high + 1, (c_out, *kernel, c_in // groups))
        try:
            return ConvSynapse(weights, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
        except ValueError:  # no output for this input size: draw again
            continue


def _neuron(rng: np.random.Generator, shape: tuple[int, ...], extreme: bool, vth: int) -> Neuron:
    kind = str(rng.choice(["lif", "subtractive"]))
    if extreme:
        du, dv = (int(d) for d in rng.integers(0, 3, 2))
    else:
        du = int(rng.choice([0, 1, 2047, 4095, int(rng.integers(0, 4096))]))
        dv = int(rng.choice([0, 1, 2047, int(rng.integers(0, 4096))]))
    per_neuron = bool(rng.integers(0, 2))
    mant_range = 4095 if extreme else 600
    bias_mant = rng.integers(-mant_range, mant_range + 1, shape if per_neuron else ())
    bias_exp = rng.integers(0, 8, shape if per_neuron else ())
    v0_choice = int(rng.integers(0, 3))
    threshold = vth << fp.VTH_SHIFT
    v0 = [0, threshold // 2, rng.integers(-threshold, threshold + 1, shape)][v0_choice]
    return Neuron(du=du, dv=dv, vth=vth, kind=kind, bias_mant=bias_mant, bias_exp=bias_exp, v0=v0)


def _calibrated(rng: np.random.Generator, layers: list[Layer], spikes: np.ndarray, extreme: bool) -> list[Layer]:
    """Pick each layer's vth, bottom up, so that it spikes at a random target rate (random thresholds leave
    most layers silent or always on): a bisection on log2(vth). A layer that cannot spike even at vth = 0 (its
    input is all inhibitory) gets a positive bias first. Extreme networks aim low, so v climbs far."""
    done: list[Layer] = []
    for layer in layers:
        target = rng.uniform(0.02, 0.1) if extreme else rng.uniform(0.05, 0.35)
        neuron = layer.neuron

        def rate(vth: int, neuron: Neuron = neuron, synapse=layer.synapse) -> float:
            trial = Layer(synapse, _with_vth(neuron, vth))
            return float(Network([*done, trial]).run(spikes, STEPS, record_state=False).spikes[-1].mean())

        if rate(0) == 0:
            neuron = _with_vth(neuron, 0, bias_mant=int(rng.integers(200, 2000)), bias_exp=int(rng.integers(3, 7)))
        low, high = 0.0, float(fp.VTH_BITS)  # log2(vth) in [0, 17]
        for _ in range(7):
            middle = (low + high) / 2
            low, high = (middle, high) if rate(int(2**middle)) > target else (low, middle)
        done.append(Layer(layer.synapse, _with_vth(neuron, min(int(2**high), (1 << fp.VTH_BITS) - 1))))
    return done


def _with_vth(neuron: Neuron, vth: int, **changes: int) -> Neuron:
    """``neuron`` with threshold ``vth`` (a scalar v0 that is not 0 follows it: theta / 2), and ``changes``."""
    v0 = neuron.v0 if np.ndim(neuron.v0) or neuron.v0 == 0 else (vth << fp.VTH_SHIFT) // 2
    fields = {"bias_mant": neuron.bias_mant, "bias_exp": neuron.bias_exp, **changes}
    return Neuron(du=neuron.du, dv=neuron.dv, vth=vth, kind=neuron.kind, v0=v0, **fields)


def random_case(family: str, index: int) -> Case:
    rng = _rng(f"{family}-{index}")
    extreme = index % 4 == 3  # every fourth network is built to fold u and saturate v
    layers: list[Layer] = []
    if family == "dense":
        n_layers = 1 + index % 3
        shape: tuple[int, ...] = (int(rng.integers(4, 17)),)
        input_shape = shape
        for _ in range(n_layers):
            synapse = _dense(rng, shape[0], int(rng.integers(3, 13)), extreme)
            shape = synapse.output_shape
            layers.append(Layer(synapse, _neuron(rng, shape, extreme, 100)))
    else:
        input_shape = (int(rng.integers(4, 8)), int(rng.integers(4, 8)), int(rng.integers(1, 4)))
        shape = input_shape
        n_conv = 1 + index % 2
        n_dense = 0 if family == "conv" else 1 + (index // 2) % (3 - n_conv)  # at most 3 layers
        for _ in range(n_conv):
            synapse = _conv(rng, shape, extreme)
            shape = synapse.output_shape
            layers.append(Layer(synapse, _neuron(rng, shape, extreme, 100)))
        for _ in range(n_dense):
            synapse = _dense(rng, int(np.prod(shape)), int(rng.integers(3, 10)), extreme)
            shape = synapse.output_shape
            layers.append(Layer(synapse, _neuron(rng, shape, extreme, 100)))
    spikes = _spikes(rng, input_shape, 0.8 if extreme else None)
    layers = _calibrated(rng, layers, spikes, extreme)
    kinds = "".join(layer.neuron.kind[0] for layer in layers)
    name = f"{family}{index:02d}-{len(layers)}layers-{kinds}" + ("-extreme" if extreme else "")
    return Case(name, Network(layers), spikes)


def _single(
    weights, weight_exp: int, vth: int, *, sign_mode=None, kind="lif", du=4095, dv=0, bias_mant=0, bias_exp=0, v0=0
) -> Network:
    synapse = DenseSynapse(np.asarray(weights), weight_exp=weight_exp, sign_mode=sign_mode)
    neuron = Neuron(du=du, dv=dv, vth=vth, kind=kind, bias_mant=bias_mant, bias_exp=bias_exp, v0=v0)
    return Network([Layer(synapse, neuron)])


def edge_cases() -> list[Case]:
    """Networks aimed at one corner of the arithmetic each (all inputs spike every step unless said)."""
    on = np.ones((BATCH, INPUT_FRAMES, 1), np.int8)
    on4 = np.ones((BATCH, INPUT_FRAMES, 4), np.int8)
    vmax = (1 << fp.VTH_BITS) - 1
    cases = [
        # a_in = 2**17: a_in << 6 = 2**23 exactly, which Lava's fold leaves at +2**23 (outside 24 bits) ...
        Case("u-at-plus-2pow23", _single([[128]], 10, vmax, sign_mode=fp.SignMode.EXCITATORY), on),
        # ... while -2**23 folds to +2**23
        Case("u-at-minus-2pow23", _single([[-128]], 10, vmax, sign_mode=fp.SignMode.INHIBITORY), on),
        # a message of 4 * 255 * 2**6 = 65280 needs 17 bits: Dense's a_out and LIF's a_in declare precision 16,
        # which Lava does not enforce (u = 65280 << 6, no 16-bit wrap)
        Case("dense-message-beyond-16-bits", _single(np.full((2, 4), 255), 6, vmax), on4),
        # 4 * 255 * 2**5 << 6 = 16.7M > 2**23: u folds every step
        Case("u-folds", _single(np.full((3, 4), 255), 5, vmax), on4),
        # u accumulates (du = 0) past 2**23 over a few steps and folds negative
        Case("u-accumulates-and-folds", _single(np.full((2, 4), 250), 3, vmax, du=0, dv=4095), on4),
        # 255 * 4 * 2**20 << 6 overflows int32: the shift wraps at 32 bits
        Case("a_in-shift-wraps-int32", _single(np.full((2, 4), 255), 20, vmax), on4),
        # 255 * 4 * 2**22 > 2**31: Dense's int64 sum wraps in the int32 channel
        Case("dense-message-wraps-int32", _single(np.full((2, 4), 255), 22, vmax), on4),
        # the bias alone drives v to +2**23 - 1 (above every threshold) and to -(2**23 - 1)
        Case("v-saturates-positive", _single([[0]], 0, vmax, bias_mant=4095, bias_exp=7, kind="subtractive"), on),
        Case("v-saturates-negative", _single([[0]], 0, 5, bias_mant=-4096, bias_exp=7), on),
        # v reaches exactly vth << 6: no spike (strict >); one step later it spikes
        Case("threshold-equality-lif", _single([[1]], 0, 1), on),
        Case("threshold-equality-subtractive", _single([[1]], 0, 1, kind="subtractive"), on),
        # the converted IF neuron: no leak, u = input, v(0) = theta / 2, reset by subtraction
        Case("if-neuron-half-threshold", _single([[37, 90, -20, 64]], 0, 3, kind="subtractive", v0=96), on4),
        # a negative weight exponent floors negative sums: -5 >> 1 = -3, not -2 (inhibitory weights keep all 8 bits,
        # so the sums can be odd; mixed weights lose their lowest bit)
        Case("negative-exp-floors", _single([[-3, -2], [-5, -1]], -1, 1, dv=100), np.ones_like(on4[..., :2])),
        # decays: du = 2047 halves u, dv = 2048 halves v, rounding toward zero for negatives
        Case("halving-decays", _single([[-77], [77]], 0, vmax, du=2047, dv=2048), on[:, :3]),
    ]
    return cases


DENSE = [random_case("dense", i) for i in range(24)]
CONV = [random_case("conv", i) for i in range(12)]
MIXED = [random_case("mixed", i) for i in range(16)]
EDGES = edge_cases()
ALL = DENSE + CONV + MIXED + EDGES


def _processes(case: Case) -> int:
    return 1 + 3 * len(case.network.layers)  # source, and synapse + neurons + recorder per layer


@pytest.fixture(scope="module")
def lava_traces() -> dict[str, Trace]:
    """Every case run in Lava, in runs of at most PROCESSES_PER_RUN processes."""
    from neurodeploy_loihi.lava_runner import run_in_lava

    runs: list[list[Case]] = [[]]
    for case in ALL:
        if runs[-1] and sum(map(_processes, runs[-1])) + _processes(case) > PROCESSES_PER_RUN:
            runs.append([])
        runs[-1].append(case)
    traces = {}
    for run in runs:
        for case, trace in zip(run, run_in_lava([(c.network, c.spikes) for c in run], STEPS)):
            traces[case.id] = trace
    return traces


def assert_same(case: Case, lava: Trace, steps: int = STEPS) -> None:
    ours = case.network.run(case.spikes, steps)
    for k in range(len(case.network.layers)):
        for name in ("spikes", "u", "v"):
            a, b = getattr(ours, name)[k], getattr(lava, name)[k]
            assert a.shape == b.shape, f"{case.id} layer {k} {name}: shape {a.shape} != Lava's {b.shape}"
            if not np.array_equal(a, b):
                where = tuple(int(i) for i in np.argwhere(a != b)[0])
                raise AssertionError(
                    f"{case.id} layer {k} {name} differs from Lava first at (sample, step, *neuron) {where}: "
                    f"emulator {a[where]}, Lava {b[where]}"
                )


def _ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


@pytest.mark.parametrize("case", DENSE, ids=_ids(DENSE))
def test_dense_chain_equals_lava_fixed_pt(case: Case, lava_traces: dict[str, Trace]) -> None:
    assert_same(case, lava_traces[case.id])


@pytest.mark.parametrize("case", CONV, ids=_ids(CONV))
def test_conv_chain_equals_lava_fixed_pt(case: Case, lava_traces: dict[str, Trace]) -> None:
    assert_same(case, lava_traces[case.id])


@pytest.mark.parametrize("case", MIXED, ids=_ids(MIXED))
def test_conv_then_dense_chain_equals_lava_fixed_pt(case: Case, lava_traces: dict[str, Trace]) -> None:
    assert_same(case, lava_traces[case.id])


@pytest.mark.parametrize("case", EDGES, ids=_ids(EDGES))
def test_edge_case_equals_lava_fixed_pt(case: Case, lava_traces: dict[str, Trace]) -> None:
    assert_same(case, lava_traces[case.id])


def test_random_networks_cover_what_they_claim() -> None:
    """The random suite spikes, folds u, saturates v, and spans the parameter space it is meant to."""
    random_cases = DENSE + CONV + MIXED
    assert len(random_cases) >= 50
    runs = {c.id: c.network.run(c.spikes, STEPS) for c in random_cases}
    spiking_everywhere = [i for i, t in runs.items() if all(s.any() for s in t.spikes)]
    assert len(spiking_everywhere) >= 0.8 * len(random_cases)
    assert sum(any(f.any() for f in t.u_folds) for t in runs.values()) >= 5
    assert sum(any(s.any() for s in t.v_saturations) for t in runs.values()) >= 5
    layers = [layer for c in random_cases for layer in c.network.layers]
    dense = [layer.synapse for layer in layers if isinstance(layer.synapse, DenseSynapse)]
    assert {fp.determine_sign_mode(d.weights) if d.sign_mode is None else d.sign_mode for d in dense} == set(
        fp.SignMode
    )
    assert any(d.sign_mode is None for d in dense)
    assert len({d.weight_exp for d in dense}) >= 6
    assert len({d.num_weight_bits for d in dense}) >= 6
    assert {layer.neuron.kind for layer in layers} == {"lif", "subtractive"}
    assert any(np.any(np.asarray(layer.neuron.bias_mant) != 0) for layer in layers)
    convs = [layer.synapse for layer in layers if isinstance(layer.synapse, ConvSynapse)]
    assert {c.groups for c in convs} == {1, 2}
    assert max(max(c.stride) for c in convs) == 2
    assert max(max(c.dilation) for c in convs) == 2
    assert max(max(c.padding) for c in convs) == 1


def test_lava_conv_ignores_weight_exp_and_num_weight_bits() -> None:
    """Lava's Conv takes weight_exp and num_weight_bits, but its fixed_pt model applies neither: a Conv given
    weight_exp=3 and num_weight_bits=4 gives u of the raw weights (the emulator's ConvSynapse has neither)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    weights = np.array([[[[3]], [[-5]]]])  # (C_out=1, kX=2, kY=1, C_in=1): odd values, which 4 bits would drop
    spikes = np.ones((1, 3, 2, 1, 1), np.int8)
    source = RingBuffer(data=np.ones((2, 1, 1, 3), np.int32))
    conv = Conv(weight=weights, input_shape=(2, 1, 1), weight_exp=3, num_weight_bits=4)
    neurons = LIF(shape=(1, 1, 1), du=4095, dv=0, vth=(1 << fp.VTH_BITS) - 1)
    source.s_out.connect(conv.s_in)
    conv.a_out.connect(neurons.a_in)
    try:
        u = []
        for _ in range(3):
            neurons.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            u.append(int(neurons.u.get().reshape(-1)[0]))
    finally:
        neurons.stop()
    ours = Network([Layer(ConvSynapse(weights, (2, 1, 1)), Neuron(du=4095, dv=0, vth=(1 << fp.VTH_BITS) - 1))])
    assert u == [0, (3 - 5) << fp.ACT_SHIFT, (3 - 5) << fp.ACT_SHIFT]  # not (3 - 5) * 2**3 << 6
    assert u == ours.run(spikes, 3).u[0].reshape(-1).tolist()


def test_conv_accumulation_wraps_at_24_bits_equals_lava_fixed_pt() -> None:
    """A 3x3 kernel of 255 over 3700 channels of spikes: the centre sums 9 * 3700 * 255 = 8491500 > 2**23,
    which Lava's signed_clamp wraps to 8491500 - 2**24 = -8285716 (edges and corners stay below 2**23)."""
    from neurodeploy_loihi.lava_runner import run_in_lava

    conv = ConvSynapse(np.full((1, 3, 3, 3700), 255), (3, 3, 3700), padding=1)
    network = Network([Layer(conv, Neuron(du=4095, dv=4095, vth=1))])
    spikes = np.ones((1, 2, 3, 3, 3700), np.int8)
    (lava,) = run_in_lava([(network, spikes)], 3)
    assert conv.accumulate(spikes[:, 0])[0, 1, 1, 0] == 8491500 - (1 << 24)
    assert_same(Case("conv-wraps-at-24-bits", network, spikes), lava, 3)


def test_recorder_reads_what_lava_monitors_read() -> None:
    """The runner's Recorder (one process per population) against Lava's own Monitors (one per probe)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor
    from neurodeploy_loihi.lava_processes import Recorder, SubtractiveLIF

    rng = np.random.default_rng(7)
    steps = 12
    source = RingBuffer(data=(rng.random((5, steps)) < 0.5).astype(np.int32))
    dense = Dense(weights=rng.integers(-100, 200, (4, 5)))
    neurons = SubtractiveLIF(shape=(4,), du=300, dv=100, vth=40, bias_mant=rng.integers(-50, 50, 4), bias_exp=3)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(neurons.a_in)
    recorder = Recorder(shape=(4,), steps=steps)
    recorder.watch(neurons)
    monitors = {}
    for name, target in (("s_out", neurons.s_out), ("u", neurons.u), ("v", neurons.v)):
        monitors[name] = Monitor()
        monitors[name].probe(target, steps)
    try:
        source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        record = np.asarray(recorder.record.get())
        seen = {name: next(iter(m.get_data().values()))[name] for name, m in monitors.items()}
    finally:
        source.stop()
    assert record[0].any()
    for row, name in enumerate(("s_out", "u", "v")):
        np.testing.assert_array_equal(record[row], seen[name])
