"""SpiNNaker (and, to come, BrainScaleS-2) targets for neurodeploy, via PyNN.

* :mod:`neurodeploy_pynn.s1615`: sPyNNaker 1!7.4.1's s16.15 fixed-point arithmetic on raw int32 bits (the ARM
  build's floor multiply, wrapping adds, divisions, ``expk``/``expulr``), the host's S1615 parameter encoding,
  the constants the chip derives from the parameters, and the host's ring-buffer shift and 16-bit weight words;
* :mod:`neurodeploy_pynn.spinnaker_emulator`: a batched numpy emulator of ``IF_curr_exp`` and ``IF_curr_delta``
  populations, projections with 16-bit weight words and integer delays, and spike-source inputs, step for step
  as sPyNNaker's ARM code runs them;
* :mod:`neurodeploy_pynn.spinnaker`: a converted network planned for sPyNNaker (thresholds, currents, shifts,
  words), its netlist files, and its emulation;
* :class:`SpiNNakerBackend`: the ``spinnaker`` target.

Only numpy is needed; no PyNN, sPyNNaker or board.
"""

from neurodeploy_pynn.backend import SpiNNakerBackend

__version__ = "0.1.0"

__all__ = ["SpiNNakerBackend"]
