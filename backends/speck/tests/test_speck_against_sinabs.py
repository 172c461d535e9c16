"""Time-binned mode against sinabs' own layers, spike for spike (sinabs 3.1.3, samna-free parts only).

Each random network is a chain of integer convolutions (the last one a "linear" layer: its kernel covers the
whole map, as sinabs' convert_linear_to_conv builds it), each followed by ``sinabs.layers.IAFSqueeze`` with
``MultiSpike``, ``MembraneSubtract`` or ``MembraneReset``, ``min_v_mem`` = threshold_low, the same threshold and
initial state, and ``sinabs.layers.SumPool2d``. The emulator runs the speck.json document built from the same
integers (weights through samna's [f][c][x][y] order and back). sinabs.backend.dynapcnn needs samna and is
never imported.
"""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy_speck.emulator import Network
from speck_deps import require
from speck_graphs import integer_document, random_network

torch = require("torch", "sinabs")  # sinabs runs on torch
sinabs = require("sinabs", "sinabs")
sl = require("sinabs.layers", "sinabs")
from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike  # noqa: E402

SINABS_VERSION = "3.1.3"
NETWORKS = 60


def sinabs_model(specs, batch: int):
    layers = []
    for s in specs:
        weight = torch.tensor(np.asarray(s["weight"]), dtype=torch.float64)
        f, c, k, _ = weight.shape
        conv = torch.nn.Conv2d(c, f, k, stride=s["stride"], padding=s["padding"], bias=True).double()
        conv.weight.data = weight
        conv.bias.data = torch.tensor(np.asarray(s["bias"]), dtype=torch.float64)
        reset = MembraneReset() if s["reset"] == "zero" else MembraneSubtract()
        iaf = sl.IAFSqueeze(
            batch_size=batch,
            spike_threshold=float(s["threshold"]),
            min_v_mem=float(s["low"]),
            spike_fn=MultiSpike,
            reset_fn=reset,
        )
        layers += [conv, iaf]
        if s["pool"] > 1:
            layers.append(sl.SumPool2d(kernel_size=s["pool"]))
    return torch.nn.Sequential(*layers)


def run_sinabs(specs, frames: np.ndarray) -> list[np.ndarray]:
    """Spike counts (batch, T, F, H, W) of every IAF layer."""
    batch, steps = frames.shape[:2]
    model = sinabs_model(specs, batch)
    x = torch.tensor(frames.reshape(batch * steps, *frames.shape[2:]), dtype=torch.float64)
    outputs = []
    with torch.no_grad():
        for module in model:
            if isinstance(module, sl.IAFSqueeze):
                shape = (batch, *x.shape[1:])
                module.init_state_with_shape(shape)
                module.v_mem.data = torch.full(shape, float(specs[len(outputs)]["initial"]), dtype=torch.float64)
            x = module(x)
            if isinstance(module, sl.IAFSqueeze):
                x = x.double()  # MultiSpike returns float32 counts (exact); the next conv is float64
                outputs.append(x.numpy().reshape(batch, steps, *x.shape[1:]).astype(np.int64))
    return outputs


def test_sinabs_version_is_the_one_named():
    assert sinabs.__version__ == SINABS_VERSION


def case(seed: int):
    """(layer specs, input shape, input event counts) of random network ``seed``."""
    rng = np.random.default_rng(1000 + seed)
    c, h = int(rng.integers(1, 4)), int(rng.integers(6, 17))
    in_shape = (c, h, h)
    specs = random_network(rng, in_shape)
    batch, steps = 3, int(rng.integers(4, 12))
    frames = rng.poisson(rng.uniform(0.1, 1.5), size=(batch, steps, *in_shape))
    return specs, in_shape, frames


def test_random_networks_cover_the_features():
    """The random networks exercise several spikes per step, both resets, biases, pooling and the readout."""
    multi = readouts = zero_resets = leaks = pools = 0
    for seed in range(NETWORKS):
        specs, in_shape, frames = case(seed)
        run = Network.from_config(integer_document(specs, in_shape)).run_binned(frames, record=tuple(range(len(specs))))
        multi += any(int(c.max()) > 1 for c in run.counts.values())
        readouts += int(run.counts[len(specs) - 1].sum()) > 0
        zero_resets += sum(s["reset"] == "zero" for s in specs)
        leaks += sum(bool(np.any(s["bias"])) for s in specs)
        pools += sum(s["pool"] > 1 for s in specs)
    assert multi >= NETWORKS // 2
    assert readouts >= NETWORKS // 3
    assert min(zero_resets, leaks, pools) >= 10


@pytest.mark.parametrize("seed", range(NETWORKS))
def test_binned_equals_sinabs_iafsqueeze(seed):
    specs, in_shape, frames = case(seed)
    expected = run_sinabs(specs, frames)
    network = Network.from_config(integer_document(specs, in_shape))
    for engine in ("auto", "numpy"):  # the compiled step (where numba is installed) and the numpy one
        network.engine = engine
        run = network.run_binned(frames, record=tuple(range(len(specs))))
        for core, want in enumerate(expected):
            got = run.counts[core]
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=f"network {seed}, layer {core}, {engine}")
    assert expected[0].sum() > 0, "the comparison must see spikes"


