"""Quantization to Loihi 2 fixed point, checked against values derived by hand from the rules in quantize.py's
docstring, and the errors for values the chip's fields cannot hold."""

import numpy as np
import pytest
from loihi_graphs import dense_net, small_cnn
from neurodeploy_loihi import _compiled
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import DenseSynapse
from neurodeploy_loihi.lowering import lower
from neurodeploy_loihi.quantize import Options, QuantizationError, input_bias, quantize, split_bias, to_lava

W1 = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
W2 = np.array([[0.5, -0.25], [1.0, 0.125]])
B2 = np.array([0.01, -0.02])


def test_hand_derived_integers_of_a_tiny_dense_network() -> None:
    q = quantize(lower(dense_net(W1, W2, B2)), readout_range=2.0, options=Options())
    inp, hidden, readout = q.network.layers

    # input population: the largest bias 4095 << 7 = 524160 bounds the threshold: vth = (524160 - 1) >> 6 = 8189,
    # threshold 8189 << 6 = 524096; v0 = round(0.5 * 524096) + 1 = 262049 (the +1 turns Loihi's v > θ into v >= θ)
    assert inp.synapse is None
    assert (inp.neuron.vth, inp.neuron.v0, inp.neuron.kind) == (8189, 262049, "subtractive")
    assert (inp.neuron.du, inp.neuron.dv) == (4095, 0)  # integrate-and-fire: u holds one step's input, v no leak
    assert q.input_vth == 8189
    assert q.input_clip == (-524096, 524160)

    # hidden: MIXED weights, largest |W| = 1 threshold -> vth = floor(254 / 1) = 254, weight_exp 0,
    # R = 254 << 6 = 16256, integer weight = W * 254 on the even grid: 127 -> 128 (63.5 rounds to 64, then x2),
    # -63.5 -> -64, 254 -> 254, 31.75 -> 32
    syn = hidden.synapse
    assert isinstance(syn, DenseSynapse)
    assert (hidden.neuron.vth, syn.weight_exp, syn.num_weight_bits, syn.sign_mode) == (254, 0, 8, fp.SignMode.MIXED)
    np.testing.assert_array_equal(syn.weights, [[128, -64], [254, 32]])
    assert q.scales[1] == 16256
    # bias: round(0.01 * 16256) = round(162.56) = 163, round(-0.02 * 16256) = round(-325.12) = -325, exponent 0
    np.testing.assert_array_equal(hidden.neuron.bias_mant, [163, -325])
    np.testing.assert_array_equal(hidden.neuron.bias_exp, [0, 0])
    # v0: round(0.5 * 16256) + 1 = 8129; the synapse delays the first input by one step, and the SubtractiveLIF
    # delays its bias with it (bias_start = 1) rather than lowering v0 by one step of bias (Lava's LIF, below)
    np.testing.assert_array_equal(hidden.neuron.v0, 8129)
    assert hidden.neuron.bias_start == 1

    # readout: v must hold 256 steps of twice the range 2.0: limit = (2**23 - 1) / 1024 = 8191.999...;
    # identity weights are EXCITATORY (top 255): weight_exp = floor(log2(8191.999 / (255 * 64))) = -1,
    # scale = 255 * 64 / 2 = 8160, integer weights 255; no spikes (vth at its 17-bit maximum), reset to zero
    syn = readout.synapse
    assert (syn.weight_exp, syn.sign_mode, readout.neuron.vth) == (-1, fp.SignMode.EXCITATORY, 131071)
    np.testing.assert_array_equal(syn.weights, [[255, 0], [0, 255]])
    assert q.scales[2] == 8160
    assert readout.neuron.kind == "lif"
    assert readout.neuron.v0 == 0

    # the per-layer report
    entry = q.report[1]
    assert entry["synapse"]["weights"] == {
        "count": 4,
        "zeroed": 0,
        "zeroed_fraction": 0.0,
        "clipped": 0,
        "max_abs": 254,
    }
    assert entry["v0"] == {"prefill_steps": 1, "clipped": 0}
    assert entry["bias_start"] == 1
    assert entry["synapse"]["u_worst_case"] == (254 + 32) * 64  # every input spiking, the worst row


