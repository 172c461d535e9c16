"""The BrainScaleS-2 model (``brainscales2_emulator``) against the CUBA LIF equations solved by hand.

For a neuron at rest that receives a charge q = weight x gain through an exponential synapse at t0, the equations

    dV/dt = -(V - v_rest) / tau_m + I,   dI/dt = -I / tau_syn,   I(t0) = q / tau_syn

give V(t) - v_rest = q K(t - t0) with K(s) = tau_m / (tau_m - tau_syn) (exp(-s / tau_m) - exp(-s / tau_syn)),
and the equations are linear, so spikes add. The emulator solves them exactly between integration steps, so its V
must equal these sums at every step, whatever the number of integration steps per µs; a fine forward-Euler
integration of the same equations checks the closed form itself. Threshold, reset, refractory time, the routing
latency of one integration step, the sign of the inhibitory receptor, the readout without threshold and both
kinds of noise are checked one by one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from neurodeploy_pynn.brainscales2_emulator import Neurons, Noise, Source, Synapses, run, with_mismatch

TAU_M, TAU_E, TAU_I = 10.0, 2.0, 4.0
V_REST, V_RESET = 80.0, 70.0
GAIN_E, GAIN_I = 3.0, 2.0


def kernel(s: float, tau_syn: float, tau_m: float = TAU_M) -> float:
    """V - v_rest, s µs after a unit charge through a synapse of time constant tau_syn (0 before it)."""
    if s <= 0:
        return 0.0
    return tau_m / (tau_m - tau_syn) * (math.exp(-s / tau_m) - math.exp(-s / tau_syn))


def euler(charges: list[tuple[float, float, float]], t_end: float, dt: float = 1e-4) -> float:
    """V at t_end by forward Euler from rest: ``charges`` are (time, signed charge, tau_syn)."""
    v, currents = V_REST, []
    pending = sorted(charges)
    for n in range(round(t_end / dt)):
        t = n * dt
        while pending and pending[0][0] <= t + 1e-12:
            _, q, tau = pending.pop(0)
            currents.append([q / tau, tau])
        total = sum(i for i, _ in currents)
        v += dt * (-(v - V_REST) / TAU_M + total)
        for c in currents:
            c[0] -= dt * c[0] / c[1]
    return v


def neuron(name: str = "n", size: int = 1, **changes: float) -> Neurons:
    values = {
        "tau_m": TAU_M,
        "tau_syn_exc": TAU_E,
        "tau_syn_inh": TAU_I,
        "tau_refrac": 2.0,
        "v_rest": V_REST,
        "v_reset": V_RESET,
        "v_thresh": 1000.0,
        "gain_exc": GAIN_E,
        "gain_inh": GAIN_I,
    } | changes
    return Neurons(name, size, **values)


def one_to_one(pre: str, post: str, receptor: str, weight: int, size: int = 1) -> Synapses:
    index = np.arange(size)
    return Synapses(pre, post, receptor, index, index.copy(), np.full(size, weight))


def train(times: list[int], steps: int, size: int = 1) -> np.ndarray:
    spikes = np.zeros((1, steps, size), bool)
    spikes[0, times] = True
    return spikes


@pytest.mark.parametrize("substeps", [1, 4, 10])
def test_membrane_follows_the_summed_kernels_exactly(substeps):
    """Weight 5 excitatory at 0 µs, weight 4 inhibitory at 2 µs, weight 2 excitatory at 3 µs (three sources): V
    after each µs is
    v_rest + 15 K_E(t) - 8 K_I(t - 2) + 6 K_E(t - 3), to rounding, for any integration step."""
    steps = 8
    sources = {"e1": train([0], steps), "inh": train([2], steps), "e2": train([3], steps)}
    synapses = [
        Synapses("e1", "n", "excitatory", np.array([0]), np.array([0]), np.array([5])),
        Synapses("inh", "n", "inhibitory", np.array([0]), np.array([0]), np.array([4])),
        Synapses("e2", "n", "excitatory", np.array([0]), np.array([0]), np.array([2])),
    ]
    result = run(
        [neuron()],
        synapses,
        sources,
        {"e1": 1, "inh": 1, "e2": 1},
        integration_steps=steps * substeps,
        substeps=substeps,
        trace=True,
    )
    for t in range(1, steps + 1):
        want = V_REST + 5 * GAIN_E * kernel(t, TAU_E) - 4 * GAIN_I * kernel(t - 2, TAU_I)
        want += 2 * GAIN_E * kernel(t - 3, TAU_E)
        got = result.trace_v["n"][0, t * substeps - 1, 0]
        assert got == pytest.approx(want, abs=1e-9), t
    # the closed form is the equations' solution: forward Euler agrees at 8 µs
    charges = [(0.0, 5 * GAIN_E, TAU_E), (2.0, -4 * GAIN_I, TAU_I), (3.0, 2 * GAIN_E, TAU_E)]
    assert euler(charges, 8.0) == pytest.approx(result.trace_v["n"][0, -1, 0], abs=2e-3)


def test_threshold_reset_and_refractory_time():
    """A charge of 10 x 3 at 0 µs crosses v_thresh = 85 within the first µs (V(1) = 80 + 30 K_E(1) = 98.5), so the
    neuron spikes in integration step 0, is reset to 70 and held there for tau_refrac = 2 µs (steps 1 and 2)
    while its current decays; then V leaks from 70 and rises with what is left of the current."""
    result = run(
        [neuron(v_thresh=85.0)],
        [one_to_one("s", "n", "excitatory", 10)],
        {"s": train([0], 6)},
        {"s": 1},
        integration_steps=6,
        substeps=1,
        trace=True,
    )
    v, spikes = result.trace_v["n"][0, :, 0], result.trace_spikes["n"][0, :, 0]
    assert V_REST + 30 * kernel(1, TAU_E) > 85
    assert spikes.tolist() == [True, False, False, False, False, False]
    assert v[:3].tolist() == [V_RESET, V_RESET, V_RESET]
    # step 3 starts at 70 with the current 30 / tau_syn decayed over 3 µs
    a, b = math.exp(-1 / TAU_M), math.exp(-1 / TAU_E)
    k = TAU_M * TAU_E / (TAU_M - TAU_E) * (a - b)
    i3 = 30 / TAU_E * math.exp(-3 / TAU_E)
    assert v[3] == pytest.approx(V_REST + (V_RESET - V_REST) * a + i3 * k, abs=1e-9)
    assert v[4] == pytest.approx(V_REST + (v[3] - V_REST) * a + i3 * b * k, abs=1e-9)


def test_a_refractory_time_below_the_step_still_holds_one_step():
    """tau_refrac 0.04 µs (the smallest) with 10 integration steps per µs: ceil(0.04 / 0.1) = 1 step held."""
    result = run(
        [neuron(v_thresh=85.0, tau_refrac=0.04)],
        [one_to_one("s", "n", "excitatory", 63)],
        {"s": train([0], 1)},
        {"s": 1},
        integration_steps=4,
        substeps=10,
        trace=True,
    )
    v, spikes = result.trace_v["n"][0, :, 0], result.trace_spikes["n"][0, :, 0]
    first = int(np.argmax(spikes))
    assert v[first + 1] == V_RESET
    assert v[first + 2] > V_RESET


def test_a_spike_reaches_the_next_population_one_integration_step_later():
    """Source -> A -> B: A spikes in step n; B is still at rest after step n and rises in step n + 1."""
    result = run(
        [neuron("a", v_thresh=81.0), neuron("b")],
        [one_to_one("s", "a", "excitatory", 63), one_to_one("a", "b", "excitatory", 7)],
        {"s": train([0], 2)},
        {"s": 1},
        integration_steps=20,
        substeps=10,
        trace=True,
    )
    n = int(np.argmax(result.trace_spikes["a"][0, :, 0]))
    vb = result.trace_v["b"][0, :, 0]
    assert result.trace_spikes["a"][0, n, 0]
    assert np.all(vb[: n + 1] == V_REST)
    dt = 0.1
    assert vb[n + 1] - V_REST == pytest.approx(7 * GAIN_E * kernel(dt, TAU_E), abs=1e-12)


def test_inhibition_lowers_the_membrane_and_a_readout_has_no_threshold():
    """The same weight on the inhibitory receptor moves V down by gain_inh K_I; a non-spiking population passes
    its threshold without a spike or a reset."""
    result = run(
        [neuron("i"), neuron("r", v_thresh=81.0, spiking=False)],
        [one_to_one("s", "i", "inhibitory", 20), one_to_one("s", "r", "excitatory", 63)],
        {"s": train([0], 3)},
        {"s": 1},
        integration_steps=3,
        substeps=1,
        trace=True,
    )
    assert result.trace_v["i"][0, 1, 0] == pytest.approx(V_REST - 20 * GAIN_I * kernel(2, TAU_I), abs=1e-9)
    assert result.trace_v["r"][0, :, 0].max() > 81.0
    assert not result.trace_spikes["r"].any()


def test_weights_are_six_bit_integers():
    with pytest.raises(ValueError, match=r"0\.\.63"):
        Synapses("s", "n", "excitatory", np.array([0]), np.array([0]), np.array([64]))
    with pytest.raises(ValueError, match=r"0\.\.63"):
        Synapses("s", "n", "excitatory", np.array([0]), np.array([0]), np.array([1.5]))


def test_marks_count_spikes_and_record_v():
    """Counts after a mark are the spikes of the integration steps before it; V after a mark as traced."""
    result = run(
        [neuron(v_thresh=85.0, tau_refrac=0.5)],
        [one_to_one("s", "n", "excitatory", 20)],
        {"s": np.ones((1, 12, 1), bool)},
        {"s": 1},
        integration_steps=24,
        substeps=2,
        marks=(0, 5, 24),
        record_v=("n",),
        trace=True,
    )
    spikes = result.trace_spikes["n"][0, :, 0]
    assert result.counts[0]["n"][0, 0] == 0
    assert result.counts[5]["n"][0, 0] == spikes[:5].sum()
    assert result.counts[24]["n"][0, 0] == spikes.sum() > 0
    assert result.v[5]["n"][0, 0] == result.trace_v["n"][0, 4, 0]


# -- noise ---------------------------------------------------------------------------------------------------


def drive(noise: Noise | None, batch: int = 4, offset: int = 0, pops: list[Neurons] | None = None):
    """20 neurons, each driven by its own source at a different rate, 40 µs at 10 steps per µs."""
    rng = np.random.default_rng(5)
    spikes = rng.random((batch, 40, 20)) < np.linspace(0.1, 0.9, 20)
    pops = pops if pops is not None else [neuron(size=20, v_thresh=90.0, tau_refrac=0.5)]
    return run(
        pops,
        [one_to_one("s", "n", "excitatory", 30, size=20)],
        {"s": spikes},
        {"s": 20},
        integration_steps=400,
        substeps=10,
        marks=(400,),
        noise=noise,
        offset=offset,
        trace=True,
    )


def test_mismatch_is_fixed_per_chip_instance():
    base = [neuron(size=20, v_thresh=90.0)]
    same_a, same_b = with_mismatch(base, 0.1, 7), with_mismatch(base, 0.1, 7)
    other = with_mismatch(base, 0.1, 8)
    assert with_mismatch(base, 0.0, 7)[0] is base[0]
    for key in ("tau_m", "tau_syn_exc", "tau_syn_inh", "gain_exc", "gain_inh", "v_thresh"):
        a, b, c = (np.asarray(getattr(p[0], key)) for p in (same_a, same_b, other))
        np.testing.assert_array_equal(a, b, err_msg=key)
        assert not np.array_equal(a, c), key
        assert np.all(a > 0), key
        assert np.std(a) > 0, key
    # the threshold distance is what is scaled; the reset stays
    assert np.all(np.asarray(same_a[0].v_reset) == V_RESET)
    clean = drive(None).counts[400]["n"]
    mismatched = drive(None, pops=same_a).counts[400]["n"]
    assert not np.array_equal(clean, mismatched)
    np.testing.assert_array_equal(mismatched, drive(None, pops=same_b).counts[400]["n"])


def test_trial_to_trial_noise_is_seeded():
    """Same seed: the same spikes; another seed: other spikes; off: the noiseless run; and a sample's noise is
    its own (keyed by its index in the data set), whatever batch it runs in."""
    clean = drive(None).trace_spikes["n"]
    off = drive(Noise(membrane=0.0, seed=3)).trace_spikes["n"]
    np.testing.assert_array_equal(clean, off)
    a = drive(Noise(membrane=2.0, seed=3)).trace_spikes["n"]
    b = drive(Noise(membrane=2.0, seed=3)).trace_spikes["n"]
    c = drive(Noise(membrane=2.0, seed=4)).trace_spikes["n"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, clean)
    # sample 2 of the batch, run alone at offset 2, sees the same noise (its inputs are the batch's third row)
    rng = np.random.default_rng(5)
    spikes = rng.random((4, 40, 20)) < np.linspace(0.1, 0.9, 20)
    alone = run(
        [neuron(size=20, v_thresh=90.0, tau_refrac=0.5)],
        [one_to_one("s", "n", "excitatory", 30, size=20)],
        {"s": spikes[2:3]},
        {"s": 20},
        integration_steps=400,
        substeps=10,
        noise=Noise(membrane=2.0, seed=3),
        offset=2,
        trace=True,
    )
    np.testing.assert_array_equal(alone.trace_spikes["n"][0], a[2])


def test_noise_options_are_checked():
    with pytest.raises(ValueError, match="mismatch"):
        Noise(mismatch=-0.1)
    with pytest.raises(ValueError, match="membrane"):
        Noise(membrane=float("nan"))
    with pytest.raises(ValueError, match="seed"):
        Noise(seed=-1)
    assert Source("s", 3).size == 3
