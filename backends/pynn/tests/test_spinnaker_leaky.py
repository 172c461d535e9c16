"""Leaky neurons of a NIR import on the ``spinnaker`` target: LIF layers as ``IF_curr_delta`` populations with their
own tau_m, a CubaLIF layer as ``IF_curr_exp`` with its tau_syn (:mod:`neurodeploy_pynn.spinnaker`, "Leaky
neurons").

The network (written with the nir package, read with ``dt = 1e-3``, exact discretization, NIR's ``>``): an Affine
into a LIF input layer (tau 5 steps, thresholds per neuron), a Linear of mixed signs into a CubaLIF layer (tau_syn 3,
tau_mem 8 steps, R 1.5, a drive v_leak), an Affine into a LIF layer (tau 20 steps), and an Affine readout.

- **Against the reference target** (float32, the IR's own run): the chip's decays are the requested ones rounded to
  s16.15 (exp_TC, within 2**-15 of exp(-ts / tau_m)) and u0.32 (the synaptic decay), its weights 16-bit words and its
  V a multiple of 2**-15 θ, so a neuron whose V passes its threshold within those errors fires a tick earlier or
  later. Measured at T = 48: on these 16 samples every layer's spike count per neuron is the float run's; on 512
  other samples (input seeds 2 and 3) counts per neuron differ by at most one spike and totals by at most 0.15%,
  hence :data:`SPIKE_TOLERANCE` and 1% on the totals. The readout population is the converted networks' (``tau_m``
  = 1024 ms: it leaks 2**-10 of its V a tick, :mod:`neurodeploy_pynn.spinnaker`), which lowers an output read over
  T + delay ticks by up to about (T + delay) / 2 * 2**-10 of itself (2.5% at T = 48; measured: 2.0% of the largest
  output on these samples), and a last-layer spike moved out of the window moves an output by its weight / T: the
  outputs are compared to 3% of the largest output (:data:`OUTPUT_TOLERANCE`) plus that.
- **The ARM reference** (``tests/arm/lif_ref.c`` on GCC's ``accum``, under qemu-arm, as in
  ``test_spinnaker_arm.py``): the planned leaky populations, their constants and connection lists, run tick by tick
  on the same input currents, equal the emulator bit for bit in every spike, every V and the final synaptic
  currents. Needs the ARM tools; skips without them unless NEURODEPLOY_REQUIRE_ARM=1.
- **The report, the refusals, the netlist's PyNN parameters** and the generated script's cells and weights (with a
  stand-in for PyNN, and in NEST where NEURODEPLOY_PYNN_PYTHON has it), and the board adapter on the fake sPyNNaker.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from neurodeploy_pynn import pynn_check, run_pynn, s1615, spinnaker
from neurodeploy_pynn.spinnaker_emulator import run as emulate
from test_spinnaker_arm import PARAM_ORDER, RandomNetwork, RawPopulation, compile_reference, run_reference

nir = pytest.importorskip("nir")

from neurodeploy.compiler import compile_model, emulate_artifact  # noqa: E402
from neurodeploy.errors import ConversionError, NeurodeployError  # noqa: E402
from neurodeploy.frontend import load_model  # noqa: E402
from neurodeploy.hil.device import Board  # noqa: E402
from neurodeploy.hil.harness import run_on_board  # noqa: E402

OPTIONS = {"dt": "1e-3", "discretization": "exact"}
B, T = 16, 48
SPIKE_TOLERANCE = 1
"""Spikes per neuron over T steps by which the chip may differ from the float run (module docstring)."""
OUTPUT_TOLERANCE = 0.03
"""Of the largest output: the readout population's leak of 2**-10 a tick over T + delay ticks (about 2.5%)."""


def ones(n: int, value: float = 1.0) -> np.ndarray:
    return np.full(n, value, np.float32)


