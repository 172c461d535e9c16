"""``neurodeploy hil``: an artifact run on a board and compared with its emulator, sample by sample.

:func:`run_on_board` checks everything it can before the board is touched (the board exists in the inventory
and runs the artifact's target, the artifact is board-ready, the inputs have the artifact's shape), computes the
emulator's record of every sample, opens the board, writes the configuration and runs the samples one at a time.
Every wait on the board is bounded by the adapter. A sample that times out or whose board went away is run
again from the configured initial state (a completed rerun gives what the first run would have: the chip starts
each sample from the same state), at most ``retries`` times, after reconnecting where the board went away (at
most ``reconnects`` times in a run). What cannot be completed is reported as such: the run's verdict is
``pass`` only when every sample ran to the end and equals the emulator's record; ``mismatch`` when any sample
differs; ``incomplete`` when none differs but some did not run. The report (JSON and Markdown) says, per sample
and per watched layer, the spike counts on both sides, how many (step, neuron) counts differ and the first step
that does, the timing, the retries, and why a sample did not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy._version import __version__
from neurodeploy.artifact import Artifact, load_artifact
from neurodeploy.backends.registry import get_backend
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError, NeurodeployError, UnknownTargetError
from neurodeploy.fileio import output_mode, remove_stale, temporary_name
from neurodeploy.hil.device import (
    Board,
    BoardDisconnected,
    BoardError,
    BoardUnavailable,
    Clock,
    Device,
    Observed,
    VirtualClock,
    check_faults,
    exact_layer,
)

FORMAT = "neurodeploy-hil/1"
REPORT_FILES = ("report.json", "report.md")
POLICY = {
    "retries": (1, "times a sample that timed out or lost its board is run again (default 1)"),
    "reconnects": (3, "times the board is reopened after it went away, in one run (default 3)"),
    "reconnect_wait_s": (2.0, "seconds between attempts to reopen a board that went away (default 2)"),
    "max_failures": (3, "consecutive samples that could not be run before the run stops (default 3)"),
}
"""The harness's own board settings: name -> (default, help)."""


@dataclass
class SampleResult:
    index: int
    status: str
    """``match``, ``mismatch`` or ``not run``."""
    attempts: int = 0
    seconds: float = 0.0
    error: str | None = None
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    prediction: dict[str, int | None] = field(default_factory=dict)
    readout: dict[str, Any] | None = None
    """The output vector's comparison, where the device judges it (:meth:`Device.compare_outputs`)."""
    events: int = 0
    out_of_order: int = 0
    stale: int = 0
    resumed: bool = False
    """Taken from an earlier report of the same run (``--resume``), not run again."""


@dataclass
class HilReport:
    artifact: dict[str, Any]
    board: dict[str, Any]
    steps: int
    compare: str
    samples: list[SampleResult]
    compare_rule: str = "every spike count of every watched layer at every step equal"
    """The comparison rule in words (the device's)."""
    stopped: str | None = None
    """Why the run stopped before its last sample, if it did."""
    reconnects: int = 0
    seconds: float = 0.0
    inputs_sha256: str = ""
    """Of the inputs as sent (the adapter's prepared array): what ``--resume`` checks, with the artifact, the
    board and the steps."""

    @property
    def counts(self) -> dict[str, int]:
        statuses = [s.status for s in self.samples]
        return {k: statuses.count(k) for k in ("match", "mismatch", "not run")}

    @property
    def verdict(self) -> str:
        counts = self.counts
        if counts["mismatch"]:
            return "mismatch"
        if counts["not run"] or not self.samples:
            return "incomplete"
        return "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "neurodeploy": __version__,
            "verdict": self.verdict,
            "artifact": self.artifact,
            "board": self.board,
            "steps": self.steps,
            "inputs_sha256": self.inputs_sha256,
            "compare": self.compare,
            "compare_rule": self.compare_rule,
            "summary": {
                "samples": len(self.samples),
                **{k.replace(" ", "_"): v for k, v in self.counts.items()},
                "retries": sum(max(0, s.attempts - 1) for s in self.samples),
                "reconnects": self.reconnects,
                "resumed": sum(s.resumed for s in self.samples),
                "stopped": self.stopped,
                "seconds": round(self.seconds, 3),
            },
            "samples": [
                {
                    "index": s.index,
                    "status": s.status,
                    "attempts": s.attempts,
                    "seconds": round(s.seconds, 6),
                    "error": s.error,
                    "prediction": s.prediction,
                    "readout": s.readout,
                    "events": s.events,
                    "out_of_order": s.out_of_order,
                    "stale": s.stale,
                    "resumed": s.resumed,
                    "layers": s.layers,
                }
                for s in self.samples
            ],
        }


