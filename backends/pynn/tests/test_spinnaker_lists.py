"""The SpiNNaker emulator's connection lists, delivery paths, per-sample offsets, counts and checkpoints.

A connection list must give exactly what the dense word matrix it lists gives, and every way of delivering a
tick's spikes (the numpy gather, the compiled walk when numba is installed, the float64 matrix product) the same
integers. The dense matrix product is the path ``test_spinnaker_arm.py`` checks bit for bit against the ARM
reference, so it is the baseline here, on the same 60 seeded random networks (both models and receptors, delays
up to 40 ticks, refractory periods, recurrent projections, saturating slots and wrapped inputs). Some networks
are also run as lists against the ARM reference itself. Lists are written the way a converter may write them:
shuffled, some synapses split into two of the same (pre, post) pair, some zero words added.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import test_spinnaker_arm
from neurodeploy_pynn import _compiled, s1615
from neurodeploy_pynn import spinnaker_emulator as emulator
from neurodeploy_pynn.spinnaker_emulator import LifPopulation, Projection, SynapseTable, run
from test_spinnaker_arm import N_NETWORKS, emulate, lif_ref, random_network, run_reference  # noqa: F401
from test_spinnaker_traces import ONE, delta_pop

PATHS = ("gather", "compiled", "matrix")


def use_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Make every delivery take ``path``: a matrix product wherever there is a matrix (event cost infinite), or
    synapse by synapse (event cost 0) with numpy or with the compiled walk."""
    real = _compiled.kernels
    if path == "compiled" and real() is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(_compiled, "kernels", real if path == "compiled" else lambda: None)
    cost = float("inf") if path == "matrix" else 0.0
    monkeypatch.setattr(emulator, "_EVENT_COST", {"numpy": cost, "compiled": cost})


