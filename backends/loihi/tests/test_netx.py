"""The netx ``.net`` file, read back by a small reader written here from netx's documented conventions (lava-dl
``src/lava/lib/dl/netx/hdf5.py: Network._create, create_input, create_conv, create_dense``,
``netx/utils.py: NetDict, optimize_weight_bits``, ``netx/blocks/process.py: AbstractBlock._neuron``; summarized
in ../shared/research/deploy-toolchains.md §1.2-1.4), independent of the writer:

* ``layer/<i>`` groups, i = 0 .. n-1 from input to output; ``type`` a (1,) ``S10`` dataset; ``shape`` the
  slayer shape (C, H, W) or (N,), reversed by netx to Lava's (X, Y, C);
* ``neuron``: CUBA -> Lava LIF with ``vth = vThMant``, ``du = iDecay - 1``, ``dv = vDecay``, ``bias_exp = 6``,
  ``bias`` the mantissa (per neuron for dense, per channel for conv, broadcast over (X, Y));
* ``conv``: ``weight[:, :, ::-1, ::-1]`` then ``.transpose((0, 3, 2, 1))`` (Lava's (C_out, kX, kY, C_in)),
  ``stride``/``padding``/``dilation`` reversed;
* ``flatten`` then ``dense``: the dense reads ``out.transpose([2, 1, 0]).flatten()`` of the conv layer below,
  so its weight columns are in (C, H, W) order; ``optimize_weight_bits`` re-derives the weights' scale,
  ``num_weight_bits`` and ``weight_exponent``, and Lava's Dense picks the sign mode from the weights.

Reading the .net back must give the integers the emulator uses, and emulating what was read must equal the
artifact's own run, spike for spike and state for state.
"""

import h5py
import numpy as np
import pytest
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron
from neurodeploy_loihi.netx import oihw_from_lava
from neurodeploy_loihi.program import Program