def nir_network(**changes) -> nir.NIRGraph:
    """The module's network; ``changes`` replace nodes by name."""
    rng = np.random.default_rng(7)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([6])}),
        "fc1": nir.Affine(
            weight=rng.normal(0.4, 1.0, (12, 6)).astype(np.float32), bias=rng.normal(0, 0.2, 12).astype(np.float32)
        ),
        "lif1": nir.LIF(
            tau=ones(12, 5e-3),
            r=ones(12),
            v_leak=ones(12, 0.0),
            v_threshold=rng.uniform(0.6, 1.2, 12).astype(np.float32),
        ),
        "fc2": nir.Linear(weight=rng.normal(0.5, 0.5, (10, 12)).astype(np.float32)),
        "cuba": nir.CubaLIF(
            tau_syn=ones(10, 3e-3),
            tau_mem=ones(10, 8e-3),
            r=ones(10, 2.0),
            v_leak=ones(10, 0.05),
            v_threshold=ones(10, 0.8),
            w_in=ones(10),
        ),
        "fc3": nir.Affine(
            weight=rng.normal(0.3, 0.8, (8, 10)).astype(np.float32), bias=rng.normal(0, 0.05, 8).astype(np.float32)
        ),
        "lif3": nir.LIF(tau=ones(8, 20e-3), r=ones(8, 6.0), v_leak=ones(8, 0.0), v_threshold=ones(8)),
        "fc4": nir.Affine(weight=rng.normal(0, 0.5, (3, 8)).astype(np.float32), bias=ones(3, 0.02)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    nodes.update(changes)
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes)))


