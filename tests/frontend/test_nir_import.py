"""NIR import (neurodeploy.frontend.nir): each node type against traces derived by hand from the discretization the
options name, the options recorded in the artifact, nested graphs and summed edges, the bad-input errors, and
files that reach outside themselves. The files are written with the nir package (the writers' own serializer)."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import math
import shutil

import numpy as np
import pytest

nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")


from cli_support import run_cli  # noqa: E402

from neurodeploy.compiler import compile_model, emulate_artifact  # noqa: E402
from neurodeploy.errors import ModelLoadError, NeurodeployError, UnsupportedOpError  # noqa: E402
from neurodeploy.frontend import load_model  # noqa: E402
from neurodeploy.ir import IF, LIF  # noqa: E402
from neurodeploy.simulate import simulate  # noqa: E402

PLOT = importlib.util.find_spec("matplotlib") is not None


def chain(*nodes, shape=(3,), out=None) -> nir.NIRGraph:
    """Input -> nodes... -> Output, named n0, n1, ... (``out``: the output's shape, if not the input's)"""
    named = {"input": nir.Input(input_type={"input": np.array(shape)})}
    named.update({f"n{i}": node for i, node in enumerate(nodes)})
    named["output"] = nir.Output(output_type={"output": np.array(out or shape)})
    order = list(named)
    return nir.NIRGraph(nodes=named, edges=list(itertools.pairwise(order)))


def write(tmp_path, graph, name="net.nir"):
    path = tmp_path / name
    nir.write(str(path), graph)
    return path


def run(graph_ir, x, steps):
    """Per-step outputs of the graph's single output, (steps, batch, ...)."""
    trace = []
    (out,) = graph_ir.outputs

    def observe(value, array):
        if value == out:
            trace.append(array.copy())

    simulate(graph_ir, {next(iter(graph_ir.inputs)): x}, steps, observe=observe)
    return np.stack(trace)


def ones(n, value=1.0):
    return np.full(n, value, np.float32)


def test_lif_euler_matches_the_hand_derived_trace(tmp_path) -> None:
    """tau = 2 ms, dt = 0.5 ms: decay 0.75, input weight 0.25 r; fires on v > 1, then v = v_reset."""
    graph = chain(
        nir.LIF(tau=ones(3, 2e-3), r=ones(3, 2.0), v_leak=ones(3, 0.0), v_threshold=ones(3, 1.0), v_reset=ones(3, 0.1))
        if "v_reset" in nir.LIF.__dataclass_fields__
        else nir.LIF(tau=ones(3, 2e-3), r=ones(3, 2.0), v_leak=ones(3, 0.0), v_threshold=ones(3, 1.0))
    )
    g = load_model(write(tmp_path, graph), options={"dt": "5e-4"})
    (op,) = g.ops
    assert isinstance(op, LIF)
    assert op.strict
    assert op.reset == "zero"
    x = np.array([[1.0, 2.0, 4.0]], np.float32)
    reset = 0.1 if "v_reset" in nir.LIF.__dataclass_fields__ else 0.0
    v, expected = np.zeros(3), []
    for _ in range(6):
        v = 0.75 * v + 0.25 * 2.0 * x[0]
        s = v > 1.0
        v = np.where(s, reset, v)
        expected.append(s.astype(np.float32))
    np.testing.assert_array_equal(run(g, x, 6)[:, 0], np.array(expected))


def test_cubalif_and_li_exact_discretization(tmp_path) -> None:
    """Zero-order hold: i <- a i + (1 - a) w_in x, v <- b v + (1 - b) r i; LI's output is v itself."""
    a, b = math.exp(-1 / 4), math.exp(-1 / 2)
    graph = chain(
        nir.CubaLIF(
            tau_syn=ones(2, 4.0),
            tau_mem=ones(2, 2.0),
            r=ones(2, 3.0),
            v_leak=ones(2, 0.0),
            v_threshold=ones(2, 0.5),
            w_in=ones(2, 2.0),
        ),
        nir.Affine(weight=np.array([[1.0, -0.5]], np.float32), bias=np.array([0.25], np.float32)),
        nir.LI(tau=ones(1, 2.0), r=ones(1, 1.0), v_leak=ones(1, 0.0)),
        shape=(2,),
        out=(1,),
    )
    g = load_model(write(tmp_path, graph), options={"dt": "1", "discretization": "exact"})
    x = np.array([[0.4, 0.9]], np.float32)
    i, v, w, expected = np.zeros(2), np.zeros(2), 0.0, []
    for _ in range(8):
        i = a * i + (1 - a) * 2.0 * x[0]
        v = b * v + (1 - b) * 3.0 * i
        s = (v > 0.5).astype(float)
        v = np.where(s > 0, 0.0, v)
        w = b * w + (1 - b) * (s[0] - 0.5 * s[1] + 0.25)
        expected.append(w)
    np.testing.assert_allclose(run(g, x, 8)[:, 0, 0], expected, rtol=1e-5, atol=1e-6)