def test_weights_beyond_254_thresholds_take_a_positive_weight_exp() -> None:
    # largest |W| = 1000 thresholds: weight_exp = ceil(log2(1000 / 254)) = 2, vth = floor(254 * 4 / 1000) = 1;
    # integer weight = W * 64 / 64 / 4 = W / 4 on the even grid: 250, -2.5 -> -2, 125 -> 124 (62.5 -> 62), 0.75 -> 0
    w2 = np.array([[1000.0, -10.0], [500.0, 3.0]])
    q = quantize(lower(dense_net(W1, w2)), readout_range=2.0, options=Options())
    hidden = q.network.layers[1]
    assert (hidden.neuron.vth, hidden.synapse.weight_exp) == (1, 2)
    np.testing.assert_array_equal(hidden.synapse.weights, [[250, -2], [124, 0]])
    assert q.report[1]["synapse"]["weights"]["zeroed"] == 1  # the 3 fell below the grid's step


def test_tiny_weights_cap_vth_at_its_17_bit_maximum() -> None:
    q = quantize(lower(dense_net(W1, W2 * 1e-4)), readout_range=2.0, options=Options())
    hidden = q.network.layers[1]
    assert hidden.neuron.vth == (1 << 17) - 1
    # 0.5e-4 * 131071 = 6.55 -> 6 (even grid), -0.25e-4 * 131071 = -3.28 -> -4, 1e-4 * 131071 = 13.1 -> 14
    np.testing.assert_array_equal(hidden.synapse.weights[:, 0], [6, 14])
    assert hidden.synapse.weights[0, 1] == -4


def test_netx_profile_keeps_v0_at_zero_and_bias_exp_at_6() -> None:
    q = quantize(lower(dense_net(W1, W2, B2 * 100, reset="zero")), readout_range=2.0, options=Options(netx=True))
    inp, hidden, _ = q.network.layers
    assert inp.neuron.v0 == 0
    assert inp.neuron.kind == "lif"
    # the input's largest bias is 4095 << 6 = 262080: vth = 262079 >> 6 = 4094
    assert q.input_vth == 4094
    assert q.input_bias_exp == 6
    assert hidden.neuron.v0 == 0
    np.testing.assert_array_equal(hidden.neuron.bias_exp, [6, 6])
    # bias 1 and -2 thresholds: round(16256 / 64) = 254, round(-32512 / 64) = -508
    np.testing.assert_array_equal(hidden.neuron.bias_mant, [254, -508])


@pytest.fixture(params=["compiled", "numpy"])
def split_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """split_bias runs a compiled loop where numba is installed and numpy otherwise: both are tested."""
    if request.param == "compiled" and _compiled.kernels() is None:
        pytest.skip("numba is not installed")
    if request.param == "numpy":
        monkeypatch.setattr(_compiled, "kernels", lambda: None)
    return request.param


def test_split_bias_takes_the_smallest_exponent_that_holds_the_mantissa(split_path: str) -> None:
    mant, exp, clipped = split_bias(np.array([4095, 4096, -4096, -4097, 100000, 4095 << 7, 1 << 30]))
    np.testing.assert_array_equal(exp, [0, 1, 0, 1, 5, 7, 7])
    np.testing.assert_array_equal(mant, [4095, 2048, -4096, -2048, 3125, 4095, 4095])
    assert clipped == 1  # 2**30 does not fit even at exponent 7: saturated, counted


