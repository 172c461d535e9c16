"""Model importers: model files in, IR graphs out, chosen by the file's suffix.

Each format registers a loader under its suffixes (:func:`register_format`); :func:`load_model` picks the one a
file's suffix names: ``.onnx`` and ``.nir`` (:mod:`neurodeploy.frontend.nir`) are built in. ONNX is the default: a
file with a suffix no format claims is read as ONNX, and the ONNX loader says what is wrong with it when it is not
one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodeploy.errors import ModelLoadError
from neurodeploy.frontend.nir import import_nir
from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.ir.graph import Graph


@dataclass(frozen=True)
class ModelFormat:
    """A model file format: its name (recorded in the artifact's manifest) and its loader, which takes the path
    and ``input_shapes`` (per-input shapes to fix, as the command line's ``--input-shape``; None for the
    file's own) and returns the graph."""

    name: str
    load: Callable[..., Graph]
    takes_options: bool = False
    """Whether the loader takes import options (``options=``, the command line's ``--import-option``)."""


DEFAULT_FORMAT = ModelFormat("onnx", import_onnx)
NIR_FORMAT = ModelFormat("nir", import_nir, takes_options=True)
_FORMATS: dict[str, ModelFormat] = {".onnx": DEFAULT_FORMAT, ".nir": NIR_FORMAT}


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
    """Forget the formats of ``suffixes`` (the built-in ONNX and NIR formats stay)."""
    for suffix in suffixes:
        if suffix.lower() not in (".onnx", ".nir"):
            _FORMATS.pop(suffix.lower(), None)


def model_format(path: str | Path) -> ModelFormat:
    """The format a model file is read as: the one its suffix names, or ONNX."""
    return _FORMATS.get(Path(path).suffix.lower(), DEFAULT_FORMAT)


def load_model(path: str | Path, *, input_shapes: Any = None, options: dict[str, str] | None = None) -> Graph:
    """The IR graph of the model file ``path``, read by the format its suffix names (:func:`model_format`).
    ``options`` are import options for formats that take them (NIR's time step and conventions); given for a
    format that takes none, they are a ModelLoadError."""
    fmt = model_format(path)
    if not fmt.takes_options:
        if options:
            raise ModelLoadError(f"{Path(path).name} is read as {fmt.name}, which takes no import options")
        return fmt.load(Path(path), input_shapes=input_shapes)
    return fmt.load(Path(path), input_shapes=input_shapes, options=options)