def settings_help(device_class: type[Device]) -> dict[str, str]:
    """Every board setting an adapter's board takes: the harness's and the adapter's own."""
    return {**{k: v[1] for k, v in POLICY.items()}, **device_class.settings_help}


def _policy(board: Board, device: Device) -> dict[str, float]:
    known = settings_help(type(device))
    unknown = sorted(set(board.settings) - set(known))
    if unknown:
        raise DataError(
            f"board {board.name!r}: unknown setting(s) {', '.join(unknown)}; its adapter takes "
            + "; ".join(f"{k} ({v})" for k, v in known.items())
        )
    return {key: board.number(key, default) for key, (default, _) in POLICY.items()}


def run_on_board(
    artifact_path: str | os.PathLike | Artifact,
    board: Board,
    inputs: Any,
    *,
    steps: int,
    encoding: Encoding | None = None,
    clock: Clock | None = None,
    progress: Any = None,
    previous: dict[str, Any] | None = None,
) -> HilReport:
    """Run ``inputs`` (batch first) through the artifact (a folder, or one loaded) on ``board`` and through its
    emulator; compare.
    ``previous``: an earlier report of the same run (artifact, board, steps and inputs, else a DataError), whose
    completed samples are kept and not run again: only those it could not run are."""
    started = time.monotonic()
    artifact = artifact_path if isinstance(artifact_path, Artifact) else load_artifact(Path(artifact_path))
    backend = get_backend(artifact.target)
    board_backend = get_backend(board.target)
    if type(board_backend) is not type(backend):
        raise BoardUnavailable(
            f"board {board.name!r} runs {board.target} artifacts; {artifact.root} was compiled for "
            f"{artifact.target}: compile for --target {board.target}, or choose a board of {artifact.target}"
        )
    board = replace(board, adapter=board.adapter or next(iter(backend.device_adapters), ""))
    clock = clock or (VirtualClock() if board.fake else Clock())
    device = backend.device(board, clock)
    policy = _policy(board, device)
    encoding = encoding if encoding is not None else Encoding()
    prepared = device.check(artifact, inputs, steps, encoding)  # nothing has been sent yet
    expected = device.reference(prepared, steps)
    if any(not e.layers and device.compare_outputs(e.outputs, e.outputs) is None for e in expected):
        raise DataError(
            f"{artifact.root}: the board's host can watch no layer of this artifact and its readout is not compared "
            f"on {board.target}: a run would compare nothing; compile a network with a spiking layer"
        )
    report = HilReport(
        artifact={"path": str(artifact.root), "target": artifact.target, "manifest_sha256": _manifest_sha(artifact)},
        board={
            "name": board.name,
            "target": board.target,
            "adapter": board.adapter,
            "address": board.address,
            "fake": board.fake,
            "faults": dict(board.faults),
        },
        steps=steps,
        compare=device.compare,
        compare_rule=device.compare_rule(),
        samples=[SampleResult(i, "not run") for i in range(len(expected))],
        inputs_sha256=_sha(prepared),
    )
    if previous is not None:
        _resume(report, previous)
    todo = [i for i, s in enumerate(report.samples) if not s.resumed]
    try:
        if todo:
            report.board["info"] = _connect(device)
        failures = 0
        for done, i in enumerate(todo, 1):
            want, result = expected[i], report.samples[i]
            observed = _run_sample(device, prepared, i, steps, result, report, policy)
            if observed is None:
                failures += 1
                if failures >= policy["max_failures"]:
                    report.stopped = f"{failures} consecutive samples could not be run (max_failures)"
                    break
            else:
                failures = 0
                _compare(result, observed, want, device)
            if progress is not None:
                progress(done, len(todo))
    except BoardError as exc:
        if report.board.get("info") is None:
            raise  # the board could not be opened or configured: nothing ran
        report.stopped = f"{type(exc).__name__}: {exc}"
    finally:
        device.close()
    for result in report.samples:
        if result.status == "not run" and result.error is None:
            result.error = report.stopped or "not run"
    report.seconds = time.monotonic() - started
    return report