def test_split_bias_exponent_is_the_first_that_fits_at_every_rounding_edge(split_path: str) -> None:
    """The exponent split_bias computes (from the binary exponent, then one up or down) against its definition:
    try 0, 1, ..., 7 and keep the first whose rounded mantissa fits 13 bits; at the edges where rounding half to
    even carries a mantissa to 4096, where -4096 fits, and over random magnitudes."""
    rng = np.random.default_rng(3)
    edges = [0, 0.5, -0.5, 2.5, 4095, 4095.49, 4095.5, -4096, -4096.5, -4097, 8191, 8191.5, -8192, -8193]
    edges += [4095 * 128, 4095 * 128 + 63.9, 4095 * 128 + 64, -4096 * 128, -4096 * 128 - 64, -4096 * 128 - 65, 1e9]
    b = np.concatenate(
        [edges, rng.normal(0, 1e4, 20000), rng.normal(0, 1e6, 20000), np.rint(rng.normal(0, 1e5, 20000)) + 0.5]
    )
    b = np.concatenate([b, -b, b * 2.0 ** rng.integers(-3, 4, len(b))])
    want = np.full(b.shape, 7)
    for e in range(7, -1, -1):
        mant = np.rint(b / 2.0**e)
        want = np.where((mant >= -4096) & (mant <= 4095), e, want)
    mant, exp, clipped = split_bias(b)
    np.testing.assert_array_equal(exp, want)
    np.testing.assert_array_equal(mant, np.clip(np.rint(b / 2.0**want), -4096, 4095))
    top = np.rint(b / 2.0**7)
    assert clipped == np.count_nonzero((top > 4095) | (top < -4096)) > 0
    for fixed in (0, 5):  # one exponent for all: the mantissas rounded and clipped
        mant, exp, _ = split_bias(b, fixed)
        assert (exp == fixed).all()
        np.testing.assert_array_equal(mant, np.clip(np.rint(b / 2.0**fixed), -4096, 4095))


def test_input_current_is_clipped_to_one_threshold_below_and_the_largest_bias_above() -> None:
    mant, exp = input_bias(np.array([[-3.0, 0.25, 1.5]]), (3,), vth=8189, clip=(-524096, 524160), fixed_exp=None)
    total = fp.effective_bias(mant, exp)
    # -3 thresholds clip to -524096 = -4094.5 << 7, whose mantissa rounds half to even: -4094 << 7 = -524032 (a
    # negative current never fires either way); 0.25 * 524096 = 131024 = 4094.5 << 5 -> 4094 << 5 = 131008;
    # 1.5 thresholds clip to the largest bias, 4095 << 7 = 524160
    np.testing.assert_array_equal(total, [[-524032, 131008, 524160]])
    np.testing.assert_array_equal(exp, [[7, 5, 7]])


def test_a_bias_past_what_the_weights_vth_holds_lowers_vth_hand_derived() -> None:
    """A bias of 100 thresholds per step at the weights' vth 254 needs 100 * (254 << 6) = 1625600 > 4095 << 7: vth
    falls to what the bias allows with a quarter of the field left for the bias correction,
    floor(524160 * 0.75 / (100 * 64)) = 61, and the weights keep fewer bits."""
    from neurodeploy_loihi.backend import _bias_warnings

    q = quantize(lower(dense_net(W1, W2, np.array([100.0, 0.0]))), readout_range=2.0, options=Options())
    hidden = q.network.layers[1]
    assert (hidden.neuron.vth, hidden.synapse.weight_exp) == (61, 0)
    # W2 * 61 = [[30.5, -15.25], [61, 7.625]] on the even grid: 2 * rint(v / 2) = [[30, -16], [60, 8]]
    np.testing.assert_array_equal(hidden.synapse.weights, [[30, -16], [60, 8]])
    # bias 100 * (61 << 6) = 390400 = 3050 << 7
    np.testing.assert_array_equal(hidden.neuron.bias_mant, [3050, 0])
    assert hidden.neuron.bias_exp[0] == 7
    assert q.report[1]["vth_lowered_for_bias"].startswith("vth 61, below the 254 its weights allow")
    assert "vth_lowered_for_bias" not in q.report[0]
    (warning,) = _bias_warnings(q.report)
    assert warning.startswith("1 layer(s) (if2) have a vth below what their weights allow")


