"""The SpiNNaker emulator against an independent reference: the same tick written in C on GCC's fixed-point
``accum`` type (``tests/arm/lif_ref.c``, written as sPyNNaker's C is), compiled for ARM in ARM mode (as sPyNNaker
builds, so ``accum * accum`` is GCC's ``smull`` sequence: floor and wrap) and run under qemu-arm.

The C side computes the chip's constants itself (ts, R = tau_m / c_m, T_refract, the exponential synapses' init,
the delta input scale) from the raw S1615 parameters, and does every per-tick operation (ring-buffer transfer and
saturation, synapse input and decay, the LIF update, threshold, reset, refractory count) with ``accum`` and
``unsigned long fract`` arithmetic. It takes ``exp_TC = expk(-ts/tau_m)`` and ``decay = expulr(-ts/tau_syn)`` as
raw bits computed by :mod:`neurodeploy_pynn.s1615`: spinn_common's exponentials are not in the repository, and
the port is checked separately against their outputs (``test_spinnaker_s1615.py``).

Compared bit for bit on seeded random networks (1-3 populations of both models, 1-2 spike-source inputs,
feed-forward and recurrent projections with delays up to 40 ticks, machine time steps of 0.1-1 ms): the chip's
constants, every tick's spikes and recorded V, and the final V, refractory timer and synapse states. A quarter of
the networks use large shifts and words so that ring-buffer slots saturate and shifted words wrap negative;
``test_the_random_networks_reach_the_edge_cases`` checks that they do.

Needs ``arm-linux-gnueabihf-gcc`` and ``qemu-arm`` (Debian: gcc-arm-linux-gnueabihf, qemu-user). Without them
the tests skip, unless NEURODEPLOY_REQUIRE_ARM=1, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_pynn import s1615
from neurodeploy_pynn.spinnaker_emulator import RECEPTORS, LifPopulation, Projection, run

SOURCE = Path(__file__).parent / "arm" / "lif_ref.c"
GCC = "arm-linux-gnueabihf-gcc"
QEMU = "qemu-arm"
SYSROOT = "/usr/arm-linux-gnueabihf"
# sPyNNaker builds for the ARM968 (armv5te) in ARM mode; +fp only satisfies the hard-float ABI of Debian's armhf
# toolchain (the reference uses no floating point). armv7-a is the fallback where armv5te does not build.
ARCHES = ("armv5te+fp", "armv7-a+fp")
N_NETWORKS = 60


def _missing_tools() -> str | None:
    missing = [tool for tool in (GCC, QEMU) if shutil.which(tool) is None]
    if not Path(SYSROOT).is_dir():
        missing.append(SYSROOT)
    if missing:
        return (
            f"the ARM reference needs {', '.join(missing)}: install the Debian packages gcc-arm-linux-gnueabihf "
            "and qemu-user"
        )
    return None


def compile_reference(out: Path) -> Path:
    """``lif_ref.c`` compiled for ARM into folder ``out``; without the tools the calling test skips, or fails under
    NEURODEPLOY_REQUIRE_ARM=1 (``test_spinnaker_leaky.py`` compiles it this way too)."""
    problem = _missing_tools()
    if problem:
        if os.environ.get("NEURODEPLOY_REQUIRE_ARM") == "1":
            pytest.fail(f"NEURODEPLOY_REQUIRE_ARM=1 but {problem}")
        pytest.skip(f"{problem} (set NEURODEPLOY_REQUIRE_ARM=1 to fail instead)")
    errors = []
    for arch in ARCHES:
        binary = out / f"lif_ref_{arch.replace('+', '_')}"
        cmd = [GCC, "-O2", "-marm", f"-march={arch}", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(SOURCE)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            return binary
        errors.append(f"{' '.join(cmd)}:\n{proc.stderr}")
    pytest.fail("lif_ref.c does not compile:\n" + "\n".join(errors))


@pytest.fixture(scope="session")
def lif_ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``lif_ref.c`` compiled for ARM once per session."""
    return compile_reference(tmp_path_factory.mktemp("lif_ref"))


# ----------------------------------------------------------------------------------------------------------------
# Random networks


@dataclass
class RawPopulation:
    """A population's raw S1615 parameters as the host sends them (per neuron), and its ring-buffer shifts."""

    model: str
    size: int
    shift_exc: int
    shift_inh: int
    params: dict[str, np.ndarray]  # raw int64 per neuron


@dataclass
class RandomNetwork:
    batch: int
    steps: int
    inputs: dict[str, np.ndarray]  # (batch, steps, n) uint8
    populations: list[RawPopulation]
    projections: list[tuple[str, str, np.ndarray, str, int]]  # pre, post, words, receptor, delay
    stress: bool