def test_sinabs_conventions_make_if_neurons_and_subtract(tmp_path) -> None:
    graph = chain(nir.IF(r=ones(3), v_threshold=ones(3, 0.5)), nir.I(r=ones(3, 2.0)))
    g = load_model(write(tmp_path, graph), options={"writer": "sinabs"})
    neuron, integrator = g.ops
    assert isinstance(neuron, IF)
    assert neuron.reset == "subtract"
    assert neuron.initial == 0.0
    assert isinstance(integrator, LIF)
    assert integrator.threshold is None
    x = np.array([[0.2, 0.5, 0.7]], np.float32)
    v, total, expected = np.zeros(3), np.zeros(3), []
    for _ in range(5):
        v = v + x[0]
        s = v >= 0.5
        v = v - 0.5 * s
        total = total + 2.0 * s
        expected.append(total)
    np.testing.assert_allclose(run(g, x, 5)[:, 0], expected, rtol=1e-6)
    assert g.meta["source"]["import_options"] == {
        "dt": 1.0,
        "discretization": "sinabs",
        "reset": "subtract",
        "compare": "ge",
        "writer": "sinabs",
        "spikes": "single",
        "conv_input_shape": "check",
    }


def test_conv_pool_flatten_scale_threshold_and_summed_edges(tmp_path) -> None:
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 1, (2, 1, 3)).astype(np.float32)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 6])}),
        "c1": nir.Conv1d(input_shape=6, weight=w1, stride=1, padding=1, dilation=1, groups=1, bias=ones(2, 0.5)),
        "flat": nir.Flatten(input_type={"input": np.array([2, 6])}, start_dim=0, end_dim=-1),
        "scale": nir.Scale(scale=ones(12, 2.0)),
        "skip": nir.Scale(scale=ones(12, -1.0)),
        "thr": nir.Threshold(threshold=ones(12, 0.3)),
        "output": nir.Output(output_type={"output": np.array([12])}),
    }
    edges = [
        ("input", "c1"),
        ("c1", "flat"),
        ("flat", "scale"),
        ("flat", "skip"),
        ("scale", "thr"),
        ("skip", "thr"),
        ("thr", "output"),
    ]
    g = load_model(write(tmp_path, nir.NIRGraph(nodes=nodes, edges=edges)))
    x = rng.random((4, 1, 6)).astype(np.float32)
    padded = np.pad(x[:, 0], ((0, 0), (1, 1)))
    conv = np.stack([sum(w1[o, 0, k] * padded[:, k : k + 6] for k in range(3)) + 0.5 for o in range(2)], axis=1)
    expected = (conv.reshape(4, 12) * 2.0 - conv.reshape(4, 12) > 0.3).astype(np.float32)
    np.testing.assert_array_equal(run(g, x, 1)[0], expected)

    pool = chain(
        nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        shape=(1, 4, 4),
        out=(1, 2, 2),
    )
    g = load_model(write(tmp_path, pool, "pool.nir"))
    x = rng.random((1, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(run(g, x, 1)[0], x.reshape(1, 1, 2, 2, 2, 2).sum(axis=(3, 5)), rtol=1e-6)


def test_nested_graphs_are_inlined(tmp_path) -> None:
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "lin": nir.Linear(weight=np.array([[2.0, 0.0], [0.0, 3.0]], np.float32)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "lin"), ("lin", "output")],
    )
    outer = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "block": inner,
            "if": nir.IF(r=ones(2), v_threshold=ones(2, 1.0)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "block"), ("block", "if"), ("if", "output")],
    )
    g = load_model(write(tmp_path, outer), options={"compare": "ge"})
    assert [op.name for op in g.ops] == ["block.lin", "if"]
    out = run(g, np.array([[0.25, 0.25]], np.float32), 4)[:, 0]
    np.testing.assert_array_equal(out, [[0, 0], [1, 1], [0, 0], [1, 1]])  # 0.5 and 0.75 a step, reset to 0


