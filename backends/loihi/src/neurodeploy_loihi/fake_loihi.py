"""A fake Loihi 2 system: the part of Lava and its Loihi extension the board adapter uses
(:mod:`neurodeploy_loihi.device`), with the chip replaced by Lava's own bit-accurate CPU models and faults on command.

It stands where :class:`neurodeploy_loihi.device.LavaSdk` stands for a real system, with the same attributes:

* ``__version__``: the lava-nc version;
* ``loihi``: ``lava.utils.loihi`` (Lava 0.10): ``is_installed()`` (whether lava-loihi is there),
  ``use_slurm_host(partition=, board=, loihi_gen=)``, ``use_ethernet_host(host_address=, loihi_gen=)`` (they
  raise ``ValueError`` for a board that is not found or down, or a host that does not answer, as Lava's do) and
  ``ChipGeneration``;
* ``slurm``: ``lava.utils.slurm.get_boards()``, the boards SLURM lists, as ``BoardInfo(nodename, partition,
  state)`` (``sinfo -N``);
* ``run_config()``: ``Loihi2HwCfg()`` on a board; here ``Loihi2SimCfg(select_tag="fixed_pt")``, which runs the same
  stock processes (LIF, Dense, Conv, Sparse) in Lava's bit-accurate CPU models;
* ``spike_adapter(shape)``: on a board ``lava.proc.embedded_io.spike.NxToPyAdapter`` between a population's
  ``s_out`` and its host sink; here None: the CPU models' spikes go to the sink directly;
* the runtime: ``compile(root, run_cfg)`` (``create_runtime``), ``start(root, steps)`` (a non-blocking
  ``run(RunSteps)``), ``wait(root)``, ``stop(root)``, and ``read(sink, start)`` (the sink's ring buffer,
  ``data.get()``).

Here ``start`` runs the steps at once (the CPU models finish before it returns), so ``wait`` returns at once unless
the run is one the faults say does not finish. A fault is a board's or a link's misbehaviour, set in the inventory
(:data:`FAULTS`); runs are counted from 0, a run of a sample again counting again. Without Lava the network cannot
run at all: ``run_config`` raises an error that names the Lava environment (``make test-lava``), so a rehearsal
in an environment without Lava fails, it never passes.
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.

import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from neurodeploy.errors import NeurodeployError
from neurodeploy.hil.device import Clock, check_faults

FAULTS = {
    "missing": "no Loihi system is found: SLURM lists no board (true/false)",
    "busy": "the board is allocated to another job (true/false)",
    "kind": "the board found is in this SLURM partition instead, e.g. nahuku32 (a Loihi 1 system)",
    "sdk_version": "the lava-nc version reported (the adapter needs 0.10 or later)",
    "reject": "compiling the network for the board fails with this message",
    "drop": "the first N spikes of every population are lost at the host sink, every run",
    "duplicate": "the first N spikes of every population arrive twice at the host sink, every run",
    "reorder": "at the host sink, the spikes of step K (from 0) and of step K + 1 are swapped, every run",
    "timeout_at": "the K-th run (from 0; the warm-up step at load is not counted) does not finish",
    "timeout_times": "... nor do the N runs from the K-th on (default 1)",
    "disconnect_at": "the board goes away when the K-th run starts",
    "disconnect_for": "... and SLURM does not list it for that many attempts to find it (default 0: back at the first)",
}
"""The faults a fake Loihi board injects, as its inventory entry's ``faults`` table names them."""

BOARD = "ncl-fake-01"
"""The fake board's SLURM node name."""
PARTITION = "oheogulch"
"""Its SLURM partition: the Loihi 2 partition lava-dl's PilotNet tutorial prefers (``Loihi2.preferred_partition``)."""
GENERATIONS = ("N2A2", "N3B2", "N3B3", "N3C1", "N3D1")
"""``lava.utils.loihi.ChipGeneration``'s values in Lava 0.10 (N2A2 is Loihi 1)."""


WITHOUT_LAVA = (
    "a fake Loihi board runs the network in Lava's CPU models, and lava-nc is not installed here: run it in the Lava "
    "environment (`make test-lava` creates .venv-lava, Python 3.10), or pip install 'neurodeploy-loihi[lava]'"
)


def status() -> Any:
    """None where Lava can be imported (a fake board can run); otherwise :data:`WITHOUT_LAVA`."""
    import importlib.util

    try:  # the module the fake runs on (a bare "lava" may be another package's folder, e.g. a tests folder)
        found = importlib.util.find_spec("lava.magma.core.run_configs") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else WITHOUT_LAVA


class BoardLost(ConnectionError):
    """The link to the board broke (an ``OSError``, as a lost connection to a Loihi host is)."""


