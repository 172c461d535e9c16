"""The emulator's API: shapes, checks, batching and what it records (the arithmetic itself is in
test_fixed_point.py, and its equality with Lava in lava/test_against_lava.py)."""

import subprocess
import sys

import numpy as np
import pytest
from neurodeploy_loihi import ConvSynapse, DenseSynapse, Layer, Network, Neuron, SignMode


def conv_then_dense(rng: np.random.Generator) -> Network:
    conv = ConvSynapse(rng.integers(-100, 100, (4, 3, 3, 1)), (6, 5, 2), stride=(2, 1), padding=1, groups=2)
    dense = DenseSynapse(rng.integers(-100, 100, (3, int(np.prod(conv.output_shape)))), weight_exp=1)
    return Network(
        [
            Layer(conv, Neuron(du=100, dv=50, vth=30, kind="subtractive", bias_mant=rng.integers(-9, 9, (3, 5, 4)))),
            Layer(dense, Neuron(du=4095, dv=0, vth=20, v0=640)),
        ]
    )


def test_shapes_and_dtypes_of_a_trace() -> None:
    rng = np.random.default_rng(0)
    net = conv_then_dense(rng)
    x = rng.random((3, 7, 6, 5, 2)) < 0.5
    trace = net.run(x, 9)
    assert net.input_shape == (6, 5, 2)
    assert [s.shape for s in trace.spikes] == [(3, 9, 3, 5, 4), (3, 9, 3)]
    assert trace.spikes[0].dtype == bool
    assert trace.u[1].dtype == np.int32
    assert trace.v[0].dtype == np.int32
    assert [f.shape for f in trace.u_folds] == [(3,), (3,)]
    assert all(s.any() for s in trace.spikes)


@pytest.mark.parametrize("fused", [True, False], ids=["fused-step", "numpy-step"])
def test_overflow_statistics_are_those_of_the_recorded_states(monkeypatch, fused) -> None:
    """u_max and v_max of a trace are the largest |u| and |v| of its recorded steps, per sample; u_folds and
    v_saturations count the neurons that observe saw fold and saturate: on the fused step (numba) and on the
    numpy functions alike, with inputs large enough that u folds and v saturates."""
    from neurodeploy_loihi import _compiled

    if fused and _compiled.kernels() is None:
        pytest.skip("numba is not installed")
    if not fused:
        monkeypatch.setattr(_compiled, "kernels", lambda: None)
    rng = np.random.default_rng(5)
    conv = ConvSynapse(rng.integers(-256, 256, (4, 3, 3, 2)), (6, 5, 2), padding=1)
    net = Network(
        [
            Layer(
                conv,
                Neuron(du=0, dv=0, vth=1000, bias_mant=rng.integers(-4000, 4000, (6, 5, 4)), bias_exp=7),
            ),
            Layer(DenseSynapse(rng.integers(0, 256, (3, 120)), weight_exp=7), Neuron(du=4095, dv=0, vth=20)),
        ]
    )
    x = rng.random((3, 20, 6, 5, 2)) < 0.6
    seen = {"u_folds": np.zeros((2, 3), np.int64), "v_saturations": np.zeros((2, 3), np.int64)}

    def observe(state) -> None:
        for name, flags in (("u_folds", state.u_folded), ("v_saturations", state.v_saturated)):
            seen[name][state.k] += np.count_nonzero(flags.reshape(3, -1), axis=1)

    trace = net.run(x, observe=observe)
    for k in range(2):
        np.testing.assert_array_equal(trace.u_max[k], np.abs(trace.u[k].astype(np.int64)).reshape(3, -1).max(axis=1))
        np.testing.assert_array_equal(trace.v_max[k], np.abs(trace.v[k].astype(np.int64)).reshape(3, -1).max(axis=1))
        for name in seen:
            np.testing.assert_array_equal(getattr(trace, name)[k], seen[name][k])
    assert trace.v_saturations[0].sum() > 0  # both statistics are exercised
    assert trace.u_folds[1].sum() > 0


def test_a_batch_equals_its_samples_run_one_by_one() -> None:
    rng = np.random.default_rng(1)
    net = conv_then_dense(rng)
    x = rng.random((4, 8, 6, 5, 2)) < 0.5
    together = net.run(x)
    for b in range(4):
        alone = net.run(x[b : b + 1])
        for k in range(2):
            np.testing.assert_array_equal(together.spikes[k][b], alone.spikes[k][0])
            np.testing.assert_array_equal(together.v[k][b], alone.v[k][0])


