"""neurodeploy_pynn.spinnaker_emulator on small networks whose traces are derived here by hand.

Every expected value is worked out in this file with plain Python integers from the equations of
docs/spinnaker-arithmetic.md (the helpers ``fmul``, ``wrap`` and ``fdecay`` below are three lines each; nothing
comes from the emulator or neurodeploy_pynn.s1615, except where a test checks those constants themselves). Raw
bits throughout: 32768 is 1.0 (mV, nA, ...).
"""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy_pynn.spinnaker_emulator import LifPopulation, Projection, run

ONE = 32768


def wrap(x: int) -> int:
    """Reduce to int32 modulo 2**32."""
    return (x + 2**31) % 2**32 - 2**31


def fmul(a: int, b: int) -> int:
    """accum * accum on ARM: floor of the product / 2**15, wrapped."""
    return wrap((a * b) >> 15)


def fdecay(x: int, d: int) -> int:
    """decay_s1615: x times a u0.32 factor, floor."""
    return (x * d) >> 32


def delta_pop(name: str = "b", size: int = 1, **kw) -> LifPopulation:
    """IF_curr_delta with V = alpha exactly (exp_TC = 0, R = 1.0, scale 1.0), V_rest = 0, a threshold out of
    reach: V after a tick is the tick's input current."""
    args = dict(
        name=name,
        model="IF_curr_delta",
        size=size,
        v_rest=0,
        v_reset=0,
        v_thresh=2**31 - 1,
        i_offset=0,
        r_membrane=ONE,
        exp_tc=0,
        t_refract=0,
        input_scale=ONE,
    )
    args.update(kw)
    return LifPopulation(**args)


def driven_exp_pop(name: str = "a", **kw) -> LifPopulation:
    """IF_curr_exp with V_rest = 0, I_offset = 4.0, R = 1.0, exp_TC = 0.5: alpha = 4.0 = 131072 raw."""
    args = dict(
        name=name,
        model="IF_curr_exp",
        size=1,
        v_rest=0,
        v_reset=-2 * ONE,
        v_thresh=3 * ONE,
        i_offset=4 * ONE,
        r_membrane=ONE,
        exp_tc=ONE // 2,
        t_refract=2,
        decay_exc=0,
        init_exc=0,
        decay_inh=0,
        init_inh=0,
    )
    args.update(kw)
    return LifPopulation(**args)


def test_threshold_hit_exactly_reset_and_refractory_period() -> None:
    """alpha = 131072; V = alpha - floor(0.5 (alpha - V)):
    tick 0: V 0 -> 131072 - 65536 = 65536
    tick 1: V 65536 -> 131072 - 32768 = 98304 = V_thresh exactly: spike (>=), V = V_reset = -65536, timer 2
    tick 2: timer 2 > 0 -> 1, V frozen at -65536, no spike
    tick 3: timer 1 -> 0, V frozen
    tick 4: update: 131072 - floor(0.5 (131072 + 65536)) = 32768
    tick 5: 131072 - 49152 = 81920
    tick 6: 131072 - 24576 = 106496 >= 98304: spike, V = -65536, timer 2
    tick 7, 8: frozen."""
    res = run([driven_exp_pop()], [], steps=9, batch=1, record_v=True)
    v_recorded = [0, 65536, -65536, -65536, -65536, 32768, 81920, -65536, -65536]
    assert res.v["a"][0, :, 0].tolist() == v_recorded
    assert res.spikes["a"][0, :, 0].tolist() == [False, True, False, False, False, False, True, False, False]
    assert res.final["a"].v.tolist() == [[-65536]]
    assert res.final["a"].refract_timer.tolist() == [[0]]

    # one LSB higher threshold: tick 1 does not fire (98304 < 98305); tick 2: 131072 - 16384 = 114688 fires
    res = run([driven_exp_pop(v_thresh=3 * ONE + 1)], [], steps=4, batch=1, record_v=True)
    assert res.v["a"][0, :, 0].tolist() == [0, 65536, 98304, -65536]
    assert res.spikes["a"][0, :, 0].tolist() == [False, False, True, False]


def test_reset_above_threshold_fires_every_tick_while_refractory() -> None:
    """The threshold is tested on the frozen V too: with V_reset >= V_thresh the neuron fires again in each
    refractory tick (sPyNNaker's order: update or count down, then threshold)."""
    res = run([driven_exp_pop(v_reset=3 * ONE, t_refract=3)], [], steps=6, batch=1)
    assert res.spikes["a"][0, :, 0].tolist() == [False, True, True, True, True, True]