def as_list(words: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The synapses of a word matrix as a shuffled list: a third of them split into two synapses of the same
    pair (words summing to the original), and a few zero-word synapses added."""
    pre, post = np.nonzero(words)
    w = words[pre, post].astype(np.int64)
    split = rng.random(len(w)) < 1 / 3
    part = rng.integers(0, w + 1)
    pre = np.concatenate([pre, pre[split], rng.integers(0, words.shape[0], 3)])
    post = np.concatenate([post, post[split], rng.integers(0, words.shape[1], 3)])
    w = np.concatenate([np.where(split, part, w), (w - part)[split], np.zeros(3, np.int64)])
    order = rng.permutation(len(w))
    return pre[order], post[order], w[order]


def emulate_listed(monkeypatch: pytest.MonkeyPatch, net, seed: int):
    """``test_spinnaker_arm.emulate`` with each word matrix given as a connection list (:func:`as_list`)."""
    rng = np.random.default_rng(1000 + seed)

    def listed(pre, post, words, receptor, delay):
        return Projection(pre, post, receptor=receptor, delay=delay, connections=as_list(words, rng))

    with monkeypatch.context() as m:
        m.setattr(test_spinnaker_arm, "Projection", listed)
        return emulate(net)


def assert_same(got, want, names) -> None:
    assert got.saturated_slots == want.saturated_slots
    for name in names:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name], err_msg=f"{name} spikes")
        np.testing.assert_array_equal(got.v[name], want.v[name], err_msg=f"{name} V")
        np.testing.assert_array_equal(got.counts[name], want.counts[name], err_msg=f"{name} counts")
        for field in ("v", "refract_timer", "isyn_exc", "isyn_inh"):
            got_state, want_state = getattr(got.final[name], field), getattr(want.final[name], field)
            np.testing.assert_array_equal(got_state, want_state, err_msg=f"{name} final {field}")


@pytest.mark.parametrize("path", PATHS)
def test_connection_lists_equal_their_matrices_on_the_random_networks(monkeypatch, path) -> None:
    baseline = {}
    with monkeypatch.context() as m:
        use_path(m, "matrix")
        for seed in range(N_NETWORKS):
            baseline[seed] = emulate(random_network(seed))
    use_path(monkeypatch, path)
    saturating = 0
    for seed in range(N_NETWORKS):
        net = random_network(seed)
        names = [f"p{i}" for i in range(len(net.populations))]
        assert_same(emulate(net), baseline[seed], names)  # the dense matrices on this path
        got = emulate_listed(monkeypatch, net, seed)
        assert_same(got, baseline[seed], names)
        saturating += sum(got.saturated_slots.values()) > 0
    assert saturating >= 5


@pytest.mark.parametrize("seed", range(0, N_NETWORKS, 5))
def test_connection_lists_match_the_arm_reference(monkeypatch, lif_ref, seed) -> None:  # noqa: F811
    net = random_network(seed)
    ref = run_reference(lif_ref, net)
    got = emulate_listed(monkeypatch, net, seed)
    for i in range(len(net.populations)):
        name = f"p{i}"
        np.testing.assert_array_equal(got.spikes[name], ref["spikes"][name], err_msg=f"{name} spikes")
        np.testing.assert_array_equal(got.v[name], ref["v"][name], err_msg=f"{name} V")
        final = np.stack([getattr(got.final[name], f) for f in ("v", "refract_timer", "isyn_exc", "isyn_inh")], -1)
        np.testing.assert_array_equal(final, ref["final"][name], err_msg=f"{name} final state")


def conv_like_network(rng: np.random.Generator, model: str, batch: int):
    """Three populations in a chain fed by an input, each link an excitatory and an inhibitory connection list
    of 9 synapses per post neuron, the second link with delay 2 and a second projection into the same slots.
    Sample 0's input stops after tick 4, so later its rows of a slot get nothing while other samples' fill."""
    sizes = {"x": 48, "h1": 40, "h2": 24, "h3": 6}
    extra = {"tau_syn_E": 2.0, "tau_syn_I": 4.0} if model == "IF_curr_exp" else {}
    pops = [
        LifPopulation.from_pynn(n, model, sizes[n], shift_exc=8, shift_inh=8, v_thresh=-64.0, tau_refrac=1.0, **extra)
        for n in ("h1", "h2", "h3")
    ]
    projections = []
    for pre, post, delay in (("x", "h1", 1), ("h1", "h2", 2), ("h2", "h3", 1), ("x", "h2", 2)):
        n_post = sizes[post]
        post_index = np.repeat(np.arange(n_post), 9)
        pre_index = rng.integers(0, sizes[pre], len(post_index))
        words = rng.integers(0, 900, len(post_index))
        inh = rng.random(len(post_index)) < 0.3
        for receptor, sel in (("excitatory", ~inh), ("inhibitory", inh)):
            connections = (pre_index[sel], post_index[sel], words[sel])
            projections.append(Projection(pre, post, connections=connections, receptor=receptor, delay=delay))
    spikes = rng.random((batch, 30, sizes["x"])) < 0.3
    spikes[0, 5:] = False
    return pops, projections, {"x": spikes}


@pytest.mark.parametrize("model", ["IF_curr_delta", "IF_curr_exp"])
def test_every_delivery_path_gives_the_same_run(monkeypatch, model) -> None:
    """The paths also mixed in one slot: with the matrices limited to 500 entries, the 48 x 40 and 48 x 24
    lists are walked while the smaller ones are multiplied."""
    pops, projections, inputs = conv_like_network(np.random.default_rng(5), model, batch=5)
    results = {}
    for path in (*PATHS, "mixed"):
        with monkeypatch.context() as m:
            if path == "mixed":
                use_path(m, "matrix")
                m.setattr(emulator, "_MATRIX_ENTRIES", 500)
            else:
                use_path(m, path)
            results[path] = run(pops, projections, inputs, record_v=True)
    want = results["matrix"]
    for got in results.values():
        assert_same(got, want, ["h1", "h2", "h3"])
    assert all(want.counts[n].sum() > 0 for n in ("h1", "h2", "h3"))
    assert want.spikes["h1"][0, :8].any()
    assert not want.spikes["h1"][0, 15:].any()  # sample 0's slots get nothing from here on, other samples' do
    assert want.spikes["h1"][1:, 15:].any()


def test_synapses_of_one_pair_add_up_and_saturate_once() -> None:
    """Three synapses of one pair, words 0x6000 each: the slot receives 0x12000 > 0xFFFF and saturates to
    0xFFFF, counted once. With V = alpha = the input (delta_pop), V after the tick is 0xFFFF << 2. Two synapses of
    0x6000 give 0xC000 << 2, below saturation."""
    spikes = np.zeros((1, 3, 1), bool)
    spikes[0, 0, 0] = True
    for n, v, saturated in ((3, 0xFFFF << 2, 1), (2, 0xC000 << 2, 0)):
        prj = Projection("in", "b", connections=([0] * n, [0] * n, [0x6000] * n), delay=1)
        res = run([delta_pop(shift_exc=2)], [prj], {"in": spikes}, record_v=True)
        assert res.v["b"][0, :, 0].tolist() == [0, 0, v]
        assert res.saturated_slots == {"b": saturated}


def test_the_synapse_table_merges_pairs_and_drops_zero_words() -> None:
    prj = Projection("in", "b", connections=([2, 0, 2, 0, 1], [1, 3, 1, 0, 2], [5, 7, 9, 0, 4]))
    table = prj.synapses
    assert table.indptr.tolist() == [0, 1, 2, 3]  # pre 0: (0 -> 3); pre 1: (1 -> 2); pre 2: (2 -> 1) merged
    assert table.post.tolist() == [3, 2, 1]
    assert table.words.tolist() == [7, 4, 14]
    assert table.max_in == 14
    assert [a.tolist() for a in prj.connections] == [[2, 0, 2, 0, 1], [1, 3, 1, 0, 2], [5, 7, 9, 0, 4]]
    words = np.array([[0, 3, 0], [0, 0, 0], [1, 0, 2]])
    dense = SynapseTable.from_matrix(words)
    assert (dense.indptr.tolist(), dense.post.tolist(), dense.words.tolist()) == ([0, 1, 1, 3], [1, 0, 2], [3, 1, 2])
    assert dense.max_in == 3
    empty = Projection("in", "b", connections=([], [], [])).synapses
    assert (empty.indptr.tolist(), empty.post.size, empty.max_in) == ([0], 0, 0.0)


def test_a_projection_without_synapses_or_with_unused_neurons_runs() -> None:
    spikes = np.ones((2, 4, 3), bool)
    pops = [delta_pop(size=2)]
    nothing = Projection("in", "b", connections=(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)))
    zeros = Projection("in", "b", connections=([1], [1], [0]))
    first_only = Projection("in", "b", connections=([0], [1], [3]))  # pre neurons 1 and 2 have no synapses
    res = run(pops, [nothing, zeros, first_only], {"in": spikes}, record_v=True)
    assert res.v["b"][:, :, 1].tolist() == [[0, 0, 3, 3]] * 2  # V = the input of the tick before
    assert not res.v["b"][:, :, 0].any()


@pytest.mark.parametrize("model", ["IF_curr_delta", "IF_curr_exp"])
def test_an_offset_current_per_sample_is_each_sample_run_alone(model) -> None:
    """Per-sample offsets on the input layer (no synaptic input: the constant alpha) and on a layer that also
    receives spikes, with refractory periods."""
    rng = np.random.default_rng(11)
    pops, projections, inputs = conv_like_network(rng, model, batch=4)
    raw = {
        "h1": rng.integers(-ONE, 2 * ONE, (4, 40)),
        "h3": rng.integers(-ONE // 2, ONE, (4, 6)).astype(np.int32),
    }
    together = run(pops, projections, inputs, record_v=True, i_offset=raw)
    spiking = 0
    for b in range(4):
        alone_pops = [dataclasses.replace(p, i_offset=raw[p.name][b]) if p.name in raw else p for p in pops]
        alone = run(alone_pops, projections, {"x": inputs["x"][b : b + 1]}, record_v=True)
        for name in ("h1", "h2", "h3"):
            np.testing.assert_array_equal(together.v[name][b], alone.v[name][0], err_msg=f"sample {b} {name} V")
            np.testing.assert_array_equal(together.spikes[name][b], alone.spikes[name][0])
            np.testing.assert_array_equal(together.final[name].isyn_exc[b], alone.final[name].isyn_exc[0])
            spiking += int(alone.spikes[name].sum())
    assert spiking > 0
    # sample 0 has no input spikes: h1 is driven by its offset alone, and the offsets change what it does
    plain = run(pops, projections, inputs, record_v=True)
    assert not np.array_equal(plain.v["h1"], together.v["h1"])


def test_counts_and_checkpoints_are_sums_and_values_of_the_recording() -> None:
    pops, projections, inputs = conv_like_network(np.random.default_rng(2), "IF_curr_exp", batch=3)
    steps = 30
    ticks = (0, 1, 2, 17, steps)
    full = run(pops, projections, inputs, record_v=True)
    res = run(pops, projections, inputs, record_spikes=False, record_v=["h2"], count_ticks=ticks, v_ticks=ticks)
    assert res.spikes == {}
    assert set(res.v) == {"h2"}
    assert sorted(res.checkpoint_counts) == sorted(res.checkpoint_v) == list(ticks)
    for name in ("h1", "h2", "h3"):
        assert res.counts[name].dtype == np.int64
        np.testing.assert_array_equal(res.counts[name], full.spikes[name].sum(axis=1))
        for n in ticks:
            counted = res.checkpoint_counts[n][name]
            assert counted.dtype == np.int64
            np.testing.assert_array_equal(counted, full.spikes[name][:, :n].sum(axis=1), err_msg=f"{name} {n}")
    assert full.counts["h2"].sum() > 0
    for n in ticks:
        assert set(res.checkpoint_v[n]) == {"h2"}
        v = res.checkpoint_v[n]["h2"]
        assert v.dtype == np.int32
        # V after n ticks is V at the start of tick n, and the final V after the last tick
        want = full.final["h2"].v if n == steps else full.v["h2"][:, n]
        np.testing.assert_array_equal(v, want, err_msg=f"V after {n} ticks")
    np.testing.assert_array_equal(res.final["h2"].v, full.final["h2"].v)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Projection("in", "a", np.ones((6, 7), int), connections=([0], [0], [1])), ValueError, "not both"),
        (lambda: Projection("in", "a"), ValueError, "projection in->a: neither"),
        (lambda: Projection("in", "a", connections=([0, 1], [0], [1, 1])), ValueError, "in->a.*differ in length"),
        (lambda: Projection("in", "a", connections=([0], [0], [1 << 16])), ValueError, r"in->a.*\[0, 0xFFFF\]"),
        (lambda: Projection("in", "a", connections=([0], [0], [-1])), ValueError, r"in->a.*\[0, 0xFFFF\]"),
        (lambda: Projection("in", "a", connections=([-1], [0], [1])), ValueError, "in->a.*pre_index must be >= 0"),
        (lambda: Projection("in", "a", connections=([0], [2**31], [1])), ValueError, "post_index.*below 2\\*\\*31"),
        (lambda: Projection("in", "a", connections=([0.0], [0], [1])), TypeError, "in->a.*pre_index.*integer"),
        (lambda: Projection("in", "a", connections=([0], [[0]], [1])), TypeError, "in->a.*post_index.*1-D"),
        (lambda: Projection("in", "a", connections=([0], [0], [True])), TypeError, "in->a.*words.*integer"),
        (lambda: Projection("in", "a", connections=([0], [0])), TypeError, "in->a.*three"),
        (lambda: Projection("in", "a", connections=5), TypeError, "in->a.*three"),
        (lambda: Projection("in", "a", np.ones((2, 2)), "excitatory"), TypeError, "in->a.*words"),
    ],
)
def test_bad_projections_are_refused(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def test_bad_run_arguments_are_refused_with_the_name_of_what_is_wrong() -> None:
    pops = [delta_pop("a", size=7)]
    inputs = {"in": np.zeros((3, 5, 6), bool)}
    beyond = "projection in->a: a connection index is beyond the populations: "
    for connections, where in (
        (([6], [0], [1]), r"pre_index\[0\] = 6, 'in' has 6 neurons"),
        (([0, 5], [0, 7], [1, 1]), r"post_index\[1\] = 7, 'a' has 7 neurons"),
    ):
        with pytest.raises(ValueError, match=beyond + where):
            run(pops, [Projection("in", "a", connections=connections)], inputs)
    with pytest.raises(ValueError, match=r"projection in->a: words have shape \(6, 6\), expected \(6, 7\)"):
        run(pops, [Projection("in", "a", np.ones((6, 6), int))], inputs)
    with pytest.raises(ValueError, match=r"i_offset\['a'\]: expected integer raw bits of shape \(3, 7\)"):
        run(pops, [], inputs, i_offset={"a": np.zeros((2, 7), np.int64)})
    with pytest.raises(ValueError, match=r"i_offset\['a'\]: expected integer raw bits of shape \(3, 7\)"):
        run(pops, [], inputs, i_offset={"a": np.zeros(7, np.int64)})
    with pytest.raises(TypeError, match=r"i_offset\['a'\]: expected integer raw bits"):
        run(pops, [], inputs, i_offset={"a": np.zeros((3, 7))})
    with pytest.raises(TypeError, match=r"i_offset\['a'\]: expected integer raw bits"):
        run(pops, [], inputs, i_offset={"a": np.zeros((3, 7), bool)})
    with pytest.raises(ValueError, match=r"i_offset\['a'\]: raw bits outside int32"):
        run(pops, [], inputs, i_offset={"a": np.full((3, 7), s1615.INT32_MIN - 1)})
    with pytest.raises(ValueError, match="i_offset: no population 'c'"):
        run(pops, [], inputs, i_offset={"c": np.zeros((3, 7), np.int64)})
    with pytest.raises(ValueError, match=r"count_ticks: tick count 6 is outside 0\.\.5"):
        run(pops, [], inputs, count_ticks=(0, 6))
    with pytest.raises(ValueError, match=r"v_ticks: tick count -1 is outside 0\.\.5"):
        run(pops, [], inputs, record_v=True, v_ticks=(-1,))
    with pytest.raises(TypeError, match="count_ticks: tick counts must be integers"):
        run(pops, [], inputs, count_ticks=(2.5,))
    with pytest.raises(ValueError, match="v_ticks: V is kept for the populations in record_v"):
        run(pops, [], inputs, v_ticks=(1,))
