"""Leaky neurons (LIF and CubaLIF layers of a NIR import) on the ``brainscales2`` target: the weight factor against
the emulator's response function, a leaky layer on the noise-free chip model against the float LIF the reference
target runs, the time constants the report and the netlist give, the netlist read back, and the refusals (a decay
outside the calibrated range, another reset, per-neuron decays, a drive into a synaptic current)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from neurodeploy_pynn import brainscales2 as bss2
from neurodeploy_pynn import brainscales2_emulator as emulator

from neurodeploy.errors import ArtifactError, ConversionError, NeurodeployError
from neurodeploy.ir import Dense, Graph, Scale, TensorType
from neurodeploy.ir.neurons import LIF
from neurodeploy.simulate import simulate

N_IN, N_HIDDEN, STEPS = 20, 40, 64


def f32(value) -> np.ndarray:
    return np.asarray(value, np.float32)


def lif(name, value, output, decay, syn=None, drive=0.0, reset="zero", strict=False) -> LIF:
    synaptic: dict[str, Any] = {} if syn is None else {"syn_decay": f32(syn), "syn_gain": f32(1.0)}
    return LIF(
        name=name,
        inputs=(value,),
        output=output,
        decay=np.asarray(decay, np.float32),
        gain=f32(1.0),
        drive=f32(drive),
        threshold=f32(1.0),
        reset=reset,
        strict=strict,
        **synaptic,
    )


def one_layer(decay, syn=None, *, scale=1.0, bias=True, drive=0.0, reset="zero", seed=0) -> Graph:
    """x (20) -> Scale -> 20 leaky input neurons (decay 0.95, on the host) -> Dense (40, seeded; a bias unless a
    synaptic stage follows) -> 40 leaky neurons on the chip -> their spikes (the spike readout)."""
    rng = np.random.default_rng(seed)
    w_in = rng.uniform(0.05, 0.5, N_IN).astype(np.float32)
    w = (rng.normal(0.08, 0.2, (N_HIDDEN, N_IN)) * scale).astype(np.float32)
    b = rng.normal(0.0, 0.03, N_HIDDEN).astype(np.float32) if bias else None
    ops = [
        Scale(name="w_in", inputs=("x",), output="a0", value=w_in),
        lif("in", "a0", "s0", 0.95),
        Dense(name="d1", inputs=("s0",), output="a1", weight=w, bias=b),
        lif("h", "a1", "s1", decay, syn, drive=drive, reset=reset),
        Scale(name="out", inputs=("s1",), output="y", value=f32(1.0)),
    ]
    graph = Graph("leaky", {"x": TensorType((N_IN,))}, ["y"], ops)
    graph.verify()
    return graph


def inputs(n: int = 32) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 1, (n, N_IN)).astype(np.float32)


def float_counts(graph: Graph, x: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """Spikes per neuron of each LIF op over ``steps``, as the reference target's float LIF computes them."""
    counts: dict[str, np.ndarray] = {}
    names = {op.output: op.name for op in graph.ops if isinstance(op, LIF)}

    def observe(value, array):
        if value in names:
            counts[names[value]] = counts.get(names[value], 0) + array

    simulate(graph, {"x": x}, steps, observe=observe)
    return counts


