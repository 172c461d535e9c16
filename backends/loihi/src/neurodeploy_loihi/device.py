"""The Loihi 2 board adapter, written against Lava 0.10 and its Loihi extension (lava-loihi, for members of Intel's
Neuromorphic Research Community): a board-ready artifact's binary program on Loihi 2 neurocores through
``Loihi2HwCfg``, compared with the emulator step by step.

Open: Lava's Loihi extension must be installed (``lava.utils.loihi.is_installed()``, which looks for
``lava.utils.loihi2_profiler``, a module of lava-loihi). The board is found as Lava 0.10 finds it
(``lava/utils/loihi.py``, ``lava/utils/slurm.py``): through SLURM, ``slurm.get_boards()`` (``sinfo -N``: node
name, partition, state) and ``loihi.use_slurm_host(board=..., loihi_gen=...)``; or, for a Kapoho Point without
SLURM (address ``ethernet:HOST``), ``loihi.use_ethernet_host(host_address=HOST, loihi_gen=...)``. The inventory's
``address`` is the SLURM node name (empty: the first idle board, of the ``partition`` setting where one is set). A
board SLURM does not list, one that is down, one allocated to another job (busy: a run would wait in the queue for
as long as that job runs), and one in another partition than the inventory's or in a Loihi 1 system's partition
(another kind of board) are refused before anything is sent.

Load: the program's processes are built once for one sample, as the Lava runner builds them
(:func:`neurodeploy_loihi.lava_runner.program_chain`: the input population's LIF with the sample's input current as
its bias, ``Conv`` / ``Dense`` / ``Sparse`` synapses, LIF populations); every population's ``s_out`` goes to a host
sink, a ``lava.proc.io.sink.RingBuffer`` of one sample's steps, through ``lava.proc.embedded_io.spike.
NxToPyAdapter`` on the board (the path lava-dl's Loihi 2 tests take: ``tests/lava/lib/dl/netx/test_hdf5_nx.py``,
``test_tinynet``, and the ``OutputAdapter`` of ``tutorials/lava/lib/dl/netx/mnist/utils.py``). The network is
compiled and its runtime created once (``create_runtime``; a failure is :class:`BoardRejected`), then run one step:
Lava sets a Var only in a runtime that has started (``Runtime.set_var``).

Run, per sample: every population's u and v, and every synapse's buffer of messages in flight (``a_buff``,
``a_buf``), are set back to their initial values and the input population's bias to the sample's (``Var.set``); the
runtime runs T + delay steps (the pipeline's delay, one step per synapse on the longest path), without blocking,
in segments that end where the host reads the readout's v (``Var.get`` after the run, as lava-dl's
``test_pilotnet_lif`` reads a layer's v on Loihi 2): after its depth (the v its integral starts from), after the
readout delay's skipped steps, and after the last step. Every wait is bounded by ``timeout_s`` (the run is waited
for in a worker thread; one that does not end in time is :class:`BoardTimeout`, and the runtime is stopped and
built again for the next run). The sinks' ring buffers give each population's spikes at every step; the readout is
computed from the v read as :meth:`~neurodeploy_loihi.program.Program.run` computes it from the emulator's.

The comparison is exact: the emulator's spikes of every population at every one of the T + delay Loihi steps (the
record both sides hold), and the prediction. What this assumes, unchecked without a board: that ``Var.set`` of u,
v, the bias and the synapses' buffers reaches the neurocores between runs (lava-dl sets ``.init`` before a run on
Loihi 2; setting between runs is not shown there); that NxToPyAdapter delivers a step's spikes to the sink in the
same step (``sink_lag`` shifts the record where it does not: lava-dl's ``test_tinynet`` reads its output from
step 2 on). Graded (SDNN) programs are not run: the adapter runs the artifact's binary program.
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.

import importlib
import importlib.metadata
import importlib.util
import threading
from typing import Any, ClassVar

import numpy as np

from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.hil.device import (
    Board,
    BoardDisconnected,
    BoardError,
    BoardRejected,
    BoardTimeout,
    BoardUnavailable,
    BoardVersionError,
    Clock,
    Device,
    Observed,
)
from neurodeploy.readout import readout_skip, recorded_delay
from neurodeploy_loihi import fake_loihi

MIN_LAVA = (0, 10)
"""The oldest lava-nc the adapter supports: the release its Lava cross-checks run (``.venv-lava``), whose
``lava.utils.loihi`` / ``lava.utils.slurm`` API it uses (that module replaced ``lava.utils.system`` in 0.8)."""
INSTALL = (
    "install lava-nc 0.10 on Python 3.10 (pip install 'neurodeploy-loihi[lava]'; `make test-lava` builds such an "
    "environment) and Intel's Loihi extension lava-loihi, for members of the Intel Neuromorphic Research Community "
    "(INRC), which brings the Loihi 2 compiler and lava.proc.embedded_io"
)
LOIHI1_SYSTEMS = ("nahuku", "pohoiki", "kapohobay", "wolfmountain")
"""Prefixes of SLURM partitions of Intel's Loihi 1 systems (Nahuku, Pohoiki Springs, Kapoho Bay, Wolf Mountain):
a board there is not a Loihi 2."""
BUSY_STATES = ("alloc", "mix", "comp", "resv")
"""``sinfo`` node states of a board another job holds."""
DOWN_STATES = ("down", "drain", "fail", "maint", "unk")
"""``sinfo`` node states of a board that cannot take a job (``lava.utils.slurm.set_board`` refuses "down")."""
ETHERNET = "ethernet:"
"""Address prefix of a board reached without SLURM (``use_ethernet_host``)."""


class LavaSdk:
    """The part of Lava and lava-loihi the adapter uses, on a real system (:mod:`neurodeploy_loihi.fake_loihi` is the
    same surface over Lava's CPU models). Imported only when a board is opened."""

    def __init__(self) -> None:
        self.loihi = importlib.import_module("lava.utils.loihi")
        self.slurm = importlib.import_module("lava.utils.slurm")
        self.__version__ = importlib.metadata.version("lava-nc")

    def run_config(self) -> Any:
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()

    def spike_adapter(self, shape: tuple[int, ...]) -> Any:
        eio = importlib.import_module("lava.proc.embedded_io")
        return eio.spike.NxToPyAdapter(shape=shape)

    def compile(self, root: Any, run_cfg: Any) -> None:
        from neurodeploy_loihi.lava_runner import _models_found_once_per_class

        with _models_found_once_per_class():
            root.create_runtime(run_cfg=run_cfg)

    def start(self, root: Any, steps: int, count: bool = True) -> None:
        from lava.magma.core.run_conditions import RunSteps

        root.run(condition=RunSteps(num_steps=int(steps), blocking=False))

    def wait(self, root: Any) -> None:
        root.wait()

    def stop(self, root: Any) -> None:
        root.stop()

    def read(self, sink: Any, start: int) -> np.ndarray:
        return np.rint(np.asarray(sink.data.get())).astype(np.int64)


class LavaDevice(Device):
    """A Loihi 2 system through Lava's ``Loihi2HwCfg`` (see the module)."""

    faults = fake_loihi.FAULTS
    settings_help: ClassVar[dict[str, str]] = {
        "timeout_s": "seconds a sample's run may take on the board before it times out (default 120)",
        "poll_s": "seconds between checks of a run in progress (default 0.05)",
        "partition": "the SLURM partition the board must be in (default: any, Loihi 1 systems' refused)",
        "loihi_gen": "the chip generation compiled for, a lava.utils.loihi.ChipGeneration: N3B3 (default), N3C1, ...",
        "sink_lag": "steps after which a population's spikes reach its host sink (default 0; measure it on the board)",
    }

    def __init__(self, board: Board, clock: Clock) -> None:
        super().__init__(board, clock)
        self.timeout_s = board.number("timeout_s", 120.0)
        self.poll_s = board.number("poll_s", 0.05)
        self.lag = int(board.number("sink_lag", 0, integer=True))
        self.partition = board.settings.get("partition", "")
        self.generation = board.settings.get("loihi_gen", "N3B3")
        if not isinstance(self.partition, str):
            raise DataError(f"board {board.name!r}: setting partition must be a string (got {self.partition!r})")
        if self.generation not in fake_loihi.GENERATIONS or self.generation == "N2A2":
            raise DataError(
                f"board {board.name!r}: setting loihi_gen must be a Loihi 2 generation of lava.utils.loihi."
                f"ChipGeneration, one of {', '.join(g for g in fake_loihi.GENERATIONS if g != 'N2A2')} "
                f"(got {self.generation!r}; N2A2 is Loihi 1)"
            )
        if self.poll_s <= 0:
            raise DataError(f"board {board.name!r}: poll_s must be > 0")
        self.sdk: Any = None
        self.program: Any = None
        self.steps = 0
        self.readout_delay = 0
        self.bias: tuple[np.ndarray, np.ndarray] | None = None
        self.root: Any = None
        self.chain: Any = None
        self.sinks: list[Any] = []
        self.steps_run = 0
        self.deadline = 0.0

    def _checked(self) -> tuple[Any, tuple[np.ndarray, np.ndarray]]:
        """The checked program and the input bias of every sample (:meth:`check` sets them)."""
        if self.program is None or self.bias is None:
            raise RuntimeError("LavaDevice.check() must come first")
        return self.program, self.bias

    @property
    def total(self) -> int:
        """Loihi steps of one sample: T graph steps and the pipeline's delay."""
        return self.steps + int(self.program.delay)

    # -- before the board ---------------------------------------------------------------------------------------
    def check(self, artifact: Any, inputs: Any, steps: int, encoding: Any) -> np.ndarray:
        from neurodeploy_loihi.backend import Loihi2Backend
        from neurodeploy_loihi.board import binary_processes, readiness
        from neurodeploy_loihi.program import Program

        if artifact.target not in ("loihi", "loihi2"):
            raise BoardUnavailable(
                f"board {self.board.name!r} runs Loihi artifacts; {artifact.root} was compiled for {artifact.target}"
            )
        backend = Loihi2Backend(artifact.target)
        program = Program.load(artifact)  # the binary program: what the backend's binary mode runs
        ready = readiness(binary_processes(program))
        if not ready["board_ready"]:
            raise BoardUnavailable(f"the artifact is not board-ready: {ready['reason']}")
        if program.network.input_bits:
            raise BoardUnavailable(
                "the artifact takes event frames as input spikes; the lava adapter sends each sample as the input "
                "population's bias and does not yet stream spikes to a board: compare it with the emulator in Lava "
                "(run_program_in_lava) instead"
            )
        if steps < 1:
            raise DataError(f"steps must be >= 1, got {steps}")
        prepared = np.asarray(backend.prepare(program, inputs, steps=steps, encoding=encoding), np.float32)
        self.program, self.steps = program, int(steps)
        self.readout_delay = recorded_delay(artifact.manifest)
        self.bias = program.input_bias(prepared)
        return prepared

    def reference(self, prepared: np.ndarray, steps: int) -> list[Observed]:
        program, bias = self._checked()
        trace = program.network.run(steps=self.total, input_bias=bias, record_state=False)
        outputs = program.run(prepared, steps, readout_delay=self.readout_delay).outputs
        return [
            Observed(
                layers={
                    name: np.asarray(spikes[i]).reshape(self.total, -1).astype(np.int64)
                    for name, spikes in zip(program.names, trace.spikes)
                },
                outputs=outputs[i],
            )
            for i in range(len(prepared))
        ]

    # -- the board ----------------------------------------------------------------------------------------------
    @classmethod
    def sdk_status(cls) -> str | None:
        if _find("lava.magma") is None:
            return f"lava-nc is not installed: {INSTALL}"
        if _find("lava.utils.loihi2_profiler") is None:  # what lava.utils.loihi.is_installed() looks for
            return f"Lava's Loihi extension (lava-loihi) is not installed, only Lava's CPU simulation: {INSTALL}"
        return None

    @classmethod
    def fake_status(cls) -> Any:
        return fake_loihi.status()

    @classmethod
    def discover(cls) -> list[str]:
        if cls.sdk_status() is not None:
            return []
        try:
            return sorted(board.nodename for board in importlib.import_module("lava.utils.slurm").get_boards())
        except Exception:  # a broken SDK lists nothing; `hil list` reports sdk_status
            return []

    def open(self) -> dict[str, Any]:
        if self.sdk is None:
            self.sdk = self.vendor_sdk(
                lambda: fake_loihi.FakeLava(self.board.faults, self.clock), LavaSdk, "Lava", INSTALL
            )
        lava, name = self.sdk, self.board.name
        version = _version(lava.__version__)
        if version is None or version < MIN_LAVA:
            raise BoardVersionError(
                f"board {name!r}: lava-nc {lava.__version__} is older than the "
                f"{'.'.join(map(str, MIN_LAVA))} this adapter is written for: {INSTALL}"
            )
        if not lava.loihi.is_installed():
            raise BoardUnavailable(f"board {name!r}: Lava's Loihi extension is not installed: {INSTALL}")
        generation = getattr(lava.loihi.ChipGeneration, self.generation)
        info = {"lava": str(lava.__version__), "loihi_gen": self.generation}
        if self.board.address.startswith(ETHERNET):
            host = self.board.address[len(ETHERNET) :]
            try:
                lava.loihi.use_ethernet_host(host_address=host, loihi_gen=generation)
            except (ValueError, ImportError) as exc:
                raise BoardUnavailable(f"board {name!r}: no Loihi host answers at {host}: {exc}") from exc
            return {**info, "host": host}
        chosen = self._slurm_board(lava.slurm.get_boards())
        try:
            lava.loihi.use_slurm_host(board=chosen.nodename, loihi_gen=generation)
        except (ValueError, ImportError) as exc:
            raise BoardUnavailable(f"board {name!r}: SLURM refuses board {chosen.nodename}: {exc}") from exc
        return {**info, "board": chosen.nodename, "partition": chosen.partition}

    def _slurm_board(self, boards: list[Any]) -> Any:
        """The SLURM board to run on, of those ``sinfo -N`` lists; refused when missing, of another kind, down or
        busy."""
        name, address = self.board.name, self.board.address
        seen = ", ".join(f"{b.nodename} ({b.partition}, {b.state})" for b in boards) or "none"
        if address:
            boards = [b for b in boards if b.nodename == address]
            if not boards:
                raise BoardUnavailable(
                    f"board {name!r}: SLURM lists no Loihi board {address!r} (it lists: {seen}); check `sinfo -N`, "
                    "or correct the inventory's address"
                )
        elif not boards:
            raise BoardUnavailable(f"board {name!r}: no Loihi system found: SLURM lists no board (`sinfo -N`)")
        for board in boards:
            partition = str(board.partition).rstrip("*")  # sinfo marks the default partition with '*'
            if partition.lower().startswith(LOIHI1_SYSTEMS):
                kind = f"is in partition {partition}, a Loihi 1 system"
            elif self.partition and partition != self.partition:
                kind = f"is in partition {partition}, not {self.partition} (setting partition)"
            else:
                continue
            raise BoardUnavailable(
                f"board {name!r}: {board.nodename} {kind}: the artifact runs on Loihi 2; choose a Loihi 2 board"
            )
        usable = [b for b in boards if not str(b.state).startswith(BUSY_STATES + DOWN_STATES)]
        if usable:
            return usable[0]
        board = boards[0]
        if str(board.state).startswith(DOWN_STATES):
            raise BoardUnavailable(f"board {name!r}: {board.nodename} is {board.state} in SLURM; ask the lab")
        raise BoardUnavailable(
            f"board {name!r}: {board.nodename} is allocated to another job (busy, SLURM state {board.state}); run "
            "when it is free"
        )

    def load(self) -> None:
        self._teardown()
        program, bias = self._checked()
        run_cfg = self.sdk.run_config()  # the fake's names the Lava environment when Lava is missing
        from lava.proc.io.sink import RingBuffer

        from neurodeploy_loihi.lava_runner import program_chain

        length = self.total + self.lag
        sinks: list[Any] = []

        def watch(neurons: Any, shape: tuple[int, ...]) -> None:
            sink = RingBuffer(shape=shape, buffer=length)
            adapter = self.sdk.spike_adapter(shape)
            if adapter is None:
                neurons.s_out.connect(sink.a_in)
            else:
                neurons.s_out.connect(adapter.inp)
                adapter.out.connect(sink.a_in)
            sinks.append(sink)

        self.chain = program_chain(program, (bias[0][:1], bias[1][:1]), length, watch)
        self.sinks = sinks
        root = self.chain.populations[-1]
        try:
            self.sdk.compile(root, run_cfg)
        except NeurodeployError:
            raise
        except Exception as exc:
            raise BoardRejected(f"board {self.board.name!r}: the network does not compile for it: {exc}") from exc
        self.root, self.steps_run = root, 0
        self.deadline = self.clock.monotonic() + self.timeout_s
        self._run(1, count=False)  # Lava sets Vars only in a runtime that has started

    def run_sample(self, prepared: np.ndarray, index: int, steps: int) -> Observed:
        if self.root is None:  # stopped after a run that did not end: built again
            self.load()
        program, bias = self._checked()
        started = self.clock.monotonic()
        self.deadline = started + self.timeout_s
        self._reset(bias[0][index], bias[1][index])
        first = self.steps_run
        top = int(program.readout["population"])
        depth = int(program.network.depths[top])
        skip = readout_skip(self.readout_delay, steps)
        marks = sorted({m for m in (depth, depth + skip, depth + steps) if m > 0})
        v_at: dict[int, np.ndarray] = {}
        done = 0
        for mark in marks:
            self._run(mark - done, count=done == 0)
            done = mark
            v_at[mark] = np.rint(np.asarray(self.chain.populations[top].v.get())).astype(np.int64)
        if done < self.total + self.lag:
            self._run(self.total + self.lag - done, count=done == 0)
        layers = {}
        length = self.total + self.lag
        order = (first + np.arange(length)) % length  # the ring buffers' slot of each step of this run
        for name, sink in zip(program.names, self.sinks):
            data = self.sdk.read(sink, first % length)
            steps_first = np.moveaxis(data[..., order], -1, 0).reshape(length, -1)
            layers[name] = steps_first[self.lag : self.lag + self.total].astype(np.int64)
        outputs = self._outputs(layers[program.names[top]], v_at, depth, skip, steps)
        events = int(sum(a.sum() for a in layers.values()))
        return Observed(layers=layers, outputs=outputs, events=events, seconds=self.clock.monotonic() - started)

    def _outputs(
        self, spikes: np.ndarray, v_at: dict[int, np.ndarray], depth: int, skip: int, steps: int
    ) -> np.ndarray:
        """The readout as :meth:`Program.run` computes it: the readout's v after its last step minus its v where the
        readout starts (after its depth, or after the skipped steps), or its spike count between those steps."""
        program = self.program
        top = int(program.readout["population"])
        shape = program.network.layers[top].shape
        if program.readout["kind"] == "membrane":
            start = v_at[depth + skip] if depth + skip > 0 else 0
            state = v_at[depth + steps] - start
        else:
            state = spikes[depth + skip : depth + steps].sum(axis=0)
        return program._readout(np.asarray(state).reshape(1, *shape), steps - skip)[0]

    def _reset(self, mant: np.ndarray, exp: np.ndarray) -> None:
        """Every population's u and v back to their initial values, no message in flight, this sample's input
        bias (``Var.set``)."""
        chain, network = self.chain, self.program.network
        try:
            for layer, neurons in zip(network.layers, chain.populations):
                shape = tuple(neurons.v.shape)
                neurons.v.set(np.broadcast_to(np.asarray(layer.neuron.v0), layer.shape).reshape(shape).copy())
                neurons.u.set(np.zeros(shape))
            for synapse in chain.synapses:
                buffer = getattr(synapse, "a_buff", None)
                buffer = getattr(synapse, "a_buf", None) if buffer is None else buffer
                if buffer is not None:
                    buffer.set(np.zeros(buffer.shape))
            source = chain.populations[0]
            source.bias_mant.set(np.asarray(mant).reshape(source.bias_mant.shape))
            source.bias_exp.set(np.asarray(exp).reshape(source.bias_exp.shape))
        except OSError as exc:
            self._teardown()
            raise BoardDisconnected(f"board {self.board.name!r} went away: {exc}") from exc
        except (AssertionError, RuntimeError) as exc:  # Lava's set_var for a Var its process model lacks
            self._teardown()
            raise BoardError(
                f"board {self.board.name!r}: the state could not be set back before a sample (Var.set): {exc}"
            ) from exc

    def _run(self, steps: int, count: bool) -> None:
        """Run ``steps`` steps and wait for them, until the sample's deadline at most."""
        try:
            self.sdk.start(self.root, steps, count)
        except OSError as exc:
            self._teardown()
            raise BoardDisconnected(f"board {self.board.name!r} went away: {exc}") from exc
        outcome: list[BaseException] = []
        finished = threading.Event()
        root = self.root

        def wait() -> None:
            try:
                self.sdk.wait(root)
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)
            finally:
                finished.set()

        threading.Thread(target=wait, daemon=True).start()
        while not finished.wait(0.01):
            if self.clock.monotonic() > self.deadline:
                self._teardown()
                raise BoardTimeout(
                    f"board {self.board.name!r}: a run of {steps} step(s) did not end within {self.timeout_s} s "
                    "(setting timeout_s)"
                )
            self.clock.sleep(self.poll_s)
        if outcome:
            failure = outcome[0]
            self._teardown()
            if isinstance(failure, OSError):
                raise BoardDisconnected(f"board {self.board.name!r} went away during a run: {failure}") from failure
            raise BoardError(f"board {self.board.name!r}: the run failed: {failure}") from failure
        self.steps_run += steps

    def _teardown(self) -> None:
        """Stop the runtime, bounded: a runtime that does not stop in ``timeout_s`` is left to its thread."""
        root, self.root = self.root, None
        self.chain, self.sinks = None, []
        if root is None or self.sdk is None:
            return
        stopper = threading.Thread(target=_quietly, args=(self.sdk.stop, root), daemon=True)
        stopper.start()
        stopper.join(self.timeout_s)

    def close(self) -> None:
        self._teardown()


def _quietly(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # the board may be gone; closing must not fail
        pass


def _find(module: str) -> Any:
    """``importlib.util.find_spec``, None where a parent package is missing too."""
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def _version(text: Any) -> tuple[int, ...] | None:
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None
