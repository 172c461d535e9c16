"""The BrainScaleS-2 model's torch engine (:mod:`neurodeploy_pynn.brainscales2_torch`) against the numpy engine,
every field of the result equal value for value (float64 op for op): seeded random networks with both receptors,
recurrent and readout populations, refractory holds, fixed-pattern mismatch and trial-to-trial noise, traced at
every integration step; and a compiled network through the backend (``emulate_artifact(..., engine="torch")``).
On CUDA when one is present. Without torch the module skips, unless NEURODEPLOY_REQUIRE_TORCH=1 demands it."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_brainscales2_backend import compiled  # noqa: F401 (the compiled MLP fixture)

if os.environ.get("NEURODEPLOY_REQUIRE_TORCH") == "1":
    import torch  # must be installed here: fail, not skip
else:
    torch = pytest.importorskip(
        "torch", reason="torch is not installed (set NEURODEPLOY_REQUIRE_TORCH=1 to fail instead)"
    )

from neurodeploy_pynn import brainscales2_torch
from neurodeploy_pynn.brainscales2_emulator import Neurons, Noise, Synapses, run, with_mismatch

from neurodeploy import emulate_artifact

pytestmark = pytest.mark.torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def random_network(seed: int) -> tuple[list[Neurons], list[Synapses], dict[str, np.ndarray], dict[str, int]]:
    """A source of 12, a hidden population of 9 (per-neuron parameters, one with tau_syn = tau_m) with a recurrent
    inhibitory projection, a second hidden one of 7, and a readout of 4 (no threshold)."""
    rng = np.random.default_rng(seed)

    def neurons(name: str, size: int, spiking: bool = True) -> Neurons:
        tau_m = rng.uniform(5.0, 20.0, size)
        tau_e = rng.uniform(2.0, 10.0, size)
        tau_e[0] = tau_m[0]  # the limit case of the membrane kernel
        return Neurons(
            name,
            size,
            tau_m=tau_m,
            tau_syn_exc=tau_e,
            tau_syn_inh=rng.uniform(2.0, 10.0, size),
            tau_refrac=rng.choice([0.0, 0.05, 0.3, 1.0], size),
            v_rest=rng.uniform(60.0, 80.0, size),
            v_reset=rng.uniform(55.0, 70.0, size),
            v_thresh=rng.uniform(90.0, 110.0, size),
            gain_exc=rng.uniform(0.5, 3.0, size),
            gain_inh=rng.uniform(0.5, 3.0, size),
            spiking=spiking,
        )

    def project(pre: str, post: str, receptor: str, n_pre: int, n_post: int, density: float) -> Synapses:
        pre_index, post_index = np.nonzero(rng.random((n_pre, n_post)) < density)
        weight = rng.integers(0, 64, len(pre_index))
        return Synapses(pre, post, receptor, pre_index, post_index, weight)

    populations = [neurons("h1", 9), neurons("h2", 7), neurons("out", 4, spiking=False)]
    synapses = [
        project("s", "h1", "excitatory", 12, 9, 0.6),
        project("s", "h1", "inhibitory", 12, 9, 0.2),
        project("h1", "h1", "inhibitory", 9, 9, 0.3),
        project("h1", "h2", "excitatory", 9, 7, 0.7),
        project("h2", "out", "excitatory", 7, 4, 0.8),
        project("h1", "out", "inhibitory", 9, 4, 0.4),
    ]
    spikes = rng.random((3, 30, 12)) < 0.4
    return populations, synapses, {"s": spikes}, {"s": 12}


def assert_equal(got, want) -> None:
    for kept in ("counts", "v"):
        g, w = getattr(got, kept), getattr(want, kept)
        assert set(g) == set(w), kept
        for mark in w:
            assert set(g[mark]) == set(w[mark])
            for name in w[mark]:
                assert g[mark][name].dtype == w[mark][name].dtype, f"{kept}[{mark}][{name}]"
                np.testing.assert_array_equal(g[mark][name], w[mark][name], err_msg=f"{kept}[{mark}][{name}]")
    for kept in ("trace_v", "trace_spikes"):
        g, w = getattr(got, kept), getattr(want, kept)
        assert set(g) == set(w), kept
        for name in w:
            assert g[name].dtype == w[name].dtype, f"{kept}[{name}]"
            assert g[name].shape == w[name].shape, f"{kept}[{name}]"
            np.testing.assert_array_equal(g[name], w[name], err_msg=f"{kept}[{name}]")


def both(seed: int, noise: Noise | None, device: str = "cpu", mismatch: float = 0.0):
    populations, synapses, sources, sizes = random_network(seed)
    populations = with_mismatch(populations, mismatch, seed)
    options = dict(
        integration_steps=30 * 4 + 2,
        substeps=4,
        marks=(0, 7, 60, 122),
        record_v=("out", "h1"),
        noise=noise,
        offset=5,
        trace=True,
    )
    want = run(populations, synapses, sources, sizes, **options)
    got = brainscales2_torch.run(populations, synapses, sources, sizes, device=device, **options)
    return got, want


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("noise", "mismatch"), [(None, 0.0), (Noise(membrane=1.5, seed=3), 0.0), (Noise(membrane=0.7, seed=9), 0.1)]
)
def test_random_networks_equal_the_numpy_engine(seed: int, noise: Noise | None, mismatch: float) -> None:
    got, want = both(seed, noise, mismatch=mismatch)
    assert_equal(got, want)
    assert want.counts[122]["h1"].sum() > 0  # the network is not silent
    assert want.counts[122]["h2"].sum() > 0
    assert not want.trace_spikes["out"].any()  # the readout has no threshold


def test_no_integration_steps_and_a_bad_projection() -> None:
    populations, synapses, sources, sizes = random_network(0)
    options = dict(integration_steps=0, substeps=2, marks=(0,), trace=True)
    assert_equal(
        brainscales2_torch.run(populations, synapses, sources, sizes, **options),
        run(populations, synapses, sources, sizes, **options),
    )
    stray = Synapses("nowhere", "h1", "excitatory", np.array([0]), np.array([0]), np.array([1]))
    for engine in (run, brainscales2_torch.run):
        with pytest.raises(ValueError, match="no population or source 'nowhere'"):
            engine(populations, [*synapses, stray], sources, sizes, integration_steps=2, substeps=1)


def test_the_backend_runs_the_torch_engine(compiled) -> None:  # noqa: F811
    _, _, x, chip, _ = compiled
    want = emulate_artifact(chip, x[:40], steps=24, checkpoints=(8,), neuron_counts=True)
    got = emulate_artifact(chip, x[:40], steps=24, checkpoints=(8,), neuron_counts=True, engine="torch", device="cpu")
    np.testing.assert_array_equal(got.outputs, want.outputs)
    for name, spikes in want.spikes.items():
        np.testing.assert_array_equal(got.spikes[name], spikes, err_msg=name)
    assert sum(int(s.sum()) for s in want.spikes.values()) > 0


@CUDA
def test_the_torch_engine_runs_on_cuda_and_equals_numpy() -> None:
    got, want = both(1, Noise(membrane=1.0, seed=2), device="cuda", mismatch=0.05)
    assert_equal(got, want)