def test_delta_input_delay_and_floor_leak() -> None:
    """IF_curr_delta, ts = 0.5 ms so the input scale is 2.0 (65536), R = 1.0, exp_TC = 0.75 (24576), V_rest = 0.
    An input spike at tick 0 with delay 2 and word 5 at shift 4 lands in slot 2: exc = 5 << 4 = 80 raw,
    times 2.0 = 160 = I = alpha.
    tick 2: V = 160 - floor(0.75 * 160) = 160 - 120 = 40
    tick 3: no input (delta synapses clear): alpha = 0, V = 0 - floor(0.75 * (0 - 40)) = 30
    tick 4: V = -floor(0.75 * -30) = -floor(-22.5) = 23
    tick 5: V = -floor(0.75 * -23) = -floor(-17.25) = 18"""
    pop = delta_pop(exp_tc=24576, input_scale=2 * ONE, shift_exc=4)
    spikes = np.zeros((1, 7, 1), dtype=bool)
    spikes[0, 0, 0] = True
    res = run([pop], [Projection("in", "b", [[5]], "excitatory", delay=2)], {"in": spikes}, record_v=True)
    assert res.v["b"][0, :, 0].tolist() == [0, 0, 0, 40, 30, 23, 18]
    assert fmul(80, 2 * ONE) == 160
    assert 160 - fmul(24576, 160) == 40


