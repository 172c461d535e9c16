"""neurodeploy.training.qcfs: a QCFS model trained in torch, exported, imported and canonicalized, gives one
QCFS op per activation with the trained λ and L, and computes what torch computes."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.ir import QCFS, Floor, interpret
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

from neurodeploy.training import qcfs  # noqa: E402

LEVELS = 4


def _tiny_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    model = qcfs.replace_activations(_tiny_model(), LEVELS)
    x = torch.rand(64, 1, 8, 8)
    y = torch.randint(0, 3, (64,))
    initial = qcfs.init_lambdas(model, x)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    path = qcfs.export_onnx(model, tmp_path_factory.mktemp("qcfs") / "tiny.onnx", x[:1])
    return model, initial, path


def test_replace_activations_swaps_every_relu_module():
    model = qcfs.replace_activations(_tiny_model(), 8, lam=2.0)
    layers = [m for m in model.modules() if isinstance(m, qcfs.QCFS)]
    assert len(layers) == 2
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert [(m.levels, m.lam.item()) for m in layers] == [(8, 2.0), (8, 2.0)]


def test_replace_activations_refuses_a_model_without_relu_modules():
    with pytest.raises(ValueError, match=r"no nn\.ReLU modules"):
        qcfs.replace_activations(nn.Sequential(nn.Linear(2, 2)), 4)


def test_qcfs_module_is_the_reference_formula_with_a_straight_through_floor():
    layer = qcfs.QCFS(levels=4, lam=2.0)
    x = torch.tensor([-1.0, 0.2, 0.25, 0.8, 1.9, 5.0], requires_grad=True)
    y = layer(x)
    assert y.tolist() == [0.0, 0.0, 0.5, 1.0, 2.0, 2.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # identity through the floor, zero where clamped
    assert layer.lam.grad is not None


def test_init_lambdas_sets_lambda_from_the_relu_outputs():
    torch.manual_seed(1)
    model = qcfs.replace_activations(nn.Sequential(nn.Linear(4, 16), nn.ReLU()), 8)
    x = torch.randn(256, 4)
    lambdas = qcfs.init_lambdas(model, x, percentile=100.0)
    with torch.no_grad():
        top = torch.relu(model[0](x)).max().item()
    assert lambdas == {"1": pytest.approx(top, rel=1e-6)}
    assert model[1].lam.item() == pytest.approx(top, rel=1e-6)
    assert model[1]._observed is None  # back to QCFS


def test_trained_model_imports_as_qcfs_ops_with_the_trained_lambdas(trained):
    model, initial, path = trained
    graph = import_onnx(path)
    assert any(isinstance(op, Floor) for op in graph.ops)
    ctx = PassContext()
    PassManager(build_pipeline(CANONICALIZE)).run(graph, ctx)
    assert not any(isinstance(op, Floor) for op in graph.ops)
    found = [op for op in graph.ops if isinstance(op, QCFS)]
    layers = [m for m in model.modules() if isinstance(m, qcfs.QCFS)]
    assert [(op.lam, op.levels, op.shift) for op in found] == [(m.lam.item(), LEVELS, 0.5) for m in layers]
    assert [m.lam.item() for m in layers] != list(initial.values())  # λ was trained
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(x).numpy()
    actual = interpret.run(graph, x.numpy())[graph.outputs[0]]
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
