"""Models written by both torch exporters import from their files and match onnxruntime and torch."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

from neurodeploy.frontend.onnx import import_onnx

from .onnx_cases import op_types, randn, run_ir, run_ort

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(2)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.bn2 = torch.nn.BatchNorm2d(8)  # after the residual Add: exporters cannot fuse it into a conv
        self.avg = torch.nn.AvgPool2d(2)
        self.fc = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        h = self.pool(torch.relu(self.bn(self.conv(x))))
        h = torch.relu(self.bn2(self.conv2(h) + h))
        h = self.avg(h)
        return self.fc(torch.flatten(h, 1))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = _Net()
    with torch.no_grad():  # non-trivial running statistics
        for bn in (model.bn, model.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return model.eval()


def _compare(path, net, x):
    graph = import_onnx(path)
    with torch.no_grad():
        reference = net(torch.from_numpy(x)).numpy()
    expected = run_ort(onnx.load(str(path)), x)
    actual = run_ir(graph, x)
    assert actual.shape == expected.shape == (len(x), 10)
    np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(actual, reference, atol=1e-5, rtol=0)
    return graph


def test_legacy_exporter_dynamic_batch(net, tmp_path):
    path = tmp_path / "legacy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 16, 16),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=17,
        )
    graph = _compare(path, net, randn((5, 3, 16, 16), seed=1))
    assert graph.name == "legacy"
    assert {"Conv2d", "BatchNorm", "MaxPool2d", "Add", "AvgPool2d", "Dense"} <= set(op_types(graph))


def test_dynamo_exporter_external_data(net, tmp_path):
    path = tmp_path / "dynamo.onnx"
    batch = torch.export.Dim("batch", min=1, max=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 16, 16),),
            str(path),
            dynamo=True,
            external_data=True,
            verbose=False,
            dynamic_shapes=({0: batch},),
        )
    assert (tmp_path / "dynamo.onnx.data").is_file()
    graph = _compare(path, net, randn((5, 3, 16, 16), seed=2))
    assert {"Conv2d", "BatchNorm", "MaxPool2d", "Add", "AvgPool2d", "Dense"} <= set(op_types(graph))


def test_dynamo_exporter_static_batch_runs_other_batch_sizes(net, tmp_path):
    """Exported with batch 1 and no dynamic axis: the IR is batch-agnostic, so batch 5 still runs (compared
    with torch only, since onnxruntime enforces the static batch)."""
    path = tmp_path / "static.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=True, external_data=True, verbose=False)
    graph = import_onnx(path)
    x = randn((5, 3, 16, 16), seed=3)
    with torch.no_grad():
        reference = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_ir(graph, x), reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(run_ir(graph, x[:1]), run_ort(onnx.load(str(path)), x[:1]), atol=1e-5, rtol=0)


class _GapNet(torch.nn.Module):
    """ResNet's head: adaptive average pooling to 1x1, then a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6, 10)

    def forward(self, x):
        h = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1)
        return self.fc(torch.flatten(h, 1))


def _export_and_compare(net_class: type, shape: tuple[int, ...], dynamo: bool, path, seed: int):
    """A fresh ``net_class`` (seed 0) exported for one sample of ``shape`` by one exporter, imported and compared
    with torch and onnxruntime on one random sample."""
    torch.manual_seed(0)
    net = net_class().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, *shape),), str(path), dynamo=dynamo, verbose=False)
    return _compare(path, net, randn((1, *shape), seed=seed))


@pytest.mark.parametrize("dynamo", [False, True])
def test_global_average_pool_head_from_both_exporters(dynamo, tmp_path):
    graph = _export_and_compare(_GapNet, (3, 8, 8), dynamo, tmp_path / "gap.onnx", seed=4)
    assert "GlobalAvgPool" in op_types(graph)


class _ZeroPadNet(torch.nn.Module):
    """ZeroPad2d before a Conv (symmetric) and before an AvgPool2d (right and bottom only)."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = torch.nn.ZeroPad2d(1)
        self.conv = torch.nn.Conv2d(3, 6, 3)
        self.pad2 = torch.nn.ZeroPad2d((0, 1, 0, 1))
        self.avg = torch.nn.AvgPool2d(2)
        self.fc = torch.nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        h = self.avg(self.pad2(torch.relu(self.conv(self.pad(x)))))
        return self.fc(torch.flatten(h, 1))


@pytest.mark.parametrize("dynamo", [False, True])
def test_zero_pads_from_both_exporters_become_padding(dynamo, tmp_path):
    graph = _export_and_compare(_ZeroPadNet, (3, 7, 7), dynamo, tmp_path / "zero_pad.onnx", seed=5)
    assert [op.padding for op in graph.ops if op.op_type in ("Conv2d", "AvgPool2d")] == [(1, 1, 1, 1), (0, 0, 1, 1)]