def test_delta_inhibitory_input_floors_toward_minus_infinity() -> None:
    """Inhibitory word 3 at shift 0 with input scale 0.5 (ts = 2 ms): inh = 3 * 0.5 = floor(1.5) = 1, I = -1;
    an excitatory word 3 gives floor(1.5) = 1: the two do not cancel to a symmetric +-1.5."""
    pop = delta_pop(input_scale=ONE // 2)
    spikes = np.ones((1, 2, 1), dtype=bool)
    inh = Projection("in", "b", [[3]], "inhibitory", delay=1)
    res = run([pop], [inh], {"in": spikes}, record_v=True)
    assert res.final["b"].v.tolist() == [[0 - fmul(3, ONE // 2)]] == [[-1]]
    # a negative synapse state (set initially) shows the floor on the other side: -3 * 0.5 = -2
    res = run([delta_pop(input_scale=ONE // 2, isyn_exc_init=-3)], [], steps=1, batch=1)
    assert res.final["b"].v.tolist() == [[-2]]


def test_delta_input_during_refractory_period_is_lost() -> None:
    """A neuron that starts with refract_timer 2: ticks 0 and 1 count down with V frozen at v_init; the input
    landing in tick 1 is cleared by the shaping step and never reaches V; tick 2 leaks from v_init = 100 toward
    V_rest = 0 with exp_TC = 0.5: 0 - floor(0.5 * (0 - 100)) = 50."""
    pop = delta_pop(exp_tc=ONE // 2, v_init=100, refract_timer_init=2)
    spikes = np.zeros((1, 4, 1), dtype=bool)
    spikes[0, 0, 0] = True
    res = run([pop], [Projection("in", "b", [[1000]], delay=1)], {"in": spikes}, record_v=True)
    assert res.v["b"][0, :, 0].tolist() == [100, 100, 100, 50]


def test_exp_synapses_add_scaled_input_and_decay() -> None:
    """IF_curr_exp with exp_TC = 0 and R = 1.0, so V after a tick = I = exc - inh. Excitatory: init 0.75
    (3 << 30), decay 0.5 (1 << 31); inhibitory: init 0.5, decay 0.5. Word 1 at shift 16 (2.0 = 65536 raw) with
    delay 1, word 1 at shift 15 (1.0) inhibitory with delay 2, both from an input spike at tick 0.
    tick 1: exc += floor(65536 * 0.75) = 49152 -> V = 49152; shaping: exc 24576
    tick 2: inh += floor(32768 * 0.5) = 16384 -> V = 24576 - 16384 = 8192; shaping: exc 12288, inh 8192
    tick 3: V = 12288 - 8192 = 4096; tick 4: V = 6144 - 4096 = 2048."""
    pop = LifPopulation(
        name="e",
        model="IF_curr_exp",
        size=1,
        v_rest=0,
        v_reset=0,
        v_thresh=2**31 - 1,
        i_offset=0,
        r_membrane=ONE,
        exp_tc=0,
        t_refract=0,
        shift_exc=16,
        shift_inh=15,
        decay_exc=1 << 31,
        init_exc=3 << 30,
        decay_inh=1 << 31,
        init_inh=1 << 31,
    )
    spikes = np.zeros((1, 5, 1), dtype=bool)
    spikes[0, 0, 0] = True
    prj = [Projection("in", "e", [[1]], "excitatory", 1), Projection("in", "e", [[1]], "inhibitory", 2)]
    res = run([pop], prj, {"in": spikes}, record_v=True)
    exc1 = fdecay(1 << 16, 3 << 30)
    assert exc1 == 49152
    assert res.v["e"][0, 1:, 0].tolist() == [0, 49152, 8192, 4096]
    assert res.final["e"].v.tolist() == [[2048]]
    assert (res.final["e"].isyn_exc.tolist(), res.final["e"].isyn_inh.tolist()) == ([[3072]], [[2048]])


def test_negative_synapse_state_never_decays_to_zero() -> None:
    """decay_s1615 floors: -3 * 0.5 -> -2, -2 * 0.5 -> -1, -1 * 0.5 = floor(-0.5) -> -1 for ever (a positive
    state decays to 0)."""
    pop = LifPopulation(
        name="e",
        model="IF_curr_exp",
        size=2,
        v_rest=0,
        v_reset=0,
        v_thresh=2**31 - 1,
        i_offset=0,
        r_membrane=ONE,
        exp_tc=0,
        t_refract=0,
        decay_exc=1 << 31,
        init_exc=0,
        decay_inh=0,
        init_inh=0,
        isyn_exc_init=[-3, 3],
    )
    res = run([pop], [], steps=5, batch=1, record_v=True)
    assert res.v["e"][0, 1:, 0].tolist() == [-3, -2, -1, -1]
    assert res.v["e"][0, 1:, 1].tolist() == [3, 1, 0, 0]


def test_spike_between_populations_arrives_after_its_delay() -> None:
    """Population a fires at ticks 1 and 6 (the first test's trace); its projection to b (word 7 at shift 3,
    delay 3) lands in ticks 4 and 9, where V(b) after the tick is 7 << 3 = 56 and 0 otherwise."""
    prj = Projection("a", "b", [[7]], "excitatory", delay=3)
    res = run([driven_exp_pop(), delta_pop(shift_exc=3)], [prj], steps=11, batch=1, record_v=True)
    assert np.flatnonzero(res.spikes["a"][0, :, 0]).tolist() == [1, 6]
    expected_after = [56 if t in (4, 9) else 0 for t in range(11)]
    assert res.v["b"][0, 1:, 0].tolist() == expected_after[:-1]
    assert res.final["b"].v.tolist() == [[expected_after[-1]]]


def test_ring_buffer_slot_saturates_at_0xffff() -> None:
    """Two input spikes whose words (40000 and 30000) land in the same slot sum to 70000, which the 16-bit slot
    holds as 0xFFFF = 65535; in different slots each arrives whole."""
    spikes = np.zeros((1, 4, 2), dtype=bool)
    spikes[0, 0, :] = True
    same = [Projection("in", "b", [[40000], [30000]], delay=1)]
    res = run([delta_pop()], same, {"in": spikes}, record_v=True)
    assert res.v["b"][0, 2, 0] == 65535
    assert res.saturated_slots["b"] == 1
    apart = [Projection("in", "b", [[40000], [0]], delay=1), Projection("in", "b", [[0], [30000]], delay=2)]
    res = run([delta_pop()], apart, {"in": spikes}, record_v=True)
    assert res.v["b"][0, 2:, 0].tolist() == [40000, 30000]
    assert res.saturated_slots["b"] == 0


def test_large_shift_wraps_the_input_negative() -> None:
    """The transfer is ``(int32) word << shift``: 0xFFFF << 17 = 0x1FFFE0000, low 32 bits 0xFFFE0000 = -131072;
    0x8000 << 16 = 2**31 wraps to -2**31."""
    spikes = np.zeros((1, 3, 1), dtype=bool)
    spikes[0, 0, 0] = True
    res = run([delta_pop(shift_exc=17)], [Projection("in", "b", [[0xFFFF]])], {"in": spikes}, record_v=True)
    assert res.v["b"][0, 2, 0] == wrap(0xFFFF << 17) == -131072
    res = run([delta_pop(shift_exc=16)], [Projection("in", "b", [[0x8000]])], {"in": spikes}, record_v=True)
    assert res.v["b"][0, 2, 0] == -(2**31)


def test_from_pynn_defaults_and_a_regular_spike_train() -> None:
    """IF_curr_exp with PyNN's defaults and i_offset = 1 nA at ts = 1 ms. Encoded: V_rest = V_reset = V(0) =
    -65 mV = -2129920, V_thresh = -1638400, I_offset = 32768; on the chip R = 20.0 = 655360, exp_TC = 31170,
    T_refract = 1, tau_syn 5 ms: decay 3516490311. The trace is then derived with the doc's loop over 120 ticks:
    alpha = -45 mV sits above the threshold, so the neuron fires regularly, with one frozen tick after each
    spike."""
    pop = LifPopulation.from_pynn("n", "IF_curr_exp", 2, i_offset=[1.0, 0.0])
    assert pop.v_rest.tolist() == pop.v_reset.tolist() == pop.v_init.tolist() == [-2129920] * 2
    assert pop.v_thresh.tolist() == [-1638400] * 2
    assert pop.i_offset.tolist() == [32768, 0]
    assert (pop.r_membrane.tolist(), pop.exp_tc.tolist(), pop.t_refract.tolist()) == ([655360] * 2, [31170] * 2, [1, 1])
    assert pop.decay_exc.tolist() == pop.decay_inh.tolist() == [3516490311] * 2

    v, timer, vs, spikes = -2129920, 0, [], []
    for _ in range(120):
        vs.append(v)
        if timer <= 0:
            alpha = wrap(fmul(32768 - 0, 655360) + -2129920)
            v = wrap(alpha - fmul(31170, wrap(alpha - v)))
        else:
            timer -= 1
        fired = v >= -1638400
        if fired:
            v, timer = -2129920, 1
        spikes.append(fired)
    res = run([pop], [], steps=120, batch=1, record_v=True)
    assert res.v["n"][0, :, 0].tolist() == vs
    assert res.spikes["n"][0, :, 0].tolist() == spikes
    assert sum(spikes) >= 3
    assert not res.spikes["n"][0, :, 1].any()  # no drive: rests
    assert (res.v["n"][0, :, 1] == -2129920).all()

    delta = LifPopulation.from_pynn("d", "IF_curr_delta", 1, time_step=0.1, tau_refrac=1.0)
    assert (delta.input_scale.tolist(), delta.t_refract.tolist()) == ([327660], [10])
    with pytest.raises(TypeError, match="tau_syn_E"):
        LifPopulation.from_pynn("d", "IF_curr_delta", 1, tau_syn_E=5.0)
    with pytest.raises(ValueError, match="S1615"):
        LifPopulation.from_pynn("n", "IF_curr_exp", 1, v_thresh=70000.0)


def test_batch_samples_are_independent() -> None:
    """A batch of samples gives each sample's run on its own; recording can be limited to some populations."""
    rng = np.random.default_rng(3)
    spikes = rng.random((4, 30, 3)) < 0.4
    pops = [driven_exp_pop(i_offset=ONE), delta_pop(size=2, exp_tc=ONE // 2, v_thresh=200)]
    words = rng.integers(0, 400, size=(3, 2))
    prj = [Projection("in", "b", words, delay=2), Projection("a", "b", [[30, 40]], "inhibitory", 1)]
    prj.append(Projection("b", "b", [[5, 0], [0, 5]], "excitatory", 3))
    whole = run(pops, prj, {"in": spikes}, record_v=["b"], record_spikes=["b"])
    assert set(whole.v) == set(whole.spikes) == {"b"}
    for s in range(4):
        one = run(pops, prj, {"in": spikes[s : s + 1]}, record_v=["b"], record_spikes=["b"])
        np.testing.assert_array_equal(whole.v["b"][s], one.v["b"][0])
        np.testing.assert_array_equal(whole.spikes["b"][s], one.spikes["b"][0])
        np.testing.assert_array_equal(whole.final["b"].v[s], one.final["b"].v[0])
    assert whole.spikes["b"].any()


def test_invalid_networks_are_refused() -> None:
    pop = delta_pop()
    spikes = np.zeros((1, 3, 1), dtype=bool)
    with pytest.raises(ValueError, match="delay"):
        Projection("in", "b", [[1]], delay=0)
    with pytest.raises(ValueError, match="0xFFFF"):
        Projection("in", "b", [[65536]])
    with pytest.raises(ValueError, match="receptor"):
        Projection("in", "b", [[1]], receptor="excitatory2")
    with pytest.raises(ValueError, match="shape"):
        run([pop], [Projection("in", "b", [[1], [2]])], {"in": spikes})
    with pytest.raises(ValueError, match="no population"):
        run([pop], [Projection("in", "c", [[1]])], {"in": spikes})
    with pytest.raises(ValueError, match="0/1"):
        run([pop], [], {"in": np.full((1, 3, 1), 2)})
    with pytest.raises(ValueError, match="required"):
        run([pop], [])
    with pytest.raises(ValueError, match="shift_exc"):
        delta_pop(shift_exc=32)
    with pytest.raises(ValueError, match="input_scale"):
        delta_pop(input_scale=None)
    with pytest.raises(ValueError, match="decay_exc"):
        driven_exp_pop(decay_exc=None)
    with pytest.raises(ValueError, match="shape"):
        delta_pop(size=2, v_rest=[0, 0, 0])
