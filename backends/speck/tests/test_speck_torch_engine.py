"""The torch engine (:mod:`neurodeploy_speck.torch_engine`) against ``Network.run_binned`` (the compiled loop where
numba is installed, and the numpy path), every field of the run equal value for value: on the random chains of
the event-mode reference tests (sum pooling, the DVS layer's pooling, strides, padding, biases, initial values,
threshold_low, return to zero), on the residual, concatenation and merge networks (several sources, feature
shifts), on hand-made one-neuron traces (leak, clip, overflow of the 16-bit state), with the float64 and integer
convolutions forced, split into passes or not, on the bundled MNIST CNN compiled for speck, through the backend,
and on CUDA when one is present. Without torch the module skips, unless NEURODEPLOY_REQUIRE_TORCH=1 demands it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from neurodeploy_speck.backend import direct_events
from neurodeploy_speck.emulator import Network, Run
from speck_graphs import integer_document
from test_speck_event_mode_reference import NETWORKS, case
from test_speck_residual import concat_graph, document_of, merge_graph, residual_graph

from neurodeploy.errors import DataError

if os.environ.get("NEURODEPLOY_REQUIRE_TORCH") == "1":
    import torch  # must be installed here: fail, not skip
else:
    torch = pytest.importorskip(
        "torch", reason="torch is not installed (set NEURODEPLOY_REQUIRE_TORCH=1 to fail instead)"
    )

from neurodeploy_speck import torch_engine

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[3]
MNIST = ROOT / "examples" / "mnist"
FIELDS = ("counts", "neuron_totals", "per_step_totals", "synops")


def assert_same_run(got: Run, want: Run, where: str = "") -> None:
    for name in FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.keys() == b.keys(), f"{where} {name}"
        for key in b:
            assert a[key].dtype == b[key].dtype, f"{where} {name}[{key}]"
            assert np.array_equal(a[key], b[key]), f"{where} {name}[{key}]"
    assert got.overflow == want.overflow, where


def _compare(network: Network, frames: np.ndarray, device: str = "cpu", **options) -> Run:
    record = options.get("record")
    for engine in ("auto", "numpy"):
        network.engine = engine
        want = network.run_binned(frames, record=record)
        assert_same_run(torch_engine.run_binned(network, frames, device=device, **options), want, engine)
    return want


@pytest.mark.parametrize("seed", range(NETWORKS))
def test_random_chains_give_the_same_run(seed: int) -> None:
    document, frames = case(seed)
    network = Network.from_config(document)
    record = tuple(c.index for c in network.cores)
    _compare(network, frames, record=record)
    _compare(network, frames, record=record[:1], batch_size=1)  # one sample per pass


@pytest.mark.parametrize("build", [residual_graph, concat_graph, merge_graph])
def test_several_sources_give_the_same_run(build) -> None:
    network = Network.from_config(document_of(build(1)))
    frames = direct_events(np.random.default_rng(1).random((3, 2, 8, 8)), 12)
    record = tuple(c.index for c in network.cores)
    want = _compare(network, frames, record=record)
    assert all(int(want.counts[c].sum()) > 0 for c in record)


@pytest.mark.parametrize("limit", ["FLOAT32_EXACT", "FLOAT64_EXACT"])
def test_the_wider_convolutions_give_the_same_run(limit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """float64 (every bound past float32's) and the integer convolution (every bound past float64's)."""
    monkeypatch.setattr(torch_engine, limit, 0)
    if limit == "FLOAT64_EXACT":
        monkeypatch.setattr(torch_engine, "FLOAT32_EXACT", 0)
    for seed in range(4):
        document, frames = case(seed)
        network = Network.from_config(document)
        _compare(network, frames, record=tuple(c.index for c in network.cores))
    network = Network.from_config(document_of(residual_graph(2)))
    _compare(network, direct_events(np.random.default_rng(2).random((2, 2, 8, 8)), 6))


def _one_neuron(weight, threshold, *, bias=0, low=-(2**15), initial=0, reset="subtract") -> Network:
    spec = {
        "weight": np.asarray(weight).reshape(1, -1, 1, 1),
        "bias": [bias],
        "threshold": threshold,
        "low": low,
        "initial": initial,
        "reset": reset,
    }
    return Network.from_config(integer_document([spec], (np.size(weight), 1, 1)))


def test_hand_made_traces_give_the_same_run() -> None:
    counts = np.array([[3, 0, 1, 7, 0, 2]]).reshape(1, -1, 1, 1, 1)
    leaky = _one_neuron([5], 4, bias=3, initial=2)
    clipped = _one_neuron([-9], 10, low=-20, bias=4)
    zero = _one_neuron([6], 5, reset="zero", initial=4)
    for network in (leaky, clipped, zero):
        _compare(network, counts)
    assert int(_compare(leaky, counts).counts[leaky.output_core].sum()) > 0


def test_the_overflow_count_is_the_same() -> None:
    network = _one_neuron([30000], 2**15 - 1, initial=2000)
    counts = np.array([[1, 2, 3, 0, 5]]).reshape(1, -1, 1, 1, 1)
    want = _compare(network, counts)
    assert want.overflow[network.output_core] > 0


@pytest.fixture(scope="module")
def mnist_speck(tmp_path_factory):
    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    out = tmp_path_factory.mktemp("speck") / "mnist"
    calibration = load_calibration(str(MNIST / "calibration.npz"))
    return compile_model(MNIST / "mnist_cnn.onnx", "speck", out, calibration=calibration)


@pytest.fixture(scope="module")
def mnist_images() -> np.ndarray:
    return np.load(MNIST / "test_images.npz")["x"][:32]


def test_the_mnist_network_gives_the_same_run(mnist_speck, mnist_images) -> None:
    from neurodeploy.backends.registry import get_backend

    backend = get_backend("speck")
    network = backend.network(mnist_speck, backend.load_config(mnist_speck))
    frames = direct_events(mnist_images, 16)
    record = tuple(c.index for c in network.cores)
    want = _compare(network, frames, record=record, batch_size=12)
    assert all(int(want.per_step_totals[c].sum()) > 0 for c in record)


def test_the_backend_runs_the_torch_engine_and_refuses_it_in_event_mode(mnist_speck, mnist_images) -> None:
    from neurodeploy.backends.registry import get_backend

    speck = get_backend("speck")
    assert speck.engines == ("numpy", "torch")
    options = {"steps": 10, "mode": "binned", "checkpoints": (3, 10), "neuron_counts": True}
    numpy_run = speck.emulate(mnist_speck, mnist_images, **options)
    torch_run = speck.emulate(mnist_speck, mnist_images, **options, engine="torch", device="cpu")
    for name in (
        "outputs",
        "checkpoints",
        "spikes",
        "synops",
        "checkpoint_spikes",
        "checkpoint_synops",
        "counts",
        "diagnostics",
    ):
        a, b = getattr(torch_run, name), getattr(numpy_run, name)
        if isinstance(b, dict):
            assert a.keys() == b.keys(), name
            for key in b:
                inner_a, inner_b = (a[key], b[key]) if isinstance(b[key], dict) else ({0: a[key]}, {0: b[key]})
                assert inner_a.keys() == inner_b.keys(), name
                for k in inner_b:
                    assert np.array_equal(inner_a[k], inner_b[k]), f"{name}[{key}][{k}]"
        else:
            assert np.array_equal(a, b), name
    with pytest.raises(DataError, match=r"one event at a time.*--emulator numpy.*--mode binned"):
        speck.emulate(mnist_speck, mnist_images[:2], steps=4, mode="event", engine="torch", device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_same_run(mnist_speck, mnist_images) -> None:
    from neurodeploy.backends.registry import get_backend

    for seed in range(6):
        document, frames = case(seed)
        network = Network.from_config(document)
        _compare(network, frames, device="cuda", record=tuple(c.index for c in network.cores))
    network = Network.from_config(document_of(residual_graph(2)))
    _compare(network, direct_events(np.random.default_rng(2).random((3, 2, 8, 8)), 10), device="cuda")
    backend = get_backend("speck")
    network = backend.network(mnist_speck, backend.load_config(mnist_speck))
    _compare(network, direct_events(mnist_images, 16), device="cuda", record=tuple(c.index for c in network.cores))
