"""SpiNNaker and BrainScaleS-2 targets for neurodeploy, via PyNN.

* :mod:`neurodeploy_pynn.s1615`: sPyNNaker 1!7.4.1's s16.15 fixed-point arithmetic on raw int32 bits (the ARM
  build's floor multiply, wrapping adds, divisions, ``expk``/``expulr``), the host's S1615 parameter encoding,
  the constants the chip derives from the parameters, and the host's ring-buffer shift and 16-bit weight words;
* :mod:`neurodeploy_pynn.spinnaker_emulator`: a batched numpy emulator of ``IF_curr_exp`` and ``IF_curr_delta``
  populations, projections with 16-bit weight words and integer delays, and spike-source inputs, step for step
  as sPyNNaker's ARM code runs them;
* :mod:`neurodeploy_pynn.spinnaker`: a converted network planned for sPyNNaker (thresholds, currents, shifts,
  words), its netlist files, and its emulation;
* :mod:`neurodeploy_pynn.run_pynn`: the PyNN script every ``spinnaker`` artifact carries (the netlist rebuilt in
  sPyNNaker or NEST), and :mod:`neurodeploy_pynn.pynn_check`, which runs it and compares it with the emulator;
* :mod:`neurodeploy_pynn.brainscales2` and :mod:`neurodeploy_pynn.brainscales2_emulator`: a converted network on
  one BrainScaleS-2 chip (6-bit weights, two hemispheres of 256 neurons and rows), its netlist, and a model of the
  analog neurons with seeded fixed-pattern and trial-to-trial noise;
* :class:`SpiNNakerBackend` and :class:`BrainScaleS2Backend`: the ``spinnaker`` and ``brainscales2`` targets.

Only numpy is needed; no PyNN, sPyNNaker, NEST or board.
"""

from neurodeploy_pynn.backend import SpiNNakerBackend
from neurodeploy_pynn.brainscales2_backend import BrainScaleS2Backend

__version__ = "0.1.0"

__all__ = ["BrainScaleS2Backend", "SpiNNakerBackend"]
