"""The ``neurodeploy`` command line: compile, emulate, evaluate, targets, ops, passes.

Exit status: 0 on success, 1 when the work fails (a one-paragraph message; ``--debug`` adds the traceback),
2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy._version import __version__
from neurodeploy.data.policy import SUMMARY as INPUT_POLICY
from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.readout import readout_skip

log = logging.getLogger("neurodeploy")


def _parse_shape(text: str) -> tuple[str | None, tuple[int | None, ...]]:
    """``NAME:1,3,32,32`` or ``1,3,32,32``; ``N`` or ``?`` leaves the batch dimension as the model has it."""
    name, sep, dims = text.rpartition(":")
    if not dims.strip():
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: no dimensions; write e.g. 1,3,32,32 or input:1,3,32,32")
    try:
        shape = tuple(None if d.strip() in ("N", "?", "") else int(d) for d in dims.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}; write e.g. 1,3,32,32 or input:1,3,32,32") from None
    if any(d is not None and d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: dimensions must be positive")
    return (name if sep else None), shape


def _input_shapes(values: list[tuple[str | None, tuple]] | None):
    if not values:
        return None
    if len(values) == 1 and values[0][0] is None:
        return values[0][1]
    if any(name is None for name, _ in values):
        raise NeurodeployError("with several --input-shape options, name each input: NAME:DIMS")
    return {name: shape for name, shape in values}


def _cmd_compile(args: argparse.Namespace) -> int:
    from neurodeploy.compiler import compile_model, default_output_dir
    from neurodeploy.data.calibration import load_calibration
    from neurodeploy.ir.printer import format_graph

    calibration = load_calibration(args.calibration, args.calibration_samples) if args.calibration else None

    def dump(p, graph) -> None:
        header = "import" if p is None else p.spec()
        sys.stdout.write(f"// after {header}\n{format_graph(graph)}")

    out = args.output or default_output_dir(Path(args.model), args.target)
    artifact = compile_model(
        args.model,
        args.target,
        out,
        calibration=calibration,
        input_shapes=_input_shapes(args.input_shape),
        pipeline=args.pipeline,
        conversion=args.conversion,
        after_pass=dump if args.dump_ir else None,
        encoding=_encoding(args),
        target_options=_key_values(args.target_option),
        import_options=_key_values(args.import_option, "--import-option") or None,
    )
    files = ", ".join(sorted(artifact.manifest["files"]))
    print(f"compiled {Path(args.model).name} for {artifact.target} -> {artifact.root}/ ({files})")
    return 0


def _encoding(args: argparse.Namespace, default=None):
    """The encoding the options ask for: --encoding, --seed and --pad-events over ``default`` (direct if None)."""
    from neurodeploy.encoding import Encoding

    base = default if default is not None else Encoding()
    encoding = Encoding(
        args.encoding or base.kind,
        seed=args.seed if args.seed is not None else base.seed,
        pad=args.pad_events or base.pad,
    )
    if args.seed is not None and encoding.kind != "rate":
        raise DataError(f"--seed applies to the rate encoding, not to {encoding.kind}; add --encoding rate")
    if args.pad_events and encoding.kind != "events":
        raise DataError(f"--pad-events applies to the events encoding, not to {encoding.kind}; add --encoding events")
    return encoding


def _describe_encoding(encoding) -> str:
    if encoding.kind == "rate":
        return f"rate input, seed {encoding.seed}"
    if encoding.kind == "events":
        return "events input" + (", zero-padded" if encoding.pad else "")
    return "direct input"


def _load_inputs(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    from neurodeploy.data import load_array_file

    return load_array_file(path)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from neurodeploy.artifact import load_artifact
    from neurodeploy.backends.registry import get_backend
    from neurodeploy.compiler import (
        artifact_classes,
        artifact_encoding,
        check_step_count,
        checked_inputs,
        emulate_artifact,
    )
    from neurodeploy.data.policy import check_labels
    from neurodeploy.emulation import check_engine
    from neurodeploy.fileio import check_output_file, write_file_atomic
    from neurodeploy.ir.serialize import write_npz

    if args.steps is not None:
        check_step_count(args.steps, "--steps")  # before anything is read or allocated
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit must be at least 1, got {args.limit}")
    if args.output:
        check_output_file(args.output)  # before the work, not after it
    artifact = load_artifact(args.artifact)
    backend = get_backend(artifact.target)
    check_engine(backend.target, backend.engines, args.emulator, args.device)  # before the inputs are read
    encoding = _encoding(args, artifact_encoding(artifact))
    x, labels = _load_inputs(args.input)
    labels_from = f"{args.input} (y)"
    if args.labels:
        labels, _ = _load_inputs(args.labels)
        labels_from = args.labels
    if args.limit is not None:
        x = x[: args.limit]
        labels = None if labels is None else labels[: args.limit]
    if x.ndim > 0 and len(x) == 0:
        raise DataError(f"{args.input} holds no inputs (array of shape {x.shape}); give at least one sample")
    if labels is not None:
        samples = len(x) if x.ndim > 0 else 1
        labels = check_labels(labels, samples=samples, classes=artifact_classes(artifact), where=labels_from)
    x = checked_inputs(artifact, x, encoding, where=args.input)  # the input policy, naming the file
    result = emulate_artifact(
        artifact, x, steps=args.steps, mode=args.mode, encoding=encoding, engine=args.emulator, device=args.device
    )
    summary = f"emulated {len(result.outputs)} sample(s) on {artifact.target} ({result.mode}"
    if result.mode == "ann":
        summary += ")"
    else:
        summary += f", {result.steps} steps"
        if result.delay:
            summary += f" after a fill of {result.delay}"
        if skip := readout_skip(result.readout_delay, result.steps):
            summary += f", read over steps {skip + 1}..{result.steps}"
        summary += ")" if encoding.kind == "direct" else f", {_describe_encoding(encoding)})"
    if labels is not None:
        if len(labels) != len(result.outputs):
            raise DataError(f"{len(labels)} labels for {len(result.outputs)} inputs")
        correct = int((result.predictions == labels).sum())
        summary += f": accuracy {100.0 * correct / len(labels):.2f}% ({correct}/{len(labels)})"
    if result.spikes:
        total = sum(float(v.mean()) for v in result.spikes.values())
        neurons = sum(result.neurons.values())
        summary += f", {total / max(neurons, 1):.3f} spikes per neuron per sample"
    if args.output:
        out = Path(args.output)
        arrays = {"outputs": result.outputs, "predictions": result.predictions, "steps": np.asarray(result.steps)}
        arrays.update({f"spikes/{k}": v for k, v in result.spikes.items()})
        write_file_atomic(out, lambda f: write_npz(f, arrays))  # replaces a regular file only
        summary += f" -> {out}"
    print(summary)
    return 0


def _parse_steps(text: str) -> list[int]:
    from neurodeploy.evaluate import parse_steps

    try:
        return parse_steps(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise."""

    def __init__(self, what: str, enabled: bool) -> None:
        self.what, self.enabled = what, enabled
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        fraction = done / max(total, 1)
        elapsed = time.perf_counter() - self.started
        bar = "#" * int(30 * fraction)
        line = f"{self.what} [{bar:<30}] {done}/{total} samples, {elapsed:.1f} s"
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if done >= total else ""))
        elif int(10 * fraction) > self.shown or done >= total:
            self.shown = int(10 * fraction)
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _key_values(items: list[str] | None, flag: str = "--target-option") -> dict[str, str]:
    """``--target-option`` / ``--import-option`` KEY=VALUE items as a dict (whoever reads them checks them)."""
    options: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataError(f"{flag} takes KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    return options


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from neurodeploy.evaluate import evaluate, plot_accuracy, require_matplotlib
    from neurodeploy.evaluation.folder import check_report_folder, write_report_folder
    from neurodeploy.fileio import check_output_file, write_file_atomic

    if args.plot:
        require_matplotlib()  # before the work, not after it
    for output in (args.json, args.plot):
        if output:
            check_output_file(output)  # only regular files are replaced; say so before the work
    if args.report:
        check_report_folder(Path(args.report), Path(args.model).name, args.data)
    options = {}
    if args.bin_us is not None:
        options["bin_us"] = args.bin_us
    if args.window_us is not None:
        options["window_us"] = args.window_us
    if args.encoding is None and (args.seed is not None or args.pad_events):
        raise DataError("--seed and --pad-events need --encoding (rate or events)")
    encoding = _encoding(args) if args.encoding else None
    with _engine(args, args.workers) as cluster:  # connected before any work
        result = _evaluate_with(args, evaluate, encoding, options, cluster)
    report = result.to_dict()
    sys.stdout.write(result.format_table())
    if args.json:
        write_file_atomic(Path(args.json), (json.dumps(report, indent=2, allow_nan=False) + "\n").encode())
    if args.plot:
        plot_accuracy(report, args.plot)
    page = write_report_folder(Path(args.report), report, result.artifact, result.raster) if args.report else None
    written = ", ".join(str(p) for p in (args.json, args.plot, page) if p)
    print(f"evaluated {report['samples']} sample(s) in {result.seconds:.1f} s" + (f" -> {written}" if written else ""))
    return 0


def _evaluate_with(args: argparse.Namespace, evaluate: Any, encoding: Any, options: dict, cluster: Any) -> Any:
    return evaluate(
        args.model,
        args.data,
        args.steps,
        target=args.target,
        limit=args.limit,
        calibration=args.calibration,
        calibration_samples=args.calibration_samples,
        encoding=encoding,
        batch_size=args.batch_size,
        pipeline=args.pipeline,
        conversion=args.conversion,
        data_options=options,
        workers=args.workers,
        progress=_Progress("simulating", not args.quiet),
        mode=args.mode,
        target_options=_key_values(args.target_option),
        import_options=_key_values(args.import_option, "--import-option") or None,
        details=bool(args.report),
        cluster=cluster,
        emulator=args.emulator,
        device=args.device,
    )


@contextmanager
def _engine(args: argparse.Namespace, workers: int | None, sweep: Any = None) -> Iterator[Any]:
    """The Dask cluster of ``--engine dask`` (``--address``, or local worker processes started here), connected
    before any work and closed afterwards; for the local engine, None (an evaluation starts its own processes), or
    for a ``sweep`` its pool of worker processes (None with one worker: its points run here)."""
    if args.engine != "dask":
        if args.address is not None:
            raise DataError("--address names a Dask scheduler; add --engine dask")
        if sweep is None:
            yield None
            return
        from neurodeploy.evaluation.local import LocalPool
        from neurodeploy.sweep import local_workers

        count = local_workers(sweep, workers)
        if count <= 1:
            yield None
            return
        with LocalPool(count) as pool:
            yield pool
        return
    if args.address is not None and workers is not None:
        raise DataError(f"--workers sets the local engine's processes; the cluster at {args.address} has its own")
    from neurodeploy.evaluation.cluster import connect

    with connect(args.address, workers, args.connect_timeout) as cluster:
        yield cluster


def _cmd_hil_list(args: argparse.Namespace) -> int:
    from neurodeploy.hil.harness import adapter_name, board_status, unlisted_boards
    from neurodeploy.hil.inventory import load_inventory, locate

    where = locate(args.inventory)
    boards = load_inventory(where)
    print(f"boards in {where}:")
    for board in boards.values():
        kind = ", ".join(filter(None, [board.target, adapter_name(board), board.address]))
        print(f"  {board.name} ({kind}): {board_status(board)}")
        if board.description:
            print(f"      {board.description}")
    if not boards:
        print("  (none)")
    extra = unlisted_boards(boards)
    if extra:
        print("attached, not in the inventory:")
        for target, adapter, address in extra:
            print(f"  {address} ({target}, {adapter}): add it to the inventory to use it")
    return 0


def _earlier_report(out: Path) -> dict[str, Any] | None:
    """The report a --resume continues: ``out``'s report.json, None when there is none."""
    from neurodeploy.fileio import read_regular_file
    from neurodeploy.hil.harness import FORMAT

    where = out / "report.json"
    try:
        document = json.loads(read_regular_file(where, cap="max_json_bytes"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataError(f"--resume: cannot read {where}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DataError(f"--resume: {where} is not a report of `neurodeploy hil run`")
    return document


def _cmd_hil_run(args: argparse.Namespace) -> int:
    from neurodeploy.artifact import load_artifact
    from neurodeploy.backends.registry import get_backend
    from neurodeploy.compiler import artifact_encoding, check_step_count
    from neurodeploy.hil.harness import run_on_board, write_report
    from neurodeploy.hil.inventory import load_inventory

    if args.steps is not None:
        check_step_count(args.steps, "--steps")
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit must be at least 1, got {args.limit}")
    boards = load_inventory(args.inventory)
    if args.board not in boards:
        raise DataError(f"no board {args.board!r} in the inventory; it has {', '.join(boards) or 'none'}")
    board = boards[args.board]
    out = Path(args.output or f"hil-{board.name}")
    artifact = load_artifact(args.artifact)
    encoding = _encoding(args, artifact_encoding(artifact))
    x, _ = _load_inputs(args.input)
    if args.limit is not None:
        x = x[: args.limit]
    if x.ndim > 0 and len(x) == 0:
        raise DataError(f"{args.input} holds no inputs (array of shape {x.shape}); give at least one sample")
    steps = args.steps or get_backend(artifact.target).default_steps
    previous = _earlier_report(out) if args.resume else None
    progress = _Progress(f"on {board.name}", not args.quiet)
    report = run_on_board(artifact, board, x, steps=steps, encoding=encoding, progress=progress, previous=previous)
    write_report(report, out)
    summary = report.to_dict()["summary"]
    fake = " (fake board)" if board.fake else ""
    print(
        f"{report.verdict}: {summary['samples']} sample(s) on {board.name}{fake}, {steps} steps: {summary['match']} "
        f"match, {summary['mismatch']} mismatch, {summary['not_run']} not run -> {out}/report.md"
    )
    return 0 if report.verdict == "pass" else 1


def _cmd_inspect(args: argparse.Namespace) -> int:
    from neurodeploy import inspect

    info = inspect.summary(args.artifact)
    console = None if args.json or args.plain else _rich_console()
    if console is not None:
        inspect.print_rich(info, console)
    else:
        print(json.dumps(info, indent=2) if args.json else inspect.text(info).rstrip("\n"))
    return 0


def _rich_console() -> Any:
    """A ``rich`` console on standard output where it is a terminal and ``rich`` is installed; else None (plain
    text: a pipe, a file, a terminal without it)."""
    if not sys.stdout.isatty():
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console()


def _cmd_sweep(args: argparse.Namespace) -> int:
    from neurodeploy.sweep import load_sweep, run_sweep

    sweep = load_sweep(args.spec, args.output)  # every point checked before any work
    print(f"{len(sweep.points)} point(s); results in {sweep.output}/", flush=True)
    with _engine(args, args.workers, sweep) as cluster:
        document = run_sweep(sweep, progress=lambda line: print(line, flush=True), cluster=cluster)
    failed = [entry for entry in document["points"] if "error" in entry]
    for entry in failed:
        sys.stderr.write(f"point {entry['point']} failed: {entry['error']}\n")
    print(f"wrote {sweep.output / 'results.csv'} and results.json ({len(document['rows'])} rows)")
    return 1 if failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from neurodeploy.artifact import load_artifact
    from neurodeploy.export import export_nir, export_nir_quantized

    metadata: dict = {}
    if args.quantized:
        options, metadata = export_nir_quantized(load_artifact(args.artifact), args.output, dt=args.dt)
    else:
        options = export_nir(load_artifact(args.artifact), args.output, dt=args.dt)
    import nir

    version = getattr(nir, "version", None) or getattr(nir, "__version__", "?")
    flags = " ".join(f"-I {key}={value}" for key, value in options.items())
    what = f"the {metadata.get('target', '?')} target's quantized network, " if args.quantized else ""
    print(f"wrote {args.output} ({what}NIR, written by nir {version}); read it back with: {flags}")
    for key, value in metadata.items():  # also in the file's metadata
        if key != "neurodeploy_export" and value != "":
            print(f"  {key}: {value}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from neurodeploy import htmlreport, inspect
    from neurodeploy.fileio import check_output_file, write_file_atomic

    if args.output is not None:
        check_output_file(args.output)  # before the artifact is read: a bad destination fails first
    info = inspect.summary(args.artifact)
    html = args.output is not None and Path(args.output).suffix.lower() in (".html", ".htm")
    document = htmlreport.page(info) if html else inspect.markdown(info)
    if args.output is None:
        print(document, end="")
    else:
        write_file_atomic(args.output, document.encode())
        print(f"wrote {args.output}")
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    from neurodeploy.backends.registry import available_backends

    rows = [("target", "fidelity", "from", "description")]
    options: dict[str, dict[str, str]] = {}
    for name, entry in sorted(available_backends().items()):
        try:
            cls = entry.load()
            rows.append((name, cls.fidelity, entry.distribution, cls.spec.description))
            options[name] = dict(cls.target_options)
        except NeurodeployError as exc:
            rows.append((name, "?", entry.distribution, f"failed to load: {exc}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
        for key, text in options.get(r[0], {}).items():
            print(f"{'':{widths[0]}}  --target-option {key}=...: {text}")
    return 0


def _cmd_ops(args: argparse.Namespace) -> int:
    from neurodeploy.frontend.onnx import constant_only_ops, supported_ops

    for op, versions in supported_ops().items():
        print(f"{op:20s} since-versions {', '.join(map(str, versions))}")
    print(f"folded when every input is constant: {', '.join(constant_only_ops())}")
    return 0


def _cmd_passes(args: argparse.Namespace) -> int:
    from neurodeploy.passes import CANONICALIZE, PASSES

    for name, cls in PASSES.items():
        doc = ((cls.__module__ and sys.modules[cls.__module__].__doc__) or "").strip().splitlines()[0]
        print(f"{name:22s} {doc.partition(': ')[2] or doc}")
    print(f"\ndefault canonicalization: {CANONICALIZE}")
    return 0


def _add_encoding_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--encoding", choices=("direct", "rate", "events"), help=what)
    p.add_argument("--seed", type=int, metavar="N", help="seed of the rate encoding's spikes (default 0)")
    p.add_argument(
        "--pad-events",
        action="store_true",
        help="events encoding: feed zero input after the last frame instead of refusing to run longer",
    )


def _add_emulator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--emulator",
        choices=["numpy", "torch"],
        default="numpy",
        help="what the target's emulator computes with: numpy (default), or torch tensors on --device (the "
        "reference, spinnaker and brainscales2 targets, loihi's binary and graded modes, the speck targets' binned "
        "mode; needs neurodeploy[torch]): on the chips' targets the same numbers (integers; brainscales2's float64 "
        "model op for op), on reference the same numbers up to float rounding",
    )
    p.add_argument(
        "--device",
        metavar="DEVICE",
        help="the torch device of --emulator torch: cpu, cuda, cuda:1, ... (default: cuda when torch sees one, "
        "else cpu)",
    )


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=["local", "dask"],
        default="local",
        help="where the batches run: local processes (default), or tasks on a Dask cluster (needs "
        "neurodeploy[cluster]; local worker processes started here unless --address names a running scheduler); "
        "what each batch computes with is --emulator",
    )
    p.add_argument("--address", metavar="tcp://HOST:PORT", help="the Dask scheduler of a running cluster")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the Dask scheduler before giving up (10)",
    )


def _add_import_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--import-option",
        "-I",
        action="append",
        metavar="KEY=VALUE",
        help="how to read the model file, for formats with choices: NIR's dt, discretization, reset, compare, writer "
        "(docs/nir.md)",
    )


def _add_target_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target-option",
        "-X",
        action="append",
        metavar="KEY=VALUE",
        help="a setting of the target itself, e.g. spikes_per_event=8 for speck (`neurodeploy targets` lists them)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurodeploy", description="Deploy trained ANNs as spiking networks on neuromorphic chips."
    )
    parser.add_argument("--version", action="version", version=f"neurodeploy {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="hide warnings")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", parents=[common], help="compile an ONNX model into an artifact folder")
    p.add_argument("model", help="the model file (.onnx, or .nir for a spiking network)")
    p.add_argument("--target", "-t", required=True, help="target name (see `neurodeploy targets`)")
    p.add_argument("-o", "--output", help="artifact folder (default: <model>-<target>)")
    p.add_argument(
        "--calibration",
        metavar="DATA",
        help="calibration inputs for threshold balancing: a data set name (its training split) or an .npy/.npz file",
    )
    p.add_argument(
        "--calibration-samples",
        type=int,
        default=1024,
        metavar="N",
        help="use the first N calibration inputs (default 1024)",
    )
    p.add_argument(
        "--input-shape",
        type=_parse_shape,
        action="append",
        metavar="[NAME:]DIMS",
        help="fix dynamic input dimensions, e.g. 1,3,32,32 (batch may be N)",
    )
    p.add_argument("--pipeline", help="replace the whole pass pipeline (see `neurodeploy passes`)")
    p.add_argument(
        "--conversion",
        metavar="OPTIONS",
        help="convert-to-snn options, e.g. norm=max or norm=percentile,percentile=99.99,granularity=channel "
        "(see docs/conversion.md)",
    )
    p.add_argument("--dump-ir", action="store_true", help="print the IR after import and after every pass")
    _add_import_option(p)
    _add_target_option(p)
    _add_encoding_options(p, "the input encoding recorded in the artifact (default direct)")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser(
        "emulate",
        parents=[common],
        help="run an artifact on inputs with its target's emulator",
        description="Run an artifact on inputs with its target's emulator. " + INPUT_POLICY,
    )
    p.add_argument("artifact", help="artifact folder written by `neurodeploy compile`")
    p.add_argument("--input", "-i", required=True, help=".npy (batch first) or .npz with x (and y: labels)")
    p.add_argument("--steps", "-T", type=int, help="time steps (default: the target's)")
    p.add_argument("--mode", help="emulation mode, e.g. snn or ann for the reference target")
    p.add_argument("--output", "-o", help="write outputs (batch, classes) and predictions to this .npz")
    p.add_argument("--labels", help=".npy of labels; prints accuracy (an .npz input's y is used otherwise)")
    p.add_argument("--limit", type=int, help="use only the first N inputs")
    _add_encoding_options(p, "input encoding (default: the artifact's); events inputs are (N, frames, ...)")
    _add_emulator_options(p)
    p.set_defaults(func=_cmd_emulate)

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        help="compile a model, then compare ANN and SNN accuracy over time steps",
        description="Compile a model, then compare ANN and SNN accuracy over time steps. " + INPUT_POLICY,
    )
    p.add_argument("model", help="the model file (.onnx, or .nir for a spiking network)")
    p.add_argument("--target", "-t", default="reference", help="target name (default reference)")
    p.add_argument(
        "--data",
        "-d",
        required=True,
        metavar="DATA",
        help="a data set name (mnist, cifar10, nmnist: its test split) or an .npz with x (inputs) and y (labels)",
    )
    p.add_argument(
        "--steps",
        "-T",
        type=_parse_steps,
        default=[1, 2, 4, 8, 16, 32, 64, 128, 256],
        metavar="T1,T2,...",
        help="time steps to report, simulated once up to the largest (default 1,2,4,...,256)",
    )
    p.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--plot", metavar="PNG", help="draw accuracy against T (needs matplotlib)")
    p.add_argument(
        "--report",
        metavar="DIR",
        help="add this evaluation to the report folder DIR (report.html and report.md: accuracy against T for "
        "every target evaluated there, SynOps, firing rates, ANN-SNN correlation, a spike raster, the artifact)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="evaluate the first N samples")
    p.add_argument(
        "--calibration",
        metavar="DATA",
        help="calibration inputs as for compile (default: a named data set's training split; an .npz: none)",
    )
    p.add_argument(
        "--calibration-samples", type=int, default=1024, metavar="N", help="use the first N calibration inputs (1024)"
    )
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="samples simulated at once (256)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes simulating batches in parallel (default: one per CPU; 1: in this process)",
    )
    p.add_argument("--pipeline", help="replace the whole pass pipeline (see `neurodeploy passes`)")
    p.add_argument(
        "--conversion",
        metavar="OPTIONS",
        help="convert-to-snn options, e.g. norm=max or norm=percentile,percentile=99.99,granularity=channel "
        "(see docs/conversion.md)",
    )
    p.add_argument("--bin-us", type=int, metavar="US", help="event data: frame width in microseconds (1000)")
    p.add_argument("--window-us", type=int, metavar="US", help="event data: window per sample in us (300000)")
    p.add_argument("--mode", help="the target's emulation mode, e.g. binary or graded for loihi (default: its first)")
    _add_import_option(p)
    _add_target_option(p)
    _add_encoding_options(p, "input encoding (default: direct, events for event data)")
    _add_engine_options(p)
    _add_emulator_options(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "hil",
        parents=[common],
        help="run an artifact on a lab board and compare it with the emulator",
        description="Hardware in the loop: boards come from an inventory file (--inventory, $NEURODEPLOY_BOARDS, "
        "or hil/boards.toml here; see hil/README.md).",
    )
    hil = p.add_subparsers(dest="hil_command", required=True, metavar="ACTION")
    q = hil.add_parser("list", parents=[common], help="the inventory's boards, whether each can be used, and why not")
    q.add_argument(
        "--inventory", metavar="TOML", help="the board inventory (default: $NEURODEPLOY_BOARDS, hil/boards.toml)"
    )
    q.set_defaults(func=_cmd_hil_list)
    q = hil.add_parser(
        "run",
        parents=[common],
        help="run an artifact on a board and on its emulator, sample by sample; write report.json and report.md",
        description="Exit status 0 only when every sample ran and equals the emulator's record.",
    )
    q.add_argument("artifact", help="artifact folder written by `neurodeploy compile`")
    q.add_argument("--board", "-b", required=True, help="a board of the inventory (see `neurodeploy hil list`)")
    q.add_argument("--input", "-i", required=True, help=".npy (batch first) or .npz with x")
    q.add_argument("--steps", "-T", type=int, help="time steps (default: the target's)")
    q.add_argument("--limit", type=int, metavar="N", help="run only the first N inputs")
    q.add_argument(
        "--inventory", metavar="TOML", help="the board inventory (default: $NEURODEPLOY_BOARDS, hil/boards.toml)"
    )
    q.add_argument("-o", "--output", metavar="DIR", help="report folder (default hil-<board>)")
    q.add_argument(
        "--resume",
        action="store_true",
        help="keep the samples the report in the output folder completed, and run only those it could not",
    )
    _add_encoding_options(q, "input encoding (default: the artifact's)")
    q.set_defaults(func=_cmd_hil_run)

    p = sub.add_parser("inspect", parents=[common], help="what an artifact holds: model, shapes, layers, warnings")
    p.add_argument("artifact", help="artifact folder written by `neurodeploy compile`")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--plain", action="store_true", help="plain text, also on a terminal where rich tables show")
    p.set_defaults(func=_cmd_inspect)
    p = sub.add_parser(
        "report",
        parents=[common],
        help="an artifact's report rendered again: Markdown (stdout, or -o FILE) or the HTML page (-o FILE.html)",
    )
    p.add_argument("artifact", help="artifact folder written by `neurodeploy compile`")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="the file to write (replaced whole): .html for the page with its charts"
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "sweep",
        parents=[common],
        help="run many compile-and-evaluate points from a TOML spec; reruns reuse unchanged points",
        description="Run every point of a sweep spec (neurodeploy/sweep.py documents the format), keeping each "
        "point's result: a rerun or a resumed run does only what changed. " + INPUT_POLICY,
    )
    p.add_argument("spec", help="the sweep's TOML file, e.g. examples/sweep/mnist.toml")
    p.add_argument("-o", "--output", metavar="DIR", help="the sweep's folder (default: the spec's output setting)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="the local engine's worker processes, started once for the sweep, or the local Dask cluster's (default: "
        "the largest workers setting of the points, else one per CPU; 1: the points run in this process)",
    )
    _add_engine_options(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "export", parents=[common], help="write an artifact's spiking network to another format (NIR, docs/nir.md)"
    )
    p.add_argument("artifact", help="artifact folder written by `neurodeploy compile`")
    p.add_argument("--format", choices=["nir"], default="nir", help="the format (nir)")
    p.add_argument(
        "--dt",
        type=float,
        default=1.0,
        help="the time step leaky neurons' time constants are written for (default 1: in steps, as sinabs reads "
        "them; snnTorch's reader assumes 1e-4)",
    )
    p.add_argument(
        "--quantized",
        action="store_true",
        help="write the network as the artifact's target computes it: integer weights, thresholds and biases in the "
        "chip's units (loihi, speck; the file's metadata and what the command prints say what it leaves out)",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write (replaced whole)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("targets", parents=[common], help="list installed targets")
    p.set_defaults(func=_cmd_targets)
    p = sub.add_parser("ops", parents=[common], help="list the ONNX ops the frontend imports")
    p.set_defaults(func=_cmd_ops)
    p = sub.add_parser("passes", parents=[common], help="list the passes pipelines can name")
    p.set_defaults(func=_cmd_passes)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread while a command runs, so that the clean-up Ctrl-C gets runs too
    (a half-written artifact or output file is removed); the command then exits with status 143."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (once; repeats are ignored while the clean-up
    runs); the previous handler is restored after. Only the main thread can handle signals, so elsewhere this
    does nothing. Spawned worker processes (evaluate's) start with the default handler, not this one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.debug else logging.ERROR if args.quiet else logging.WARNING
    # Messages go to stderr as "warning: ..." while the command runs; the caller's logging (a test's, an
    # application's calling main) is put back afterwards, untouched.
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    try:
        return _run(args)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _run(args: argparse.Namespace) -> int:
    try:
        with _sigterm_raises():
            return args.func(args)
    except NeurodeployError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, briefly, and how to see more
        if args.debug:
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


if __name__ == "__main__":
    sys.exit(main())