def _sha(prepared: Any) -> str:
    array = np.ascontiguousarray(prepared)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _resume(report: HilReport, previous: dict[str, Any]) -> None:
    """Keep the completed samples of ``previous``, a report of the same run."""
    samples = previous.get("samples")
    if not isinstance(samples, list) or not all(isinstance(s, dict) for s in samples):
        raise DataError("the earlier report's samples are not a list of samples; run without --resume")
    ours = report.to_dict()
    for key, get in (
        ("artifact", lambda d: d.get("artifact", {}).get("manifest_sha256")),
        ("board", lambda d: d.get("board", {}).get("name")),
        ("steps", lambda d: d.get("steps")),
        ("inputs", lambda d: d.get("inputs_sha256")),
        ("samples", lambda d: len(d.get("samples", []))),
    ):
        if get(previous) != get(ours):
            raise DataError(
                f"the earlier report is of another run (its {key} differ): --resume continues a run with the same "
                "artifact, board, steps and inputs; run without --resume, or write the report elsewhere (-o)"
            )
    for old, result in zip(previous["samples"], report.samples):
        if old.get("status") in ("match", "mismatch") and isinstance(old.get("layers"), dict):
            for name in ("status", "attempts", "seconds", "error", "layers", "prediction", "events", "readout"):
                setattr(result, name, old.get(name))
            result.out_of_order, result.stale = old.get("out_of_order", 0), old.get("stale", 0)
            result.resumed = True


def _connect(device: Device) -> dict[str, Any]:
    info = device.open()
    device.load()
    return info


def _run_sample(
    device: Device,
    prepared: Any,
    index: int,
    steps: int,
    result: SampleResult,
    report: HilReport,
    policy: dict[str, float],
) -> Observed | None:
    """The board's record of one sample, or None (the result says why) when it could not be completed."""
    while True:
        result.attempts += 1
        try:
            observed = device.run_sample(prepared, index, steps)
        except BoardError as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            if not exc.retryable:
                raise
            if result.attempts > policy["retries"]:
                return None
            if isinstance(exc, BoardDisconnected):
                _reconnect(device, report, policy)
            continue
        result.seconds, result.error = observed.seconds, None
        result.events, result.out_of_order, result.stale = observed.events, observed.out_of_order, observed.stale
        return observed


def _reconnect(device: Device, report: HilReport, policy: dict[str, float]) -> None:
    """Reopen and reconfigure a board that went away; raise BoardDisconnected when the run's reconnects are used
    up, or the last error when it does not come back."""
    device.close()
    while True:
        if report.reconnects >= policy["reconnects"]:
            raise BoardDisconnected(
                f"the board went away and {report.reconnects} reconnect(s) were used up (setting reconnects)"
            )
        report.reconnects += 1
        device.clock.sleep(policy["reconnect_wait_s"])
        try:
            _connect(device)
            return
        except BoardError as exc:
            device.close()
            if not exc.retryable and not isinstance(exc, BoardUnavailable):
                raise