def test_a_bias_that_vth_1_cannot_hold_names_the_layer_the_field_and_the_limit() -> None:
    with pytest.raises(QuantizationError, match=r"layer 'if2': a bias of 1e\+04 thresholds per step needs more than "):
        quantize(lower(dense_net(W1, W2, np.array([1e4, 0.0]))), readout_range=2.0, options=Options())


def test_a_bias_correction_past_the_bias_field_is_clipped_there_and_reported() -> None:
    """32768 inputs at rate 1 through equal weights of 0.45 integer units each (at vth 131071, where tiny weights
    put it): each rounds to 0 and the correction would be 0.45 * 64 * 32768 = 943718 > 4095 << 7 = 524160, in
    integer units whatever vth is. The correction is clipped at the field's range, not the layer refused."""
    from neurodeploy_loihi.backend import _bias_warnings
    from neurodeploy_loihi.floats import mean_rates

    n = 32768
    w1 = np.ones((n, 1), np.float32)
    w2 = np.full((2, n), 0.45 / 131071, np.float32)
    lowered = lower(dense_net(w1, w2, np.zeros(2, np.float32)))
    rates = mean_rates(lowered, np.ones((4, 1), np.float32))
    assert rates[0].min() == 1.0
    q = quantize(lowered, 4.0, Options(means=rates))
    hidden = q.network.layers[1]
    assert hidden.neuron.vth == 131071
    assert not hidden.synapse.weights.any()  # every weight rounded to 0
    np.testing.assert_array_equal(fp.effective_bias(hidden.neuron.bias_mant, hidden.neuron.bias_exp), [524160] * 2)
    assert q.report[1]["bias_correction"]["clipped"] == 2
    (warning,) = _bias_warnings(q.report)
    assert warning.startswith("1 layer(s) (if2) have a bias correction")
    plain = quantize(lowered, 4.0, Options())  # without calibration rates: no correction, nothing clipped
    assert not plain.network.layers[1].neuron.bias_mant.any()
    assert _bias_warnings(plain.report) == []


def test_weights_beyond_the_weight_exponent_name_the_layer_the_field_and_the_limit() -> None:
    with pytest.raises(QuantizationError, match=r"layer 'if2': weight_exp 12 .* exceeds the limit 7"):
        quantize(lower(dense_net(W1, W2 * 1e6)), readout_range=2.0, options=Options())


def test_a_conv_spike_worth_more_than_254_thresholds_names_the_layer_and_the_limit() -> None:
    graph = small_cnn()
    conv2 = next(op for op in graph.ops if op.name == "conv2")
    conv2.weight = conv2.weight * np.float32(1e5)
    with pytest.raises(QuantizationError, match=r"layer 'if2': a single spike is worth .* more than the 254 .*Conv"):
        quantize(lower(graph), readout_range=2.0, options=Options())


# -- bias correction -----------------------------------------------------------------------------------------


