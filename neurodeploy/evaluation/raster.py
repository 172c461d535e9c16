"""A spike raster of one sample, for the evaluation report: when each spiking layer's neurons fire.

It is drawn from the artifact's converted SNN (its float reference simulation, :func:`neurodeploy.simulate.simulate`),
which every target's artifact holds: the targets' emulators count spikes, they do not all record them step by
step. The report says so next to the picture.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy.encoding import Encoding
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import StatefulOp
from neurodeploy.simulate import readout_delay, simulate

SHOWN = 96
"""At most this many neurons of a layer are drawn: its first active ones, evenly spread over the active ones."""


def spike_raster(snn: Graph, x: np.ndarray, steps: int, encoding: Encoding) -> dict[str, Any]:
    """Which neurons of each spiking layer fire at which step when ``x`` (one sample, batch first) runs for
    ``steps`` steps (and the pipeline's fill): {"steps", "source", "layers": [{"name", "neurons", "active",
    "shown", "spikes": [[step, row], ...]}]}; a row is a drawn neuron's place among the ``shown`` ones."""
    layers = {op.output: op.name for op in snn.ops if isinstance(op, StatefulOp) and op.emits_spikes}
    trains: dict[str, list[np.ndarray]] = {value: [] for value in layers}

    def observe(value: str, array: np.ndarray) -> None:
        if value in trains:
            trains[value].append(np.asarray(array[0]).reshape(-1) != 0)

    simulate(snn, {next(iter(snn.inputs)): x[:1]}, steps, encoding=encoding, observe=observe)
    total = steps + readout_delay(snn)
    found = []
    for value, name in layers.items():
        fired = np.stack(trains[value]) if trains[value] else np.zeros((0, 0), bool)  # (steps, neurons)
        active = np.flatnonzero(fired.any(axis=0)) if fired.size else np.zeros(0, np.int64)
        chosen = active[np.linspace(0, len(active) - 1, SHOWN).round().astype(int)] if len(active) > SHOWN else active
        chosen = np.unique(chosen)
        t, row = np.nonzero(fired[:, chosen]) if len(chosen) else (np.zeros(0, int), np.zeros(0, int))
        found.append(
            {
                "name": name,
                "neurons": int(fired.shape[1]) if fired.ndim == 2 else 0,
                "active": len(active),
                "shown": len(chosen),
                "spikes": [[int(a), int(b)] for a, b in zip(t, row)],
            }
        )
    return {"steps": int(total), "source": "the converted SNN (float reference simulation), sample 0", "layers": found}
