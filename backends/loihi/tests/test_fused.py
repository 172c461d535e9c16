"""The fused run (:mod:`neurodeploy_loihi.fused`: ``Program.run`` as one compiled call per batch slice) against the
step-by-step path (``Network.run`` with the program's counting, itself equal to Lava's ``fixed_pt`` models in the
Lava cross-checks, which also compare the fused run's outputs with Lava's): every field of the result equal, on
the bundled MNIST model, on chains, residual blocks with delayed skips, Concats and parallel branches, trimmed and
untrimmed, and on a hand-made network with leaky LIF neurons, initial potentials, a delayed bias and a delayed
dense skip; the batch split over threads changes nothing, nor does a single sample shared by two threads however
its populations are split between them."""

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import emit_graph
from loihi_mnist import CALIBRATION, MODEL, compiled, mnist_test_images
from neurodeploy_loihi import _compiled, fused
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron, Skip, SparseSynapse
from neurodeploy_loihi.program import Program, RunResult
from test_windows import GRAPHS

from neurodeploy.errors import DataError, ResourceError

pytestmark = pytest.mark.skipif(_compiled.kernels() is None, reason="numba is not installed: there is no fused run")


def _equal(a: object, b: object, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        assert a.keys() == b.keys(), where
        for key in a:
            _equal(a[key], b[key], f"{where}[{key!r}]")
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)


def assert_same_result(fast: RunResult, slow: RunResult) -> None:
    for field in dataclasses.fields(RunResult):
        _equal(getattr(fast, field.name), getattr(slow, field.name), field.name)