def _dequantized(q, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Population k's Dense weights and bias back in thresholds (flat populations: Lava's order is the graph's)."""
    layer = q.network.layers[k]
    scale = q.scales[k]
    w = layer.synapse.effective_weights * 2.0**layer.synapse.weight_exp * 64 / scale
    b = np.broadcast_to(fp.effective_bias(layer.neuron.bias_mant, layer.neuron.bias_exp), layer.shape) / scale
    return w, b


def test_bias_correction_takes_the_weights_mean_rounding_error_back_from_the_bias() -> None:
    """With the calibration rates m of the population below, the corrected integer network's mean input W_q m + b'
    equals the float network's W m + b up to the bias's own rounding, where the uncorrected one is off by the
    rounding of the weights (a dense net whose weights fall between the 8-bit grid's points)."""
    from neurodeploy_loihi.floats import mean_rates

    rng = np.random.default_rng(11)
    w1 = rng.uniform(0.0, 0.25, (12, 6)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (5, 12)).astype(np.float32)
    w2[0, 0] = 2.0  # the largest weight sets vth = floor(254 / 2) = 127: the grid step is 2/127 thresholds
    b2 = rng.normal(0, 0.05, 5).astype(np.float32)
    lowered = lower(dense_net(w1, w2, b2))
    x = rng.random((256, 6)).astype(np.float32)
    rates = mean_rates(lowered, x)
    np.testing.assert_allclose(rates[0], np.clip(x @ w1.T, 0, 1).mean(axis=0), rtol=1e-6)
    assert rates[0].min() > 0.2
    assert rates[0].max() < 0.9
    plain = quantize(lowered, 4.0, Options())
    corrected = quantize(lowered, 4.0, Options(means=rates))
    want = w2.astype(np.float64) @ rates[0] + b2
    errors = {}
    for name, q in (("plain", plain), ("corrected", corrected)):
        w, b = _dequantized(q, 1)
        errors[name] = np.abs(w @ rates[0] + b - want)
    bias_lsb = 1 / corrected.scales[1]  # bias_exp 0 here: one integer unit of v
    assert errors["corrected"].max() <= 0.5 * bias_lsb + 1e-9
    assert errors["plain"].max() > 20 * bias_lsb  # what the weights' rounding moved
    entry = corrected.report[1]["bias_correction"]
    assert entry["max_abs"] == pytest.approx(errors["plain"].max(), abs=bias_lsb)
    assert "bias_correction" not in plain.report[1]


def test_bias_correction_target_option() -> None:
    from neurodeploy_loihi import Loihi2Backend

    from neurodeploy.errors import DataError

    backend = Loihi2Backend("loihi")
    assert backend.parse_target_options({"bias_correction": "false"}) == {"bias_correction": False}
    with pytest.raises(DataError, match="bias_correction must be true or false"):
        backend.parse_target_options({"bias_correction": "no"})


@pytest.mark.parametrize("fixed_exp", [None, 0, 3, 7])
def test_input_bias_compiled_equals_numpy_at_every_rounding_edge(fixed_exp: int | None) -> None:
    """input_bias's compiled, branch-free pass against its numpy steps, value for value: at every total where
    rounding half to even moves a mantissa across 4095 / -4096 at each exponent (threshold 64, vth 1, so a current
    k / 64 is the total k exactly), at the clip, over random currents, in a (C, H, W) shape (Lava's order) and a
    flat one; a NaN current takes the numpy steps."""
    if _compiled.kernels() is None:
        pytest.skip("numba is not installed")

    def numpy_steps(x: np.ndarray, shape: tuple[int, ...], vth: int) -> tuple[np.ndarray, np.ndarray]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_compiled, "kernels", lambda: None)
            return input_bias(x, shape, vth, clip, fixed_exp)

    def check(x: np.ndarray, shape: tuple[int, ...], vth: int) -> None:
        (mant, exp), (want_mant, want_exp) = input_bias(x, shape, vth, clip, fixed_exp), numpy_steps(x, shape, vth)
        np.testing.assert_array_equal(mant, want_mant)
        np.testing.assert_array_equal(exp, want_exp)

    rng = np.random.default_rng(5)
    clip, edges = (-524096, 524160), []
    for e in range(8):
        half = (1 << e) >> 1
        for edge in (4095 * 2**e + half, -4096 * 2**e - half):
            edges += [edge - 1, edge, edge + 1]
    totals = np.array([*edges, 0, 1, -1, 524160, -524096, 600000, -600000], np.float64)
    currents = np.concatenate([totals / 64, rng.normal(0, 3000, 3 * 4 * 5 * 6 - len(totals))]).astype(np.float32)
    for shape in ((4, 5, 6), (120,), (10, 12)):
        x = currents.reshape(3, *shape)
        check(x, shape, 1)
        check(x * np.float32(1e3), shape, 777)
    x = currents.reshape(3, 4, 5, 6).copy()
    x[1, 2, 3, 4] = np.nan
    with np.errstate(invalid="ignore"):  # (the cast of the NaN's mantissa)
        totals = np.clip(np.rint(to_lava(x, (4, 5, 6)).astype(np.float64) * 64), *clip)
        want_mant, want_exp, _ = split_bias(totals, fixed_exp)  # (the steps before the compiled pass)
        mant, exp = input_bias(x, (4, 5, 6), 1, clip, fixed_exp)
    np.testing.assert_array_equal(mant, want_mant)
    np.testing.assert_array_equal(exp, want_exp)


