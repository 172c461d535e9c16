"""The ONNX frontend: one handler per op, keyed by (domain, op_type, since_version)."""

from neurodeploy.frontend.onnx.importer import import_model, import_onnx
from neurodeploy.frontend.onnx.registry import constant_only_ops, supported_ops

__all__ = ["constant_only_ops", "import_model", "import_onnx", "supported_ops"]