def test_steps_past_the_input_get_no_spikes() -> None:
    # one input spike at step 1; run 5 steps with 1 frame: the same as 5 frames with only the first spiking
    net = Network([Layer(DenseSynapse(np.array([[50]])), Neuron(du=1000, dv=10, vth=1000))])
    short = net.run(np.ones((1, 1, 1), np.int8), 5)
    padded = np.zeros((1, 5, 1), np.int8)
    padded[0, 0, 0] = 1
    np.testing.assert_array_equal(short.u[0], net.run(padded).u[0])
    assert short.u[0][0, 1, 0] == 50 << 6


def test_record_state_false_keeps_spikes_only() -> None:
    net = Network([Layer(DenseSynapse(np.array([[50]])), Neuron(du=0, dv=0, vth=10))])
    trace = net.run(np.ones((2, 4, 1), np.int8), record_state=False)
    assert (trace.u, trace.v) == ([], [])
    assert trace.spikes[0].shape == (2, 4, 1)
    assert trace.spikes[0].any()


def test_sign_mode_accepts_lava_values() -> None:
    assert DenseSynapse(np.array([[1, -1]]), sign_mode=2).sign_mode is SignMode.EXCITATORY


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Neuron(du=4096, dv=0, vth=1), r"du must be integers in \[0, 4095\]"),
        (lambda: Neuron(du=0, dv=-1, vth=1), r"dv must be integers in \[0, 4095\]"),
        (lambda: Neuron(du=0, dv=0, vth=1 << 17), r"vth must be integers in \[0, 131071\]"),
        (lambda: Neuron(du=0, dv=0, vth=1, bias_mant=4096), r"bias_mant must be integers in \[-4096, 4095\]"),
        (lambda: Neuron(du=0, dv=0, vth=1, bias_exp=8), r"bias_exp must be integers in \[0, 7\]"),
        (lambda: Neuron(du=0, dv=0, vth=1, v0=1 << 23), r"v0 must be integers"),
        (lambda: Neuron(du=0, dv=0, vth=1, kind="izhikevich"), "neuron kind must be one of"),
        (lambda: DenseSynapse(np.array([[1.5]])), "2-D integer array"),
        (lambda: DenseSynapse(np.array([[1]]), num_weight_bits=9), r"num_weight_bits must be integers in \[1, 8\]"),
        (lambda: ConvSynapse(np.full((1, 1, 1, 1), 256), (2, 2, 1)), r"conv weights must be integers in \[-256, 255\]"),
        (lambda: ConvSynapse(np.ones((2, 1, 1, 2), int), (2, 2, 3)), "divisible by groups"),
        (lambda: ConvSynapse(np.ones((1, 3, 3, 1), int), (2, 2, 1)), "has no output"),
        (lambda: Network([]), "at least one layer"),
    ],
)
def test_invalid_parameters_are_refused(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_layers_must_chain() -> None:
    first = Layer(DenseSynapse(np.ones((4, 3), int)), Neuron(du=0, dv=0, vth=1))
    with pytest.raises(ValueError, match="layer 1: dense synapse reads 5 inputs; layer 0 has"):
        Network([first, Layer(DenseSynapse(np.ones((2, 5), int)), Neuron(du=0, dv=0, vth=1))])
    with pytest.raises(ValueError, match="bias_mant has shape"):
        Network([Layer(DenseSynapse(np.ones((4, 3), int)), Neuron(du=0, dv=0, vth=1, bias_mant=np.ones(3, int)))])


def test_inputs_are_checked() -> None:
    net = Network([Layer(DenseSynapse(np.ones((2, 3), int)), Neuron(du=0, dv=0, vth=1))])
    with pytest.raises(ValueError, match=r"input spikes must be \(batch, steps, \*\(3,\)\)"):
        net.run(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="binary"):
        net.run(np.full((1, 2, 3), 2))


def test_only_lava_processes_imports_lava_at_module_level() -> None:
    script = (
        "import sys, neurodeploy_loihi, neurodeploy_loihi.fixed_point, neurodeploy_loihi.emulator, "
        "neurodeploy_loihi.lava_runner; print(sorted(m for m in sys.modules if m.split('.')[0] == 'lava'))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
