"""QCFS activations for PyTorch: train an ANN whose spiking conversion is exact at T = L steps.

QCFS (Bu et al., "Optimal ANN-SNN Conversion for High-accuracy and Ultra-low-latency SNNs", ICLR 2022) replaces
ReLU with a quantized clipped ReLU with a trainable clip value λ per layer and L levels::

    y = λ · clip(floor(x · L / λ + 1/2) / L, 0, 1)

computed exactly as the authors' code does (``x / λ``, ``floor(x · L + 0.5) / L``, ``clamp(0, 1)``, ``· λ``),
with a straight-through gradient for the floor. Exported with :func:`export_onnx`, each QCFS becomes the chain
of Div, Mul, Add, Floor, Div, Clip and Mul nodes that neurodeploy's ``detect-qcfs`` pass turns back into one
``QCFS`` op, which ``convert-to-snn`` maps to an IF neuron with threshold λ and v(0) = λ/2.

Needs the ``torch`` extra; the core never imports this module.

* :class:`QCFS`: the activation (λ initialised to 8.0, as in the reference code, or set from data with
  :func:`init_lambdas`).
* :func:`replace_activations`: swap every ``nn.ReLU`` module of a model for a QCFS. ReLUs called as functions
  in ``forward`` (``F.relu``, ``torch.relu``) are not modules and are out of reach: write them as modules.
* :func:`export_onnx`: the legacy (TorchScript) exporter, opset 17, dynamic batch axis.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17


class _FloorSTE(torch.autograd.Function):
    """floor in the forward pass, identity in the backward pass (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class QCFS(nn.Module):
    """The quantization-clip-floor-shift activation with ``levels`` steps and a trainable clip value ``lam``."""

    def __init__(self, levels: int = 8, lam: float = 8.0) -> None:
        super().__init__()
        if int(levels) != levels or levels < 1:
            raise ValueError(f"levels must be a whole number >= 1, got {levels}")
        if not lam > 0:
            raise ValueError(f"lam must be positive, got {lam}")
        self.levels = int(levels)
        self.lam = nn.Parameter(torch.tensor([float(lam)]))
        self._observed: list[torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._observed is not None:  # init_lambdas: behave as the ReLU this replaced and record its output
            y = torch.relu(x)
            self._observed.append(y.detach().flatten())
            return y
        x = x / self.lam
        x = _FloorSTE.apply(x * self.levels + 0.5) / self.levels
        x = torch.clamp(x, 0, 1)
        return x * self.lam

    def extra_repr(self) -> str:
        return f"levels={self.levels}, lam={self.lam.item():.4g}"


def replace_activations(model: nn.Module, levels: int, lam: float = 8.0) -> nn.Module:
    """Replace every ``nn.ReLU`` submodule of ``model`` (in place) with a :class:`QCFS`; return ``model``.

    Raises ValueError when the model has none (its ReLUs may be functional calls, which cannot be swapped).
    """
    replaced = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, QCFS(levels, lam))
                replaced += 1
    if not replaced:
        raise ValueError(
            "the model has no nn.ReLU modules to replace; functional ReLUs (F.relu, torch.relu) are out of "
            "scope: write them as nn.ReLU modules"
        )
    return model


@torch.no_grad()
def init_lambdas(model: nn.Module, x: torch.Tensor, percentile: float = 99.9) -> dict[str, float]:
    """Set each QCFS's λ to the ``percentile`` of the positive outputs the ReLU it replaced gives on ``x``
    (one forward pass with every QCFS acting as a ReLU); return the λ of each QCFS by module name."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, QCFS)}
    recorded: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for name, layer in layers.items():
        layer._observed = recorded[name]  # the layer appends to the list kept here
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was_training)
        observed = {name: torch.cat(recorded[name]) for name in layers}
        for layer in layers.values():
            layer._observed = None
    lambdas = {}
    for name, values in observed.items():
        positive = values[values > 0]
        lam = float(np.percentile(positive.numpy(), percentile)) if positive.numel() else 1.0
        layers[name].lam.fill_(lam)
        lambdas[name] = layers[name].lam.item()
    return lambdas


def export_onnx(
    model: nn.Module,
    path: str | Path,
    example_input: torch.Tensor,
    *,
    input_name: str = "input",
    output_name: str = "output",
) -> Path:
    """Export ``model`` in eval mode to ``path`` with the legacy exporter (opset 17, dynamic batch axis)."""
    import onnx

    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
            torch.onnx.export(
                model,
                (example_input,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            )
    finally:
        model.train(was_training)
    onnx.checker.check_model(onnx.load(str(path)))
    return path
