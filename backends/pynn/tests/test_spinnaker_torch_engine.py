"""The SpiNNaker emulator's torch engine (:mod:`neurodeploy_pynn.spinnaker_torch`) against the numpy engine, every
field of the result equal value for value: on the seeded random networks of ``test_spinnaker_arm.py`` (both models
and receptors, delays up to 40 ticks, refractory periods, recurrent projections, saturating slots and wrapped
inputs) as matrices and as shuffled connection lists on every delivery path (dense product, sparse product,
synapse by synapse), with per-sample offsets, counts and V at chosen ticks; on the hand-made networks of
``test_spinnaker_traces.py``; and on the bundled MNIST CNN compiled for ``spinnaker`` through the backend. On CUDA
when one is present. Without torch the module skips, unless NEURODEPLOY_REQUIRE_TORCH=1 demands it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import test_spinnaker_arm
from test_spinnaker_arm import N_NETWORKS, emulate, random_network
from test_spinnaker_lists import as_list, assert_same
from test_spinnaker_traces import ONE, delta_pop, driven_exp_pop

if os.environ.get("NEURODEPLOY_REQUIRE_TORCH") == "1":
    import torch  # must be installed here: fail, not skip
else:
    torch = pytest.importorskip(
        "torch", reason="torch is not installed (set NEURODEPLOY_REQUIRE_TORCH=1 to fail instead)"
    )

from neurodeploy_pynn import spinnaker_torch
from neurodeploy_pynn.spinnaker_emulator import Projection, run

pytestmark = pytest.mark.torch

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mnist"
PATHS = ("dense", "sparse", "events")


def use_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Make every connection list take ``path``: a dense matrix, a sparse one, or synapse by synapse."""
    monkeypatch.setattr(spinnaker_torch, "MATRIX_ENTRIES", 1 << 22 if path == "dense" else 0)
    monkeypatch.setattr(spinnaker_torch, "EVENT_COST", float("inf") if path == "sparse" else 0.0)


def assert_equal(got, want) -> None:
    """Every field equal value for value, with the same dtypes."""
    assert_same(got, want, [])  # the saturated slots
    for kept in ("spikes", "v", "counts"):
        g, w = getattr(got, kept), getattr(want, kept)
        assert set(g) == set(w)
        for name in w:
            np.testing.assert_array_equal(g[name], w[name], err_msg=f"{kept}[{name}]")
    for name in want.final:
        for field in ("v", "refract_timer", "isyn_exc", "isyn_inh"):
            g_state, w_state = getattr(got.final[name], field), getattr(want.final[name], field)
            np.testing.assert_array_equal(g_state, w_state, err_msg=f"final[{name}].{field}")
    for name in want.counts:
        assert got.counts[name].dtype == want.counts[name].dtype
        for field in ("v", "refract_timer", "isyn_exc", "isyn_inh"):
            assert getattr(got.final[name], field).dtype == getattr(want.final[name], field).dtype
    for name in want.v:
        assert got.v[name].dtype == want.v[name].dtype
    for kept in ("checkpoint_counts", "checkpoint_v"):
        g, w = getattr(got, kept), getattr(want, kept)
        assert set(g) == set(w)
        for n in w:
            assert set(g[n]) == set(w[n])
            for name in w[n]:
                assert g[n][name].dtype == w[n][name].dtype
                np.testing.assert_array_equal(g[n][name], w[n][name], err_msg=f"{kept}[{n}][{name}]")


def emulate_torch(monkeypatch: pytest.MonkeyPatch, net, device: str = "cpu", listed: int | None = None):
    """``test_spinnaker_arm.emulate`` on the torch engine, the matrices given as connection lists when ``listed``
    (the seed of :func:`as_list`)."""
    rng = np.random.default_rng(listed)

    def project(pre, post, words, receptor, delay):
        if listed is None:
            return Projection(pre, post, words, receptor, delay)
        return Projection(pre, post, receptor=receptor, delay=delay, connections=as_list(words, rng))

    with monkeypatch.context() as m:
        m.setattr(test_spinnaker_arm, "run", lambda *a, **k: spinnaker_torch.run(*a, device=device, **k))
        m.setattr(test_spinnaker_arm, "Projection", project)
        return emulate(net)


def test_the_random_networks_give_the_same_result_as_matrices(monkeypatch) -> None:
    for seed in range(N_NETWORKS):
        net = random_network(seed)
        assert_equal(emulate_torch(monkeypatch, net), emulate(net))


@pytest.mark.parametrize("path", PATHS)
def test_the_random_networks_give_the_same_result_as_lists_on_every_path(monkeypatch, path) -> None:
    for seed in range(0, N_NETWORKS, 3):
        net = random_network(seed)
        want = emulate(net)
        with monkeypatch.context() as m:
            use_path(m, path)
            got = emulate_torch(m, net, listed=1000 + seed)
        assert_equal(got, want)