def optimize_weight_bits(weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """lava-dl ``netx/utils.py: optimize_weight_bits`` (weights, num_weight_bits, weight_exponent); the sign mode
    it returns is not passed on by netx's Dense block, so Lava's Dense determines it again."""
    weight = np.clip(weight, -256, 254) if (weight.max() > 254 and weight.min() < 0) else weight
    high, low = weight.max(), weight.min()
    if high < 0:
        scale, signed = -256 / low, 0
    elif low >= 0:
        scale, signed = 255 / high, 0
    else:
        scale, signed = min(127 / high, -128 / low), 1
    scale_bits = int(np.floor(np.log2(scale)) + signed)
    n = 8
    while n > 0 and np.sum(np.abs(weight / 2**n - np.round(weight / 2**n))) != 0:
        n -= 1
    n -= signed
    return np.left_shift(weight.astype(np.int64), scale_bits), 8 - scale_bits - n, -scale_bits


def _neuron(group: h5py.Group, shape: tuple[int, ...], bias: np.ndarray | int) -> Neuron:
    n = group["neuron"]
    assert n["type"][()].decode("ascii") == "CUBA"
    return Neuron(
        du=int(n["iDecay"][()]) - 1,
        dv=int(n["vDecay"][()]),
        vth=int(n["vThMant"][()]),
        kind="lif",
        bias_mant=bias,
        bias_exp=6,
    )


def read_net(path) -> tuple[Network, list[str]]:
    """A .net as an emulator Network (Lava layouts), and the layer types in file order."""
    layers: list[Layer] = []
    types: list[str] = []
    with h5py.File(path, "r") as f:
        root = f["layer"]
        flatten_next = False
        below: tuple[int, ...] = ()
        for i in range(len(root)):
            g = root[str(i)]
            kind = g["type"][0].decode("ascii")
            types.append(kind)
            if kind == "flatten":
                flatten_next = True
                continue
            shape = tuple(int(d) for d in g["shape"][()][::-1])  # (C, H, W) -> (X, Y, C)
            bias = g["bias"][()].astype(int) if "bias" in g else 0
            if kind == "input":
                layers.append(Layer(None, _neuron(g, shape, int(bias)), str(i), shape))
            elif kind == "conv":
                weight = g["weight"][()].astype(int)[:, :, ::-1, ::-1].transpose((0, 3, 2, 1))
                synapse = ConvSynapse(
                    np.ascontiguousarray(weight),
                    below,
                    stride=tuple(int(s) for s in g["stride"][()][::-1]),
                    padding=tuple(int(p) for p in g["padding"][()][::-1]),
                    dilation=tuple(int(d) for d in g["dilation"][()][::-1]),
                    groups=int(g["groups"][()]),
                )
                if np.ndim(bias):  # channel-wise: bias_mant[:, :] = bias on (X, Y, C)
                    bias = np.broadcast_to(bias, shape).copy()
                layers.append(Layer(synapse, _neuron(g, shape, bias), str(i)))
            else:
                assert kind == "dense"
                weight = g["weight"][()].astype(int)
                shape = (int(np.prod(shape)),)
                if weight.ndim == 1:
                    weight = weight.reshape(shape[0], -1)
                if flatten_next:  # the input is (X, Y, C).transpose(2, 1, 0).flatten(): columns in (C, Y, X) order
                    x, y, c = below
                    chw_of_xyc = np.arange(x * y * c).reshape(c, y, x).transpose(2, 1, 0).reshape(-1)
                    weight = weight[:, chw_of_xyc]
                    flatten_next = False
                w, bits, exp = optimize_weight_bits(weight)
                synapse = DenseSynapse(w, weight_exp=exp, num_weight_bits=bits, sign_mode=None)
                layers.append(Layer(synapse, _neuron(g, shape, bias), str(i)))
            below = shape
    return Network(layers), types


@pytest.fixture(scope="module")
def netx_artifact():
    return compiled("netx")


def test_net_file_follows_the_documented_layout(netx_artifact) -> None:
    path = netx_artifact.root / "network.net"
    assert "network.net" in netx_artifact.manifest["files"]
    with h5py.File(path, "r") as f:
        assert list(f) == ["layer"]
        root = f["layer"]
        assert sorted(root, key=int) == [str(i) for i in range(5)]
        kinds = []
        for i in range(5):
            t = root[str(i)]["type"]
            assert t.shape == (1,)
            assert t.dtype == np.dtype("S10")
            kinds.append(t[0].decode("ascii"))
        assert kinds == ["input", "conv", "conv", "flatten", "dense"]
        assert root["0/shape"][()].tolist() == [16, 28, 28]  # slayer (C, H, W)
        assert root["1/shape"][()].tolist() == [32, 14, 14]
        assert root["1/weight"].shape == (32, 16, 6, 6)  # (C_out, C_in, kH, kW): the 3x3 kernel over 2x2 pool blocks
        assert root["2/weight"].shape == (64, 32, 6, 6)
        assert root["1/stride"][()].tolist() == [2, 2]
        assert root["1/padding"][()].tolist() == [2, 2]
        assert root["4/weight"].shape == (10, 3136)  # (out, in)
        assert root["4/shape"][()].tolist() == [10]
        for i in (1, 2):  # conv biases per channel
            assert root[f"{i}/bias"].shape == (root[f"{i}/shape"][0],)
        for i in (0, 1, 2, 4):
            neuron = root[f"{i}/neuron"]
            assert {"type", "iDecay", "vDecay", "vThMant"} <= set(neuron)
            assert int(neuron["iDecay"][()]) == 4096
            assert int(neuron["vDecay"][()]) == 0
        for i in (1, 2):  # slayer's 8-bit convention: even integers in [-256, 254]
            w = root[f"{i}/weight"][()]
            assert w.min() >= -256
            assert w.max() <= 254
            assert not np.any(w % 2)


def test_reading_the_net_gives_the_integers_the_emulator_uses(netx_artifact) -> None:
    program = Program.load(netx_artifact.root)
    network, _ = read_net(netx_artifact.root / "network.net")
    assert len(network.layers) == len(program.network.layers)
    for k, (read, ours) in enumerate(zip(network.layers, program.network.layers)):
        assert read.shape == ours.shape, k
        assert (read.neuron.vth, read.neuron.du, read.neuron.dv) == (ours.neuron.vth, ours.neuron.du, ours.neuron.dv)
        if k == 0:
            continue  # the input population's bias is set per sample at run time
        np.testing.assert_array_equal(
            fp.effective_bias(read.neuron.bias_mant, read.neuron.bias_exp),
            np.broadcast_to(fp.effective_bias(ours.neuron.bias_mant, ours.neuron.bias_exp), ours.shape),
        )
        if isinstance(ours.synapse, ConvSynapse):
            np.testing.assert_array_equal(read.synapse.weights, ours.synapse.lava_weights)
            assert (read.synapse.stride, read.synapse.padding) == (ours.synapse.stride, ours.synapse.padding)
        else:
            # netx scales the weights up by 2**-weight_exponent and the sum back down: the same integers
            scaled = read.synapse.effective_weights
            exact = np.right_shift(scaled, -read.synapse.weight_exp) if read.synapse.weight_exp < 0 else scaled
            np.testing.assert_array_equal(
                np.left_shift(exact, max(read.synapse.weight_exp, 0)), ours.synapse.effective_weights
            )


def test_emulating_the_net_equals_the_artifacts_run(netx_artifact) -> None:
    program = Program.load(netx_artifact.root)
    network, _ = read_net(netx_artifact.root / "network.net")
    x, _ = mnist_test_images()
    bias = program.input_bias(x[:6])
    steps = 12 + program.delay
    ours = program.network.run(steps=steps, input_bias=bias)
    theirs = network.run(steps=steps, input_bias=bias)
    assert ours.spikes[1].any()
    assert ours.spikes[2].any()
    for k in range(len(network.layers)):
        for name in ("spikes", "u", "v"):
            np.testing.assert_array_equal(getattr(theirs, name)[k], getattr(ours, name)[k], err_msg=f"{name} {k}")


def test_oihw_from_lava_inverts_netx_flip_and_transpose() -> None:
    weight = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # (C_out, C_in, kH, kW): non-square, all distinct
    lava = weight[:, :, ::-1, ::-1].transpose((0, 3, 2, 1))  # netx's create_conv
    assert lava.shape == (2, 5, 4, 3)  # (C_out, kX = kW, kY = kH, C_in)
    np.testing.assert_array_equal(oihw_from_lava(lava), weight)
    np.testing.assert_array_equal(fp.conv_weight_from_oihw(weight), lava)


def test_no_net_file_where_netx_cannot_express_the_network() -> None:
    artifact = compiled("subtract")
    assert "network.net" not in artifact.manifest["files"]
    assert not (artifact.root / "network.net").exists()
    assert artifact.manifest["target"]["netx"] is False


def test_a_layer_netx_cannot_express_leaves_no_half_written_file(netx_artifact, tmp_path) -> None:
    """write_net stops at a convolution with per-neuron biases (a .net's conv layer holds one per channel) with a
    NetxError naming the layer, and removes the file it had begun."""
    from dataclasses import replace

    from neurodeploy_loihi.netx import NetxError, write_net

    program = Program.load(netx_artifact.root)
    k = next(k for k, layer in enumerate(program.network.layers) if isinstance(layer.synapse, ConvSynapse))
    layer = program.network.layers[k]
    per_neuron = np.arange(int(np.prod(layer.shape))).reshape(layer.shape) % 7
    program.network.layers[k] = replace(layer, neuron=replace(layer.neuron, bias_mant=per_neuron))
    path = tmp_path / "network.net"
    with pytest.raises(NetxError, match=rf"layer {program.names[k]!r} has a per-neuron conv bias"):
        write_net(program, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
