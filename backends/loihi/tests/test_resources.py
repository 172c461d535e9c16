"""Loihi 2 resources: the placement of the bundled model on cores (counted by hand here), and the errors that name
the layer and the limit when a network does not fit."""

import numpy as np
import pytest
from loihi_mnist import compiled
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.resources import (
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
    # the input population: 28 * 28 * 16 = 12544 neurons, no synapses: 8192 + 4352, in Lava's flat order
    assert [(c.start, c.stop, c.channels, c.neurons) for c in per_layer[names[0]]] == [
        (0, 8192, None, 8192),
        (8192, 12544, None, 4352),
    ]
    for k in (1, 2):  # fan-in counts every connection: up to 6 x 6 taps (3 x 3 over 2 x 2 pool blocks) x C_in
        np.testing.assert_array_equal(
            fan_in_per_neuron(program.network.layers[k].synapse), _fan_in_by_hand(program.network.layers[k].synapse)
        )
    # conv 1: 32 channels of 6 x 6 x 16 = 576-byte kernels (18432 bytes, one copy each) at 14 x 14 = 196 positions:
    # 6272 neurons, one core, reading all 12544 input neurons (stride 2 and padding 2 cover every position)
    (conv1,) = per_layer[names[1]]
    assert (conv1.start, conv1.stop, conv1.channels, conv1.neurons) == (0, 196, (0, 32), 6272)
    assert (conv1.synapse_bytes, conv1.fan_in, conv1.fan_out) == (32 * 576, 12544, 1)
    # conv 2: 64 channels of 6 x 6 x 32 = 1152 bytes at 7 x 7 positions: 3136 neurons, 73728 bytes
    (conv2,) = per_layer[names[2]]
    assert (conv2.channels, conv2.neurons, conv2.synapse_bytes, conv2.fan_in) == ((0, 64), 3136, 64 * 1152, 6272)
    # the readout: 10 neurons x 3136 inputs = 31360 bytes, one core reading all 3136 inputs
    (readout,) = per_layer[names[3]]
    assert (readout.neurons, readout.synapse_bytes, readout.fan_in, readout.fan_out) == (10, 31360, 3136, 0)
    assert [c.core for c in cores] == list(range(5))
    assert {c.chip for c in cores} == {0}
    rep, _ = resource_report("loihi2", program.network, names, program.roles)
    assert rep.cores_used == 5
    assert [u.neurons for u in rep.layers] == [12544, 6272, 3136, 10]


def test_conv_tiles_split_channels_by_kernel_memory_and_positions_by_neuron_count() -> None:
    # 3x3 conv 256 -> 256 channels at 8 x 8: 2304 bytes per channel's kernel, so 56 channels per core (129024
    # bytes); 56 x 64 positions = 3584 neurons: 5 cores (56, 56, 56, 56, 32 channels)
    conv = ConvSynapse(np.ones((256, 3, 3, 256), np.int64), (8, 8, 256), padding=(1, 1))
    cores = place(Network([Layer(conv, IF, "c")]), ["c"])
    assert [c.channels for c in cores] == [(0, 56), (56, 112), (112, 168), (168, 224), (224, 256)]
    assert [c.synapse_bytes for c in cores] == [56 * 2304] * 4 + [32 * 2304]
    assert {(c.start, c.stop) for c in cores} == {(0, 64)}
    assert {c.fan_in for c in cores} == {8 * 8 * 256}
    # 3x3 conv 3 -> 64 channels at 32 x 32: every kernel fits one core (64 x 27 bytes); 8192 // 64 = 128
    # positions per core: 8 cores
    first = ConvSynapse(np.ones((64, 3, 3, 3), np.int64), (32, 32, 3), padding=(1, 1))
    cores = place(Network([Layer(first, IF, "c")]), ["c"])
    assert [(c.start, c.stop) for c in cores] == [(p, p + 128) for p in range(0, 1024, 128)]
    assert {c.channels for c in cores} == {(0, 64)}
    # core 0 holds positions 0..127 (x = 0..3, every y): it reads x = 0..4 (the 3x3 kernel reaches one row
    # further), all 32 y and all 3 channels
    assert cores[0].fan_in == 5 * 32 * 3


def _connectivity(synapse: ConvSynapse) -> np.ndarray:
    """(n_out, n_in) boolean: which input neuron each output neuron reads, by pushing one-hot inputs through the
    emulator's convolution (all weights 1): independent of the placement's geometry."""
    n_in = int(np.prod(synapse.input_shape))
    eye = np.eye(n_in, dtype=np.int64).reshape(n_in, *synapse.input_shape)
    return synapse.accumulate(eye, graded=True).reshape(n_in, -1).T != 0


@pytest.mark.parametrize("groups", [1, 2])
def test_a_tile_reads_exactly_the_inputs_its_neurons_connect_to(groups: int) -> None:
    from neurodeploy_loihi.resources import Core, _reads

    conv = ConvSynapse(
        np.ones((4, 3, 3, 4 // groups), np.int64), (7, 6, 4), stride=(2, 1), padding=(1, 1), groups=groups
    )
    connected = _connectivity(conv)
    shape = conv.output_shape
    for tile in [Core(0, "c", 0, 5, 0, 0, channels=(0, 2)), Core(0, "c", 7, 20, 0, 0, channels=(3, 4))]:
        mask = tile.mask(shape)
        expected = connected[mask.reshape(-1)].any(axis=0).reshape(conv.input_shape)
        np.testing.assert_array_equal(_reads(conv, tile), expected)


def test_a_cores_tile_is_its_mask_projected_on_positions_and_channels() -> None:
    from neurodeploy_loihi.resources import Core

    shape = (3, 5, 4)
    cores = [Core(0, "c", a, b, 0, 0) for a, b in [(0, 1), (3, 6), (7, 20), (2, 60), (59, 60), (4, 4)]]
    cores += [Core(0, "c", a, b, 0, 0, channels=ch) for a, b, ch in [(0, 15, (0, 4)), (7, 9, (1, 3))]]
    for core in cores:
        mask = core.mask(shape)
        positions, held = core.tile(shape[2])
        np.testing.assert_array_equal(positions, np.flatnonzero(mask.any(axis=2)))
        np.testing.assert_array_equal(held, mask.any(axis=(0, 1)))


def test_a_neuron_whose_synapses_exceed_a_core_names_the_layer_and_the_limit() -> None:
    n_in = SYNAPTIC_MEMORY_BYTES + 1
    dense = DenseSynapse(np.zeros((2, n_in), np.int64))
    network = Network([Layer(dense, IF, "wide")])
    with pytest.raises(ResourceError, match=rf"layer 'wide': a neuron with fan-in {n_in} .* more than the 131072"):
        place(network, ["wide"])
    conv = ConvSynapse(np.zeros((1, 3, 3, 14564), np.int64), (3, 3, 14564), padding=(1, 1))
    with pytest.raises(ResourceError, match=r"layer 'deep': one output channel's kernel takes 131076 bytes"):
        place(Network([Layer(conv, IF, "deep")]), ["deep"])


def _wide_dense() -> Network:
    # an input population of 8192 neurons (one core) read by 2400 dense neurons of 8192 bytes each: 16 per core,
    # 150 cores
    source = Layer(None, IF, "in", population_shape=(8192,))
    return Network([source, Layer(DenseSynapse(np.zeros((2400, 8192), np.int64)), IF, "big")])


def test_a_network_needing_more_cores_than_its_chips_names_the_layer_the_limit_and_the_option() -> None:
    network = _wide_dense()
    with pytest.raises(
        ResourceError,
        match=r"needs 151 Loihi 2 cores, more than the 128 of 1 chip.*layer 'big' alone "
        r"needs 150.*--target-option chips=2",
    ):
        resource_report("loihi2", network, ["in", "big"], ["IF", "IF"])
    rep, cores = resource_report("loihi2", network, ["in", "big"], ["IF", "IF"], chips=2)
    assert rep.cores_used == 151
    assert [c.chip for c in cores] == [0] * 128 + [1] * 23
    assert {c.neurons for c in cores[1:]} == {16}


def test_interchip_routes_counted_by_hand() -> None:
    from neurodeploy_loihi.resources import interchip_routes

    network = _wide_dense()
    _, cores = resource_report("loihi2", network, ["in", "big"], ["IF", "IF"], chips=2)
    # every one of the 23 dense cores on chip 1 reads all 8192 input neurons on chip 0
    rates = [np.full((8192,), 0.5), np.zeros((2400,))]
    assert interchip_routes(network, ["in", "big"], cores, rates) == [
        {"from_chip": 0, "to_chip": 1, "routes": 23 * 8192, "messages_per_sample": 23 * 8192 * 0.5}
    ]


def test_a_cifar_sized_vgg_fits_one_chip_with_shared_conv_weights(tmp_path) -> None:
    from loihi_graphs import emit_graph, vgg

    calibration = np.random.default_rng(1).random((4, 3, 32, 32)).astype(np.float32)
    emitted = emit_graph(vgg(), tmp_path, calibration)
    placement = emitted.report["placement"]
    # counted by hand (channels per core = min(C, 131072 // kernel bytes), positions per core = min(X * Y,
    # 8192 // channels); a pool before a conv is folded into its kernel, 3 x 3 -> 6 x 6):
    #   if0: the input population, 64 x 32 x 32 = 65536 neurons, no synapses: 8 cores of 8192
    #   if1: 3x3x64 = 576 B per channel, all 64 channels, 128 of 1024 positions per core: 8
    #   if2: 6x6x64 = 2304 B: 56 + 56 + 16 channels; 146 of 256 positions (2 tiles), 16 channels all 256 (1): 5
    #   if3: 3x3x128 = 1152 B: 113 + 15 channels; 72 of 256 positions (4 tiles) and 1: 5
    #   if4: 6x6x128 = 4608 B: 28 channels per core, 10 groups, all 64 positions: 10
    #   if5: 3x3x256 = 2304 B: 56 x 4 + 32 channels, 64 positions: 5
    #   fc (the readout, the last pool folded in): 10 rows of 16384 inputs, 8 per core: 2
    per_layer: dict[str, int] = {}
    for core in placement:
        per_layer[core["layer"]] = per_layer.get(core["layer"], 0) + 1
    assert list(per_layer.values()) == [8, 8, 5, 5, 10, 5, 2]
    assert emitted.report["chips"]["used"] == 1
    assert max(c["synapse_bytes"] for c in placement) <= SYNAPTIC_MEMORY_BYTES
    assert max(c["neurons"] for c in placement) <= NEURONS_PER_CORE


@pytest.mark.parametrize("value", ["0", "abc", "1.5", "100000"])
def test_the_chips_option_is_checked_before_any_work(value: str, tmp_path) -> None:
    from loihi_mnist import MODEL

    from neurodeploy.compiler import compile_model
    from neurodeploy.errors import DataError

    with pytest.raises(DataError, match=r"target option chips must be a whole number from 1 to 1152"):
        compile_model(MODEL, "loihi", tmp_path / "out", target_options={"chips": value})
    assert not (tmp_path / "out").exists()


def test_the_report_gives_chips_available_and_used(tmp_path) -> None:
    from loihi_mnist import CALIBRATION, MODEL

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    artifact = compile_model(
        MODEL, "loihi", tmp_path / "out", calibration=load_calibration(str(CALIBRATION)), target_options={"chips": "8"}
    )
    chips = artifact.read_json("report.json")["target"]["chips"]
    assert (chips["available"], chips["used"], chips["interchip"]) == (8, 1, [])
    assert {c["chip"] for c in artifact.read_json("report.json")["target"]["placement"]} == {0}


def test_resnet20_shortcuts_are_sparse_and_it_fits_one_chip(tmp_path) -> None:
    """ResNet-20 (19 convolutions, 188,426 neurons): every shortcut is one synapse shorter than its block's main
    path, so it is delayed a step: an identity shortcut as one-to-one DelaySparse synapses (a weight per neuron),
    a stage's 1x1 stride-2 shortcut as the DelaySparse list of its taps. Composed into Dense matrices, as before,
    the first shortcut alone was 16384 x 16384 and the network was refused."""
    from loihi_graphs import emit_graph, resnet20
    from neurodeploy_loihi import board
    from neurodeploy_loihi.emulator import SparseSynapse

    calibration = np.random.default_rng(1).random((4, 3, 32, 32)).astype(np.float32)
    emitted = emit_graph(resnet20(), tmp_path, calibration)
    program = Program.load(tmp_path)
    skips = [s for layer in program.network.layers for s in layer.skips]
    assert len(skips) == 9
    assert all(isinstance(s.synapse, SparseSynapse) and s.delay == 1 for s in skips)
    taps = sorted(int(s.synapse.weights.size) for s in skips)
    # 7 identity shortcuts, one synapse per neuron: 3 in the first stage (16 x 32 x 32), 2 in each later stage
    # (32 x 16 x 16, 64 x 8 x 8); 2 downsampling 1x1 convs: 8192 outputs x 16 inputs, 4096 x 32 taps
    assert taps == sorted([16384] * 3 + [8192] * 2 + [4096] * 2 + [8192 * 16, 4096 * 32])
    assert len(emitted.report["placement"]) == 29
    assert emitted.report["chips"]["used"] == 1
    processes = board.binary_processes(program)
    assert sum(p["synapses"].count("DelaySparse") for p in processes) == 9
    x = np.random.default_rng(2).random((2, 3, 32, 32)).astype(np.float32)
    run = program.run(x, 4)
    assert run.outputs.shape == (2, 10)
    assert np.isfinite(run.outputs).all()


def test_a_network_over_one_chip_compiles_on_two_with_measured_interchip_traffic(tmp_path) -> None:
    """8192 input neurons read by 2400 dense neurons of 8192 weights (16 per core): 151 cores and a readout, more
    than one chip holds. With chips=2 it compiles: chip 0 holds the input core and dense cores 1..127 (2032
    neurons), chip 1 the other 23 dense cores and the readout. Routes from chip 0 to chip 1: each of those 23 cores
    reads all 8192 inputs, the readout reads the 2032 dense neurons on chip 0; the messages per sample are measured
    on the calibration data."""
    from neurodeploy_loihi import Loihi2Backend

    from neurodeploy.backends.base import CompiledModel
    from neurodeploy.errors import ResourceError as Refused
    from neurodeploy.ir import Dense as DenseOp
    from neurodeploy.ir import Graph, TensorType
    from neurodeploy.ir.neurons import IF as IFOp

    rng = np.random.default_rng(0)
    ops = [
        DenseOp(name="in", inputs=("x",), output="a", weight=np.eye(8192, 16, dtype=np.float32)),
        IFOp(name="if0", inputs=("a",), output="s0", threshold=np.float32(1)),
        DenseOp(
            name="wide", inputs=("s0",), output="b", weight=(rng.normal(size=(2400, 8192)) * 0.02).astype(np.float32)
        ),
        IFOp(name="if1", inputs=("b",), output="s1", threshold=np.float32(1)),
        DenseOp(name="out", inputs=("s1",), output="y", weight=(rng.normal(size=(3, 2400)) * 0.1).astype(np.float32)),
    ]
    graph = Graph("wide", {"x": TensorType((16,))}, ["y"], ops)
    calibration = rng.random((4, 16)).astype(np.float32)
    backend = Loihi2Backend()
    with pytest.raises(Refused, match=r"--target-option chips=2"):
        backend.plan(CompiledModel(snn=graph, calibration=calibration))
    model = CompiledModel(snn=graph, calibration=calibration, options={"target_options": {"chips": 2}})
    emitted = backend.emit(backend.plan(model), tmp_path)
    chips = emitted.report["chips"]
    assert (chips["available"], chips["used"]) == (2, 2)
    (route,) = chips["interchip"]
    assert (route["from_chip"], route["to_chip"]) == (0, 1)
    assert route["routes"] == 23 * 8192 + 2032
    assert route["messages_per_sample"] > 0


def _links_by_brute_force(network: Network, cores: list) -> tuple[dict, dict, dict]:
    """Per core its fan-in and fan-out, and per ordered pair of chips the routes and messages, from every
    synapse's full (n_out, n_in) connectivity and every core's neuron mask: no geometry of the placement's own."""
    from neurodeploy_loihi.emulator import SparseSynapse

    def connected(synapse) -> np.ndarray:
        if isinstance(synapse, ConvSynapse):
            return _connectivity(synapse)
        if isinstance(synapse, SparseSynapse):
            out = np.zeros(synapse.shape, bool)
            out[synapse.rows, synapse.cols] = True
            return out
        return np.ones(synapse.weights.shape, bool)

    layers = {layer.name: (k, layer) for k, layer in enumerate(network.layers)}
    fan_in, fan_out, routes = {c.core: 0 for c in cores}, {c.core: 0 for c in cores}, {}
    for dst in cores:
        j, layer = layers[dst.layer]
        for source, synapse, _ in layer.inbound(j):
            reads = connected(synapse)[dst.mask(layer.shape).reshape(-1)].any(axis=0)
            fan_in[dst.core] += int(reads.sum())
            below = network.layers[source]
            for src in (c for c in cores if c.layer == below.name):
                crossing = reads & src.mask(below.shape).reshape(-1)
                fan_out[src.core] += bool(crossing.any())
                if crossing.any() and src.chip != dst.chip:
                    entry = routes.setdefault((src.chip, dst.chip), [0, 0.0])
                    entry[0] += int(crossing.sum())
                    entry[1] += float((np.arange(crossing.size) % 7 * 0.25)[crossing].sum())
    return fan_in, fan_out, routes


def test_fan_in_fan_out_and_routes_equal_a_brute_force_count_on_many_small_cores(monkeypatch) -> None:
    # cores of 40 neurons and chips of 3 cores: an input population (range tiles), a convolution with a listed
    # skip from it (channel x position tiles), and a listed population reading the convolution (range tiles)
    import neurodeploy_loihi.resources as resources
    from neurodeploy_loihi.emulator import Skip, SparseSynapse
    from neurodeploy_loihi.resources import interchip_routes

    monkeypatch.setattr(resources, "NEURONS_PER_CORE", 40)
    monkeypatch.setattr(resources, "CORES_PER_CHIP", 3)
    rng = np.random.default_rng(4)

    def listed(n_out: int, n_in: int, count: int) -> SparseSynapse:
        pairs = np.unique(rng.integers(0, [n_out, n_in], size=(count, 2)), axis=0)
        return SparseSynapse(pairs[:, 0], pairs[:, 1], np.ones(len(pairs), np.int64), (n_out, n_in))

    conv = ConvSynapse(np.ones((6, 3, 3, 4), np.int64), (8, 8, 4), padding=(1, 1))
    network = Network(
        [
            Layer(None, IF, "in", population_shape=(8, 8, 4)),
            Layer(conv, IF, "conv", skips=(Skip(0, listed(384, 256, 300)),)),
            Layer(listed(90, 384, 500), IF, "list"),
        ]
    )
    cores = place(network, ["in", "conv", "list"])
    assert {c.layer for c in cores if c.channels is not None} == {"conv"}
    assert len({c.chip for c in cores}) > 5
    fan_in, fan_out, routes = _links_by_brute_force(network, cores)
    assert [c.fan_in for c in cores] == [fan_in[c.core] for c in cores]
    assert [c.fan_out for c in cores] == [fan_out[c.core] for c in cores]
    rates = [(np.arange(int(np.prod(layer.shape))) % 7 * 0.25).reshape(layer.shape) for layer in network.layers]
    assert interchip_routes(network, ["in", "conv", "list"], cores, rates) == [
        {"from_chip": a, "to_chip": b, "routes": count, "messages_per_sample": round(messages, 3)}
        for (a, b), (count, messages) in sorted(routes.items())
    ]