def test_compiles_records_its_options_and_emulates(tmp_path, capsys) -> None:
    graph = chain(
        nir.Affine(weight=np.eye(3, dtype=np.float32), bias=ones(3, 0.0)), nir.IF(r=ones(3), v_threshold=ones(3, 1.0))
    )
    model = write(tmp_path, graph)
    out = run_cli(capsys, "compile", model, "--target", "reference", "-o", tmp_path / "art", "-I", "compare=ge")
    assert out.code == 0, out.err
    artifact = compile_model(model, "reference", tmp_path / "art2", import_options={"compare": "ge"})
    assert artifact.manifest["source"]["format"] == "nir"
    assert artifact.manifest["source"]["import_options"]["compare"] == "ge"
    assert not artifact.has_ann
    result = emulate_artifact(artifact, np.array([[0.25, 0.5, 1.0]], np.float32), steps=8)
    np.testing.assert_allclose(result.outputs[0], [0.25, 0.5, 1.0])
    out = run_cli(capsys, "compile", tmp_path / "x.onnx", "--target", "reference", "-I", "dt=1")
    assert out.code != 0


def test_errors_list_every_node_and_what_to_do(tmp_path) -> None:
    lif = nir.LIF(tau=ones(3, 1e-3), r=ones(3), v_leak=ones(3, 0.0), v_threshold=ones(3))
    delay = nir.Delay(delay=ones(3, 2.0))
    path = write(
        tmp_path,
        chain(
            lif,
            delay,
            nir.CubaLIF(tau_syn=ones(3), tau_mem=ones(3), r=ones(3), v_leak=ones(3, 0.0), v_threshold=ones(3)),
        ),
    )
    with pytest.raises(UnsupportedOpError) as info:
        load_model(path)
    text = str(info.value)
    assert "1 node(s)" in text
    assert "'n0' (LIF), 'n1' (Delay), 'n2' (CubaLIF): time constants and delays need a time step" in text
    assert "writer=snntorch" in text
    with pytest.raises(ModelLoadError, match="dt = 1 is larger than its time constant"):
        load_model(write(tmp_path, chain(lif), "lif.nir"), options={"dt": "1"})
    with pytest.raises(ModelLoadError, match="unknown NIR import option"):
        load_model(path, options={"tau": "1"})
    with pytest.raises(ModelLoadError, match="choose one of gt, ge"):
        load_model(path, options={"compare": ">"})
    with pytest.raises(ModelLoadError, match="positive time step"):
        load_model(path, options={"dt": "nan"})