def chip_counts(graph: Graph, x: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    return bss2.run(bss2.plan(graph), x, steps, counts=True)["counts"]


# -- the weight factor ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("decay", "syn"), [(0.9, None), (0.5, None), (0.9, 0.7), (0.6, 0.85), (0.8, 0.8)])
def test_the_weight_factor_makes_the_analog_response_the_float_lifs(decay, syn):
    """The float LIF's v k steps after a unit input, r(k), against the emulator's V at the end of that step (k + 1
    µs after the spike) times the factor: equal at every step with a synaptic stage (the chip's tau_syn is the
    synaptic decay's); without one, short by the charge the chip's 0.3 µs current still has to deliver,
    e^(-(k+1)/0.3) / d."""
    tau_m = bss2.time_constant(decay)
    tau_syn = bss2.TAU_SYN if syn is None else bss2.time_constant(syn)
    factor = bss2.leak_factor(tau_m, tau_syn, decay, syn)
    k = np.arange(40)
    analog = factor * emulator.response(tau_m, tau_syn, k + 1.0)
    if syn is None:
        want = decay**k - math.exp(-1 / tau_syn) ** (k + 1) / decay
    elif syn == decay:
        want = (k + 1) * decay**k
    else:
        want = (decay ** (k + 1) - syn ** (k + 1)) / (decay - syn)
    np.testing.assert_allclose(analog, want, rtol=1e-6, atol=1e-12)


# -- against the float LIF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decay", "syn", "scale"), [(0.9, None, 1.0), (0.9, None, 0.4), (0.9, 0.7, 1.0), (0.85, 0.5, 1.0)]
)
def test_a_leaky_layer_fires_as_the_float_lif(decay, syn, scale):
    """32 random inputs, T = 64, no noise or mismatch. The host's leaky input neurons are the float LIF's exactly.
    The chip layer's total spikes are within 5% of the float LIF's (measured: 1.021, 1.008, 0.973, 1.014) and a
    neuron's count differs by at most 5% of the mean count + 0.25 on average (measured: 0.21, 0.07, 0.93 and 0.44
    spikes at mean counts 6.3, 1.3, 21.7, 12.4). Why not exactly: the chip integrates in continuous time and
    compares V with the threshold all the time, the float LIF at each step's end; a spike's refractory time
    (0.5 µs) stands for the float reset's loss of the charge above threshold; the weights are 6-bit."""
    graph = one_layer(decay, syn, scale=scale, bias=syn is None)
    x = inputs()
    want = float_counts(graph, x, STEPS)
    got = chip_counts(graph, x, STEPS)
    np.testing.assert_array_equal(got["in"], want["in"])
    ratio = got["h"].sum() / want["h"].sum()
    assert abs(ratio - 1) < 0.05, ratio
    assert np.abs(got["h"] - want["h"]).mean() <= 0.05 * want["h"].mean() + 0.25


def test_without_the_weight_factor_the_layers_fire_far_less(monkeypatch):
    """The factor matters: with the plain gain Θ / lsb the LIF layer (d = 0.9) loses more than 10% of its spikes
    and the CubaLIF layer (0.9, 0.7) most of them (measured: 0.935 and 0.256 of the float LIF's)."""
    x = inputs()
    monkeypatch.setattr(bss2, "leak_factor", lambda *args: 1.0)
    for syn, below in ((None, 0.95), (0.7, 0.5)):
        graph = one_layer(0.9, syn, bias=syn is None)
        ratio = chip_counts(graph, x, STEPS)["h"].sum() / float_counts(graph, x, STEPS)["h"].sum()
        assert ratio < below, (syn, ratio)


def test_a_short_tau_m_gets_a_note():
    netlist = bss2.plan(one_layer(0.7))
    assert any("'h'" in n or n.startswith("h:") for n in netlist.notes)
    assert "expect more spikes" in " ".join(netlist.notes)
    assert not bss2.plan(one_layer(0.9)).notes


# -- parameters, netlist and report --------------------------------------------------------------------------


