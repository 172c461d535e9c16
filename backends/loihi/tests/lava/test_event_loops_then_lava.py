"""The emulator's compiled loops leave Lava importable: an emulation first, then Lava, in one fresh interpreter.

Lava sets the multiprocessing start method when its runtime is imported and fails if anything fixed it before;
numba's parallel backend does that when it starts, so the event loops are compiled serial (a regression test:
the Lava tests once failed to collect after an emulation in the same session)."""

import subprocess
import sys

from lava_checks import require_lava

require_lava()

SCRIPT = """
import numpy as np
from neurodeploy_loihi import _compiled
from neurodeploy_loihi.emulator import ConvSynapse
assert _compiled.kernels() is not None, "numba is missing: the event loops are not compiled"
synapse = ConvSynapse(np.ones((2, 3, 3, 2), np.int64), (5, 5, 2), padding=(1, 1))
spikes = np.zeros((1, 5, 5, 2), bool)
spikes[0, 2, 2, 1] = True
assert synapse.accumulate(spikes).sum() == 18  # walked by the event loop: one spike, 9 taps, 2 outputs
_compiled.neurons(np.zeros((1, 3), np.int64), np.zeros((1, 3)), np.zeros((1, 3)), 0,
                  type("N", (), {"du": 4095, "dv": 0, "threshold": 64, "kind": "lif"})(), np.zeros((4, 1), np.int64))
import lava.magma.runtime.runtime  # sets the start method ('fork'): raises if it is fixed already
from lava.lib.dl import netx  # noqa: F401
print("ok")
"""


def test_lava_imports_after_an_emulation_with_the_event_loops():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
