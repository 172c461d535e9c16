"""SynSense Speck / DYNAP-CNN for neurodeploy.

* :mod:`neurodeploy_speck.chip`: the chip's limits, memory formulas and design rules;
* :mod:`neurodeploy_speck.lowering`: a converted graph as one layer per core (Conv2d/Dense + IF, sum pooling);
* :mod:`neurodeploy_speck.mapping`: layers onto cores by max-flow matching;
* :mod:`neurodeploy_speck.quantize`: one shared scale per layer, 8-bit weights and biases, 16-bit thresholds;
* :mod:`neurodeploy_speck.config`: ``speck.json``, a mirror of samna's configuration, and ``to_samna()``;
* :mod:`neurodeploy_speck.emulator`: time-binned and event-driven integer emulation of ``speck.json``;
* :class:`SpeckBackend`: the ``speck``, ``speck2f`` and ``dynapcnn`` targets.

samna is imported only by :func:`neurodeploy_speck.config.to_samna`.
"""

from neurodeploy_speck.backend import SpeckBackend
from neurodeploy_speck.config import SamnaMissingError, to_samna
from neurodeploy_speck.emulator import Network

__version__ = "0.1.0"

__all__ = ["Network", "SamnaMissingError", "SpeckBackend", "to_samna"]