def test_the_plan_writes_the_time_constants_and_v_rest_at_reset():
    """LIF d = 0.9: tau_m = -1 / ln 0.9 = 9.4912 µs, tau_syn the shortest; CubaLIF (0.85, 0.5): tau_m 6.1531,
    tau_syn -1 / ln 0.5 = 1.4427 µs. v_rest = v_reset (the leak pulls V to the reset level, as the float's to 0);
    the gain carries the factor; a bias is spike sources."""
    lif_plan = bss2.plan(one_layer(0.9))
    (h,) = lif_plan.populations
    assert h.parameters["tau_m"] == pytest.approx(9.491221, rel=1e-5)
    assert h.parameters["tau_syn_E"] == h.parameters["tau_syn_I"] == bss2.TAU_SYN
    assert h.parameters["v_rest"] == h.parameters["v_reset"] == bss2.V_RESET
    assert h.parameters["v_thresh"] == bss2.V_RESET + bss2.THRESHOLD
    assert h.gain == pytest.approx(h.threshold / h.lsb * h.leak["weight_factor"])
    assert h.leak["decay"] == pytest.approx(0.9)
    assert [s.kind for s in lif_plan.sources] == ["input", "bias"]
    assert lif_plan.input["decay"] == pytest.approx(0.95)
    cuba = bss2.plan(one_layer(0.85, 0.5, bias=False))
    (h,) = cuba.populations
    assert h.parameters["tau_m"] == pytest.approx(6.153130, rel=1e-5)
    assert h.parameters["tau_syn_E"] == h.parameters["tau_syn_I"] == pytest.approx(1.442695, rel=1e-5)
    assert h.leak["syn_decay"] == pytest.approx(0.5)
    for key, (low, high) in bss2.RANGES.items():
        assert low <= h.parameters[key] <= high


def test_the_netlist_holds_the_parameters_and_reads_back(tmp_path):
    """brainscales2.json gives each leaky population its tau_m, tau_syn_E/I and v_rest as CalibHXNeuronCuba takes
    them, the leak (decays, factor) and the gain; the input population's decay and drive; read back, it runs the
    same; a tau_m that does not match its decay is refused."""
    netlist = bss2.plan(one_layer(0.85, 0.5, bias=False))
    bss2.save(netlist, tmp_path)
    doc = json.loads((tmp_path / bss2.DESCRIPTION).read_text())
    (pop,) = doc["populations"]
    assert pop["parameters"]["tau_m"] == pytest.approx(6.153130, rel=1e-5)
    assert pop["parameters"]["tau_syn_E"] == pop["parameters"]["tau_syn_I"] == pytest.approx(1.442695, rel=1e-5)
    assert pop["parameters"]["v_rest"] == pop["parameters"]["v_reset"]
    assert pop["leak"]["decay"] == pytest.approx(0.85)
    assert pop["leak"]["syn_decay"] == pytest.approx(0.5)
    assert pop["gain_cadc_per_lsb"] == pytest.approx(netlist.populations[0].gain)
    assert doc["input"]["decay"] == pytest.approx(0.95)
    assert doc["input"]["strict"] is False
    back = bss2.load(tmp_path)
    assert back.populations[0].gain == pytest.approx(netlist.populations[0].gain)
    x = inputs(4)
    np.testing.assert_array_equal(
        bss2.run(back, x, 16, counts=True)["counts"]["h"], bss2.run(netlist, x, 16, counts=True)["counts"]["h"]
    )
    pop["parameters"]["tau_m"] = 20.0
    (tmp_path / bss2.DESCRIPTION).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="tau_m"):
        bss2.load(tmp_path)


def test_the_pynn_script_flushes_long_synaptic_currents():
    """Between two samples NEST waits 33 synaptic time constants (whole µs): 10 µs for 0.3 µs, longer for a
    CubaLIF's."""
    script = Path(bss2.__file__).with_name("run_pynn_brainscales2.py")
    spec = importlib.util.spec_from_file_location("run_pynn_bss2", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    short = {"populations": [{"parameters": {"tau_syn_E": 0.3, "tau_syn_I": 0.3, "tau_refrac": 0.5}}]}
    long = {"populations": [{"parameters": {"tau_syn_E": 1.4427, "tau_syn_I": 1.4427, "tau_refrac": 0.5}}]}
    assert module.flush_us(short) == 10.0
    assert module.flush_us(long) == 48.0  # 33 x 1.4427 = 47.6, in whole µs


# -- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decay", "syn", "message"),
    [
        (0.1, None, r"LIF 'h': v decays by a factor 0\.1 per step, which needs tau_m = 0\.434294 µs .* 0\.5\.\.60 µs"),
        (0.99, None, r"LIF 'h': v decays by a factor 0\.99 per step, which needs tau_m = 99\.499\d µs .* 0\.5\.\.60"),
        (1.0, 0.5, r"LIF 'h': v decays by a factor 1 per step, which needs tau_m = inf µs"),
        (0.9, 0.99, r"LIF 'h': its synaptic current decays by a factor 0\.99 .* tau_syn = 99\.499\d µs .* 0\.3\.\.30"),
        (0.9, 0.02, r"tau_syn = 0\.255622 µs"),
    ],
)
def test_a_decay_outside_the_calibrated_range_is_refused(decay, syn, message):
    with pytest.raises(ConversionError, match=message):
        bss2.plan(one_layer(decay, syn, bias=False))


