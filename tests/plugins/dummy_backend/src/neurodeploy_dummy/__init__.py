"""A minimal third-party backend, installed only to test plugin discovery.

It reuses the reference backend's files and emulator, and counts what it emulated, so tests can tell that
the plugin (not the reference backend) ran. It declares the numpy emulator engine only.
"""

from neurodeploy.backends.base import TargetSpec
from neurodeploy.backends.reference import ReferenceBackend


class DummyBackend(ReferenceBackend):
    name = "dummy"
    version = "0.1.0"
    spec = TargetSpec(name="dummy", description="test plugin (reference arithmetic under another name)")
    engines = ("numpy",)  # a plugin that declares no torch engine (tests of the refusal use it)
    calls = 0

    def emulate(self, artifact, inputs, **kwargs):
        type(self).calls += 1
        return super().emulate(artifact, inputs, **kwargs)