def both_paths(program: Program, x: np.ndarray, steps: int, monkeypatch: pytest.MonkeyPatch, **options):
    """(fused, step by step) results of one run; the first must have taken the fused path."""
    taken = []
    run = fused.run

    def spy(*args, **kwargs):
        taken.append(True)
        return run(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(fused, "run", spy)
        fast = program.run(x, steps, **options)
    assert taken, "the fused path was not taken"
    with monkeypatch.context() as patch:
        patch.setattr(fused, "accepts", lambda *args: False)
        slow = program.run(x, steps, **options)
    return fast, slow


def test_the_bundled_model_gives_the_same_result_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    program = Program.load(compiled("subtract").root)
    x = mnist_test_images()[0][:5]
    fast, slow = both_paths(program, x, 12, monkeypatch, checkpoints=(1, 4, 12), counts=True)
    assert_same_result(fast, slow)
    assert_same_result(*both_paths(program, x, 7, monkeypatch))
    assert sum(int(s.sum()) for s in fast.spikes.values()) > 1000
    assert fast.stats["u_max"].max() > 0
    assert fast.stats["v_max"].max() > 0


@pytest.mark.parametrize("name", GRAPHS)
@pytest.mark.parametrize("trim", [True, False])
def test_every_graph_gives_the_same_result_fused(
    name: str, trim: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = GRAPHS[name]()
    x = np.random.default_rng(5).random((5, *graph.inputs["x"].shape)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    for steps, counts in ((1, True), (6, True), (6, False)):  # without counts: no per-neuron array is kept
        fast, slow = both_paths(program, x, steps, monkeypatch, checkpoints=(1, 2, steps), counts=counts, trim=trim)
        assert_same_result(fast, slow)
    assert sum(int(s.sum()) for s in fast.spikes.values()) > 0


def _leaky(tmp_path: Path) -> Program:
    """A program whose network is replaced by one the compiler does not make: an input population of 2 x 3 x 2,
    a pooled-free conv into leaky LIF neurons with per-neuron v0 and a delayed bias (subtractive), a dense layer of
    leaky neurons with a dense skip from the input population delayed by 2 steps, and a readout of 3."""
    rng = np.random.default_rng(11)
    graph = GRAPHS["chain"]()
    x = rng.random((1, *graph.inputs["x"].shape)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    conv = ConvSynapse(rng.integers(-200, 256, (4, 3, 3, 2)), (2, 3, 2), padding=(1, 1))
    hidden = Neuron(du=300, dv=200, vth=40, kind="subtractive", bias_mant=rng.integers(-50, 100, (2, 3, 4)), bias_exp=3)
    hidden = dataclasses.replace(hidden, v0=rng.integers(-3000, 3000, (2, 3, 4)), bias_start=3)
    dense = DenseSynapse(rng.integers(-120, 256, (5, 24)), weight_exp=-1)
    skip = Skip(0, DenseSynapse(rng.integers(-100, 200, (5, 12)), weight_exp=1), delay=2)
    network = Network(
        [
            Layer(None, Neuron(du=4095, dv=0, vth=100, kind="subtractive"), population_shape=(2, 3, 2)),
            Layer(conv, hidden),
            Layer(dense, Neuron(du=1000, dv=50, vth=60, kind="lif", bias_mant=7, v0=500), skips=(skip,)),
            Layer(DenseSynapse(rng.integers(-256, 256, (3, 5))), Neuron(du=4095, dv=0, vth=10000, kind="lif")),
        ]
    )
    readout = {"kind": "membrane", "output": "y", "population": 3, "shape": [3]}
    return dataclasses.replace(
        program,
        network=network,
        names=["a", "b", "c", "out"],
        roles=["input", "hidden", "hidden", "readout"],
        shapes=[(2, 3, 2), (4, 3, 2), (5,), (3,)],
        scales=[1.0, 1.0, 1.0, 100.0],
        readout=readout,
    )


def test_leaky_neurons_delays_and_skips_give_the_same_result_fused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = _leaky(tmp_path)
    rng = np.random.default_rng(2)
    bias = (rng.integers(-4096, 4096, (7, 2, 3, 2)), rng.integers(0, 4, (7, 2, 3, 2)))
    x = np.zeros((7, *program.host.inputs["x"].shape), np.float32)
    x.reshape(7, -1)[:, 0] = np.arange(7)  # each sample names its bias: the host graph's currents, replaced

    def input_bias(x: np.ndarray, checked: bool = False) -> tuple[np.ndarray, np.ndarray]:
        index = x.reshape(len(x), -1)[:, 0].astype(int)
        return bias[0][index], bias[1][index]

    monkeypatch.setattr(program, "input_bias", input_bias)
    for trim in (True, False):
        fast, slow = both_paths(program, x, 9, monkeypatch, checkpoints=(1, 3, 9), counts=True, trim=trim)
        assert_same_result(fast, slow)
    assert all(int(s.sum()) > 0 for s in fast.spikes.values()), fast.spikes


def _projection(rng: np.random.Generator, shape: tuple[int, int, int], c_out: int) -> SparseSynapse:
    """A 1x1 convolution as a synapse list in Lava's flat (x, y, c) order, some weights zero: each input's outputs
    are the C_out channels at its position, consecutive (the runs walk, gaps included)."""
    x, y, c_in = shape
    position, channel, out = np.meshgrid(np.arange(x * y), np.arange(c_in), np.arange(c_out), indexing="ij")
    weights = rng.integers(-200, 256, position.size)
    weights[rng.random(position.size) < 0.2] = 0
    rows, cols = (position * c_out + out).reshape(-1), (position * c_in + channel).reshape(-1)
    return SparseSynapse(rows, cols, weights, (x * y * c_out, x * y * c_in), weight_exp=-1)


def wide(tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> tuple[Program, np.ndarray]:
    """A program whose network has a convolution whose partial sums can leave int16 (summed in int32) and a
    delayed 1x1 projection from the same input walked in runs, with 6 samples that each name their input bias."""
    shape = (3, 3, 24)  # Lava (X, Y, C)
    weights = rng.integers(200, 256, (4, 3, 3, 24))
    weights[..., :3] *= -1
    conv = ConvSynapse(weights, shape, padding=(1, 1))
    network = Network(
        [
            Layer(None, Neuron(du=4095, dv=0, vth=100, kind="subtractive"), population_shape=shape),
            Layer(
                conv,
                Neuron(du=4095, dv=0, vth=60000, kind="subtractive"),
                skips=(Skip(0, _projection(rng, shape, 4), delay=1),),
            ),
            Layer(DenseSynapse(rng.integers(-256, 256, (3, 36))), Neuron(du=4095, dv=0, vth=10000, kind="lif")),
        ]
    )
    program = dataclasses.replace(
        _leaky(tmp_path),
        network=network,
        names=["a", "b", "out"],
        roles=["input", "hidden", "readout"],
        shapes=[(24, 3, 3), (4, 3, 3), (3,)],
        scales=[1.0, 1.0, 100.0],
        readout={"kind": "membrane", "output": "y", "population": 2, "shape": [3]},
    )
    bias = (rng.integers(-1024, 4096, (6, *shape)), rng.integers(0, 3, (6, *shape)))
    x = np.zeros((6, *program.host.inputs["x"].shape), np.float32)
    x.reshape(6, -1)[:, 0] = np.arange(6)  # each sample names its bias, as in the test above
    monkeypatch.setattr(
        program, "input_bias", lambda x, checked=False: tuple(b[x.reshape(len(x), -1)[:, 0].astype(int)] for b in bias)
    )
    return program, x


def test_wide_convolution_sums_and_synapse_runs_give_the_same_result_fused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program, x = wide(tmp_path, np.random.default_rng(3), monkeypatch)
    packed = fused.pack(program.network)
    conv_edge, projection_edge = packed.edges[0], packed.edges[1]
    assert fused.SUM_TYPES[conv_edge[6]] == np.int32  # 9 taps x 21 channels x 200 or more > 2**15
    assert projection_edge[1] == 2  # a synapse list...
    assert projection_edge[13] == 2  # ... walked in runs
    fast, slow = both_paths(program, x, 9, monkeypatch, checkpoints=(1, 4, 9), counts=True)
    assert_same_result(fast, slow)
    assert all(int(s.sum()) > 0 for s in fast.spikes.values()), fast.spikes


GEOMETRIES = {  # input (X, Y, C_in), C_out, kernel, and the ConvSynapse's stride, padding, dilation, groups, pool
    "pooled, partial blocks": ((5, 7, 3), 4, (3, 3), dict(stride=(2, 2), padding=(2, 0), pool=(2, 2))),
    "pooled 3 x 1, stride 2 cells": ((7, 4, 2), 3, (2, 3), dict(stride=(6, 2), padding=(3, 1), pool=(3, 1))),
    "stride 2": ((6, 5, 3), 4, (3, 3), dict(stride=(2, 2), padding=(1, 1))),
    "two groups": ((4, 4, 4), 6, (3, 3), dict(padding=(1, 1), groups=2)),
    "dilation 2": ((6, 6, 2), 3, (3, 2), dict(padding=(2, 1), dilation=(2, 1))),
}


@pytest.mark.parametrize("name", GEOMETRIES)
def test_convolutions_of_every_geometry_give_the_same_result_fused(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fused run walks a convolution's listed spikes (their cells, then the cells' taps: one run per listed
    cell where the convolution has one group and unit strides in cells, else each cell's listed channels):
    pools with blocks left over at the edge (never read), strides, groups and dilations equal the step-by-step
    path, which sums every input."""
    shape, c_out, (kx, ky), options = GEOMETRIES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    conv = ConvSynapse(rng.integers(-256, 256, (c_out, kx, ky, shape[2] // options.get("groups", 1))), shape, **options)
    out = conv.output_shape
    network = Network(
        [
            Layer(None, Neuron(du=4095, dv=0, vth=100, kind="subtractive"), population_shape=shape),
            Layer(conv, Neuron(du=4095, dv=0, vth=150, kind="subtractive")),
            Layer(DenseSynapse(rng.integers(-256, 256, (3, int(np.prod(out))))), Neuron(du=4095, dv=0, vth=10**4)),
        ]
    )
    program = dataclasses.replace(
        _leaky(tmp_path),
        network=network,
        names=["a", "b", "out"],
        roles=["input", "hidden", "readout"],
        shapes=[shape[::-1], out[::-1], (3,)],
        scales=[1.0, 1.0, 100.0],
        readout={"kind": "membrane", "output": "y", "population": 2, "shape": [3]},
    )
    bias = (rng.integers(0, 3000, (4, *shape)), np.zeros((4, *shape), np.int64))  # up to a spike every 2 steps
    x = np.zeros((4, *program.host.inputs["x"].shape), np.float32)
    x.reshape(4, -1)[:, 0] = np.arange(4)  # each sample names its bias
    monkeypatch.setattr(
        program, "input_bias", lambda x, checked=False: tuple(b[x.reshape(len(x), -1)[:, 0].astype(int)] for b in bias)
    )
    fast, slow = both_paths(program, x, 9, monkeypatch, checkpoints=(2, 9), counts=True)
    assert_same_result(fast, slow)
    assert fast.spikes["b"].sum() > 20, fast.spikes


def test_the_spike_list_holds_every_neuron_that_fired_in_order() -> None:
    """``_compiled._list`` reads eight flags at a time: rows of every length around a word, from every offset of a
    longer row (views that start mid-word), dense and sparse, list exactly the indices where a flag is set; so
    does the flag-by-flag list a big-endian machine uses."""
    rng = np.random.default_rng(8)
    for listing, density in itertools.product((_compiled._list, _compiled._list_each), (0.0, 0.05, 0.5, 1.0)):
        flags = rng.random(80) < density
        for start in range(9):
            for n in (0, 1, 7, 8, 9, 16, 23, 64, 71):
                row = flags[start : start + n]
                listed = np.full(n + 1, -1, np.int32)
                count = listing(row, listed)
                assert count == row.sum()
                assert listed[:count].tolist() == np.flatnonzero(row).tolist()


def test_a_cell_table_derived_by_hand() -> None:
    """Input (X 3, Y 2, C 2) under a 2 x 2 pool with padding (0, 2): x 0-1 fall in cell row 0, x 2 in a partial
    block (-1); y 0-1 in cell column 1 (column 0 is padding), 3 cells wide; then each cell's place in the padded
    accumulator (Y'' + kY - 1 = 4 wide for a kernel of kY 2) and its channel."""
    table = fused.cell_table((3, 2, 2), (2, 2), (0, 2), (3, 2))
    inputs, rest = table[:12], table[12:]
    cell = [(0 * 3 + 1) * 2 + c for c in (0, 1)]  # cell (0, 1), channels 0 and 1
    assert inputs.tolist() == [*cell, *cell, *cell, *cell, -1, -1, -1, -1]
    cells = 1 * 3 * 2  # X'' 1 (a whole block only), Y'' 3, C_in 2
    assert rest[:cells].tolist() == [0, 0, 1, 1, 2, 2]
    assert rest[cells:].tolist() == [0, 1, 0, 1, 0, 1]


def test_synapse_lists_are_walked_as_their_shape_allows() -> None:
    rng = np.random.default_rng(0)

    def layout(rows, cols, weights, shape):
        synapse = SparseSynapse(np.asarray(rows), np.asarray(cols), np.asarray(weights), shape)
        return fused.sparse_layout(*synapse._by_column, *shape)

    walk, spans, walked = layout([0, 2, 3], [0, 2, 3], [6, -8, 10], (4, 4))  # an identity skip, input 1 unused
    assert walk == 1
    assert spans is None
    assert walked.tolist() == [6, 0, -8, 10]
    walk, spans, walked = layout([4, 6, 7, 0], [0, 0, 0, 2], [2, 4, 6, 8], (8, 3))  # 4..7 with a gap at 5
    assert walk == 2
    assert spans.tolist() == [[4, 4, 0], [0, 0, 4], [0, 1, 4]]
    assert walked.tolist() == [2, 0, 4, 6, 8]
    assert layout([0, 30], [1, 1], [1, 1], (31, 2))[0] == 0  # outputs 0 and 30: too far apart for a run
    assert layout([1, 0], [0, 0], [1, 1], (2, 1))[0] == 0  # outputs listed in decreasing order
    projection = _projection(rng, (2, 2, 3), 5)
    assert fused.sparse_layout(*projection._by_column, *projection.shape)[0] == 2


def test_the_batch_split_over_threads_changes_nothing(tmp_path: Path) -> None:
    graph = GRAPHS["residual-identity"]()
    x = np.random.default_rng(4).random((9, *graph.inputs["x"].shape)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    mant, exp = program.input_bias(x)
    network, total = program.network, 8 + program.delay
    windows = network.windows(total, [d + 8 for d in network.depths])
    roles = [role == "readout" for role in program.roles]
    bias = mant << exp
    runs = [
        fused.run(network, lambda lo, hi: bias[lo:hi], 9, total, 8, windows, [2, 8], len(roles) - 1, roles, threads=t)
        for t in (1, 2, 4)
    ]
    for other in runs[1:]:
        for field in ("counts", "sums", "synops", "readout", "stats", "readout_spikes"):
            np.testing.assert_array_equal(getattr(other, field), getattr(runs[0], field), err_msg=field)
    assert runs[0].counts.any()


def test_threads_take_only_the_scratch_sets_the_available_memory_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread's scratch set (the state, the messages in flight) takes gigabytes on a network of tens of millions of
    neurons: a run starts as many threads as half the available memory holds sets (one at least, and the sets kept
    from earlier runs count as free), with the same result."""
    graph = GRAPHS["residual-identity"]()
    x = np.random.default_rng(4).random((6, *graph.inputs["x"].shape)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    bias = np.left_shift(*program.input_bias(x))
    network, total = program.network, 6 + program.delay
    windows = network.windows(total, [d + 6 for d in network.depths])
    roles = [role == "readout" for role in program.roles]
    packed = fused.pack(network)
    one = fused.Scratch.size(len(packed.v0), len(packed.sizes), *packed.scratch_sizes)
    made = fused.Scratch.new(len(packed.v0), len(packed.sizes), *packed.scratch_sizes)
    assert one == sum(a.nbytes for a in (*made.shared, *made.own, made.row))
    results, pools = {}, []
    executor = fused.ThreadPoolExecutor
    monkeypatch.setattr(fused, "ThreadPoolExecutor", lambda workers: pools.append(workers) or executor(workers))
    for sets in (1, 3):
        packed.pool.clear()
        monkeypatch.setattr(fused, "available_memory", lambda sets=sets: 2 * sets * one + 1)
        results[sets] = fused.run(
            network, lambda lo, hi: bias[lo:hi], 6, total, 6, windows, [6], len(roles) - 1, roles, threads=4
        )
    assert pools == [3]  # one thread without a pool, then three
    packed.pool[:] = [made] * 3
    monkeypatch.setattr(fused, "available_memory", lambda: 0)
    assert packed.affordable(4) == 3  # the kept sets
    assert packed.affordable(5) == 3
    packed.pool.clear()
    monkeypatch.setattr(fused, "available_memory", lambda: 2 * one)
    assert packed.affordable(4) == 1
    for field in ("counts", "sums", "synops", "readout", "stats", "readout_spikes"):
        np.testing.assert_array_equal(getattr(results[1], field), getattr(results[3], field), err_msg=field)
    monkeypatch.setattr(fused, "available_memory", lambda: one)  # not even one set and the counts: refused
    with pytest.raises(ResourceError, match=r"GB of memory available: run it on a machine with more memory"):
        fused.run(network, lambda lo, hi: bias[lo:hi], 6, total, 6, windows, [6], len(roles) - 1, roles)
    assert not packed.pool


def test_a_headroom_run_the_memory_cannot_hold_is_noted_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compile's headroom run (the emitted program on calibration samples) is skipped, with the reason in the
    report, where the emulator's state would not fit the memory available; the artifact is written and runs."""
    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    monkeypatch.setattr(fused, "available_memory", lambda: 1000)
    artifact = compile_model(MODEL, "loihi", tmp_path / "a", calibration=load_calibration(str(CALIBRATION)))
    report = json.loads((artifact.root / "report.json").read_text())["target"]
    notes = {entry["measured"].get("note", "") for entry in report["quantization"]}
    assert len(notes) == 1
    assert notes.pop().startswith("not measured: emulating this network (21,962 neurons in 4 populations) takes")
    monkeypatch.undo()
    assert Program.load(artifact.root).run(mnist_test_images()[0][:2], 4).outputs.shape == (2, 10)


def test_kept_run_plans_serve_only_their_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-network plans (the kernel's table, checkpoints, the two threads' split) are keyed by every setting
    they hold: interleaved runs of other lengths, checkpoints and trims equal fresh ones, and few are kept."""
    program = Program.load(compiled("subtract").root)
    x = mnist_test_images()[0][:1]
    settings = [(6, (2, 6), True), (9, (), True), (6, (3,), True), (9, (), False), (6, (2, 6), True)]
    runs = [program.run(x, steps, checkpoints=marks, trim=trim, counts=True) for steps, marks, trim in settings]
    for (steps, marks, trim), kept in zip(settings, runs):
        program.network.__dict__.pop("_fused_plans", None)
        assert_same_result(kept, program.run(x, steps, checkpoints=marks, trim=trim, counts=True))
    monkeypatch.setattr(fused, "PLANS_KEPT", 2)
    for steps in (3, 4, 5, 6):
        program.run(x, steps)
    assert len(program.network.__dict__["_fused_plans"]) == 2


def test_observed_runs_and_unknown_synapses_take_the_step_by_step_path() -> None:
    program = Program.load(compiled("subtract").root)
    roles = [role == "readout" for role in program.roles]
    top = program.readout["population"]
    assert fused.accepts(program.network, roles, top, None)
    assert not fused.accepts(program.network, roles, top, lambda state: None)  # steps observed: the slow path
    assert not fused.accepts(program.network, [True] * len(roles), top, None)  # two readouts
    chain = Network([Layer(DenseSynapse(np.ones((2, 3), np.int64)), Neuron(du=4095, dv=0, vth=1))])
    assert not fused.supported(chain)  # input spikes, no input population: not a program's layout


def test_the_thread_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fused.THREADS_VARIABLE, "3")
    assert fused.default_threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(fused.THREADS_VARIABLE, bad)
        with pytest.raises(DataError, match=fused.THREADS_VARIABLE):
            fused.default_threads()
    monkeypatch.delenv(fused.THREADS_VARIABLE)
    assert fused.default_threads() >= 1


class _Late:
    """A partner thread the system did not run: what it is given starts only when its result is asked for, after
    the first thread has finished the sample alone."""

    def __init__(self) -> None:
        self.call: tuple = ()

    def submit(self, fn, *args) -> "_Late":
        self.call = (fn, *args)
        return self

    def result(self) -> None:
        fn, *args = self.call
        fn(*args)


def _single_sample_runs(program: Program, x: np.ndarray, steps: int) -> list[fused.FusedRun]:
    """One sample of ``x`` run by one thread, then by two sharing it, each thread walking its own claim order (both
    in order; one in order, one in reverse; alternately, both ways), and with a partner that starts only after
    the first thread has done everything."""
    network, total = program.network, steps + program.delay
    windows = network.windows(total, [d + steps for d in network.depths])
    roles = [role == "readout" for role in program.roles]
    mant, exp = program.input_bias(x[:1])
    bias = mant << exp

    def run(threads: int) -> fused.FusedRun:
        marks, top = [1, 3, steps], len(roles) - 1
        network.__dict__.pop("_fused_plans", None)
        return fused.run(network, lambda lo, hi: bias, 1, total, steps, windows, marks, top, roles, threads=threads)

    runs, layers = [run(1)], np.arange(len(network.layers))
    alternate = np.concatenate([layers[::2], layers[1::2]])
    orders = [(layers, layers), (layers, layers[::-1]), (alternate, alternate[::-1]), (layers[::-1], alternate)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "owners", lambda *args: np.zeros(len(layers), np.int64))  # (share whatever the split)
        patch.setattr(fused.Sharing, "share", lambda self: True)
        for both in orders:
            patch.setattr(fused, "claim_orders", lambda work, owner, both=both: np.array(both, np.int64))
            runs.append(run(2))
        late = _Late()
        patch.setattr(fused, "_partner", lambda: late)
        runs.append(run(2))
        assert late.call, "the partner was not given its part"
    return runs


@pytest.mark.parametrize("name", [*GRAPHS, "mnist"])
def test_two_threads_sharing_one_sample_change_nothing(name: str, tmp_path: Path) -> None:
    if name == "mnist":
        program, x = Program.load(compiled("subtract").root), mnist_test_images()[0][:1]
    else:
        graph = GRAPHS[name]()
        x = np.random.default_rng(6).random((1, *graph.inputs["x"].shape)).astype(np.float32)
        emit_graph(graph, tmp_path, x)
        program = Program.load(tmp_path)
    runs = _single_sample_runs(program, x, 7)
    assert len(runs) == 6
    for other in runs[1:]:
        for field in ("counts", "sums", "synops", "readout", "stats", "readout_spikes"):
            np.testing.assert_array_equal(getattr(other, field), getattr(runs[0], field), err_msg=field)
    assert runs[0].counts.any()


def test_a_shared_sample_whose_host_part_fails_leaves_the_partner_free() -> None:
    """The host's part runs before the partner is started: when it raises, the error reaches the caller, no
    scratch set is lost, and the next shared run has its partner."""
    program = Program.load(compiled("subtract").root)
    network, steps = program.network, 7
    total = steps + program.delay
    windows = network.windows(total, [d + steps for d in network.depths])
    roles = [role == "readout" for role in program.roles]
    network.__dict__.pop("_fused_plans", None)
    packed = fused.pack(network)

    def failing(lo: int, hi: int) -> np.ndarray:
        raise DataError("the host's part failed")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused.Sharing, "share", lambda self: True)
        patch.setattr(fused, "owners", lambda *args: np.zeros(len(network.layers), np.int64))
        pooled = len(packed.pool)
        with pytest.raises(DataError, match="host's part failed"):
            fused.run(network, failing, 1, total, steps, windows, [steps], len(roles) - 1, roles, threads=2)
        assert len(packed.pool) >= pooled  # none taken and kept
        mant, exp = program.input_bias(mnist_test_images()[0][:1])
        top = len(roles) - 1
        done = fused.run(network, lambda lo, hi: mant << exp, 1, total, steps, windows, [steps], top, roles, threads=2)
        assert done.counts.any()  # the partner thread is free for the next run


def test_sharing_backs_off_while_shared_runs_lose() -> None:
    """The first run goes alone; shared runs go on while they are not slower than the recent runs alone; one that
    is sends 1, 2, 4, ... runs alone (up to the limit), and one that wins again resets the backoff."""
    sharing = fused.Sharing(np.zeros((2, 3), np.int64))
    assert not sharing.share()  # nothing measured yet
    sharing.record(False, 1.0)
    assert sharing.share()
    sharing.record(True, 0.8)  # wins
    assert sharing.share()
    alone = []
    for _ in range(4):  # loses four times: 1, 2, 4 and 8 runs alone after each
        sharing.record(True, 3.0)
        count = 0
        while not sharing.share():
            sharing.record(False, 1.0)
            count += 1
        alone.append(count)
    assert alone == [1, 2, 4, 8]
    sharing.record(True, 0.9)  # wins again: the next loss costs one run alone
    sharing.record(True, 3.0)
    assert sharing.skip == 1
    sharing.backoff = fused.SHARING_BACKOFF
    sharing.record(False, 1.0)
    sharing.record(True, 3.0)
    assert sharing.backoff == fused.SHARING_BACKOFF


def test_claim_orders_put_each_threads_own_populations_first() -> None:
    """Each thread walks its own populations (the split), the most work first, then the other's, the least work
    first: the end of the other's list is what it takes when it has finished its own."""
    orders = fused.claim_orders(np.array([5.0, 40.0, 30.0, 12.0, 1.0]), np.array([1, 0, 1, 0, 1]))
    assert orders.tolist() == [[1, 3, 4, 0, 2], [2, 0, 4, 3, 1]]


def test_the_work_split_balances_each_step() -> None:
    work = np.array([10.0, 10.0, 10.0, 10.0])
    pipeline = [(1, 4), (2, 5), (3, 6), (4, 7)]  # a population starts a step after its source
    owner = fused.owners(work, pipeline, 7)
    assert owner is not None
    assert owner.tolist() == [0, 1, 0, 1]  # neighbours, which compute in the same steps, apart
    assert fused.owners(np.array([100.0, 1.0]), [(1, 5), (1, 5)], 5) is None  # one does nearly all: one thread
    assert fused.owners(np.array([10.0, 10.0]), [(1, 2), (3, 4)], 4) is None  # never at once: nothing to share
    network = Program.load(compiled("subtract").root).network
    assert len(fused.pack(network).work) == 4


def test_quiet_blas_holds_each_blas_library_at_one_thread_and_restores_it() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [lib for lib in threadpoolctl.ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    if not blas:
        pytest.skip("numpy's BLAS is not one threadpoolctl finds")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = [lib.num_threads for lib in blas]
        with fused.quiet_blas():
            assert [lib.num_threads for lib in blas] == [1] * len(blas)
        assert [lib.num_threads for lib in blas] == before