def _compare(result: SampleResult, observed: Observed, want: Observed, device: Device | None = None) -> None:
    """Compare one sample's records layer by layer with the device's rule (:meth:`Device.compare_layer`; the
    exact rule without a device)."""
    rule = device.compare_layer if device is not None else exact_layer
    status = "match"
    for name, expected in want.layers.items():
        got = observed.layers.get(name)
        entry: dict[str, Any] = {"emulator_spikes": int(expected.sum())}
        if got is None or got.shape != expected.shape:
            entry.update(board_spikes=None, differing=None, first_step_differing=None)
            entry["problem"] = "not reported by the board" if got is None else f"shape {got.shape}"
            status = "mismatch"
        else:
            entry = rule(np.asarray(got), np.asarray(expected))
            if not entry.pop("match"):
                status = "mismatch"
        result.layers[name] = entry
    for extra in sorted(set(observed.layers) - set(want.layers)):
        result.layers[extra] = {"board_spikes": int(observed.layers[extra].sum()), "problem": "not in the emulator"}
        status = "mismatch"
    readout = device.compare_outputs(observed.outputs, want.outputs) if device is not None else None
    if readout is not None:
        if not readout.pop("match"):
            status = "mismatch"
        result.readout = readout
    result.prediction = {"board": _argmax(observed.outputs), "emulator": _argmax(want.outputs)}
    result.status = status


def _argmax(outputs: np.ndarray | None) -> int | None:
    return None if outputs is None else int(np.asarray(outputs).reshape(-1).argmax())


def _manifest_sha(artifact: Any) -> str:
    return hashlib.sha256(artifact.manifest_path.read_bytes()).hexdigest()


