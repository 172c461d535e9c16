"""Passes, their context, pipeline strings and the pass manager.

A pass is a frozen dataclass whose fields are its options. A pipeline is a string the CLI, the backends and
the tests share::

    fold-batchnorm,fuse-activations,convert-to-snn{norm=max,reset=subtract}

Options go in braces, comma-separated ``key=value``; values are converted to the field's type.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurodeploy.errors import PipelineError
from neurodeploy.ir.graph import Graph

log = logging.getLogger(__name__)


@dataclass
class PassContext:
    """What passes may read besides the graph, and where they leave diagnostics.

    ``calibration`` holds sample inputs (batch first) for data-based threshold balancing.
    """

    calibration: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        """Record a warning for the user (shown by the CLI, kept in the artifact's report)."""
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning(message)


@dataclass(frozen=True)
class Pass(ABC):
    """A named graph rewrite. ``run`` edits the graph in place and must leave it valid.

    ``preserves_semantics`` marks passes after which the graph computes exactly what it computed before (up to
    float rounding); the compiler snapshots the ANN after the leading run of such passes.
    """

    name: ClassVar[str]
    preserves_semantics: ClassVar[bool] = True

    @abstractmethod
    def run(self, graph: Graph, ctx: PassContext) -> None: ...

    def spec(self) -> str:
        """This pass as it is written in a pipeline string."""
        options = [
            f"{f.name.replace('_', '-')}={_format_option(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        ]
        return self.name + (f"{{{','.join(options)}}}" if options else "")


def _format_option(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _convert_option(pass_name: str, key: str, raw: str, kind: str) -> Any:
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return raw
    except ValueError:
        raise PipelineError(f"pass {pass_name!r}: option {key}={raw!r} is not a valid {kind}") from None


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise PipelineError(f"unbalanced '}}' in pipeline {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise PipelineError(f"unbalanced '{{' in pipeline {text!r}")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_pipeline(text: str, registry: dict[str, type[Pass]]) -> list[Pass]:
    """Turn ``"a,b{x=1}"`` into pass instances; unknown passes and options are errors that list the known ones."""
    passes = []
    for item in _split_top_level(text):
        name, _, rest = item.partition("{")
        name = name.strip()
        if (cls := registry.get(name)) is None:
            raise PipelineError(f"unknown pass {name!r}; known passes: {', '.join(sorted(registry))}")
        kinds = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        kwargs = {}
        if rest:
            if not rest.endswith("}"):
                raise PipelineError(f"pass {name!r}: options must end with '}}' in {item!r}")
            for option in filter(None, (o.strip() for o in rest[:-1].split(","))):
                key, eq, raw = option.partition("=")
                field_name = key.strip().replace("-", "_")
                if not eq or field_name not in kinds:
                    known = ", ".join(k.replace("_", "-") for k in kinds) or "none"
                    raise PipelineError(f"pass {name!r}: unknown option {key.strip()!r} (options: {known})")
                kwargs[field_name] = _convert_option(name, key.strip(), raw.strip(), kinds[field_name])
        try:
            passes.append(cls(**kwargs))
        except ValueError as exc:
            raise PipelineError(f"pass {name!r}: {exc}") from None
    return passes


def format_pipeline(passes: list[Pass]) -> str:
    return ",".join(p.spec() for p in passes)


@dataclass
class PassManager:
    """Runs passes in order, verifying the IR after each when ``verify_each`` is set."""

    passes: list[Pass]
    verify_each: bool = True
    after_pass: Callable[[Pass, Graph], None] | None = None

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for p in self.passes:
            log.debug("running pass %s", p.spec())
            p.run(graph, ctx)
            if self.verify_each:
                graph.verify()
            if self.after_pass is not None:
                self.after_pass(p, graph)
        return graph
