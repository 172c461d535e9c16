"""Loihi 2 resources: the placement of the bundled model on cores (counted by hand here), and the errors that name
the layer and the limit when a network does not fit."""

import numpy as np
import pytest
from loihi_mnist import compiled
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.resources import (
    CORES_PER_CHIP,
    NEURONS_PER_CORE,
    SYNAPTIC_MEMORY_BYTES,
    fan_in_per_neuron,
    place,
    resource_report,
)

from neurodeploy.errors import ResourceError

IF = Neuron(du=4095, dv=0, vth=100)


def _fan_in_by_hand(synapse: ConvSynapse) -> np.ndarray:
    """Per output neuron (Lava flat order (X, Y, C)), how many kernel taps land inside the input, times C_in."""
    (x_out, y_out, c_out), (x_in, y_in, c_in) = synapse.output_shape, synapse.input_shape
    kx, ky = synapse.lava_weights.shape[1:3]
    out = np.zeros((x_out, y_out, c_out), np.int64)
    for x in range(x_out):
        for y in range(y_out):
            taps = 0
            for i in range(kx):
                for j in range(ky):
                    px = x * synapse.stride[0] - synapse.padding[0] + i * synapse.dilation[0]
                    py = y * synapse.stride[1] - synapse.padding[1] + j * synapse.dilation[1]
                    taps += 0 <= px < x_in and 0 <= py < y_in
            out[x, y, :] = taps * c_in // synapse.groups
    return out.reshape(-1)


def test_mnist_placement_counted_by_hand() -> None:
    program = Program.load(compiled("subtract").root)
    names = program.names
    cores = place(program.network, names)
    per_layer = {name: [c for c in cores if c.layer == name] for name in names}
    # the input population: 28 * 28 * 16 = 12544 neurons, no synapses: 8192 + 4352
    assert [c.neurons for c in per_layer[names[0]]] == [8192, 4352]
    # each conv neuron reads up to 6 x 6 taps (3 x 3 over 2 x 2 pool blocks) x C_in inputs, fewer at the border;
    # a core takes neurons in order until the next one's synapses would pass 128 KiB
    for k in (1, 2):
        fan_in = _fan_in_by_hand(program.network.layers[k].synapse)
        np.testing.assert_array_equal(fan_in_per_neuron(program.network.layers[k].synapse), fan_in)
        expected, start = [], 0
        while start < len(fan_in):
            stop, used = start, 0
            while (
                stop < len(fan_in) and used + fan_in[stop] <= SYNAPTIC_MEMORY_BYTES and stop - start < NEURONS_PER_CORE
            ):
                used += fan_in[stop]
                stop += 1
            expected.append((start, stop, used))
            start = stop
        assert [(c.start, c.stop, c.synapse_bytes) for c in per_layer[names[k]]] == expected
    assert max(_fan_in_by_hand(program.network.layers[1].synapse)) == 6 * 6 * 16
    # the readout: 10 neurons x 3136 inputs = 31360 bytes, one core reading all 3136 inputs
    (readout,) = per_layer[names[3]]
    assert (readout.neurons, readout.synapse_bytes, readout.fan_in, readout.fan_out) == (10, 31360, 3136, 0)
    assert [c.core for c in cores] == list(range(len(cores)))
    assert len(cores) <= CORES_PER_CHIP
    rep, _ = resource_report("loihi2", program.network, names, program.roles)
    assert rep.cores_used == len(cores)
    assert [u.neurons for u in rep.layers] == [12544, 6272, 3136, 10]


def test_a_neuron_whose_synapses_exceed_a_core_names_the_layer_and_the_limit() -> None:
    n_in = SYNAPTIC_MEMORY_BYTES + 1
    dense = DenseSynapse(np.zeros((2, n_in), np.int64))
    network = Network([Layer(dense, IF, "wide")])
    with pytest.raises(ResourceError, match=rf"layer 'wide': a neuron with fan-in {n_in} .* more than the 131072"):
        place(network, ["wide"])


def test_a_network_needing_more_cores_than_a_chip_names_the_layer_and_the_limit() -> None:
    # a 1x1 conv over 4096 channels: 4096 bytes per neuron, 32 neurons per core; 4 x 4 x 300 = 4800 neurons need
    # 150 cores, more than 128
    conv = ConvSynapse(np.ones((300, 1, 1, 4096), np.int64), (4, 4, 4096))
    network = Network([Layer(conv, IF, "big")])
    with pytest.raises(ResourceError, match=r"needs 150 Loihi 2 cores, more than the 128 of one chip; layer 'big'"):
        resource_report("loihi2", network, ["big"], ["IF"])
    cores = place(network, ["big"])
    assert len(cores) == 150
    assert {c.neurons for c in cores} == {32}
    # a core's 32 neurons (Lava order: channel fastest) lie at one (x, y) or straddle two, reading all 4096
    # channels of each
    assert {c.fan_in for c in cores} == {4096, 8192}
