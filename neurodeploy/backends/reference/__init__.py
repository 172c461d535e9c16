"""The reference target: the imported ANN and the converted SNN in float32 numpy, the oracle the chip
emulators are compared with."""

from neurodeploy.backends.reference.backend import ReferenceBackend

__all__ = ["ReferenceBackend"]