# -- the report ---------------------------------------------------------------------------------------------
def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, for a lab notebook or a pull request."""
    board, summary = report["board"], report["summary"]
    lines = [
        f"# Hardware-in-the-loop run: {report['verdict'].upper()}",
        "",
    ]
    if board["fake"]:
        lines += [
            f"**Fake board** `{board['name']}`: a rehearsal, the adapter's code against a replay of the emulator "
            f"(faults: {', '.join(f'{k}={v}' for k, v in board['faults'].items()) or 'none'}). Not a board run.",
            "",
        ]
    lines += [
        f"- artifact: `{report['artifact']['path']}` (target {report['artifact']['target']}, manifest sha256 "
        f"`{report['artifact']['manifest_sha256'][:16]}`)",
        f"- board: `{board['name']}` (target {board['target']}, adapter {board['adapter']}"
        + (f", address `{board['address']}`" if board["address"] else "")
        + ")",
        f"- steps: {report['steps']}; comparison: {report['compare']} "
        f"({report.get('compare_rule', 'every spike count of every watched layer at every step equal')})",
        f"- samples: {summary['samples']}: {summary['match']} match, {summary['mismatch']} mismatch, "
        f"{summary['not_run']} not run; {summary['retries']} retried, {summary['reconnects']} reconnect(s), "
        f"{summary['resumed']} kept from an earlier run; "
        f"{summary['seconds']:.1f} s",
    ]
    if summary["stopped"]:
        lines.append(f"- stopped early: {summary['stopped']}")
    lines += [
        "",
        "| sample | status | attempts | layer | board spikes | emulator spikes | counts differing | first step |",
    ]
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for sample in report["samples"]:
        head = f"| {sample['index']} | {sample['status']} | {sample['attempts']} |"
        if not sample["layers"]:
            lines.append(f"{head} {sample['error'] or ''} | | | | |")
        for name, layer in sample["layers"].items():
            first = layer.get("first_step_differing")
            lines.append(
                f"{head} {name} | {_cell(layer.get('board_spikes'))} | {_cell(layer.get('emulator_spikes'))} | "
                f"{_differing(layer)} | {_cell(first)} |"
            )
        if sample.get("readout") is not None:  # the output vector: values differing, not spikes
            lines.append(f"{head} (readout) | | | {_differing(sample['readout'])} | |")
    return "\n".join(lines) + "\n"


def _differing(layer: dict[str, Any]) -> str:
    """The "counts differing" cell: how many counts differ, and a statistical rule's distance and tolerance."""
    text = _cell(layer.get("differing", layer.get("problem")))
    if "distance" in layer:
        text += f" (distance {layer['distance']:.3f}, tolerance {layer.get('tolerance')})"
    return text


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def write_report(report: HilReport, out_dir: str | os.PathLike) -> Path:
    """Write ``report.json`` and ``report.md`` into ``out_dir`` at once: built in a temporary folder beside it,
    then renamed. ``out_dir`` must be absent, empty, or an earlier report of this command."""
    out_dir = Path(out_dir)
    _check_report_destination(out_dir)
    document = report.to_dict()
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent, out_dir.name, ("tmp/", "old/"))
    tmp = parent / temporary_name(out_dir.name, "tmp")
    try:
        tmp.mkdir()
        (tmp / "report.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        (tmp / "report.md").write_text(markdown(document))
        _check_report_destination(out_dir)
        if os.path.lexists(out_dir):
            old = parent / temporary_name(out_dir.name, "old")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise DataError(f"cannot write the report {out_dir}: {exc.strerror or exc}") from None
        raise
    return out_dir


def _check_report_destination(out_dir: Path) -> None:
    mode = output_mode(out_dir, f"the report {out_dir}")
    if mode is None:
        return
    if not stat.S_ISDIR(mode):
        raise DataError(f"report folder {out_dir} exists and is not a folder (or is a link); choose another")
    names = {entry.name for entry in os.scandir(out_dir)}
    if names and not (names <= set(REPORT_FILES) and _is_report(out_dir / "report.json")):
        raise DataError(f"report folder {out_dir} holds other files than an earlier hil report; choose another")


def _is_report(path: Path) -> bool:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        return json.loads(path.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError, NeurodeployError):
        return False


# -- the inventory, as `hil list` shows it ------------------------------------------------------------------
def adapter_name(board: Board) -> str:
    """The board's adapter: the inventory's, or its target's default (empty when the target has none)."""
    if board.adapter:
        return board.adapter
    try:
        return next(iter(get_backend(board.target).device_adapters), "")
    except NeurodeployError:
        return ""


def board_status(board: Board) -> str:
    """Whether ``board`` can be used here, and if not, why."""
    try:
        backend = get_backend(board.target)
        device_class = backend.device_class(board.adapter)
    except (UnknownTargetError, BoardUnavailable) as exc:
        return f"unavailable: {exc}"
    try:
        _policy(board, device_class(board, Clock()))  # the settings, checked as a run checks them
    except DataError as exc:
        return f"unavailable: {exc}"
    if board.fake:
        try:
            check_faults(board.faults, device_class.faults, "its fake board")
        except ValueError as exc:
            return f"unavailable: {exc}"
        status = device_class.fake_status()
        if status is not None:
            return f"unavailable: {status}"
        return "ready (fake board: a rehearsal against the emulator)"
    status = device_class.sdk_status()
    if status is not None:
        return f"unavailable: {status}"
    if not device_class.discoverable:
        where = board.address or "its default address"
        return f"ready (SDK installed; the board at {where} is reached when a run opens it)"
    found = device_class.discover()
    if board.address and board.address not in found:
        return f"not attached: the SDK sees {', '.join(found) or 'no board'}"
    if not found:
        return "not attached: the SDK sees no board"
    return "ready"


def unlisted_boards(boards: dict[str, Board]) -> list[tuple[str, str, str]]:
    """(target, adapter, address) of boards the installed SDKs find that the inventory does not name."""
    from neurodeploy.backends.registry import available_backends

    named = {(b.target, b.address) for b in boards.values()}
    found = []
    asked: set[str] = set()  # one discovery per adapter class (several targets may share one)
    for name, entry in sorted(available_backends().items()):
        try:
            backend = entry.load()(name)
        except NeurodeployError:
            continue
        for adapter, where in backend.device_adapters.items():
            if where in asked:
                continue
            asked.add(where)
            try:
                device_class = backend.device_class(adapter)
            except (NeurodeployError, ImportError):
                continue
            for address in device_class.discover():
                if (name, address) not in named:
                    found.append((name, adapter, address))
    return found