def test_a_cycle_is_refused_naming_its_nodes(tmp_path) -> None:
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "lif": nir.LIF(tau=ones(2, 1e-3), r=ones(2), v_leak=ones(2, 0.0), v_threshold=ones(2)),
        "rec": nir.Linear(weight=np.eye(2, dtype=np.float32)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    with pytest.raises(UnsupportedOpError, match=r"cycle .* through 'lif' \(LIF\), 'rec' \(Linear\)"):
        load_model(write(tmp_path, nir.NIRGraph(nodes=nodes, edges=edges)), options={"dt": "1e-4"})


def test_targets_refuse_a_leak_they_cannot_map_with_its_numbers(tmp_path) -> None:
    graph = chain(
        nir.Affine(weight=np.eye(3, dtype=np.float32), bias=ones(3, 0.0)),
        nir.LIF(
            tau=np.array([1e-3, 2e-3, 1e-3], np.float32), r=ones(3, 10.0), v_leak=ones(3, 0.0), v_threshold=ones(3)
        ),
    )
    model = write(tmp_path, graph)
    for target in ("loihi", "spinnaker", "brainscales2"):  # one decay per layer on every chip
        with pytest.raises(
            NeurodeployError, match=rf"LIF 'n1': its decays or gains differ between neurons .* {target}"
        ):
            compile_model(model, target, tmp_path / "l", import_options={"dt": "1e-4"})
        assert not (tmp_path / "l").exists()
    image = write(
        tmp_path,
        chain(
            nir.Flatten(input_type={"input": np.array([1, 1, 3])}, start_dim=0, end_dim=-1),
            nir.Affine(weight=np.eye(3, dtype=np.float32), bias=ones(3, 0.0)),
            nir.LIF(tau=ones(3, 1e-3), r=ones(3, 10.0), v_leak=ones(3, 0.0), v_threshold=ones(3)),
            shape=(1, 1, 3),
            out=(3,),
        ),
        "image.nir",
    )
    with pytest.raises(NeurodeployError, match=r"'n2' \(LIF: leak: v decays by a factor 0.9 per step"):
        compile_model(image, "speck", tmp_path / "s", import_options={"dt": "1e-4"})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda f, other: f.__setitem__("node/nodes/n0/weight", h5py.ExternalLink(str(other), "/data")),
            "a link to another file",
        ),
        (
            lambda f, other: f.__setitem__("node/nodes/n0/weight", h5py.SoftLink("/node/nodes/n0/bias")),
            "a symbolic link",
        ),
        (
            lambda f, other: f["node/nodes/n0"].create_dataset(
                "weight", shape=(3, 3), dtype="f4", external=[(str(other), 0, 36)]
            ),
            "keeps its data outside the file",
        ),
    ],
)
def test_a_file_that_reaches_outside_itself_is_refused(tmp_path, make, message) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(9, dtype=np.float32).tobytes())
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["data"] = np.ones((3, 3), np.float32)
    path = write(tmp_path, chain(nir.Affine(weight=np.eye(3, dtype=np.float32), bias=ones(3, 0.0))))
    with h5py.File(path, "a") as f:
        del f["node/nodes/n0/weight"]
        make(f, secret if "external" in message or "outside" in message else tmp_path / "other.h5")
    with pytest.raises(ModelLoadError, match=message):
        load_model(path)


def test_files_that_are_not_nir(tmp_path) -> None:
    (tmp_path / "a.nir").write_bytes(b"not hdf5")
    with pytest.raises(ModelLoadError, match="not HDF5"):
        load_model(tmp_path / "a.nir")
    with h5py.File(tmp_path / "b.nir", "w") as f:
        f["x"] = 1
    with pytest.raises(ModelLoadError, match="no 'node' group"):
        load_model(tmp_path / "b.nir")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "c.nir")
    (tmp_path / "d.nir").symlink_to(tmp_path / "b.nir")
    with pytest.raises(ModelLoadError, match="symbolic link"):
        load_model(tmp_path / "d.nir")
    shutil.rmtree(tmp_path)


def test_evaluate_runs_a_nir_network_with_no_ann(tmp_path, capsys) -> None:
    """Three IF neurons reading one input each: the class whose input is largest fires most."""
    graph = chain(
        nir.Affine(weight=np.eye(3, dtype=np.float32), bias=ones(3, 0.0)), nir.IF(r=ones(3), v_threshold=ones(3, 1.0))
    )
    model = write(tmp_path, graph)
    rng = np.random.default_rng(0)
    x = rng.random((12, 3)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=x.argmax(axis=1))
    out = run_cli(
        capsys,
        "evaluate",
        model,
        "--data",
        tmp_path / "data.npz",
        "-T",
        "4,32",
        "-I",
        "compare=ge",
        "--json",
        tmp_path / "r.json",
        "--workers",
        "1",
        *(["--plot", tmp_path / "r.png"] if PLOT else []),
    )
    assert out.code == 0, out.err
    assert "no ANN to compare with" in out.out
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ann_accuracy"] is None
    assert report["snn_accuracy"]["32"] >= 0.75
    assert not PLOT or (tmp_path / "r.png").stat().st_size > 0


