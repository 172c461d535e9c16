"""Typed errors: every failure neurodeploy reports to a user is one of these.

Each message says what went wrong, where (file, node, layer), which limit was hit and what to try. The CLI
prints ``str(error)`` as one paragraph and exits with status 1; ``--debug`` adds the traceback.
"""

from __future__ import annotations


class NeurodeployError(Exception):
    """Base class of all errors neurodeploy raises on purpose."""


class ModelLoadError(NeurodeployError):
    """The model file is missing, unreadable, corrupt, or not an ONNX model."""


class UnsupportedOpError(NeurodeployError):
    """The model uses ops (or op variants) the frontend cannot import; lists every one of them."""


class ShapeError(NeurodeployError):
    """Shapes are dynamic where they must be static, or do not agree between ops."""


class IRVerificationError(NeurodeployError):
    """The IR violates an invariant (dangling value, wrong order, bad attribute)."""


class PipelineError(NeurodeployError):
    """A pipeline string names an unknown pass or an invalid option."""


class ConversionError(NeurodeployError):
    """A graph cannot be converted to a spiking network as asked."""


class UnknownTargetError(NeurodeployError):
    """The requested target is not installed."""


class BackendLoadError(NeurodeployError):
    """A backend plugin could not be loaded, or two plugins claim the same target name."""


class ArtifactError(NeurodeployError):
    """An artifact folder is missing, incomplete, tampered with, or not a neurodeploy artifact."""


class DataError(NeurodeployError):
    """Input or calibration data is missing, unreadable, or has the wrong shape."""


class ResourceError(NeurodeployError):
    """A network does not fit the target chip; the message names the layer, the resource and the limit."""


class LimitError(NeurodeployError):
    """A configurable safety cap (constant size, activation size, time steps, file size) would be exceeded;
    the message names the cap, the value asked for, and the environment variable that raises it."""


class ClusterError(NeurodeployError):
    """A distributed engine (Dask) is missing, its cluster cannot be reached, or a worker failed for good; the
    message names the address and, for a worker failure, the chunk."""
