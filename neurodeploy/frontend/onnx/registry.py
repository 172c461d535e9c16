"""ONNX op handlers, keyed by (domain, op_type, since_version) and resolved through ``onnx.defs``.

A model at opset 17 that uses Relu finds the handler registered for Relu-14 (the newest Relu schema at or
below 17). Handlers are registered with the since-versions they implement; a version without a handler is
reported as unsupported, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from onnx import defs

if TYPE_CHECKING:
    from neurodeploy.frontend.onnx.context import ImportContext, Node

Handler = Callable[["ImportContext", "Node"], None]

_HANDLERS: dict[tuple[str, str, int], Handler] = {}
_CONSTANT_ONLY: set[str] = set()
MIN_OPSET, MAX_OPSET = 11, 21


def onnx_op(op_type: str, *since_versions: int, domain: str = "", constant_only: bool = False):
    """Register a handler for ``op_type`` at each of the given since-versions."""

    def register(handler: Handler) -> Handler:
        for version in since_versions:
            key = (domain, op_type, version)
            if key in _HANDLERS:
                raise ValueError(f"ONNX handler for {key} is registered twice")
            _HANDLERS[key] = handler
        if constant_only:
            _CONSTANT_ONLY.add(op_type)
        return handler

    return register


@lru_cache(maxsize=1024)
def schema(op_type: str, opset: int, domain: str = "") -> defs.OpSchema | None:
    """The ONNX schema in force for ``op_type`` at ``opset``, or None if ONNX has none (looked up once per
    op type and opset: a model with thousands of nodes asks for a handful of schemas)."""
    try:
        return defs.get_schema(op_type, max_inclusive_version=opset, domain=domain)
    except Exception:  # onnx raises SchemaError (or RuntimeError in older releases)
        return None


def since_version(op_type: str, opset: int, domain: str = "") -> int | None:
    """The since-version of the schema in force for ``op_type`` at ``opset``, or None if ONNX has none."""
    found = schema(op_type, opset, domain)
    return None if found is None else found.since_version


def resolve(op_type: str, opset: int, domain: str = "") -> Handler | None:
    version = since_version(op_type, opset, domain)
    if version is None:
        return None
    return _HANDLERS.get((domain, op_type, version))


def supported_ops() -> dict[str, list[int]]:
    """Every op with a runtime handler, with the since-versions it covers."""
    table: dict[str, list[int]] = {}
    for _domain, op_type, version in _HANDLERS:
        if op_type not in _CONSTANT_ONLY:
            table.setdefault(op_type, []).append(version)
    return {k: sorted(v) for k, v in sorted(table.items())}


def constant_only_ops() -> list[str]:
    """Ops imported only when every input is constant (they are folded at import)."""
    return sorted(_CONSTANT_ONLY)