def test_offsets_counts_checkpoints_and_selections(monkeypatch) -> None:
    net = random_network(7)
    names = [f"p{i}" for i in range(len(net.populations))]
    with monkeypatch.context() as m:
        captured = {}
        m.setattr(test_spinnaker_arm, "run", lambda *a, **k: captured.setdefault("args", (a, k)))
        emulate(net)
    args, kwargs = captured["args"]
    rng = np.random.default_rng(3)
    kwargs.update(
        record_spikes=names[:1],
        record_v=names[-1:],
        i_offset={names[0]: rng.integers(-2 * ONE, 3 * ONE, (net.batch, net.populations[0].size))},
        count_ticks=(0, 1, net.steps // 2, net.steps),
        v_ticks=(0, 5, net.steps),
    )
    for path in PATHS:
        with monkeypatch.context() as m:
            use_path(m, path)
            assert_equal(spinnaker_torch.run(*args, device="cpu", **kwargs), run(*args, **kwargs))


def test_the_hand_made_networks() -> None:
    """Exponential and delta neurons driven by inputs with delays, an inhibitory list projection, a refractory
    period and saturating slots (the traces tests' populations)."""
    inputs = {"x": np.zeros((2, 40, 2), np.uint8)}
    inputs["x"][0, ::3, 0] = 1
    inputs["x"][1, ::2] = 1
    populations = [driven_exp_pop("a"), delta_pop("b", size=3, v_thresh=ONE, t_refract=2)]
    projections = [
        Projection("x", "a", np.array([[40000], [30000]]), "excitatory", 2),
        Projection("x", "b", np.array([[65535, 0, 7], [65535, 900, 0]]), "excitatory", 1),
        Projection("a", "b", receptor="inhibitory", delay=4, connections=([0, 0, 0], [0, 2, 2], [500, 20, 30])),
        Projection("b", "b", np.full((3, 3), 1000), "inhibitory", 3),
    ]
    options = dict(record_v=True, count_ticks=(0, 10, 40), v_ticks=(1, 39))
    want = run(populations, projections, inputs, **options)
    assert sum(int(c.sum()) for c in want.counts.values()) > 0
    assert_equal(spinnaker_torch.run(populations, projections, inputs, device="cpu", **options), want)


def test_the_backend_runs_the_bundled_mnist_model_on_torch(mnist_spinnaker) -> None:
    from neurodeploy.backends.registry import get_backend

    backend = get_backend("spinnaker")
    assert backend.engines == ("numpy", "torch")
    assert get_backend("brainscales2").engines == ("numpy", "torch")
    x = np.load(EXAMPLE / "test_images.npz")["x"][:16].astype(np.float32)
    options = dict(steps=24, checkpoints=(6, 12), neuron_counts=True)
    want = backend.emulate(mnist_spinnaker, x, **options)
    got = backend.emulate(mnist_spinnaker, x, engine="torch", device="cpu", **options)
    np.testing.assert_array_equal(got.outputs, want.outputs)
    for kept in ("spikes", "synops", "counts"):
        g, w = getattr(got, kept), getattr(want, kept)
        assert set(g) == set(w)
        assert w
        for name in w:
            np.testing.assert_array_equal(g[name], w[name], err_msg=f"{kept}[{name}]")
    for kept in ("checkpoints",):
        g, w = getattr(got, kept), getattr(want, kept)
        assert set(g) == set(w) == {6, 12}
        for c in w:
            np.testing.assert_array_equal(g[c], w[c])
    for kept in ("checkpoint_spikes", "checkpoint_synops"):
        g, w = getattr(got, kept), getattr(want, kept)
        for c in w:
            for name in w[c]:
                np.testing.assert_array_equal(g[c][name], w[c][name])
    assert sum(int(s.sum()) for s in want.spikes.values()) > 0


def test_a_numpy_run_refuses_a_device(mnist_spinnaker) -> None:
    from neurodeploy_pynn import spinnaker

    with pytest.raises(ValueError, match="torch engine"):
        spinnaker.run(spinnaker.load(mnist_spinnaker), np.zeros((1, 1, 28, 28), np.float32), 2, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
def test_cuda_gives_the_same_result(monkeypatch, mnist_spinnaker) -> None:
    for seed in range(0, N_NETWORKS, 5):
        net = random_network(seed)
        want = emulate(net)
        for path in PATHS:
            with monkeypatch.context() as m:
                use_path(m, path)
                assert_equal(emulate_torch(m, net, device="cuda", listed=seed), want)
    from neurodeploy.backends.registry import get_backend

    backend = get_backend("spinnaker")
    x = np.load(EXAMPLE / "test_images.npz")["x"][:16].astype(np.float32)
    want_run = backend.emulate(mnist_spinnaker, x, steps=16, checkpoints=(8,), neuron_counts=True)
    got_run = backend.emulate(
        mnist_spinnaker, x, steps=16, checkpoints=(8,), neuron_counts=True, engine="torch", device="cuda"
    )
    np.testing.assert_array_equal(got_run.outputs, want_run.outputs)
    for name in want_run.counts:
        np.testing.assert_array_equal(got_run.counts[name], want_run.counts[name])