def test_another_reset_is_refused_naming_the_import_option():
    with pytest.raises(ConversionError, match=r"LIF 'h' resets by subtract.*-I reset=zero"):
        bss2.plan(one_layer(0.9, reset="subtract"))


def test_per_neuron_decays_are_refused():
    graph = one_layer(np.linspace(0.8, 0.9, N_HIDDEN))
    with pytest.raises(ConversionError, match=r"LIF 'h': its decays or gains differ between neurons"):
        bss2.plan(graph)


def test_a_drive_into_a_synaptic_current_is_refused():
    with pytest.raises(ConversionError, match=r"LIF 'h' has a synaptic current and a constant drive"):
        bss2.plan(one_layer(0.9, 0.7, bias=False, drive=0.05))


# -- a NIR file end to end -----------------------------------------------------------------------------------


def nir_file(tmp_path: Path, nir) -> Path:
    """Input (8) -> Affine -> LIF (the host's input neurons) -> Affine (12, a bias) -> LIF -> Affine (10, no
    bias) -> CubaLIF -> Affine (3) readout. tau_mem 1 ms, tau_syn 0.5 ms at dt = 0.1 ms (Euler): decay 0.9,
    synaptic decay 0.8; r = tau / dt makes the input gain 1."""
    rng = np.random.default_rng(3)

    def ones(n, value=1.0):
        return np.full(n, value, np.float32)

    def leaky(n):
        return nir.LIF(tau=ones(n, 1e-3), r=ones(n, 10.0), v_leak=ones(n, 0.0), v_threshold=ones(n))

    nodes = {
        "input": nir.Input(input_type={"input": np.array([8])}),
        "a0": nir.Affine(weight=np.diag(rng.uniform(0.1, 0.5, 8)).astype(np.float32), bias=ones(8, 0.0)),
        "l0": leaky(8),
        "a1": nir.Affine(weight=rng.normal(0.15, 0.3, (12, 8)).astype(np.float32), bias=ones(12, 0.02)),
        "l1": leaky(12),
        "a2": nir.Linear(weight=rng.normal(0.05, 0.15, (10, 12)).astype(np.float32)),
        "l2": nir.CubaLIF(
            tau_syn=ones(10, 5e-4),
            tau_mem=ones(10, 1e-3),
            r=ones(10, 10.0),
            v_leak=ones(10, 0.0),
            v_threshold=ones(10),
            w_in=ones(10, 5.0),
        ),
        "a3": nir.Affine(weight=rng.normal(0, 0.5, (3, 10)).astype(np.float32), bias=ones(3, 0.0)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    order = list(nodes)
    path = tmp_path / "leaky.nir"
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order))))
    return path


