"""NIR files written by snnTorch (`snntorch.export_nir.export_to_nir`) against snnTorch's own time-stepped run,
and files neurodeploy writes against snnTorch's reader (`snntorch.import_nir.import_from_nir`). Exact, step by
step: both sides sum the same float32 terms in the same order (one Linear, then the neuron update).

snnTorch 0.9.4 is the version that writes files nir 1.0.4 (the one sinabs 3.1.3 allows) can hold; 1.0.0 writes
a ``v_reset`` field that needs nir >= 1.0.7. Without snnTorch these tests skip, unless
NEURODEPLOY_REQUIRE_SNNTORCH=1 (`make test-main`, so CI) says they must run."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest


def _require(module: str):
    if os.environ.get("NEURODEPLOY_REQUIRE_SNNTORCH") != "1":
        return pytest.importorskip(module, reason=f"{module} is not installed (NEURODEPLOY_REQUIRE_SNNTORCH=1 fails)")
    return importlib.import_module(module)


snn = _require("snntorch")
torch = _require("torch")
nir = _require("nir")

from snntorch import utils  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402

from neurodeploy.compiler import compile_model  # noqa: E402
from neurodeploy.export import export_nir  # noqa: E402
from neurodeploy.frontend import load_model  # noqa: E402
from neurodeploy.simulate import output_trace  # noqa: E402

B, T = 4, 30


def network():
    """Leaky, Synaptic and Leaky layers with snnTorch's defaults (reset by subtraction, one step late; v > θ)."""
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 16),
        snn.Leaky(beta=0.9, init_hidden=True),
        torch.nn.Linear(16, 8),
        snn.Synaptic(alpha=0.7, beta=0.85, init_hidden=True),
        torch.nn.Linear(8, 4),
        snn.Leaky(beta=0.8, init_hidden=True, output=True),
    )
    net[0].weight.data = torch.rand(16, 6, generator=gen) * 0.5
    net[2].weight.data = torch.rand(8, 16, generator=gen) * 0.25
    net[4].weight.data = torch.rand(4, 8, generator=gen) * 0.45 - 0.1
    return net


def snntorch_run(net, x: np.ndarray) -> np.ndarray:
    """The output spikes at every step, (T, B, 4), from rest."""
    utils.reset(net)
    out = []
    with torch.no_grad():
        for _ in range(T):
            spikes, _ = net(torch.from_numpy(x))
            out.append(spikes.numpy().copy())
    return np.stack(out)


def ours(path, x: np.ndarray, **options) -> np.ndarray:
    """The reference target's output at every step, (T, B, ...)."""
    return output_trace(load_model(path, options=options), x, T)


@pytest.fixture
def written(tmp_path):
    x = np.random.default_rng(1).random((B, 6)).astype(np.float32)
    net = network()
    nir.write(str(tmp_path / "net.nir"), export_to_nir(net, torch.from_numpy(x)))
    return net, x, tmp_path / "net.nir"


def test_a_snntorch_network_runs_as_snntorch_runs_it(written) -> None:
    net, x, path = written
    expected = snntorch_run(net, x)
    assert 0.2 < expected.mean() < 0.8
    np.testing.assert_array_equal(ours(path, x, writer="snntorch"), expected)
    # read as snnTorch's own importer reads it (reset to zero), the network is another one
    assert not np.array_equal(ours(path, x, writer="snntorch", reset="zero"), expected)


def test_an_exported_network_runs_in_snntorch_as_in_the_emulator(written, tmp_path) -> None:
    """snnTorch's import_from_nir builds Leaky and Synaptic with reset to zero, at dt = 1e-4: a network read that
    way, exported with --dt 1e-4, is the same network in snnTorch."""
    _, x, path = written
    options = {"writer": "snntorch", "reset": "zero"}
    artifact = compile_model(path, "reference", tmp_path / "art", import_options=options)
    back = export_nir(artifact, tmp_path / "back.nir", dt=1e-4)
    assert back == {"discretization": "euler", "dt": "0.0001", "reset": "zero", "compare": "gt", "spikes": "single"}
    emulated = ours(tmp_path / "back.nir", x, **back)
    np.testing.assert_array_equal(emulated, ours(path, x, **options))
    loaded = import_from_nir(nir.read(str(tmp_path / "back.nir")))
    state, steps = None, []
    with torch.no_grad():
        for _ in range(T):
            out, state = loaded(torch.from_numpy(x), state) if state is not None else loaded(torch.from_numpy(x))
            steps.append((out[0] if isinstance(out, tuple) else out).numpy().copy())
    np.testing.assert_array_equal(np.stack(steps), emulated)
    assert emulated.mean() > 0.2