PARAM_ORDER = (
    "v_init",
    "refract_timer",
    "isyn_exc",
    "isyn_inh",
    "v_rest",
    "v_reset",
    "v_thresh",
    "i_offset",
    "time_step",
    "tau_m",
    "c_m",
    "t_refract_ms",
    "tau_syn_e",
    "tau_syn_i",
)


def random_network(seed: int) -> RandomNetwork:
    rng = np.random.default_rng(seed)
    stress = seed % 4 == 0
    batch = int(rng.integers(2, 4))
    steps = int(rng.integers(30, 61))
    time_step = float(rng.choice([1.0, 0.5, 0.25, 0.1]))
    inputs = {}
    for k in range(int(rng.integers(1, 3))):
        rate = rng.uniform(0.3, 0.8) if stress else rng.uniform(0.05, 0.5)
        inputs[f"in{k}"] = (rng.random((batch, steps, int(rng.integers(1, 6)))) < rate).astype(np.uint8)
    pops = []
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(1, 7))
        model = "IF_curr_exp" if rng.random() < 0.5 else "IF_curr_delta"
        shifts = rng.integers(14, 25, size=2) if stress else rng.integers(0, 11, size=2)

        def enc(lo: float, hi: float, size: int = size) -> np.ndarray:
            return s1615.encode_array(np.round(rng.uniform(lo, hi, size=size), 4)).astype(np.int64)

        v_rest = enc(-70.0, -55.0)
        tau_m = enc(2.0, 50.0)
        if rng.random() < 0.2:
            tau_m[:] = s1615.encode(float(rng.choice([5000.0, 30000.0, 65000.0])))  # exp_TC at or near 1
        params = {
            "v_init": enc(-72.0, -50.0),
            "refract_timer": rng.integers(0, 4, size=size).astype(np.int64),
            "isyn_exc": enc(0.0, 1.5),
            "isyn_inh": enc(0.0, 1.5),
            "v_rest": v_rest,
            "v_reset": enc(-75.0, -55.0),
            "v_thresh": v_rest + enc(0.2, 12.0),
            "i_offset": enc(-0.5, 2.0),
            "time_step": np.full(size, s1615.encode(time_step), dtype=np.int64),
            "tau_m": tau_m,
            "c_m": enc(0.05, 3.0),
            "t_refract_ms": s1615.encode_array(rng.choice([0.0, 0.1, 1.0, 2.5, 4.0], size=size)).astype(np.int64),
            "tau_syn_e": enc(0.5, 15.0),
            "tau_syn_i": enc(0.5, 15.0),
        }
        pops.append(RawPopulation(model, size, int(shifts[0]), int(shifts[1]), params))
    names = [f"p{i}" for i in range(len(pops))]
    sizes = {**{n: p.size for n, p in zip(names, pops)}, **{n: a.shape[2] for n, a in inputs.items()}}
    shift_of = {n: (p.shift_exc, p.shift_inh) for n, p in zip(names, pops)}
    edges = [(str(rng.choice(list(inputs))), n) for n in names]  # every population gets an input
    edges += [(str(rng.choice(names)), str(rng.choice(names))) for _ in range(int(rng.integers(0, 4)))]
    projections = []
    for pre, post in edges:
        receptor = "excitatory" if rng.random() < 0.7 else "inhibitory"
        shift = shift_of[post][0 if receptor == "excitatory" else 1]
        shape = (sizes[pre], sizes[post])
        if stress:
            words = rng.integers(0, 65536, size=shape)
        else:
            weights = rng.uniform(0.0, 6.0 if pre in inputs else 3.0, size=shape)
            words = s1615.weight_words(weights, shift).words.astype(np.int64)
        words = np.where(rng.random(shape) < 0.7, words, 0)
        delay = int(rng.integers(1, 7)) if rng.random() < 0.85 else int(rng.integers(7, 41))
        projections.append((pre, post, words.astype(np.int64), receptor, delay))
    return RandomNetwork(batch, steps, inputs, pops, projections, stress)


def chip_constants(pop: RawPopulation) -> dict[str, np.ndarray]:
    p = pop.params
    lif = s1615.lif_constants(p["time_step"], p["tau_m"], p["c_m"], p["t_refract_ms"])
    decay_e, init_e = s1615.exp_synapse_constants(p["time_step"], p["tau_syn_e"])
    decay_i, init_i = s1615.exp_synapse_constants(p["time_step"], p["tau_syn_i"])
    return {
        "ts": lif.ts,
        "r_membrane": lif.r_membrane,
        "exp_tc": lif.exp_tc,
        "t_refract": lif.t_refract,
        "decay_exc": decay_e,
        "init_exc": init_e,
        "decay_inh": decay_i,
        "init_inh": init_i,
        "scale": s1615.delta_input_scale(p["time_step"]),
    }


