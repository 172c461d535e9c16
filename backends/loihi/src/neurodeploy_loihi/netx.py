"""Writing a lava-dl netx ``.net`` (HDF5, with h5py) for the networks netx can build faithfully.

Layout (what slayer's ``export_hdf5`` writes and netx's ``hdf5.Network`` reads, lava-dl ``netx/hdf5.py`` and
``netx/utils.py: NetDict``): a group ``layer`` with one group per layer, ``0`` .. ``n-1``, from input to output.
Each holds ``type`` (a (1,) ``S10`` dataset: ``input``, ``conv``, ``flatten``, ``dense``), ``shape`` (the
slayer shape, (C, H, W) or (N,); netx reverses it to Lava's (X, Y, C)) and, for neurons, a ``neuron`` group
(``type`` CUBA, ``iDecay`` = du + 1, ``vDecay`` = dv, ``vThMant`` = vth, ``refDelay``, ``gradedSpike``) and
``bias`` (the mantissa: netx gives every neuron ``bias_exp`` = 6; per channel for a conv, per neuron
otherwise). A ``conv`` layer's ``weight`` is (C_out, C_in / groups, kH, kW), a cross-correlation kernel: netx
flips it in space and transposes it to Lava's (C_out, kW, kH, C_in) (``weight[:, :, ::-1, ::-1]``, then
``transpose((0, 3, 2, 1))``); ``stride``, ``padding``, ``dilation`` are (H, W) and reversed by netx. A
``dense`` layer after convolutional ones follows a ``flatten`` layer, and netx feeds it the (X, Y, C) spikes
transposed to (C, H, W) and flattened, so its ``weight`` columns are in (C, H, W) order; netx re-derives the
weight exponent and sign mode from the weights (``optimize_weight_bits``), which keeps them exact.

What netx cannot express, so that no ``.net`` is written for it (:class:`NetxError` says which): a
subtractive reset (netx builds Lava's LIF), an initial v other than 0, a weight exponent other than 0, a
bias exponent other than 6, a per-neuron bias of a conv layer that is not the same for all positions of a
channel, a spike readout, and the input layer's per-sample bias, which the host sets at run time (the .net
holds the input layer's neuron parameters and a zero bias, as netx's ``Input`` expects).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import NeurodeployError
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.quantize import NETX_BIAS_EXP, lava_order

NET_FILE = "network.net"


class NetxError(NeurodeployError):
    """The network has something a netx .net cannot express; the message says what."""


def _require_h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - a dependency of the plugin
        raise NeurodeployError("writing a .net needs h5py; pip install h5py") from None
    return h5py


def _string(group, name: str, text: str) -> None:
    group.create_dataset(name, (1,), "S10", [text.encode("ascii")])  # as slayer's export_hdf5


def oihw_from_lava(weight: np.ndarray) -> np.ndarray:
    """Lava's (C_out, kX, kY, C_in) convolution kernel as the (C_out, C_in, kH, kW) cross-correlation kernel a
    .net stores: the inverse of netx's ``weight[:, :, ::-1, ::-1].transpose((0, 3, 2, 1))``."""
    return np.ascontiguousarray(np.asarray(weight).transpose(0, 3, 2, 1)[:, :, ::-1, ::-1])


def _check(program: Program) -> None:
    if program.readout["kind"] != "membrane":
        raise NetxError("no network.net: a spike readout has no netx form (netx reads a dense output layer)")
    for k, layer in enumerate(program.network.layers):
        if layer.skips or layer.delay or layer.source is not None:
            raise NetxError(
                f"no network.net: layer {program.names[k]!r} has more than one synapse (residual branches, or a "
                "pooling's border corrections) or reads an earlier layer; a .net describes a chain of layers"
            )
    for k, layer in enumerate(program.network.layers):
        neuron, where = layer.neuron, f"no network.net: layer {program.names[k]!r}"
        if neuron.kind != "lif":
            raise NetxError(f"{where} resets by subtraction; netx builds Lava's LIF, which resets to zero")
        if np.any(np.asarray(neuron.v0) != 0):
            raise NetxError(f"{where} starts at v != 0; netx's neurons start at v = 0")
        if k and np.any(np.asarray(neuron.bias_exp) != NETX_BIAS_EXP) and np.any(np.asarray(neuron.bias_mant) != 0):
            raise NetxError(f"{where} has bias exponents other than netx's {NETX_BIAS_EXP}")
        if isinstance(layer.synapse, DenseSynapse) and layer.synapse.weight_exp != 0:
            raise NetxError(f"{where} has weight_exp {layer.synapse.weight_exp}; a .net stores effective weights")


def _neuron(group, layer) -> None:
    n = layer.neuron
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", data=np.bytes_("CUBA"))
    neuron.create_dataset("iDecay", data=int(n.du) + fp.DS_OFFSET)  # netx: du = iDecay - 1
    neuron.create_dataset("vDecay", data=int(n.dv))
    neuron.create_dataset("vThMant", data=int(n.vth))
    neuron.create_dataset("refDelay", data=1)
    neuron.create_dataset("gradedSpike", data=False)


