"""The PyNN script of a ``spinnaker`` or ``brainscales2`` artifact run in a simulator, and compared with the
emulator.

The script (``run_pynn.py`` in the artifact: :mod:`neurodeploy_pynn.run_pynn` or
:mod:`neurodeploy_pynn.run_pynn_brainscales2`) runs under another Python, one that has PyNN with NEST or
sPyNNaker (``make`` builds ``.venv-pynn``); these functions call it on the artifact as a user would and read back
what it wrote. They run this package's copy of the script, never the one inside the artifact.

* :func:`simulate`: samples through a ``spinnaker`` netlist in NEST (floating point, the chip's decay and gain)
  or sPyNNaker, or through a ``brainscales2`` netlist in NEST (the model the emulator runs) or pynn-brainscales;
* :func:`map_virtual_board`: sPyNNaker's own partitioner, placer and router on a virtual SpiNN-5 board;
* :func:`compare`: the emulator's spike counts and outputs against the simulator's, per population.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import DataError
from neurodeploy.readout import readout_skip
from neurodeploy_pynn import brainscales2, run_pynn, run_pynn_brainscales2, spinnaker


def _script(folder: Path, python: str, args: list[str], timeout: float) -> None:
    """Run this package's own copy of the artifact's script on the artifact in ``folder``. The artifact's
    ``run_pynn.py`` is never executed here: an artifact is data, and a tampered one must not run code; the two
    copies are the same file for an artifact this version wrote."""
    module = run_pynn_brainscales2 if (folder / brainscales2.DESCRIPTION).exists() else run_pynn
    script = Path(module.__file__ or "")
    command = [python, str(script), "--folder", str(folder), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise DataError(f"{script.name} on {folder} failed under {python}:\n{done.stderr[-4000:]}")


def simulate(
    folder: Path,
    x: np.ndarray,
    steps: int,
    python: str,
    *,
    simulator: str = "nest",
    timeout: float = 3600,
    readout_delay: int = 0,
) -> dict[str, Any]:
    """Run the inputs ``x`` (B, *input shape) for ``steps`` graph steps through the artifact in ``folder`` (a
    ``spinnaker`` or a ``brainscales2`` artifact) with ``python``'s PyNN ``simulator``: ``outputs`` (B, *readout
    shape), ``counts`` {population: (B, neurons)} over each population's own ``steps`` steps, and ``seconds``
    {build, run}. ``readout_delay``: a spinnaker readout reads steps min(D, T // 2) + 1 .. T, as the emulator
    (:func:`neurodeploy_pynn.spinnaker.run`) does, and a brainscales2 membrane readout as
    :func:`neurodeploy_pynn.brainscales2.run` does; the counts are those of all T steps."""
    folder = Path(folder)
    if (folder / brainscales2.DESCRIPTION).exists():
        return _simulate_brainscales2(folder, x, steps, python, simulator, timeout, readout_delay)
    netlist = spinnaker.load(folder)
    done = _run(folder, python, simulator, "--currents", spinnaker.input_current(netlist, x), steps, timeout)
    top = netlist.populations[netlist.readout["population"]]
    skip = readout_skip(readout_delay, steps)
    if netlist.readout["kind"] == "membrane":
        v = done[f"v/{top.name}"]
        value = (v[:, top.depth + steps] - v[:, top.depth + skip]) / (top.threshold * (steps - skip))
    elif skip:
        raise DataError("a delayed spike readout needs the readout's spikes per step, which run_pynn.py does not keep")
    else:
        value = done[f"counts/{top.name}"] / steps * np.asarray(netlist.readout["scale"], np.float64).reshape(-1)
    return {
        "outputs": value.reshape(len(x), *netlist.readout["shape"]).astype(np.float32),
        "counts": {p.name: done[f"counts/{p.name}"] for p in netlist.populations if p.role != "readout"},
        "seconds": {"build": float(done["seconds/build"]), "run": float(done["seconds/run"])},
    }


def _simulate_brainscales2(
    folder: Path, x: np.ndarray, steps: int, python: str, simulator: str, timeout: float, readout_delay: int = 0
) -> dict[str, Any]:
    netlist = brainscales2.load(folder)
    spikes = brainscales2.input_spikes(netlist, x, steps)
    done = _run(folder, python, simulator, "--spikes", spikes, None, timeout)
    top = netlist.populations[netlist.index(netlist.readout["population"])]
    skip = readout_skip(readout_delay, steps)
    if netlist.readout["kind"] == "membrane":
        v = done[f"v/{top.name}"]
        value = brainscales2.membrane_readout(top, v[:, steps], steps, v[:, skip], skip)
    elif skip:
        raise DataError("a delayed spike readout needs the readout's spikes per step, which run_pynn.py does not keep")
    else:
        value = done[f"counts/{top.name}"] / steps * np.asarray(netlist.readout["scale"], np.float64).reshape(-1)
    counts = {netlist.sources[0].name: spikes.sum(axis=1, dtype=np.int64)}
    counts |= {p.name: done[f"counts/{p.name}"] for p in netlist.populations if p.role != "readout"}
    return {
        "outputs": value.reshape(len(x), *netlist.readout["shape"]).astype(np.float32),
        "counts": counts,
        "seconds": {"build": float(done["seconds/build"]), "run": float(done["seconds/run"])},
    }


def _run(
    folder: Path, python: str, simulator: str, flag: str, data: np.ndarray, steps: int | None, timeout: float
) -> dict[str, np.ndarray]:
    """The artifact's script run on ``data`` (passed as ``flag``): what it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        given, output = Path(tmp) / "input.npy", Path(tmp) / "out.npz"
        np.save(given, data)
        args = ["--simulator", simulator, flag, str(given), "--output", str(output)]
        if steps is not None:
            args += ["--steps", str(steps)]
        _script(folder, python, args, timeout)
        with np.load(output) as out:
            return {k: out[k] for k in out.files}


def map_virtual_board(folder: Path, python: str, *, timeout: float = 3600) -> dict[str, Any]:
    """sPyNNaker's mapping of the artifact's netlist on a virtual board: {"populations": {name: {"cores",
    "slices", "ring_buffer_shift"}}, "seconds"}."""
    folder = Path(folder)
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "map.json"
        _script(folder, python, ["--map-virtual-board", "--output", str(output)], timeout)
        result: dict[str, Any] = json.loads(output.read_text())
    return result


def compare(emulated: dict[str, Any], simulated: dict[str, Any]) -> dict[str, Any]:
    """Per population, the emulator's spike counts per neuron against the simulator's: Pearson correlation over
    every (sample, neuron), the totals, and the share of (sample, neuron) pairs that differ; and over the
    outputs, the largest difference, the largest emulated |output| and the share of samples whose top class
    agrees."""
    populations = {}
    for name, counts in simulated["counts"].items():
        a = np.asarray(emulated["counts"][name], np.float64).reshape(-1)
        b = np.asarray(counts, np.float64).reshape(-1)
        same = bool(np.array_equal(a, b))
        correlation = 1.0 if same else float(np.corrcoef(a, b)[0, 1]) if a.std() and b.std() else 0.0
        populations[name] = {
            "correlation": correlation,
            "spikes_emulator": int(a.sum()),
            "spikes_simulator": int(b.sum()),
            "differing": float((a != b).mean()),
        }
    out_e = np.asarray(emulated["outputs"], np.float64).reshape(len(emulated["outputs"]), -1)
    out_s = np.asarray(simulated["outputs"], np.float64).reshape(len(out_e), -1)
    return {
        "populations": populations,
        "outputs_max_difference": float(np.abs(out_e - out_s).max()),
        "outputs_largest": float(np.abs(out_e).max()),
        "top_class_agreement": float((out_e.argmax(1) == out_s.argmax(1)).mean()),
    }