def write(folder: Path, graph: nir.NIRGraph, name: str = "net.nir") -> Path:
    path = folder / name
    nir.write(str(path), graph)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("nir"), nir_network())


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(1).uniform(0.0, 1.0, (B, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def artifacts(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("art")
    ref = compile_model(model, "reference", out / "ref", import_options=OPTIONS)
    chip = compile_model(model, "spinnaker", out / "spinnaker", import_options=OPTIONS)
    return ref, chip


@pytest.fixture(scope="module")
def netlist(model) -> spinnaker.Netlist:
    return spinnaker.plan(load_model(model, options=OPTIONS))


# -- the plan ----------------------------------------------------------------------------------------------------


def test_leaky_layers_become_their_cells_with_their_time_constants(netlist):
    pops = {p.name: p for p in netlist.populations}
    assert [(p.name, p.role, p.cell) for p in netlist.populations] == [
        ("lif1", "input", "IF_curr_delta"),
        ("cuba", "hidden", "IF_curr_exp"),
        ("lif3", "hidden", "IF_curr_delta"),
        ("fc4", "readout", "IF_curr_delta"),
    ]
    # tau_m = -ts / ln(decay) = tau / dt steps of 1 ms, on the s16.15 grid
    assert [p.tau_m for p in netlist.populations] == [5.0, 8.0, 20.0, spinnaker.TAU_M]
    assert [p.tau_syn for p in netlist.populations] == [None, 3.0, None, None]
    assert not pops["fc4"].leak
    for p in netlist.populations[:3]:
        # NIR's v > threshold: one s16.15 step above θ, which V >= v_thresh on raw bits makes exact
        assert p.strict
        assert p.v_thresh == p.threshold + 2.0**-15
    # the drive (v_leak) of a layer deeper than the input lowers its initial V by the charge of the ticks before
    # its first input, so that the chip's leak brings it to 0 at tick depth
    cuba = pops["cuba"]
    assert cuba.depth == 1
    assert np.all(cuba.i_offset > 0)
    assert np.all(cuba.v_init < 0)
    exp_tc, g = spinnaker.membrane(cuba.tau_m)
    v = cuba.v_init / s1615.ONE * exp_tc / s1615.ONE + g * cuba.i_offset / s1615.ONE
    assert np.abs(v).max() <= 2.0**-14


def test_the_report_gives_each_decay_asked_for_and_the_chips(artifacts):
    _, chip = artifacts
    report = json.loads((chip.root / "report.json").read_text())["target"]
    leak = {p["name"]: p.get("leak") for p in report["populations"]}
    assert leak["fc4"] is None
    ts = np.array([s1615.encode(1.0)])
    for name, tau in (("lif1", 5.0), ("cuba", 8.0), ("lif3", 20.0)):
        entry = leak[name]
        assert entry["decay"] == pytest.approx(math.exp(-1 / tau), rel=1e-7)  # float32 in the IR
        # exp_TC as sPyNNaker computes it: expk(-kdivk(ts, tau_m)) of the encoded parameters
        exp_tc = int(s1615.expk(s1615.neg(s1615.kdivk(ts, np.array([s1615.encode(tau)]))))[0])
        assert entry["exp_tc_raw"] == exp_tc
        assert entry["decay_chip"] == exp_tc / 2**15
        # measured: within 1.5 s16.15 steps of the float decay (expk truncates)
        assert abs(entry["decay_chip"] - entry["decay"]) <= 1.5 * 2.0**-15
    cuba = leak["cuba"]
    decay, init = s1615.exp_synapse_constants(ts, np.array([s1615.encode(3.0)]))
    assert (cuba["syn_decay_raw"], cuba["syn_init_raw"]) == (int(decay[0]), int(init[0]))
    assert cuba["syn_decay"] == pytest.approx(math.exp(-1 / 3), rel=1e-7)
    assert abs(cuba["syn_decay_chip"] - cuba["syn_decay"]) <= 1e-4
    layers = json.loads((chip.root / "report.json").read_text())["resources"]["layers"]
    assert [layer["op_type"] for layer in layers] == ["LIF (input)", "LIF", "LIF", "readout"]


# -- against the reference target ------------------------------------------------------------------------------


def test_the_emulator_runs_the_leaky_network_as_the_reference_does(artifacts, inputs):
    readout_weight = nir_network().nodes["fc4"].weight
    ref, chip = artifacts
    a = emulate_artifact(ref, inputs, steps=T, neuron_counts=True)
    b = emulate_artifact(chip, inputs, steps=T, neuron_counts=True)
    for name in ("lif1", "cuba", "lif3"):
        want = np.asarray(a.counts[name], np.int64).reshape(B, -1)
        got = np.asarray(b.counts[name], np.int64).reshape(B, -1)
        assert want.sum() > B * want.shape[1], name  # every layer is active: the comparison means something
        assert np.abs(got - want).max() <= SPIKE_TOLERANCE, name
        assert abs(got.sum() / want.sum() - 1) <= 0.01, name
    # the readout's leak, and a spike of the last layer moved out of the T steps moves an output by its weight / T
    moved = np.abs(np.asarray(b.counts["lif3"]) - np.asarray(a.counts["lif3"])).reshape(B, -1).sum(axis=1)
    largest = float(np.abs(a.outputs).max())
    allowed = OUTPUT_TOLERANCE * largest + moved[:, None] * float(np.abs(readout_weight).max()) / T
    assert np.all(np.abs(b.outputs - a.outputs) <= allowed)
    assert np.array_equal(b.outputs.argmax(axis=1), a.outputs.argmax(axis=1))


# -- against the ARM reference ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arm_binary(tmp_path_factory) -> Path:
    return compile_reference(tmp_path_factory.mktemp("lif_ref"))


def arm_network(netlist: spinnaker.Netlist, current: np.ndarray, steps: int) -> RandomNetwork:
    """The planned netlist for ``lif_ref`` (one sample: the input population's i_offset is ``current``, raw): every
    population's PyNN parameters encoded as the host does, the connection lists as matrices of words."""
    pops = []
    for k, p in enumerate(netlist.populations):
        parameters = p.parameters()

        def enc(value: float, size: int = p.size) -> np.ndarray:
            return np.full(size, s1615.encode(value), np.int64)

        raw = {
            "v_init": p.v_init.astype(np.int64),
            "refract_timer": np.zeros(p.size, np.int64),
            "isyn_exc": np.zeros(p.size, np.int64),
            "isyn_inh": np.zeros(p.size, np.int64),
            "v_rest": enc(parameters["v_rest"]),
            "v_reset": enc(parameters["v_reset"]),
            "v_thresh": enc(parameters["v_thresh"]),
            "i_offset": (current if k == 0 else p.i_offset).astype(np.int64),
            "time_step": enc(spinnaker.TIME_STEP),
            "tau_m": enc(parameters["tau_m"]),
            "c_m": enc(parameters["cm"]),
            "t_refract_ms": enc(parameters["tau_refrac"]),
            "tau_syn_e": enc(parameters.get("tau_syn_E", 1.0)),
            "tau_syn_i": enc(parameters.get("tau_syn_I", 1.0)),
        }
        assert set(raw) == set(PARAM_ORDER)
        pops.append(RawPopulation(p.cell, p.size, p.shifts[0], p.shifts[1], raw))
    projections = []
    for q in netlist.projections:
        words = np.zeros((netlist.populations[q.pre].size, netlist.populations[q.post].size), np.int64)
        np.add.at(words, (q.pre_index, q.post_index), q.words.astype(np.int64))
        assert words.max() <= s1615.WEIGHT_WORD_MAX
        projections.append((f"p{q.pre}", f"p{q.post}", words, q.receptor, q.delay))
    return RandomNetwork(1, steps, {}, pops, projections, False)


def test_the_leaky_populations_equal_the_arm_reference_bit_for_bit(arm_binary, netlist, inputs):
    samples = 4
    steps = 40 + netlist.delay
    populations, projections = spinnaker.emulated(netlist)
    current = spinnaker.input_current(netlist, inputs[:samples])
    emu = emulate(
        populations,
        projections,
        steps=steps,
        batch=samples,
        i_offset={populations[0].name: current},
        record_spikes=True,
        record_v=True,
    )
    cells = {p.cell for p in netlist.populations}
    assert cells == {"IF_curr_delta", "IF_curr_exp"}
    assert {q.receptor for q in netlist.projections if netlist.populations[q.post].cell == "IF_curr_exp"} == {
        "excitatory",
        "inhibitory",
    }
    for b in range(samples):
        ref = run_reference(arm_binary, arm_network(netlist, current[b], steps))
        for k, p in enumerate(netlist.populations):
            name, arm = p.name, f"p{k}"
            constants = ref["constants"][arm]
            np.testing.assert_array_equal(constants[:, 1], populations[k].r_membrane, err_msg=f"{name} R")
            if p.cell == "IF_curr_exp":
                np.testing.assert_array_equal(constants[:, 3], populations[k].init_exc, err_msg=f"{name} init")
                np.testing.assert_array_equal(constants[:, 4], populations[k].init_inh, err_msg=f"{name} init")
            np.testing.assert_array_equal(emu.spikes[name][b], ref["spikes"][arm][0], err_msg=f"{name} spikes {b}")
            np.testing.assert_array_equal(emu.v[name][b], ref["v"][arm][0], err_msg=f"{name} V {b}")
            final = ref["final"][arm][0]
            np.testing.assert_array_equal(emu.final[name].v[b], final[:, 0], err_msg=f"{name} final V {b}")
            np.testing.assert_array_equal(emu.final[name].isyn_exc[b], final[:, 2], err_msg=f"{name} isyn_exc {b}")
            np.testing.assert_array_equal(emu.final[name].isyn_inh[b], final[:, 3], err_msg=f"{name} isyn_inh {b}")
    # the comparison exercises what it is for: the synaptic current population spikes and carries a current
    assert emu.spikes["cuba"].sum() > 0
    assert emu.spikes["lif3"].sum() > 0
    assert np.any(emu.final["cuba"].isyn_exc != 0)
    assert np.any(emu.final["cuba"].isyn_inh != 0)


# -- refusals ----------------------------------------------------------------------------------------------------


def test_reset_by_subtraction_is_refused_naming_the_layer_and_the_fix(model, tmp_path):
    for reset in ("subtract", "subtract-next"):
        with pytest.raises(NeurodeployError, match=rf"LIF 'lif1' resets by {reset}: .*-I reset=zero"):
            compile_model(model, "spinnaker", tmp_path / reset, import_options=OPTIONS | {"reset": reset})
        assert not (tmp_path / reset).exists()


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            nir.LIF(
                tau=np.linspace(4e-3, 6e-3, 12).astype(np.float32),
                r=ones(12),
                v_leak=ones(12, 0.0),
                v_threshold=ones(12),
            ),
            r"LIF 'lif1': its decays or gains differ between neurons.*v decays by a factor 0.77\d*..0.84\d* per step",
        ),
        (
            nir.LIF(tau=ones(12, 100.0), r=ones(12), v_leak=ones(12, 0.0), v_threshold=ones(12)),
            r"LIF 'lif1': its v decays by a factor 0.9999\d* per step, which needs a time constant of \d+(\.\d+)? ms"
            r".*at most 32768 ms",
        ),
    ],
    ids=["per-neuron decays", "tau_m out of range"],
)
def test_what_does_not_map_is_refused_with_its_numbers(tmp_path, node, message):
    path = write(tmp_path, nir_network(lif1=node))
    with pytest.raises(NeurodeployError, match=message):
        compile_model(path, "spinnaker", tmp_path / "a", import_options=OPTIONS)
    assert not (tmp_path / "a").exists()


