"""The ``neurodeploy`` command line: compile, emulate, targets, ops, passes.

Exit status: 0 on success, 1 when the work fails (a one-paragraph message; ``--debug`` adds the traceback),
2 on usage errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from neurodeploy._version import __version__
from neurodeploy.errors import DataError, NeurodeployError

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
        after_pass=dump if args.dump_ir else None,
    )
    files = ", ".join(sorted(artifact.manifest["files"]))
    print(f"compiled {Path(args.model).name} for {artifact.target} -> {artifact.root}/ ({files})")
    return 0


def _load_inputs(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    from neurodeploy.data import load_array_file

    return load_array_file(path)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from neurodeploy.artifact import load_artifact
    from neurodeploy.compiler import emulate_artifact
    from neurodeploy.ir.serialize import write_npz

    artifact = load_artifact(args.artifact)
    x, labels = _load_inputs(args.input)
    if args.labels:
        labels, _ = _load_inputs(args.labels)
    if args.limit is not None:
        if args.limit < 1:
            raise DataError(f"--limit must be at least 1, got {args.limit}")
        x = x[: args.limit]
        labels = None if labels is None else labels[: args.limit]
    if x.ndim > 0 and len(x) == 0:
        raise DataError(f"{args.input} holds no inputs (array of shape {x.shape}); give at least one sample")
    if args.steps is not None and args.steps < 1:
        raise DataError(f"--steps must be at least 1, got {args.steps}")
    result = emulate_artifact(artifact, x, steps=args.steps, mode=args.mode)
    summary = f"emulated {len(result.outputs)} sample(s) on {artifact.target} ({result.mode}"
    summary += f", {result.steps} steps)" if result.mode != "ann" else ")"
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
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
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        arrays = {"outputs": result.outputs, "predictions": result.predictions, "steps": np.asarray(result.steps)}
        arrays.update({f"spikes/{k}": v for k, v in result.spikes.items()})
        try:
            write_npz(tmp, arrays)
            tmp.replace(out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(f"cannot write {out}: {exc}") from exc
        summary += f" -> {out}"
    print(summary)
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    from neurodeploy.backends.registry import available_backends

    rows = [("target", "fidelity", "from", "description")]
    for name, entry in sorted(available_backends().items()):
        try:
            cls = entry.load()
            rows.append((name, cls.fidelity, entry.distribution, cls.spec.description))
        except NeurodeployError as exc:
            rows.append((name, "?", entry.distribution, f"failed to load: {exc}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
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
    p.add_argument("model", help="the .onnx file")
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
    p.add_argument("--dump-ir", action="store_true", help="print the IR after import and after every pass")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("emulate", parents=[common], help="run an artifact on inputs with its target's emulator")
    p.add_argument("artifact", help="artifact folder written by `neurodeploy compile`")
    p.add_argument("--input", "-i", required=True, help=".npy (batch first) or .npz with x (and y: labels)")
    p.add_argument("--steps", "-T", type=int, help="time steps (default: the target's)")
    p.add_argument("--mode", help="emulation mode, e.g. snn or ann for the reference target")
    p.add_argument("--output", "-o", help="write outputs (batch, classes) and predictions to this .npz")
    p.add_argument("--labels", help=".npy of labels; prints accuracy (an .npz input's y is used otherwise)")
    p.add_argument("--limit", type=int, help="use only the first N inputs")
    p.set_defaults(func=_cmd_emulate)

    p = sub.add_parser("targets", parents=[common], help="list installed targets")
    p.set_defaults(func=_cmd_targets)
    p = sub.add_parser("ops", parents=[common], help="list the ONNX ops the frontend imports")
    p.set_defaults(func=_cmd_ops)
    p = sub.add_parser("passes", parents=[common], help="list the passes pipelines can name")
    p.set_defaults(func=_cmd_passes)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.debug else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    logging.getLogger().handlers[0].setFormatter(_LowerLevelFormatter())
    try:
        return args.func(args)
    except NeurodeployError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
