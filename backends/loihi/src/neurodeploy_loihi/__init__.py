"""Intel Loihi 2 for neurodeploy.

* :mod:`neurodeploy_loihi.fixed_point`: Loihi 2 arithmetic as Lava's bit-accurate process models compute it
  (pure numpy);
* :mod:`neurodeploy_loihi.emulator`: a batched emulator of a chain of Dense/Conv layers of LIF or
  subtractive-reset neurons, bit-exact to Lava's ``fixed_pt`` models;
* :mod:`neurodeploy_loihi.lava_processes` (imports Lava): the subtractive-reset LIF process and a recorder;
* :mod:`neurodeploy_loihi.lava_runner`: runs emulator networks in Lava (imports Lava when called).

* :mod:`neurodeploy_loihi.lowering`, :mod:`neurodeploy_loihi.quantize`: a converted graph as Loihi populations
  and synapses, then in Loihi 2 fixed point;
* :mod:`neurodeploy_loihi.program`: the artifact's own description (loihi.json + loihi.npz + the host graph),
  read back and run by the emulator; :mod:`neurodeploy_loihi.netx`: a lava-dl netx ``.net`` where netx can
  express the network; :mod:`neurodeploy_loihi.resources`: Loihi 2's limits and the placement on cores;
* :mod:`neurodeploy_loihi.graded`: graded mode (integer payloads through graded ReLU neurons: the quantized ANN
  with 8-bit weights, QCFS populations sending their level; its quantization, emulator and integer reference);
  :mod:`neurodeploy_loihi.lava_graded` runs it in Lava;
* :class:`Loihi2Backend`: the ``loihi`` and ``loihi2`` targets.
"""

from neurodeploy_loihi.backend import Loihi2Backend
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron, Trace
from neurodeploy_loihi.fixed_point import SignMode

__version__ = "0.2.0"

__all__ = ["ConvSynapse", "DenseSynapse", "Layer", "Loihi2Backend", "Network", "Neuron", "SignMode", "Trace"]
