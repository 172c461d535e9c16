"""Model importers: model files in, IR graphs out, chosen by the file's suffix.

Each format registers a loader under its suffixes (:func:`register_format`); :func:`load_model` picks the one a
file's suffix names. ONNX is the default: a file with a suffix no format claims is read as ONNX, and the ONNX
loader says what is wrong with it when it is not one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.ir.graph import Graph


@dataclass(frozen=True)
class ModelFormat:
    """A model file format: its name (recorded in the artifact's manifest) and its loader, which takes the path
    and ``input_shapes`` (per-input shapes to fix, as the command line's ``--input-shape``; None for the
    file's own) and returns the graph."""

    name: str
    load: Callable[..., Graph]


DEFAULT_FORMAT = ModelFormat("onnx", import_onnx)
_FORMATS: dict[str, ModelFormat] = {".onnx": DEFAULT_FORMAT}


def register_format(suffixes: tuple[str, ...], model_format: ModelFormat) -> None:
    """Read files ending in any of ``suffixes`` (e.g. ``(".nir",)``, case-insensitive) with ``model_format``; a
    suffix another format already claims is a ValueError naming both."""
    for suffix in suffixes:
        key = suffix.lower()
        if key in _FORMATS and _FORMATS[key] != model_format:
            raise ValueError(f"suffix {suffix!r} is already read as {_FORMATS[key].name}, not {model_format.name}")
    for suffix in suffixes:
        _FORMATS[suffix.lower()] = model_format


def unregister_format(suffixes: tuple[str, ...]) -> None:
    """Forget the formats of ``suffixes`` (the default ONNX format stays)."""
    for suffix in suffixes:
        if suffix.lower() != ".onnx":
            _FORMATS.pop(suffix.lower(), None)


def model_format(path: str | Path) -> ModelFormat:
    """The format a model file is read as: the one its suffix names, or ONNX."""
    return _FORMATS.get(Path(path).suffix.lower(), DEFAULT_FORMAT)


def load_model(path: str | Path, *, input_shapes: Any = None) -> Graph:
    """The IR graph of the model file ``path``, read by the format its suffix names (:func:`model_format`)."""
    return model_format(path).load(Path(path), input_shapes=input_shapes)