def _layer(root, index: int, synapse, shapes: list[tuple[int, ...]], k: int, bias, where: str):
    """Write population ``k`` (graph shapes ``shapes``) reading through ``synapse`` as ``layer/<index>`` (after a
    ``flatten`` where a dense synapse reads a convolutional population), with its ``bias`` (Lava layout: a scalar or
    per neuron; a conv's must be the same at every position of a channel). Returns the group and the next index."""
    if isinstance(synapse, DenseSynapse) and k and len(shapes[k - 1]) == 3:
        flat = root.create_group(str(index))
        _string(flat, "type", "flatten")
        flat.create_dataset("shape", data=np.array([int(np.prod(shapes[k - 1]))]))
        index += 1
    g = root.create_group(str(index))
    g.create_dataset("shape", data=np.array(shapes[k]))
    bias = np.asarray(bias)
    if synapse is None:
        _string(g, "type", "input")
        return g, index + 1
    if isinstance(synapse, ConvSynapse):
        _string(g, "type", "conv")
        weight = oihw_from_lava(synapse.lava_weights)
        g.create_dataset("inChannels", data=int(synapse.input_shape[2]))
        g.create_dataset("outChannels", data=int(weight.shape[0]))
        g.create_dataset("kernelSize", data=np.array(weight.shape[2:4]))
        g.create_dataset("stride", data=np.array(synapse.stride[::-1]))  # (X, Y) -> (H, W)
        g.create_dataset("padding", data=np.array(synapse.padding[::-1]))
        g.create_dataset("dilation", data=np.array(synapse.dilation[::-1]))
        g.create_dataset("groups", data=int(synapse.groups))
        g.create_dataset("weight", data=weight.astype(np.int16))
        if bias.ndim:
            per_channel = bias.reshape(-1, bias.shape[-1])
            if not np.all(per_channel == per_channel[:1]):
                raise NetxError(f"{where} has a per-neuron conv bias")
            g.create_dataset("bias", data=per_channel[0].astype(np.int16))
        elif int(bias):
            g.create_dataset("bias", data=np.full(weight.shape[0], int(bias), np.int16))
        return g, index + 1
    _string(g, "type", "dense")
    weights = synapse.effective_weights  # netx re-derives exponent and sign mode from these
    columns = np.empty_like(weights)
    columns[:, lava_order(shapes[k - 1])] = weights  # Lava's (X, Y, C) columns back to (C, H, W)
    g.create_dataset("inFeatures", data=int(weights.shape[1]))
    g.create_dataset("outFeatures", data=int(weights.shape[0]))
    g.create_dataset("weight", data=columns.astype(np.int16))
    if bias.ndim or int(bias):
        g.create_dataset("bias", data=np.broadcast_to(bias, (weights.shape[0],)).astype(np.int16))
    return g, index + 1


def write_net(program: Program, path: Path) -> None:
    """Write ``program`` as a netx .net at ``path``; raise NetxError when netx cannot express it."""
    _check(program)
    h5py = _require_h5py()
    with _net_file(h5py, path) as f:
        root = f.create_group("layer")
        index = 0
        for k, layer in enumerate(program.network.layers):
            where = f"no network.net: layer {program.names[k]!r}"
            g, index = _layer(root, index, layer.synapse, program.shapes, k, layer.neuron.bias_mant, where)
            _neuron(g, layer)


@contextmanager
def _net_file(h5py: Any, path: Path) -> Iterator[Any]:
    """The .net at ``path``, open for writing; removed again when a layer turns out inexpressible (NetxError), so
    that no half-written file is left behind."""
    try:
        with h5py.File(path, "w", track_order=True) as f:
            yield f
    except NetxError:
        path.unlink(missing_ok=True)
        raise


def write_sdnn_net(program, path: Path) -> None:
    """Write an :class:`~neurodeploy_loihi.sdnn.SdnnProgram` as a netx SDNN .net: ``layer/0`` the input's shape
    only (no neuron group: netx then builds no Input block and the first block's ``inp`` takes the host's payloads),
    ``conv`` / ``dense`` layers of ``SDNN`` neurons (``vThMant``, ``bias`` in whole units), and the readout a dense
    layer whose neuron has ``sigma_output`` and no bias (a Sigma with a bias does not load in lava-dl 0.6.0). No
    ``messageBits`` is written: lava-dl 0.6.0 does not read it as a number (its NetDict leaves it a group) and fails
    at run time; netx's default of 16 bits is the program's. ``spike_exp`` is an argument of ``netx.hdf5.Network``
    (the program's ``spike_exp``; the manifest records it)."""
    h5py = _require_h5py()
    with _net_file(h5py, path) as f:
        root = f.create_group("layer")
        _, index = _layer(root, 0, None, program.shapes, 0, 0, "")
        for k, layer in enumerate(program.layers, start=1):
            where = f"no {path.name}: layer {program.names[k]!r}"
            g, index = _layer(
                root, index, layer.synapse, program.shapes, k, 0 if layer.sigma_output else layer.bias, where
            )
            neuron = g.create_group("neuron")
            neuron.create_dataset("type", data=np.bytes_("SDNN"))
            neuron.create_dataset("vThMant", data=int(layer.vth))
            if layer.sigma_output:
                neuron.create_dataset("sigma_output", data=True)
