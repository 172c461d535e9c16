"""JSON + npz round trips through the op registry, and byte-for-byte determinism."""

import json

import numpy as np
import pytest
from ir_graphs import conv_net, inputs_for, leaky_net, qcfs_net, residual_net, two_layer

from neurodeploy.artifact import load_graph
from neurodeploy.errors import ArtifactError
from neurodeploy.ir import OP_TYPES, format_graph, interpret
from neurodeploy.ir.serialize import graph_from_dict, graph_to_dict, save_graph
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline


def converted(graph, options: str = ""):
    pipeline = f"{CANONICALIZE},convert-to-snn{{{options}}}"
    PassManager(build_pipeline(pipeline)).run(graph, PassContext(calibration=inputs_for(graph)))
    return graph


GRAPHS = {
    "conv_net": conv_net,
    "conv_net_softmax": lambda: conv_net(softmax=True, maxpool=True),
    "residual_net": residual_net,
    "converted_residual_net": lambda: converted(residual_net()),
    "qcfs_net": qcfs_net,
    "windowed_qcfs_net": lambda: converted(qcfs_net(levels2=4), "qcfs=window"),
    "few_spike_residual_net": lambda: converted(residual_net(), "coding=fs,fs-steps=4"),
    "signed_maxpool_net": lambda: converted(conv_net(maxpool=True), "coding=signed,maxpool=exact"),
    "silu_net": lambda: two_layer(None, silu=True),
    "few_spike_silu_net": lambda: converted(two_layer(None, silu=True), "coding=fs,fs-steps=4"),
    "leaky_net": leaky_net,
}


@pytest.mark.parametrize("make", GRAPHS.values(), ids=GRAPHS.keys())
def test_round_trip_preserves_structure_arrays_and_outputs(tmp_path, make):
    graph = make()
    save_graph(graph, tmp_path)
    loaded = load_graph(tmp_path)
    assert format_graph(loaded) == format_graph(graph)
    for a, b in zip(graph.ops, loaded.ops):
        assert type(a) is type(b)
        assert a.meta == b.meta
        for key, value in a.attributes().items():
            other = b.attributes()[key]
            if isinstance(value, np.ndarray):
                assert value.dtype == other.dtype
                assert value.shape == other.shape
                np.testing.assert_array_equal(value, other)
            else:
                assert value == other
                assert type(value) is type(other)
    x = inputs_for(graph)
    np.testing.assert_array_equal(
        interpret.run(loaded, x)[loaded.outputs[0]], interpret.run(graph, x)[graph.outputs[0]]
    )


def test_every_op_type_is_covered_by_the_round_trip_graphs():
    seen = {op.op_type for make in GRAPHS.values() for op in make().ops}
    assert seen == set(OP_TYPES)


def test_writes_are_byte_identical(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        save_graph(converted(residual_net()), tmp_path / folder)
    for name in ("graph.json", "graph.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_unknown_op_type_and_missing_array_are_artifact_errors():
    doc, arrays = graph_to_dict(conv_net())
    broken = json.loads(json.dumps(doc))
    broken["ops"][0]["op_type"] = "Teleport"
    with pytest.raises(ArtifactError, match="unknown op type 'Teleport'"):
        graph_from_dict(broken, arrays)
    with pytest.raises(ArtifactError, match="missing from the npz"):
        graph_from_dict(doc, {k: v for k, v in arrays.items() if not k.startswith("0/")})
    with pytest.raises(ArtifactError, match="not a neurodeploy-ir"):
        graph_from_dict({**doc, "version": 99}, arrays)