def test_subtract_next_and_a_traced_batch_in_the_input_shape(tmp_path) -> None:
    """reset=subtract-next (snnTorch's Leaky): v[t] = 0.5·v[t-1] + x - s[t-1]; s[t] = v[t] > 1. The Input node
    records a batch of 4 before the 3 features the Affine reads: it is dropped."""
    unchecked = {"type_check": False} if "type_check" in inspect.signature(nir.NIRGraph).parameters else {}
    graph = nir.NIRGraph(
        **unchecked,
        nodes={
            "input": nir.Input(input_type={"input": np.array([4, 3])}),
            "fc": nir.Affine(weight=np.eye(3, dtype=np.float32), bias=ones(3, 0.0)),
            "lif": nir.LIF(tau=ones(3, 2.0), r=ones(3, 2.0), v_leak=ones(3, 0.0), v_threshold=ones(3, 1.0)),
            "output": nir.Output(output_type={"output": np.array([4, 3])}),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    g = load_model(write(tmp_path, graph), options={"dt": "1", "reset": "subtract-next"})
    assert g.inputs[next(iter(g.inputs))].shape == (3,)
    x = np.array([[0.7, 1.3, 2.6]], np.float32)
    v, s, expected = np.zeros(3, np.float32), np.zeros(3, np.float32), []
    for _ in range(8):
        v = np.float32(0.5) * v + x[0] - s
        s = (v > 1.0).astype(np.float32)
        expected.append(s)
    np.testing.assert_array_equal(run(g, x, 8)[:, 0], expected)


def _affine_file(tmp_path, name="net.nir"):
    return write(tmp_path, chain(nir.Affine(weight=np.eye(3, dtype=np.float32), bias=ones(3, 0.0))), name)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f["node/nodes/n0/weight"].__setitem__((0, 0), np.nan), "not finite"),
        (
            lambda f: (f["node/nodes/n0"].__delitem__("type"), f["node/nodes/n0"].create_dataset("type", data=3)),
            "not a NIR node",
        ),
        (
            lambda f: (f["node"].__delitem__("edges"), f["node"].create_dataset("edges", data=np.arange(4))),
            "edges are not",
        ),
        (
            lambda f: (
                f["node/nodes/n0"].__delitem__("weight"),
                f["node/nodes/n0"].create_dataset("weight", data=np.ones((2, 2, 2), np.float32)),
            ),
            "is not \\(out, in\\)",
        ),
        (
            lambda f: f["node/nodes/n0"].create_dataset("extra", data=np.zeros(2, dtype=[("a", "i4"), ("b", "f4")])),
            "holds .* values; NIR files hold numbers and strings",
        ),
    ],
)
def test_damaged_files_are_refused_naming_the_node(tmp_path, damage, message) -> None:
    path = _affine_file(tmp_path)
    with h5py.File(path, "a") as f:
        damage(f)
    with pytest.raises(NeurodeployError, match=message):
        load_model(path)


def test_a_compressed_array_too_large_to_hold_is_refused_before_it_is_read(tmp_path, monkeypatch) -> None:
    """A gzip-compressed dataset of 64 MiB of zeros is a file of kilobytes: its size is checked from its shape."""
    path = _affine_file(tmp_path)
    with h5py.File(path, "a") as f:
        del f["node/nodes/n0/weight"]
        f["node/nodes/n0"].create_dataset("weight", shape=(4096, 4096), dtype="f4", compression="gzip")
    assert path.stat().st_size < 2**20
    monkeypatch.setenv("NEURODEPLOY_MAX_CONSTANT_BYTES", str(2**24))
    with pytest.raises(NeurodeployError, match="NEURODEPLOY_MAX_CONSTANT_BYTES"):
        load_model(path)


def test_graphs_nested_too_deep_are_refused(tmp_path) -> None:
    inner = chain(nir.Affine(weight=np.eye(3, dtype=np.float32), bias=ones(3, 0.0)))
    for _ in range(40):
        inner = nir.NIRGraph(
            nodes={
                "input": nir.Input(input_type={"input": np.array([3])}),
                "g": inner,
                "output": nir.Output(output_type={"output": np.array([3])}),
            },
            edges=[("input", "g"), ("g", "output")],
        )
    with pytest.raises(ModelLoadError, match="nested more than"):
        load_model(write(tmp_path, inner))


def test_an_object_reference_is_refused(tmp_path) -> None:
    path = _affine_file(tmp_path)
    with h5py.File(path, "a") as f:
        f["node/nodes/n0"].create_dataset("extra", data=f["node/nodes/n0/weight"].ref, dtype=h5py.ref_dtype)
    with pytest.raises(ModelLoadError, match="NIR files hold numbers and strings"):
        load_model(path)
