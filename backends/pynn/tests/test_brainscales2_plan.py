"""Planning for BrainScaleS-2 (``neurodeploy_pynn.brainscales2``): 6-bit words worked out by hand, biases as
spike sources, synapse rows per hemisphere (a source with weights of both signs takes two), the placement, each
resource error with its limit, the netlist written and read back, and mutated netlists refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from neurodeploy_pynn import brainscales2 as bss2
from neurodeploy_pynn.brainscales2 import layer_lsb, quantize, round_half_away

from neurodeploy.errors import ArtifactError, ResourceError
from neurodeploy.ir import Add, Conv2d, Dense, Graph, Reshape, Scale, TensorType
from neurodeploy.ir.neurons import IF


def neurons(name: str, value: str, output: str) -> IF:
    return IF(name=name, inputs=(value,), output=output, threshold=np.float32(1), reset="zero")


def chain(n_in: int, layers: list[tuple[np.ndarray, np.ndarray | None]]) -> Graph:
    """A converted SNN: input neurons on x, then Dense + IF per layer, the last Dense the (membrane) readout."""
    ops = [neurons("in", "x", "s0")]
    value = "s0"
    for i, (w, b) in enumerate(layers):
        out = "y" if i == len(layers) - 1 else f"a{i + 1}"
        ops.append(Dense(name=f"d{i + 1}", inputs=(value,), output=out, weight=w, bias=b))
        if i < len(layers) - 1:
            ops.append(neurons(f"h{i + 1}", out, f"s{i + 1}"))
            value = f"s{i + 1}"
    graph = Graph("t", {"x": TensorType((n_in,))}, ["y"], ops)
    graph.verify()
    return graph


def signed(n_out: int, n_in: int) -> np.ndarray:
    """Weights where every input has a positive weight onto neuron 0 and a negative one onto neuron 1."""
    w = np.full((n_out, n_in), 0.25, np.float32)
    w[1::2] = -0.25
    return w


def readout(n_in: int) -> tuple[np.ndarray, None]:
    return np.full((1, n_in), 0.5, np.float32), None


# -- quantization --------------------------------------------------------------------------------------------


def test_six_bit_words_round_half_away_from_zero():
    """lsb = 63 / max|w| = 64; w * 64 = 63, -0.5, 0.5, 1.5, -2.5, 0.125, 0 -> 63, -1, 1, 2, -3, 0, 0 (half to even
    would give 0, 0, 2, -2). One nonzero weight became 0; the largest error is half an LSB, 1/128."""
    w = np.array([63 / 64, -1 / 128, 1 / 128, 3 / 128, -5 / 128, 1 / 512, 0.0])
    assert layer_lsb([w]) == 64.0
    q = quantize(w, 64.0)
    assert q.words.tolist() == [63, -1, 1, 2, -3, 0, 0]
    assert (q.zeroed, q.clipped) == (1, 0)
    assert q.max_error == 1 / 128
    assert round_half_away(np.array([0.5, -0.5, 2.5, -2.5, 0.49])).tolist() == [1, -1, 3, -3, 0]


def test_words_beyond_63_are_clamped_and_counted():
    q = quantize(np.array([1.0, -2.0, 0.5]), 40.0)
    assert q.words.tolist() == [40, -63, 20]
    assert q.clipped == 1
    assert q.max_error == pytest.approx(2.0 - 63 / 40)


def test_a_planned_layer_holds_the_hand_computed_words_and_its_bias_as_sources():
    """Layer 1: w = [[63/64, -1/128, 0], [3/128, -5/128, 1/512]] (lsb 64) gives excitatory 63 (in0 -> h0), 2
    (in0 -> h1), inhibitory 1 (in1 -> h0), 3 (in1 -> h1); 1/512 becomes 0. Bias [70/64, -1/128] is 70 and -1 LSB:
    70 = 63 + 7 on two bias sources. Rows of the hidden hemisphere: in0 and in1 one sign each (2), bias source 0
    both signs (2), bias source 1 one (1): 5. The readout (w = [0.5, -0.25], lsb 126: 63 and -31.5 -> -32) takes
    2 rows; it goes to the other hemisphere, where the fuller one has the fewest rows."""
    w1 = np.array([[63 / 64, -1 / 128, 0], [3 / 128, -5 / 128, 1 / 512]], np.float32)
    b1 = np.array([70 / 64, -1 / 128], np.float32)
    w2 = np.array([[0.5, -0.25]], np.float32)
    netlist = bss2.plan(chain(3, [(w1, b1), (w2, None)]))
    hidden, out = netlist.populations
    assert (hidden.lsb, out.lsb) == (64.0, 126.0)
    by_name = {q.name: q for q in netlist.projections}
    exc, inh = by_name["d1:excitatory"], by_name["d1:inhibitory"]
    assert sorted(zip(exc.pre_index.tolist(), exc.post_index.tolist(), exc.weights.tolist())) == [
        (0, 0, 63),
        (0, 1, 2),
    ]
    assert sorted(zip(inh.pre_index.tolist(), inh.post_index.tolist(), inh.weights.tolist())) == [
        (1, 0, 1),
        (1, 1, 3),
    ]
    assert exc.report["zeroed"] == 1
    assert inh.report["zeroed"] == 0
    assert exc.report["max_error"] == 1 / 128  # 3/128 is 1.5 LSB, written as 2
    bias = {s.name: s for s in netlist.sources}["h1/bias"]
    assert (bias.kind, bias.size) == ("bias", 2)
    b_exc, b_inh = by_name["h1/bias:excitatory"], by_name["h1/bias:inhibitory"]
    assert sorted(zip(b_exc.pre_index.tolist(), b_exc.post_index.tolist(), b_exc.weights.tolist())) == [
        (0, 0, 63),
        (1, 0, 7),
    ]
    assert list(zip(b_inh.pre_index.tolist(), b_inh.post_index.tolist(), b_inh.weights.tolist())) == [(0, 1, 1)]
    assert by_name["d2:excitatory"].weights.tolist() == [63]
    assert by_name["d2:inhibitory"].weights.tolist() == [32]
    assert hidden.hemisphere == (2, 0)
    assert out.hemisphere == (0, 1)
    assert netlist.rows == (5, 2)
    # the gain makes an LSB worth 1/lsb threshold: the largest weight moves V by 63 LSB = 1/lsb * 63 thresholds
    assert hidden.gain * hidden.lsb == hidden.threshold == hidden.parameters["v_thresh"] - hidden.parameters["v_reset"]
    assert hidden.parameters["v_rest"] == hidden.parameters["v_reset"] + 0.5 * hidden.threshold


def test_parameters_are_within_the_published_ranges():
    netlist = bss2.plan(chain(4, [(signed(6, 4), np.full(6, 0.1, np.float32)), readout(6)]))
    for p in netlist.populations:
        for key, value in p.parameters.items():
            low, high = bss2.RANGES[key]
            assert low <= value <= high, (p.name, key, value)


# -- rows, placement and resource errors --------------------------------------------------------------------


def test_128_signed_sources_fill_a_hemisphere_and_129_do_not():
    netlist = bss2.plan(chain(128, [(signed(4, 128), None), readout(4)]))
    assert netlist.rows[netlist.populations[0].hemisphere.index(4)] == 256
    with pytest.raises(ResourceError) as err:
        bss2.plan(chain(129, [(signed(4, 129), None), readout(4)]))
    message = str(err.value)
    for part in ("'h1'", "258 synapse rows", "129 sources of 'in' (129 with weights of both signs)", "256 rows"):
        assert part in message


def test_256_sources_of_one_sign_fit():
    w = np.full((4, 256), 0.25, np.float32)
    netlist = bss2.plan(chain(256, [(w, None), readout(4)]))
    assert max(netlist.rows) == 256
    with pytest.raises(ResourceError, match="257 synapse rows"):
        bss2.plan(chain(257, [(np.full((4, 257), 0.25, np.float32), None), readout(4)]))


def test_too_many_neurons_for_the_chip():
    """Spiking layers beyond 512 are refused before any lowering; a readout that tips the count over, after it."""
    with pytest.raises(ResourceError) as err:
        bss2.plan(chain(8, [(signed(600, 8), None), readout(600)]))
    message = str(err.value)
    assert "needs at least 600 neurons" in message
    for part in ("'h1': 600", "512 neuron circuits", "2 hemispheres of 256", "remove 88"):
        assert part in message
    with pytest.raises(ResourceError) as err:
        bss2.plan(chain(8, [(signed(500, 8), None), (np.full((20, 500), 0.5, np.float32), None)]))
    message = str(err.value)
    assert "needs 520 neurons" in message
    for part in ("'h1': 500", "'d2': 20", "512 neuron circuits", "remove 8"):
        assert part in message


def test_a_population_of_more_than_256_neurons_spans_both_hemispheres():
    """300 neurons: 256 fill hemisphere 0 with their 2 x 20 rows, 44 go on in hemisphere 1, where the same 20 signed
    sources need their rows again; the readout (300 signed sources: too many rows for one hemisphere) cannot fit,
    so a spike readout is used (no readout population)."""
    w = signed(300, 20)
    ops = [
        neurons("in", "x", "s0"),
        Dense(name="d1", inputs=("s0",), output="a1", weight=w),
        neurons("h1", "a1", "s1"),
    ]

    ops.append(Scale(name="out", inputs=("s1",), output="y", value=np.float32(2.0)))
    graph = Graph("t", {"x": TensorType((20,))}, ["y"], ops)
    graph.verify()
    netlist = bss2.plan(graph)
    (hidden,) = netlist.populations
    assert hidden.hemisphere == (256, 44)
    assert netlist.rows == (40, 40)
    assert netlist.readout["kind"] == "spikes"


def test_no_placement_when_three_populations_need_rows_in_two_hemispheres():
    """Three populations of 100 neurons, each fed by 100 signed sources (200 rows): two must share a hemisphere,
    and 400 rows do not fit in 256."""
    with pytest.raises(ResourceError) as err:
        bss2.plan(chain(100, [(signed(100, 100), None), (signed(100, 100), None), (signed(10, 100), None)]))
    message = str(err.value)
    assert "no placement" in message
    assert "256 neurons and 256 synapse rows each" in message
    assert "400 synapse rows" in message


def test_a_residual_branch_maps_without_a_delay():
    """h3 sums a branch from h2 (depth 2) and a skip from h1 (depth 1): the lowering delays the skip one step (one
    step per synapse); here synapses take an integration step, so the projection keeps delay 0 and the note
    says so."""
    rng = np.random.default_rng(0)
    ops = [
        neurons("in", "x", "s0"),
        Dense(name="d1", inputs=("s0",), output="a1", weight=rng.normal(size=(6, 4)).astype(np.float32)),
        neurons("h1", "a1", "s1"),
        Dense(name="d2", inputs=("s1",), output="a2", weight=rng.normal(size=(6, 6)).astype(np.float32)),
        neurons("h2", "a2", "s2"),
        Dense(name="d3", inputs=("s2",), output="a3", weight=rng.normal(size=(6, 6)).astype(np.float32)),
        Dense(name="skip", inputs=("s1",), output="k", weight=rng.normal(size=(6, 6)).astype(np.float32)),
        Add(name="add", inputs=("a3", "k"), output="a4"),
        neurons("h3", "a4", "s3"),
        Dense(name="d4", inputs=("s3",), output="y", weight=rng.normal(size=(2, 6)).astype(np.float32)),
    ]
    graph = Graph("t", {"x": TensorType((4,))}, ["y"], ops)
    graph.verify()
    netlist = bss2.plan(graph)
    assert any("h3/skip0" in note and "delay of 1" in note for note in netlist.notes)
    h3 = netlist.index("h3")
    assert {q.pre for q in netlist.projections if q.post == h3} == {"h1", "h2"}


# -- the netlist files ---------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(12, 10)).astype(np.float32) * 0.4
    b1 = rng.normal(size=12).astype(np.float32) * 0.05
    w2 = rng.normal(size=(3, 12)).astype(np.float32)
    netlist = bss2.plan(chain(10, [(w1, b1), (w2, np.array([0.1, -0.2, 0.0], np.float32))]))
    folder = tmp_path / "n"
    folder.mkdir()
    files = bss2.save(netlist, folder)
    return netlist, folder, files


def test_the_netlist_round_trips(saved):
    netlist, folder, files = saved
    assert files == ["brainscales2.json", "brainscales2.npz", "host.json", "host.npz", "run_pynn.py"]
    again = bss2.load(folder)
    assert [(s.name, s.kind, s.size) for s in again.sources] == [(s.name, s.kind, s.size) for s in netlist.sources]
    for a, b in zip(again.populations, netlist.populations):
        assert (a.name, a.role, a.shape, a.parameters, a.threshold, a.lsb, a.depth, a.hemisphere) == (
            b.name,
            b.role,
            b.shape,
            b.parameters,
            b.threshold,
            b.lsb,
            b.depth,
            b.hemisphere,
        )
    for a, b in zip(again.projections, netlist.projections):
        assert (a.name, a.pre, a.post, a.receptor) == (b.name, b.pre, b.post, b.receptor)
        for key in ("pre_index", "post_index", "weights"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert again.rows == netlist.rows
    x = np.random.default_rng(4).uniform(0, 1, (5, 10)).astype(np.float32)
    first, second = bss2.run(netlist, x, 20, checkpoints=(5,)), bss2.run(again, x, 20, checkpoints=(5,))
    np.testing.assert_array_equal(first["outputs"], second["outputs"])
    np.testing.assert_array_equal(first["checkpoints"][5], second["checkpoints"][5])
    doc = json.loads((folder / "brainscales2.json").read_text())
    assert doc["version"] == bss2.FORMAT_VERSION
    assert {q["delay"] for q in doc["projections"]} == {0}


def _mutated(folder, edit):
    path = folder / "brainscales2.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["projections"][0].update(delay=1), "delay 1"),
        (lambda d: d["populations"][0]["parameters"].update(tau_m=100.0), "tau_m"),
        (lambda d: d["populations"][0]["parameters"].update(v_thresh=230), "v_thresh"),
        (lambda d: d["projections"][0].update(post="nowhere"), "names no population"),
        (lambda d: d["populations"][0].update(hemisphere_neurons=[3, 3]), "places"),
        (lambda d: d["rows"].__setitem__(0, 7), "synapse rows"),
        (lambda d: d["chip"].update(weight_bits=8), "weight_bits"),
        (lambda d: d.update(version=2), "v1"),
        (lambda d: d["readout"].update(population="nowhere"), "readout"),
        (lambda d: d["readout"].update(shape=[7]), "readout's shape"),
        (lambda d: d["sources"][1].update(size=10**6), "bias source"),
        (lambda d: d["populations"][0].update(depth=10**9), "depth"),
        (lambda d: d["timing"].update(substeps=10**6), "substeps"),
    ],
    ids=[
        "delay",
        "tau_m",
        "v_thresh",
        "post",
        "hemisphere",
        "rows",
        "bits",
        "version",
        "readout",
        "shape",
        "source",
        "depth",
        "substeps",
    ],
)
def test_a_mutated_netlist_is_refused_naming_the_field(saved, edit, message):
    _, folder, _ = saved
    _mutated(folder, edit)
    with pytest.raises(ArtifactError, match=message):
        bss2.load(folder)


def test_weights_beyond_six_bits_are_refused(saved):
    netlist, folder, _ = saved
    netlist.projections[0].weights = netlist.projections[0].weights.copy()
    netlist.projections[0].weights[0] = 64
    bss2.save(netlist, folder)
    with pytest.raises(ArtifactError, match=r"weights holds values outside \[1, 63\]"):
        bss2.load(folder)


def conv_net(side: int, kernel: np.ndarray, stride: int) -> Graph:
    """Input neurons on a 1 x side x side image, a convolution (padding 1) to IF neurons, a Dense readout."""
    conv = Conv2d(name="conv", inputs=("s0",), output="c", weight=kernel, padding=(1, 1, 1, 1), stride=(stride, stride))
    out = (side + 2 - kernel.shape[2]) // stride + 1
    n = kernel.shape[0] * out * out
    ops = [
        neurons("in", "x", "s0"),
        conv,
        neurons("h", "c", "s1"),
        Reshape(name="flat", inputs=("s1",), output="f", shape=(n,)),
        Dense(name="d", inputs=("f",), output="y", weight=np.full((2, n), 0.5, np.float32)),
    ]
    graph = Graph("t", {"x": TensorType((1, side, side))}, ["y"], ops)
    graph.verify()
    return graph


def test_a_small_convolution_maps_as_its_taps():
    """6x6 input, two 3x3 kernels of both signs: every pixel reaches both channels, once through a positive and
    once through a negative tap, so it takes 2 rows (72 in all); the synapses are the taps inside the image."""
    kernel = np.zeros((2, 1, 3, 3), np.float32)
    kernel[0, 0, 1, 1], kernel[1, 0, 1, 1] = 0.5, -0.5
    kernel[0, 0, 0, 0] = 0.25
    netlist = bss2.plan(conv_net(6, kernel, 1))
    hidden = netlist.populations[0]
    assert hidden.shape == (2, 6, 6)
    taps = sum(len(q.weights) for q in netlist.projections if q.post == 0)
    assert taps == 36 + 36 + 25  # both centres everywhere, the corner tap where it falls inside
    assert netlist.rows[0 if hidden.hemisphere[0] else 1] == 72
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 6, 6)).astype(np.float32)
    assert bss2.run(netlist, x, 8)["outputs"].shape == (2, 2)


def test_a_convolution_with_too_many_sources_is_refused():
    """A 20x20 input (400 pixel sources, positive weights: a row each) into 11 x 11 neurons needs 400 rows."""
    kernel = np.full((1, 1, 2, 2), 0.25, np.float32)
    with pytest.raises(ResourceError, match=r"'h' \(121 neurons\) needs 400 synapse rows"):
        bss2.plan(conv_net(20, kernel, 2))