def test_a_v_reset_is_refused_with_its_numbers(model):
    graph = load_model(model, options=OPTIONS)
    (lif,) = [op for op in graph.ops if op.name == "lif3"]
    lif.v_reset = np.full(8, 0.25, np.float32)
    with pytest.raises(
        ConversionError, match=r"LIF 'lif3': it resets to a v_reset other than 0.*v_reset 0.25, threshold 1"
    ):
        spinnaker.plan(graph)


def test_a_synaptic_decay_out_of_range_is_refused(tmp_path):
    cuba = nir.CubaLIF(
        tau_syn=ones(10, 50.0), tau_mem=ones(10, 8e-3), r=ones(10), v_leak=ones(10, 0.0), v_threshold=ones(10)
    )
    path = write(tmp_path, nir_network(cuba=cuba))
    with pytest.raises(
        NeurodeployError,
        match=r"LIF 'cuba': its synaptic current decays by a factor 0.9999\d* per step.*at most 32768 ms",
    ):
        compile_model(path, "spinnaker", tmp_path / "a", import_options=OPTIONS)


def test_a_decay_close_to_1_compiles_with_a_warning_giving_its_rounding(tmp_path):
    """tau = 10000 steps: the decay 0.9999 (0.99989998 in float32) becomes exp_TC = 32764 / 2**15 = 0.99987793, a
    leak 22% larger."""
    node = nir.LIF(tau=ones(8, 10.0), r=ones(8, 6.0), v_leak=ones(8, 0.0), v_threshold=ones(8))
    artifact = compile_model(
        write(tmp_path, nir_network(lif3=node)), "spinnaker", tmp_path / "a", import_options=OPTIONS
    )
    warnings = json.loads((artifact.root / "report.json").read_text())["warnings"]
    (warning,) = [w for w in warnings if "lif3" in w]
    assert re.search(
        r"its v decays by 0.9998\d+ per step, 0.99987793 on the chip .* leak per step is \+22\.\d% off", warning
    )
    assert not [w for w in warnings if "'cuba'" in w or "'lif1'" in w]