class FakeLava:
    """The Lava surface of :mod:`neurodeploy_loihi.device` over one fake board (see the module)."""

    def __init__(self, faults: dict[str, Any], clock: Clock) -> None:
        check_faults(faults, FAULTS, "a fake Loihi board")
        for key in ("drop", "duplicate", "reorder", "timeout_at", "timeout_times", "disconnect_at", "disconnect_for"):
            value = faults.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"fault {key} must be a whole number >= 0 (got {value!r})")
        self.faults = dict(faults)
        self.clock = clock
        self.__version__ = str(faults.get("sdk_version", "0.10.0"))
        self.runs = 0
        """Runs started (samples, and samples run again), the faults' K."""
        self.away = 0
        """Attempts to find the board left while it is away."""
        self.partition = str(faults.get("kind", PARTITION))
        self.loihi = SimpleNamespace(
            is_installed=lambda module_name="lava.utils.loihi2_profiler": True,
            use_slurm_host=self._use_slurm_host,
            use_ethernet_host=self._use_ethernet_host,
            ChipGeneration=SimpleNamespace(**{g: SimpleNamespace(value=g) for g in GENERATIONS}),
        )
        self.slurm = SimpleNamespace(get_boards=self._boards)
        self._hung = threading.Event()
        self._runtimes: list[Any] = []

    # -- finding the board --------------------------------------------------------------------------------------
    def _boards(self) -> list[Any]:
        if self.faults.get("missing"):
            return []
        if self.away:
            self.away -= 1
            return []
        state = "alloc" if self.faults.get("busy") else "idle"
        return [SimpleNamespace(nodename=BOARD, partition=self.partition, state=state)]

    def _use_slurm_host(self, partition: Any = None, board: Any = None, loihi_gen: Any = None) -> None:
        found = {b.nodename: b for b in self._boards()}
        if board is not None and (board not in found or "down" in found[board].state):
            raise ValueError(
                f"Attempting to use SLURM for Loihi but board {board} is not found or board is down. Run sinfo to "
                "check available boards."
            )

    def _use_ethernet_host(self, host_address: str, host_binary_path: str = "", loihi_gen: Any = None) -> None:
        if not self._boards():
            raise ValueError(f"Attempting to use ethernet host for Loihi2 but `ping {host_address}` failed.")

    # -- the runtime --------------------------------------------------------------------------------------------
    def run_config(self) -> Any:
        try:
            from lava.magma.core.run_configs import Loihi2SimCfg
        except ImportError:  # without Lava a fake board cannot run anything: never a pass
            raise NeurodeployError(WITHOUT_LAVA) from None

        return Loihi2SimCfg(select_tag="fixed_pt")

    def spike_adapter(self, shape: tuple[int, ...]) -> Any:
        return None

    def compile(self, root: Any, run_cfg: Any) -> None:
        message = self.faults.get("reject")
        if message:
            raise RuntimeError(f"the compiler refused the network: {message}")
        from neurodeploy_loihi.lava_runner import _models_found_once_per_class

        with _models_found_once_per_class():
            root.create_runtime(run_cfg=run_cfg)
        self._runtimes.append(root)

    def start(self, root: Any, steps: int, count: bool = True) -> None:
        """Run ``steps`` steps; ``count``: a sample's run (the faults count it), not the warm-up step."""
        from lava.magma.core.run_conditions import RunSteps

        if count:
            run = self.runs
            self.runs += 1
            if self.faults.get("disconnect_at") == run and "disconnect_at" in self.faults:
                self.away = int(self.faults.get("disconnect_for", 0))
                raise BoardLost(f"the connection to {BOARD} was lost when run {run} started")
            if self._hit("timeout", run):
                self._hung.clear()
                return  # the board never reports the run done: wait() blocks until stop()
        self._hung.set()
        root.run(condition=RunSteps(num_steps=int(steps), blocking=True))

    def _hit(self, fault: str, run: int) -> bool:
        first = self.faults.get(f"{fault}_at")
        return first is not None and int(first) <= run < int(first) + int(self.faults.get(f"{fault}_times", 1))

    def wait(self, root: Any) -> None:
        self._hung.wait()  # set at once for a run that finished, by stop() for one that hangs

    def stop(self, root: Any) -> None:
        self._hung.set()
        if root in self._runtimes:
            self._runtimes.remove(root)
            root.stop()

    def read(self, sink: Any, start: int) -> np.ndarray:
        """The sink's ring buffer (*shape, buffer), with the faults of the link between chip and host applied to
        the run whose first step is at ``start``."""
        data = np.rint(np.asarray(sink.data.get())).astype(np.int64)
        return self._at_sink(data, start)

    def _at_sink(self, data: np.ndarray, start: int) -> np.ndarray:
        """Faults on one run's spikes: ``data`` (*shape, buffer), the run's step i at (start + i) % buffer."""
        buffer = data.shape[-1]
        order = (start + np.arange(buffer)) % buffer
        steps = np.moveaxis(data[..., order], -1, 0).reshape(buffer, -1).copy()  # (step, neuron) in time order
        drop, duplicate = int(self.faults.get("drop", 0)), int(self.faults.get("duplicate", 0))
        if drop or duplicate:
            flat = steps.reshape(-1)  # step-major: the first spikes are the earliest
            hits = np.flatnonzero(flat)
            flat[hits[:drop]] = 0
            flat[hits[:duplicate]] += 1
        if "reorder" in self.faults and self.faults["reorder"] is not False:
            k = int(self.faults["reorder"])
            if k + 1 < buffer:
                steps[[k, k + 1]] = steps[[k + 1, k]]
        out = np.empty_like(data)
        out[..., order] = np.moveaxis(steps.reshape(buffer, *data.shape[:-1]), 0, -1)
        return out