@pytest.mark.parametrize("terms", [1, 7, 1 << 24])
def test_a_listed_float_synapse_is_summed_a_piece_at_a_time_to_the_same_sums(monkeypatch, terms: int) -> None:
    """The float model's synapse list (calibration rates, bias correction, graded ranges) is summed a piece of the
    list at a time (a large network's terms took 24 GB at once): pieces of 1 and 7 terms per sample, or the whole
    list, give the matrix product of the same synapses."""
    from neurodeploy_loihi import floats

    from neurodeploy.lowering import SparseSpec

    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 12, 90), rng.integers(0, 2 * 3 * 3, 90)
    spec = SparseSpec(rows, cols, rng.normal(size=90).astype(np.float32), (2, 3, 3), (12,))
    a = rng.random((5, 2, 3, 3))
    matrix = np.zeros((12, 18))
    np.add.at(matrix, (rows, cols), spec.weight.astype(np.float64))
    monkeypatch.setattr(floats, "SPARSE_TERMS", terms)
    np.testing.assert_allclose(floats.float_synapse(spec, a), a.reshape(5, -1) @ matrix.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("piece", [1, 5, 1 << 22])
def test_weights_rounded_and_made_effective_a_piece_at_a_time_equal_the_whole(monkeypatch, piece: int) -> None:
    """Quantization rounds a Dense's weights onto the grid a piece at a time, and the emulator's Dense makes them
    Lava's effective weights a piece at a time (411 million weights into VGG-19's fc6), stored int16: the same
    integers as the whole array at once, for each sign mode and for a sign mode Lava determines itself."""
    from neurodeploy_loihi import emulator, quantize
    from neurodeploy_loihi import fixed_point as fp
    from neurodeploy_loihi.emulator import DenseSynapse

    monkeypatch.setattr(quantize, "GRID_PIECE", piece)
    monkeypatch.setattr(emulator, "WEIGHT_PIECE", piece)
    rng = np.random.default_rng(9)
    weight = rng.normal(size=(6, 7)).astype(np.float32)
    for mode, values in (
        (fp.SignMode.MIXED, weight),
        (fp.SignMode.EXCITATORY, np.abs(weight)),
        (fp.SignMode.INHIBITORY, -np.abs(weight)),
    ):
        w_int, clipped = quantize._grid(values, 90.0, mode)
        assert w_int.dtype == np.int16
        top = quantize.MIXED_TOP if mode == fp.SignMode.MIXED else quantize.ONE_SIGNED_TOP
        scaled = values.astype(np.float64) * 90.0
        whole = 2 * np.rint(scaled / 2) if mode == fp.SignMode.MIXED else np.rint(scaled)
        low, high = (
            (-top - 2, top) if mode == fp.SignMode.MIXED else (0, top) if mode == fp.SignMode.EXCITATORY else (-top, 0)
        )
        np.testing.assert_array_equal(w_int, np.clip(whole, low, high))
        assert clipped == int(np.count_nonzero((whole < low) | (whole > high)))
        for given in (mode, None):
            synapse = DenseSynapse(w_int, num_weight_bits=6, sign_mode=given)
            assert synapse.effective_weights.dtype == np.int16
            np.testing.assert_array_equal(synapse.effective_weights, fp.dense_weights(w_int.astype(np.int64), given, 6))