# -- the netlist's PyNN parameters and the script ----------------------------------------------------------------


def test_the_netlist_holds_each_leaky_population_s_cell_and_parameters(artifacts, netlist):
    _, chip = artifacts
    doc = json.loads((chip.root / spinnaker.DESCRIPTION).read_text())
    pops = {p["name"]: p for p in doc["populations"]}
    lif1, cuba = pops["lif1"], pops["cuba"]
    assert [p["cell"] for p in doc["populations"]] == ["IF_curr_delta", "IF_curr_exp", "IF_curr_delta", "IF_curr_delta"]
    assert lif1["parameters"] == {
        "tau_m": 5.0,
        "cm": 1.0,
        "v_rest": 0.0,
        "v_reset": 0.0,
        "v_thresh": lif1["threshold_mv"] + 2.0**-15,
        "tau_refrac": 0.0,
    }
    assert cuba["parameters"]["tau_m"] == 8.0
    assert cuba["parameters"]["tau_syn_E"] == cuba["parameters"]["tau_syn_I"] == 3.0
    assert lif1["gain_mv_per_na"] == spinnaker.gain(5.0)
    assert cuba["strict"] is True
    assert pops["fc4"]["parameters"] == spinnaker.cell_parameters(spinnaker.READOUT_THRESHOLD)

    def described(n: spinnaker.Netlist) -> list:
        return [(p.cell, p.tau_m, p.tau_syn, p.strict, p.leak, p.parameters()) for p in n.populations]

    assert described(spinnaker.load(chip)) == described(netlist)


class _Recorder:
    """A stand-in for ``pyNN.<simulator>``: records the cells, parameters and connection lists the script builds."""

    def __init__(self) -> None:
        self.populations: dict[str, SimpleNamespace] = {}
        self.projections: list[SimpleNamespace] = []
        for cell in ("IF_curr_delta", "IF_curr_exp"):
            setattr(self, cell, type(cell, (), {"__init__": lambda s, **kw: s.__dict__.update(parameters=kw)}))

    def Population(self, size, cell, initial_values, label, **extra):
        pop = SimpleNamespace(size=size, cell=type(cell).__name__, parameters=cell.parameters, label=label)
        pop.record = lambda *a, **k: None
        self.populations[label] = pop
        return pop

    def FromListConnector(self, rows, column_names):
        return rows

    def Projection(self, pre, post, rows, receptor_type, label):
        self.projections.append(SimpleNamespace(pre=pre.label, post=post.label, rows=rows, receptor=receptor_type))


