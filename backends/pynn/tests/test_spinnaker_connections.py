"""The emulator's connection lists, per-sample offset currents and checkpoints against what they stand for: a
connection list gives the spikes, V and final state of the dense word matrix it lists (on the compiled walk and
on the numpy gather), an offset current per sample gives what running each sample alone with that ``i_offset``
gives, and the counts and checkpoints are the sums and values of the per-tick recording."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy_pynn import _compiled, s1615
from neurodeploy_pynn.spinnaker_emulator import LifPopulation, Projection, run

SIZES = {"a": 7, "b": 5}


def network(rng: np.random.Generator, model: str) -> tuple[list[LifPopulation], list[tuple], dict]:
    """Two populations fed by an input of 6 neurons; projections as (pre, post, dense words, receptor, delay)."""
    extra = {"tau_syn_E": 3.0, "tau_syn_I": 7.0} if model == "IF_curr_exp" else {}
    pops = [
        LifPopulation.from_pynn(
            name,
            model,
            size,
            shift_exc=int(rng.integers(4, 9)),
            shift_inh=int(rng.integers(4, 9)),
            v_thresh=-60.0,
            tau_refrac=float(rng.choice([0.0, 2.0])),
            i_offset=rng.uniform(0, 2, size),
            **extra,
        )
        for name, size in SIZES.items()
    ]
    sizes = {"in": 6, **SIZES}
    dense = []
    for pre, post in (("in", "a"), ("in", "b"), ("a", "b"), ("b", "a"), ("a", "a")):
        words = rng.integers(0, 1 << 14, (sizes[pre], sizes[post])) * (rng.random((sizes[pre], sizes[post])) < 0.6)
        if pre == "in" and post == "b":
            words[0, :] = 0xFFFF  # with the other inputs, the slot saturates
        dense.append((pre, post, words, str(rng.choice(["excitatory", "inhibitory"])), int(rng.integers(1, 4))))
    inputs = {"in": rng.random((3, 20, 6)) < 0.4}
    return pops, dense, inputs


def as_list(rng: np.random.Generator, words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzero words of a matrix as a shuffled connection list, some split into two synapses of one pair."""
    pre, post = np.nonzero(words)
    w = words[pre, post]
    split = rng.random(len(w)) < 0.3
    first = w // 2
    pre = np.concatenate([pre, pre[split]])
    post = np.concatenate([post, post[split]])
    w = np.concatenate([np.where(split, first, w), (w - first)[split]])
    order = rng.permutation(len(w))
    return pre[order], post[order], w[order]


@pytest.mark.parametrize("model", ["IF_curr_delta", "IF_curr_exp"])
@pytest.mark.parametrize("walk", ["compiled", "numpy"])
def test_connection_lists_equal_their_word_matrices(monkeypatch, model, walk):
    if walk == "numpy":
        monkeypatch.setattr(_compiled, "kernels", lambda: None)
    elif _compiled.kernels() is None:
        pytest.skip("numba is not installed")
    for seed in range(4):
        rng = np.random.default_rng(seed)
        pops, dense, inputs = network(rng, model)
        matrices = [Projection(pre, post, words, receptor, delay) for pre, post, words, receptor, delay in dense]
        listed = [
            Projection(pre, post, receptor=receptor, delay=delay, connections=as_list(rng, words))
            for pre, post, words, receptor, delay in dense
        ]
        want = run(pops, matrices, inputs, record_v=True)
        got = run(pops, listed, inputs, record_v=True)
        assert sum(want.saturated_slots.values()) > 0
        assert want.saturated_slots == got.saturated_slots
        for name in SIZES:
            np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
            np.testing.assert_array_equal(got.v[name], want.v[name])
            np.testing.assert_array_equal(got.final[name].v, want.final[name].v)
        assert any(want.spikes[name].any() for name in SIZES)


def test_an_offset_current_per_sample_is_each_sample_run_with_its_own():
    rng = np.random.default_rng(9)
    pops, dense, inputs = network(rng, "IF_curr_delta")
    projections = [Projection(pre, post, words, receptor, delay) for pre, post, words, receptor, delay in dense]
    raw = rng.integers(-(1 << 16), 1 << 16, (3, SIZES["a"]))
    together = run(pops, projections, inputs, record_v=True, i_offset={"a": raw})
    for b in range(3):
        alone_a = LifPopulation(**{**pops[0].__dict__, "i_offset": raw[b]})
        alone = run([alone_a, pops[1]], projections, {"in": inputs["in"][b : b + 1]}, record_v=True)
        for name in SIZES:
            np.testing.assert_array_equal(together.v[name][b], alone.v[name][0])
            np.testing.assert_array_equal(together.spikes[name][b], alone.spikes[name][0])


def test_counts_and_checkpoints_are_the_recorded_sums_and_values():
    rng = np.random.default_rng(4)
    pops, dense, inputs = network(rng, "IF_curr_delta")
    projections = [Projection(pre, post, words, receptor, delay) for pre, post, words, receptor, delay in dense]
    ticks = (0, 1, 7, 20)
    result = run(pops, projections, inputs, record_v=True, count_ticks=ticks, v_ticks=ticks)
    for name in SIZES:
        np.testing.assert_array_equal(result.counts[name], result.spikes[name].sum(axis=1))
        for n in ticks:
            np.testing.assert_array_equal(result.checkpoint_counts[n][name], result.spikes[name][:, :n].sum(axis=1))
            v = result.final[name].v if n == 20 else result.v[name][:, n]  # V after n ticks = V before tick n
            np.testing.assert_array_equal(result.checkpoint_v[n][name], v)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Projection("in", "a", np.ones((6, 7), int), connections=([0], [0], [1])), "not both"),
        (lambda: Projection("in", "a"), "neither"),
        (lambda: Projection("in", "a", connections=([0, 1], [0], [1, 1])), "differ in length"),
        (lambda: Projection("in", "a", connections=([0], [0], [1 << 16])), "0xFFFF"),
        (lambda: Projection("in", "a", connections=([-1], [0], [1])), ">= 0"),
    ],
    ids=["both", "neither", "lengths", "word", "negative"],
)
def test_bad_connection_lists_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_indices_beyond_the_populations_and_bad_offsets_are_refused():
    rng = np.random.default_rng(1)
    pops, _, inputs = network(rng, "IF_curr_delta")
    beyond = Projection("in", "a", connections=([5], [7], [3]))
    with pytest.raises(ValueError, match="projection in->a: a connection index is beyond"):
        run(pops, [beyond], inputs)
    with pytest.raises(ValueError, match=r"i_offset\['a'\]: expected integer raw bits of shape \(3, 7\)"):
        run(pops, [], inputs, i_offset={"a": np.zeros((2, 7), np.int64)})
    with pytest.raises(ValueError, match="i_offset: no population 'c'"):
        run(pops, [], inputs, i_offset={"c": np.zeros((3, 7), np.int64)})
    with pytest.raises(ValueError, match="outside int32"):
        run(pops, [], inputs, i_offset={"a": np.full((3, 7), s1615.INT32_MAX + 1)})
