"""The delayed readout of rate-coded SNNs: the host leaves the start-up transient out of the mean.

A converted network starts with every membrane at its initial potential, and its layers begin to fire one after
another: until the last hidden layer has settled, the output integrates a current the ANN would never produce.
The readout of T steps is the mean over steps d+1..T, with d = min(D, T // 2) (:func:`readout_skip`): the
output's change after step d, which a host gets by reading the output at step d and at step T. Spikes, SynOps
and the run's length are those of all T steps: the readout only ignores the first d steps' part of the output.

D, the artifact's readout delay, is chosen at compile time (``--target-option readout_delay=auto``, the default
on the targets that take it) from the calibration data: the float SNN runs the first 128 calibration samples
(fewer for a network too large for the budget; none below 32) for up to 64 steps, and D is the candidate whose
readout agrees most often with the ANN's prediction, averaged over the T of 2, 4, ..., 64 at which some candidate
agrees on at least half the samples (ties go to the smaller D). A network that settles at once keeps D = 0; one
whose layers fill slowly gets the delay it needs. Without calibration data, or for a network that already waits
for its pipeline (windowed QCFS, few-spike neurons: :func:`neurodeploy.simulate.readout_delay`), D is 0. The
manifest records D and where it came from (:meth:`Choice.manifest`; :mod:`neurodeploy.readout_calibration`
chooses it), and :class:`neurodeploy.emulation.Emulation` passes it to the backend in the modes the backend
names (``Backend.delayed_modes``), which reads the output at step d in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurodeploy.errors import DataError

MAX_DELAY = 1000
"""The largest readout delay a target option may set."""
OPTION_HELP = (
    "auto (default): steps at the start of a run whose part of the output the readout leaves out (at most half "
    "the run), chosen on the calibration data (the delay whose readout agrees most with the ANN over T = 2..64; "
    f"0 without calibration data); 0: the mean over every step; N: a fixed delay, 0..{MAX_DELAY}"
)


def readout_skip(delay: int, steps: int) -> int:
    """Steps at the start whose part of the output a run of ``steps`` leaves out: the delay, at most half the
    run."""
    return min(int(delay), int(steps) // 2)


def parse_option(text: Any) -> int | str:
    """A ``readout_delay`` target option: ``"auto"``, or a whole number of steps 0..MAX_DELAY."""
    text = str(text).strip().lower()
    if text == "auto":
        return "auto"
    if not (text.isdigit() and int(text) <= MAX_DELAY):
        raise DataError(
            f"target option readout_delay must be auto or a whole number of steps 0..{MAX_DELAY}, got {text!r}"
        )
    return int(text)


@dataclass
class Choice:
    """A readout delay and why: ``source`` in words; with calibration, ``agreement[D][T]``, the percentage of
    calibration samples whose delayed readout gives the ANN's class, and the samples run."""

    steps: int
    source: str
    agreement: dict[int, dict[int, float]] = field(default_factory=dict)
    samples: int = 0
    chosen: bool = False
    """Whether the calibration chose the delay (False: a fixed option, or D = 0 because it could not calibrate)."""

    def manifest(self) -> dict[str, Any]:
        """What the manifest records of each output (``outputs[i]["readout_delay"]``)."""
        return {"steps": self.steps, "source": self.source, "skip": "min(steps, T // 2)"}

    def report(self) -> dict[str, Any]:
        """The choice with its calibration table, for ``report.json``."""
        doc: dict[str, Any] = self.manifest()
        if self.agreement:
            steps = list(next(iter(self.agreement.values())))
            doc["calibration"] = {
                "samples": self.samples,
                "steps": steps,
                "agreement_with_ann_percent": [
                    {"delay": d, "percent": [round(row[t], 2) for t in steps]} for d, row in self.agreement.items()
                ],
            }
        return doc


def recorded_delay(manifest: dict[str, Any] | None) -> int:
    """The readout delay an artifact's manifest records for its first output (0 when none is; the manifest's
    schema, :data:`neurodeploy.artifact.MANIFEST_SCHEMA`, has checked it is a whole number 0..MAX_DELAY)."""
    entry = (manifest or {}).get("outputs", [{}])[0].get("readout_delay")
    return 0 if entry is None else int(entry["steps"])