def test_the_script_builds_the_cells_and_gives_nest_the_chip_s_decays_and_gains(artifacts):
    _, chip = artifacts
    doc, arrays = run_pynn.load(chip.root)
    on_chip, on_nest = _Recorder(), _Recorder()
    run_pynn.build(on_chip, doc, arrays, "spiNNaker")
    run_pynn.build(on_nest, doc, arrays, "nest")
    pops = {p["name"]: p for p in doc["populations"]}
    for name, p in pops.items():
        assert on_chip.populations[name].cell == on_nest.populations[name].cell == p["cell"]
        built = dict(on_chip.populations[name].parameters)
        np.testing.assert_array_equal(built.pop("i_offset"), arrays[p["i_offset"]["array"]] / 2.0**15)
        assert built == p["parameters"]
    cuba = on_nest.populations["cuba"].parameters
    leak = pops["cuba"]["leak"]
    # NEST's exact propagators: e^(-ts / tau_m') is the chip's exp_TC, e^(-ts / tau_syn') its synaptic decay
    assert math.exp(-1 / cuba["tau_m"]) == pytest.approx(leak["decay_chip"], rel=1e-12)
    assert math.exp(-1 / cuba["tau_syn_E"]) == pytest.approx(leak["syn_decay_chip"], rel=1e-12)
    p21 = run_pynn.exp_current_gain(cuba["tau_m"], cuba["cm"], cuba["tau_syn_E"], 1.0)
    for chip_q, nest_q in zip(on_chip.projections, on_nest.projections):
        sign = -1 if nest_q.receptor == "inhibitory" else 1
        post = pops[nest_q.post]
        if post["cell"] == "IF_curr_exp":
            # V rises by P21 x weight in NEST, by g x init x weight on the chip
            want = chip_q.rows[:, 2] * post["gain_mv_per_na"] * post["leak"]["syn_init_chip"] / p21
        else:
            want = chip_q.rows[:, 2] * post.get("gain_mv_per_na", doc["gain_mv_per_na"])
        np.testing.assert_allclose(nest_q.rows[:, 2], sign * want, rtol=1e-12)


def test_nest_runs_the_leaky_netlist_as_the_emulator_does(artifacts, inputs, pynn_python):
    """NEST in float with the chip's decays and gains: the delta populations to V's rounding; the synaptic-current
    population one tick late (NEST adds a spike to the current after the step's update), which moves a spike out
    of or into the T-step window now and then. Measured on these 16 samples: lif1 equal, cuba 469 spikes against
    468 (correlation 0.995), lif3 231 against 231 (0.987), outputs within 0.030 (a moved spike of the last layer),
    every top class the same."""
    _, chip = artifacts
    netlist = spinnaker.load(chip)
    emulated = spinnaker.run(netlist, inputs, T, counts=True)
    emulated["counts"] = {k: v.reshape(B, -1) for k, v in emulated["counts"].items()}
    simulated = pynn_check.simulate(chip.root, inputs, T, pynn_python)
    result = pynn_check.compare(emulated, simulated)
    for name, agreement in result["populations"].items():
        assert agreement["spikes_emulator"] > 100, name
        assert agreement["correlation"] >= 0.98, (name, agreement)
        assert abs(agreement["spikes_simulator"] / agreement["spikes_emulator"] - 1) <= 0.02, (name, agreement)
    # a last-layer spike a tick later can leave the readout's window: it moves an output by its weight / T
    weight = float(np.abs(nir_network().nodes["fc4"].weight).max())
    assert result["outputs_max_difference"] <= 0.03 * result["outputs_largest"] + 2 * weight / T, result
    assert result["top_class_agreement"] >= 0.9, result


def test_the_fake_spynnaker_board_runs_the_leaky_netlist_as_the_emulator_does(artifacts, inputs):
    """The board adapter through the fake sPyNNaker (:mod:`neurodeploy_pynn.fake_spynnaker`, which now takes
    ``IF_curr_exp`` too): a clean board equals the emulator in every spike of every population."""
    _, chip = artifacts
    board = Board("fake-spinnaker", "spinnaker", "", "", settings={}, fake=True, faults={})
    document = run_on_board(chip, board, inputs[:3], steps=16).to_dict()
    assert document["verdict"] == "pass", document
    for sample in document["samples"]:
        assert set(sample["layers"]) == {"lif1", "cuba", "lif3"}
        assert all(layer["differing"] == 0 for layer in sample["layers"].values())