def test_mnist_artifact_binned_equals_sinabs(tmp_path):
    """The bundled MNIST CNN as compiled for Speck: every core's spikes equal sinabs' on 4 test images, T = 32."""
    from pathlib import Path

    from neurodeploy_speck import SpeckBackend
    from neurodeploy_speck.backend import direct_events
    from neurodeploy_speck.sinabs_model import run_sinabs

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    mnist = Path(__file__).resolve().parents[3] / "examples" / "mnist"
    artifact = compile_model(
        mnist / "mnist_cnn.onnx", "speck", tmp_path / "a", calibration=load_calibration(str(mnist / "calibration.npz"))
    )
    document = SpeckBackend.load_config(artifact)
    frames = direct_events(np.load(mnist / "test_images.npz")["x"][:4], 32)
    network = Network.from_config(document)
    run = network.run_binned(frames, record=tuple(c.index for c in network.cores))
    expected = run_sinabs(document, frames)
    assert len(expected) == 4
    for core, want in zip(network.cores, expected):
        np.testing.assert_array_equal(run.counts[core.index], want, err_msg=f"core {core.index}")
    assert all(int(want.sum()) > 0 for want in expected)


def test_depthwise_and_global_average_pool_artifact_binned_equals_sinabs(tmp_path):
    """A torch model with a depthwise convolution (run as the full one) and a global average pool over 16 x 16
    before its readout (sum pooling 4x4, the rest in a 4x4 kernel), compiled for Speck: every core's spikes
    equal sinabs' on the artifact's own integers, T = 32."""

    from neurodeploy_speck.backend import direct_events
    from neurodeploy_speck.sinabs_model import run_sinabs

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
        nn.Conv2d(8, 16, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()  # fmt: skip
    x, document = compiled_for_speck(model, (2, 32, 32), tmp_path)
    frames = direct_events(x[:4], 32)
    network = Network.from_config(document)
    assert len(network.cores) == 4
    readout = network.cores[-1]
    assert readout.weight.shape[-1] == 4
    assert readout.in_shape == (16, 4, 4)
    assert readout.sources[0][1] == 4  # sum pooling 4x4 of the 16 x 16 map
    run = network.run_binned(frames, record=tuple(c.index for c in network.cores))
    expected = run_sinabs(document, frames)
    for core, want in zip(network.cores, expected):
        np.testing.assert_array_equal(run.counts[core.index], want, err_msg=f"core {core.index}")
    assert all(int(want.sum()) > 0 for want in expected)


def test_residual_and_concat_artifact_binned_equals_sinabs(tmp_path):
    """A torch model with an identity residual block and a two-branch channel concatenation, compiled for Speck
    (the skip and the second branch arrive as shifted channels, the chip's feature shift): every core's spikes
    equal sinabs' (Conv2d, IAFSqueeze, SumPool2d, each core's sources summed onto their channels), T = 24."""

    from neurodeploy_speck.backend import direct_events
    from neurodeploy_speck.sinabs_model import run_sinabs

    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
            self.a = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(8, 6, 3, padding=1), nn.ReLU())
            self.head = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(10 * 4 * 4, 5))

        def forward(self, x):
            h = self.stem(x)
            h = torch.relu(self.body(h) + h)
            return self.head(torch.cat([self.a(h), self.b(h)], dim=1))

    torch.manual_seed(0)
    model = Net().eval()
    x, document = compiled_for_speck(model, (2, 16, 16), tmp_path)
    network = Network.from_config(document)
    shifted = sorted(shift for core in network.cores for _, _, shift in core.sources if shift)
    assert shifted == [4, 8]  # the skip after the block's 8 channels; branch b after branch a's 4
    frames = direct_events(x[:4], 24)
    run = network.run_binned(frames, record=tuple(c.index for c in network.cores))
    expected = run_sinabs(document, frames)
    for core, want in zip(network.cores, expected):
        np.testing.assert_array_equal(run.counts[core.index], want, err_msg=f"core {core.index}")
    assert all(int(want.sum()) > 0 for want in expected)


def compiled_for_speck(model, shape, tmp_path):
    """(8 random inputs, speck.json) of a torch model exported (legacy exporter) and compiled for Speck with those
    inputs as calibration."""
    import warnings

    from neurodeploy_speck import SpeckBackend

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import Calibration

    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *shape),), str(path), dynamo=False, input_names=["x"])
    x = np.random.default_rng(0).random((8, *shape)).astype(np.float32)
    artifact = compile_model(path, "speck", tmp_path / "a", calibration=Calibration(x, "random"))
    return x, SpeckBackend.load_config(artifact)
