"""The handler registry: every supported op resolves at every opset 11..21, unknown ops do not."""

from __future__ import annotations

import pytest
from onnx import defs

from neurodeploy.frontend.onnx import constant_only_ops, registry, supported_ops
from neurodeploy.frontend.onnx.registry import MAX_OPSET, MIN_OPSET

OPSETS = range(MIN_OPSET, MAX_OPSET + 1)


def test_opset_range():
    assert (MIN_OPSET, MAX_OPSET) == (11, 21)


@pytest.mark.parametrize("op_type", sorted(supported_ops()) + constant_only_ops())
@pytest.mark.parametrize("opset", OPSETS)
def test_every_op_resolves_at_every_opset(op_type, opset):
    handler = registry.resolve(op_type, opset)
    schema_version = defs.get_schema(op_type, max_inclusive_version=opset).since_version
    assert handler is not None, f"{op_type} has no handler for its since-version {schema_version} at opset {opset}"
    assert registry.since_version(op_type, opset) == schema_version


@pytest.mark.parametrize("op_type", sorted(supported_ops()))
def test_supported_versions_are_real_schemas(op_type):
    for version in supported_ops()[op_type]:
        assert defs.get_schema(op_type, max_inclusive_version=version).since_version == version


def test_supported_ops_lists_the_runtime_ops():
    table = supported_ops()
    for op in ["Conv", "Gemm", "MatMul", "Relu", "Clip", "BatchNormalization", "AveragePool", "MaxPool"]:
        assert op in table
    for op in ["GlobalAveragePool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Add", "Concat", "Softmax"]:
        assert op in table
    for op in ["Identity", "Dropout", "Constant"]:
        assert op in table
    for op in ["Mul", "Div", "Sub", "Floor"]:  # runtime operand with a constant (quantized activations)
        assert op in table
    assert not set(table) & set(constant_only_ops())
    assert set(constant_only_ops()) >= {"Shape", "Gather", "Cast", "Slice", "Transpose"}


@pytest.mark.parametrize("op_type", ["NoSuchOp", "LSTM", "Sin", "Tanh"])
@pytest.mark.parametrize("opset", [11, 17, 21])
def test_unknown_or_unsupported_op_resolves_to_none(op_type, opset):
    assert registry.resolve(op_type, opset) is None


def test_unknown_op_has_no_since_version():
    assert registry.since_version("NoSuchOp", 17) is None
    assert registry.resolve("Relu", 17, domain="com.example") is None


def test_resolve_picks_the_newest_schema_at_or_below_the_opset():
    assert registry.since_version("Relu", 13) == 13
    assert registry.since_version("Relu", 17) == 14
    assert registry.resolve("Relu", 17) is registry.resolve("Relu", 14)


def test_registering_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        registry.onnx_op("Relu", 14)(lambda ctx, node: None)