def test_a_nir_import_compiles_for_brainscales2_and_reports_its_time_constants(tmp_path):
    """The file compiles for ``--target brainscales2``: the report's ``leaky`` rows give each leaky layer's decays
    and the tau_m / tau_syn written (l1: 9.4912 / 0.3 µs; l2: 9.4912 / -1 / ln 0.8 = 4.4814 µs; l0 on the host),
    the resource table names them; the chip model's hidden layers fire within 10% of the reference target's
    float LIF (measured: see the assertion's message) and the host's input neurons exactly as it."""
    nir = pytest.importorskip("nir")
    pytest.importorskip("h5py")
    from neurodeploy.compiler import compile_model, emulate_artifact

    model = nir_file(tmp_path, nir)
    options = {"dt": "1e-4"}
    chip = compile_model(model, "brainscales2", tmp_path / "chip", import_options=options)
    floats = compile_model(model, "reference", tmp_path / "ref", import_options=options)
    report = json.loads((chip.root / "report.json").read_text())
    rows = {row["name"]: row for row in report["target"]["leaky"]}
    assert set(rows) == {"l0", "l1", "l2"}
    assert rows["l0"]["runs_on"] == "host"
    assert rows["l0"]["decay"] == pytest.approx(0.9)
    assert rows["l1"]["tau_m_us"] == pytest.approx(9.491221, rel=1e-5)
    assert rows["l1"]["tau_syn_us"] == bss2.TAU_SYN
    assert rows["l2"]["tau_m_us"] == pytest.approx(9.491221, rel=1e-5)
    assert rows["l2"]["syn_decay"] == pytest.approx(0.8)
    assert rows["l2"]["tau_syn_us"] == pytest.approx(4.481420, rel=1e-5)
    layers = [layer["op_type"] for layer in report["resources"]["layers"]]
    assert layers[0] == "LIF (host spike sources)"
    assert layers[1].startswith("LIF (tau_m 9.491 µs, tau_syn 0.3 µs)")
    netlist = json.loads((chip.root / bss2.DESCRIPTION).read_text())
    by_name = {p["name"]: p for p in netlist["populations"]}
    assert by_name["l2"]["parameters"]["tau_syn_E"] == pytest.approx(4.481420, rel=1e-5)
    x = np.random.default_rng(4).uniform(0, 1, (32, 8)).astype(np.float32)
    got, want = emulate_artifact(chip, x, steps=64), emulate_artifact(floats, x, steps=64)
    np.testing.assert_array_equal(got.spikes["l0"], want.spikes["l0"])
    for name in ("l1", "l2"):
        ratio = got.spikes[name].sum() / want.spikes[name].sum()
        assert abs(ratio - 1) < 0.1, (name, ratio)


def test_a_nir_import_with_reset_by_subtraction_is_refused_naming_the_option(tmp_path):
    nir = pytest.importorskip("nir")
    pytest.importorskip("h5py")
    from neurodeploy.compiler import compile_model

    model = nir_file(tmp_path, nir)
    with pytest.raises(NeurodeployError, match=r"resets by subtract.*-I reset=zero"):
        compile_model(model, "brainscales2", tmp_path / "a", import_options={"dt": "1e-4", "reset": "subtract"})
    assert not (tmp_path / "a").exists()


def test_nest_runs_the_leaky_netlist_as_the_emulator_does(tmp_path, pynn_python):
    """The artifact's PyNN script in NEST (``iaf_psc_exp``, the same equations and step) on the NIR file's leaky
    netlist: tau_m, tau_syn (4.48 µs for the CubaLIF layer, flushed between samples for 33 of them) and the gains
    with their factor reach it as written, so every hidden neuron's spike count agrees with the emulator's but
    where V lands on the threshold within rounding (asserted: at most 1% of the counts differ; measured:
    every count equal, 199 and 408 spikes, and the readouts equal)."""
    nir = pytest.importorskip("nir")
    pytest.importorskip("h5py")
    from neurodeploy_pynn import pynn_check

    from neurodeploy.compiler import compile_model

    chip = compile_model(nir_file(tmp_path, nir), "brainscales2", tmp_path / "chip", import_options={"dt": "1e-4"})
    x = np.random.default_rng(4).uniform(0, 1, (8, 8)).astype(np.float32)
    netlist = bss2.load(chip)
    emulated = bss2.run(netlist, x, 32, counts=True)
    simulated = pynn_check.simulate(chip.root, x, 32, pynn_python)
    for name in ("l1", "l2"):
        got, want = simulated["counts"][name], emulated["counts"][name].reshape(len(x), -1)
        assert want.sum() > 100, name
        assert np.mean(got != want) <= 0.01, (name, got.sum(), want.sum())