def emulate(net: RandomNetwork):
    populations = []
    for i, pop in enumerate(net.populations):
        c = chip_constants(pop)
        p = pop.params
        kwargs = dict(
            name=f"p{i}",
            model=pop.model,
            size=pop.size,
            v_rest=p["v_rest"],
            v_reset=p["v_reset"],
            v_thresh=p["v_thresh"],
            i_offset=p["i_offset"],
            r_membrane=c["r_membrane"],
            exp_tc=c["exp_tc"],
            t_refract=c["t_refract"],
            shift_exc=pop.shift_exc,
            shift_inh=pop.shift_inh,
            v_init=p["v_init"],
            refract_timer_init=p["refract_timer"],
            isyn_exc_init=p["isyn_exc"],
            isyn_inh_init=p["isyn_inh"],
        )
        if pop.model == "IF_curr_exp":
            kwargs.update(decay_exc=c["decay_exc"], init_exc=c["init_exc"], decay_inh=c["decay_inh"])
            kwargs.update(init_inh=c["init_inh"])
        else:
            kwargs.update(input_scale=c["scale"])
        populations.append(LifPopulation(**kwargs))
    projections = [Projection(pre, post, w, receptor, delay) for pre, post, w, receptor, delay in net.projections]
    return run(populations, projections, net.inputs, steps=net.steps, batch=net.batch, record_v=True)


def network_text(net: RandomNetwork) -> str:
    names = [f"p{i}" for i in range(len(net.populations))]
    input_names = list(net.inputs)
    lines = [
        f"{net.batch} {net.steps}",
        " ".join([str(len(input_names))] + [str(net.inputs[n].shape[2]) for n in input_names]),
    ]
    lines.append(str(len(net.populations)))
    for pop in net.populations:
        c = chip_constants(pop)
        model = 0 if pop.model == "IF_curr_exp" else 1
        lines.append(f"{model} {pop.size} {pop.shift_exc} {pop.shift_inh}")
        for i in range(pop.size):
            row = [int(pop.params[k][i]) for k in PARAM_ORDER]
            row += [int(c["exp_tc"][i]), int(c["decay_exc"][i]), int(c["decay_inh"][i])]
            lines.append(" ".join(map(str, row)))
    lines.append(str(len(net.projections)))
    for pre, post, words, receptor, delay in net.projections:
        pre_is_pop = pre in names
        pre_index = names.index(pre) if pre_is_pop else input_names.index(pre)
        lines.append(f"{int(pre_is_pop)} {pre_index} {names.index(post)} {RECEPTORS.index(receptor)} {delay}")
        lines.append(" ".join(map(str, words.reshape(-1).tolist())))
    if input_names:
        spikes = np.concatenate([net.inputs[n] for n in input_names], axis=2)  # (batch, steps, sum of sizes)
        lines.append(" ".join(map(str, spikes.reshape(-1).tolist())))
    return "\n".join(lines) + "\n"


