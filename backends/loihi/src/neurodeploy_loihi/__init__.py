"""Intel Loihi 2 for neurodeploy.

* :mod:`neurodeploy_loihi.fixed_point`: Loihi 2 arithmetic as Lava's bit-accurate process models compute it
  (pure numpy);
* :mod:`neurodeploy_loihi.emulator`: a batched emulator of a chain of Dense/Conv layers of LIF or
  subtractive-reset neurons, bit-exact to Lava's ``fixed_pt`` models;
* :mod:`neurodeploy_loihi.lava_processes` (imports Lava): the subtractive-reset LIF process and a recorder;
* :mod:`neurodeploy_loihi.lava_runner`: runs emulator networks in Lava (imports Lava when called).

The ``loihi``/``loihi2`` targets (quantizing converted graphs, ``.net`` emission, resources) come in phase 2.
"""

from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron, Trace
from neurodeploy_loihi.fixed_point import SignMode

__version__ = "0.1.0"

__all__ = ["ConvSynapse", "DenseSynapse", "Layer", "Network", "Neuron", "SignMode", "Trace"]