def run_reference(binary: Path, net: RandomNetwork) -> dict:
    proc = subprocess.run(
        [QEMU, "-L", SYSROOT, str(binary)], input=network_text(net), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    values = np.array(proc.stdout.split(), dtype=np.int64)
    sizes = [p.size for p in net.populations]
    n_total = sum(sizes)
    constants = values[: 6 * n_total].reshape(n_total, 6)
    per_sample = net.steps * n_total * 2 + n_total * 4
    assert values.size == 6 * n_total + net.batch * per_sample, "unexpected output length from lif_ref"
    samples = values[6 * n_total :].reshape(net.batch, per_sample)
    ticks = samples[:, : net.steps * n_total * 2].reshape(net.batch, net.steps, n_total, 2)
    final = samples[:, net.steps * n_total * 2 :].reshape(net.batch, n_total, 4)
    out: dict = {"constants": {}, "spikes": {}, "v": {}, "final": {}}
    start = 0
    for i, size in enumerate(sizes):
        sl = slice(start, start + size)
        out["constants"][f"p{i}"] = constants[sl]
        out["spikes"][f"p{i}"] = ticks[:, :, sl, 0].astype(bool)
        out["v"][f"p{i}"] = ticks[:, :, sl, 1]
        out["final"][f"p{i}"] = final[:, sl]
        start += size
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tests


def test_reference_multiply_is_arm_mode_floor(lif_ref: Path) -> None:
    """The reference's ``accum`` multiply floors, as ARM-mode code does (an armv5te Thumb build calls libgcc's
    ``__gnu_mulsa3`` instead, which rounds). One IF_curr_delta neuron with ts = 2.0 ms, so the delta input scale
    is 0.5 (raw 16384); tau_m = c_m = 0.1 gives R = 1.0 exactly and exp_TC = expk(-20) = 0, so V after tick 0
    is alpha = I = isyn_exc x 0.5. An initial synapse state of 3 raw gives V = 1 raw, -3 raw gives V = -2 raw
    (round-to-nearest would give 2 and -1)."""
    for isyn, expected in ((3, 1), (-3, -2)):
        params = {k: np.array([0], dtype=np.int64) for k in PARAM_ORDER}
        params.update(
            isyn_exc=np.array([isyn]),
            v_thresh=np.array([s1615.INT32_MAX]),
            time_step=np.array([2 * s1615.ONE]),
            tau_m=np.array([s1615.encode(0.1)]),
            c_m=np.array([s1615.encode(0.1)]),
            tau_syn_e=np.array([s1615.ONE]),
            tau_syn_i=np.array([s1615.ONE]),
        )
        net = RandomNetwork(1, 2, {}, [RawPopulation("IF_curr_delta", 1, 0, 0, params)], [], False)
        c = chip_constants(net.populations[0])
        assert (int(c["scale"][0]), int(c["r_membrane"][0]), int(c["exp_tc"][0])) == (16384, s1615.ONE, 0)
        assert int(run_reference(lif_ref, net)["v"]["p0"][0, 1, 0]) == expected
        assert int(emulate(net).v["p0"][0, 1, 0]) == expected


@pytest.mark.parametrize("seed", range(N_NETWORKS))
def test_emulator_matches_arm_reference(lif_ref: Path, seed: int) -> None:
    net = random_network(seed)
    ref = run_reference(lif_ref, net)
    emu = emulate(net)
    for i, pop in enumerate(net.populations):
        name = f"p{i}"
        c = chip_constants(pop)
        got = ref["constants"][name]
        np.testing.assert_array_equal(got[:, 0], c["ts"], err_msg=f"{name} ts")
        np.testing.assert_array_equal(got[:, 1], c["r_membrane"], err_msg=f"{name} R_membrane")
        np.testing.assert_array_equal(got[:, 2], c["t_refract"], err_msg=f"{name} T_refract")
        if pop.model == "IF_curr_exp":
            np.testing.assert_array_equal(got[:, 3], c["init_exc"], err_msg=f"{name} init_exc")
            np.testing.assert_array_equal(got[:, 4], c["init_inh"], err_msg=f"{name} init_inh")
        np.testing.assert_array_equal(got[:, 5], c["scale"], err_msg=f"{name} delta input scale")
        np.testing.assert_array_equal(emu.spikes[name], ref["spikes"][name], err_msg=f"{name} spikes")
        np.testing.assert_array_equal(emu.v[name], ref["v"][name], err_msg=f"{name} V")
        final = emu.final[name]
        np.testing.assert_array_equal(final.v, ref["final"][name][..., 0], err_msg=f"{name} final V")
        np.testing.assert_array_equal(final.refract_timer, ref["final"][name][..., 1], err_msg=f"{name} refract")
        np.testing.assert_array_equal(final.isyn_exc, ref["final"][name][..., 2], err_msg=f"{name} isyn_exc")
        np.testing.assert_array_equal(final.isyn_inh, ref["final"][name][..., 3], err_msg=f"{name} isyn_inh")


def test_the_random_networks_reach_the_edge_cases() -> None:
    """The comparison above is only as good as what the networks exercise: count, over the emulator's runs of
    the same networks, saturated ring-buffer slots, words whose shifted value wraps negative and is delivered,
    refractory periods of 2 ticks or more that are entered, recurrent projections, long delays, and spikes."""
    saturating = wrapping = refractory = recurrent = long_delay = spiking = exp_tc_one = 0
    for seed in range(N_NETWORKS):
        net = random_network(seed)
        emu = emulate(net)
        names = [f"p{i}" for i in range(len(net.populations))]
        saturating += sum(emu.saturated_slots.values()) > 0
        spiking += any(emu.spikes[n].any() for n in names)
        delivered = False
        for pre, post, words, receptor, delay in net.projections:
            pop = net.populations[names.index(post)]
            shift = pop.shift_exc if receptor == "excitatory" else pop.shift_inh
            fired = (emu.spikes[pre] if pre in names else net.inputs[pre]).any(axis=(0, 1))
            wraps = (words.astype(np.int64) << shift) >= 2**31
            delivered |= bool((wraps & fired[:, None]).any())
            recurrent += pre in names
            long_delay += delay > 6
        wrapping += delivered
        for i, pop in enumerate(net.populations):
            c = chip_constants(pop)
            exp_tc_one += bool((c["exp_tc"] == s1615.ONE).any())
            if (c["t_refract"] >= 2).any() and (emu.spikes[f"p{i}"][..., c["t_refract"] >= 2]).any():
                refractory += 1
    assert saturating >= 5, saturating
    assert wrapping >= 5, wrapping
    assert refractory >= 10, refractory
    assert recurrent >= 10, recurrent
    assert long_delay >= 5, long_delay
    assert spiking >= N_NETWORKS // 2, spiking
    assert exp_tc_one >= 2, exp_tc_one
