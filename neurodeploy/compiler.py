"""The compile driver: a model file in, artifact folder out.

load_model -> canonicalize -> (snapshot the ANN) -> convert (the target's passes) -> backend.plan -> resources ->
(converted graphs written by the core) + backend.emit -> report.json, manifest.json
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from neurodeploy import htmlreport, limits, readout_calibration
from neurodeploy._version import __version__
from neurodeploy.artifact import (
    ARTIFACT_FORMAT,
    Artifact,
    check_destination,
    load_artifact,
    sha256_file,
    write_artifact,
)
from neurodeploy.backends.base import CompiledModel, Emitted
from neurodeploy.backends.registry import get_backend
from neurodeploy.data.calibration import Calibration
from neurodeploy.data.policy import check_values, input_range, recorded_range
from neurodeploy.emulation import check_engine
from neurodeploy.encoding import Encoding
from neurodeploy.errors import ConversionError, DataError, PipelineError
from neurodeploy.frontend import load_model, model_format
from neurodeploy.inspect import describe, markdown
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import dumps_json, save_graph
from neurodeploy.passes import (
    CANONICALIZE,
    Pass,
    PassContext,
    PassManager,
    build_pipeline,
    conversion_pass,
    format_pipeline,
)
from neurodeploy.simulate import readout_delay

REPORT_MD = "report.md"
"""The artifact's summary for a person (:mod:`neurodeploy.inspect`), written by every compile."""
REPORT_HTML = "report.html"
"""The same summary as a self-contained page with charts (:mod:`neurodeploy.htmlreport`)."""

log = logging.getLogger(__name__)


SPIKING_PIPELINE = "fold-scale-forward,canonicalize-pooling,canonicalize-flatten"
"""What a model that arrives already spiking (a NIR file) is compiled with: shape clean-up, no conversion."""


def default_output_dir(model: Path, target: str) -> Path:
    return Path(f"{model.stem}-{target}")


def _io_description(
    graph: Graph, encoding: Encoding, delayed: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    types = graph.types()
    inputs = [
        {"name": k, "shape": list(t.shape), "dtype": t.dtype, "encoding": encoding.manifest_value()}
        for k, t in graph.inputs.items()
    ]
    delay = readout_delay(graph)
    text = "mean over time steps"
    if delay:
        text += f" after a fill of {delay} steps (windowed neurons, one window per layer)"
    if delayed is not None and delayed["steps"]:
        text += (
            f" after the first min({delayed['steps']}, T // 2) of the T steps run (the readout delay; in mode "
            f"{', '.join(delayed['modes'])})"
        )
    extra: dict[str, Any] = {} if delayed is None else {"readout_delay": delayed}
    outputs = [
        {"name": v, "shape": list(types[v].shape), "readout": text, "decision": "argmax", **extra}
        for v in graph.outputs
    ]
    return inputs, outputs


def run_pipeline(
    graph: Graph, passes: list[Pass], ctx: PassContext, after_pass: Callable[[Pass | None, Graph], None] | None = None
) -> tuple[Graph, Graph]:
    """Run ``passes`` on ``graph``; return (the ANN after the leading semantics-preserving passes, the result)."""
    split = next((i for i, p in enumerate(passes) if not p.preserves_semantics), len(passes))
    manager = PassManager(passes[:split], after_pass=after_pass)
    manager.run(graph, ctx)
    ann = graph.copy()
    PassManager(passes[split:], after_pass=after_pass).run(graph, ctx)
    return ann, graph


def compile_model(
    model: str | Path,
    target: str,
    out_dir: str | Path | None = None,
    *,
    calibration: Calibration | None = None,
    input_shapes=None,
    pipeline: str | None = None,
    after_pass: Callable[[Pass | None, Graph], None] | None = None,
    encoding: Encoding | None = None,
    conversion: str | None = None,
    target_options: dict[str, str] | None = None,
    import_options: dict[str, str] | None = None,
) -> Artifact:
    """Compile a model file (ONNX, or another format :mod:`neurodeploy.frontend` reads) for ``target`` into an
    artifact folder and return it. A model that arrives already spiking has no ANN: the artifact holds none.

    ``pipeline`` replaces the whole default pipeline (canonicalization plus the target's passes).
    ``conversion`` sets convert-to-snn options in the target's own pipeline, e.g. ``"norm=max,granularity=channel"``.
    ``target_options`` are the target's own settings (``--target-option KEY=VALUE``; see the backend's
    ``target_options``), checked before any work.
    ``encoding`` (default direct) is recorded in the manifest as the inputs' encoding, which emulation uses
    unless told otherwise.
    """
    encoding = encoding if encoding is not None else Encoding()
    model = Path(model)
    backend = get_backend(target)
    if encoding.kind not in backend.encodings:
        raise DataError(
            f"the {backend.target} target runs {' or '.join(backend.encodings)} input, not the {encoding.kind!r} "
            "encoding; compile without --encoding or with one of those (for event data, a target that takes events: "
            "reference, loihi, speck)"
        )
    parsed_target_options = backend.parse_target_options(dict(target_options or {}))
    out_dir = Path(out_dir) if out_dir is not None else default_output_dir(model, target)
    check_destination(out_dir)
    graph = load_model(model, input_shapes=input_shapes, options=import_options)
    spiking = any(op.is_stateful for op in graph.ops)  # arrived already spiking: there is no ANN to keep
    if after_pass is not None:
        after_pass(None, graph)
    if pipeline is not None and conversion is not None:
        raise PipelineError("give either a whole pipeline or conversion options, not both")
    options: dict[str, Any] = {
        "calibration": calibration.describe() if calibration is not None else None,
        "input_shapes": _shapes_option(input_shapes),
        "conversion": conversion_pass(conversion).partition("{")[2].rstrip("}") or None,
    }
    if parsed_target_options:
        options["target_options"] = parsed_target_options
    # the backend also sees the conversion options as the user wrote them (the manifest keeps the canonical form,
    # which leaves out defaults a target profile may need to tell apart from an explicit choice)
    if spiking and pipeline is None:  # nothing to convert: the neurons and their thresholds are the model's own
        if conversion is not None:
            raise PipelineError(
                f"{model.name} arrives already spiking: there is nothing to convert, so conversion options do not apply"
            )
        pipeline = SPIKING_PIPELINE
    target_pipeline = backend.pipeline({**options, "conversion_as_given": conversion})
    passes = build_pipeline(pipeline if pipeline is not None else f"{CANONICALIZE},{target_pipeline}")
    ctx = PassContext()
    if calibration is not None:
        check_values(calibration.x, where=f"calibration data ({calibration.source})", role="calibration")
        try:
            ctx.calibration = interpret.check_inputs(graph, calibration.x)[next(iter(graph.inputs))]
        except DataError as exc:
            raise DataError(f"calibration data ({calibration.source}) does not fit the model: {exc}") from None
        if len(ctx.calibration) == 0:
            raise DataError(f"calibration data ({calibration.source}) holds no samples")
    ann, snn = run_pipeline(graph, passes, ctx, after_pass)
    compiled = CompiledModel(
        snn=snn,
        ann=None if spiking else ann,
        pipeline=format_pipeline(passes),
        options=options,
        warnings=list(ctx.warnings),
        calibration=ctx.calibration,
        arrived_spiking=spiking,
        encoding=encoding,
    )
    plan = backend.plan(compiled)  # lowering, quantization and placement, once
    report = backend.resources(plan)
    delayed = None
    if backend.delayed_modes:  # the readout delay (neurodeploy.readout), resolved once and recorded
        option = parsed_target_options.get("readout_delay", "auto")
        delayed = readout_calibration.choose(option, snn, compiled.ann, ctx.calibration, encoding)
    entry = None if delayed is None else {**delayed.manifest(), "modes": list(backend.delayed_modes)}
    inputs, outputs = _io_description(snn, encoding, entry)
    if ctx.calibration is not None:  # what emulate checks inputs against (the input policy)
        inputs[0]["range"] = input_range(ctx.calibration)

    def fill(folder: Path) -> dict[str, Any]:
        # evaluate reads the converted graph and the ANN (layer names, scales, ANN activations); emulate need not
        graphs = [p.name for p in save_graph(snn, folder, "snn")]
        if compiled.ann is not None:
            graphs += [p.name for p in save_graph(compiled.ann, folder, "ann")]
        emitted = backend.emit(plan, folder)
        check_emitted(emitted, folder, graphs, backend.target)
        for warning in emitted.warnings:
            log.warning("%s", warning)
        warnings = [*compiled.warnings, *emitted.warnings]
        sections = {"resources": _with_shapes(report.to_dict(), snn), "conversion": ctx.records, "warnings": warnings}
        sections["graph"] = {"ann": op_counts(compiled.ann), "snn": op_counts(snn)}
        if delayed is not None:
            sections["readout_delay"] = delayed.report()
        if emitted.report is not None:
            sections["target"] = emitted.report
        (folder / "report.json").write_bytes(dumps_json(require_finite(sections, "report.json")))
        manifest: dict[str, Any] = {
            "neurodeploy": {"version": __version__, "artifact_format": ARTIFACT_FORMAT},
            "target": {
                "name": backend.target,
                "backend": f"{type(backend).__module__}.{type(backend).__name__}",
                "backend_version": backend.version,
                "fidelity": backend.fidelity,
                "modes": list(backend.modes),
                "default_steps": backend.default_steps,
                **emitted.manifest,
            },
            "source": {
                "file": model.name,
                "sha256": sha256_file(model),
                "format": model_format(model).name,
                "opset": graph.meta.get("source", {}).get("opset"),
                **(
                    {"import_options": graph.meta["source"]["import_options"]}
                    if "import_options" in graph.meta.get("source", {})
                    else {}
                ),
            },
            "pipeline": compiled.pipeline,
            "options": options,
            "inputs": inputs,
            "outputs": outputs,
            "versions": {"python": platform.python_version(), "numpy": np.__version__, "onnx": onnx.__version__},
            "warnings": warnings,
        }
        require_finite(manifest, "manifest.json")
        # the summary for a person (what `neurodeploy report` renders, less the path and the file list)
        rows = backend.quantization_rows(emitted.report) if emitted.report is not None else []
        placement = backend.placement_rows(sections)
        summary = describe(
            manifest, sections, "", has_ann=compiled.ann is not None, quantization=rows, placement=placement
        )
        (folder / REPORT_MD).write_text(markdown(summary))
        (folder / REPORT_HTML).write_text(htmlreport.page(summary))
        return manifest

    write_artifact(out_dir, fill)
    log.info("wrote %s", out_dir)
    return load_artifact(out_dir)


def op_counts(graph: Graph | None) -> list[list[Any]] | None:
    """How many ops of each type ``graph`` has, as [type, count] pairs in the order the types first appear (a
    list: report.json's objects are written with sorted keys); None without a graph."""
    if graph is None:
        return None
    counts: dict[str, int] = {}
    for op in graph.ops:
        counts[op.op_type] = counts.get(op.op_type, 0) + 1
    return [[op_type, n] for op_type, n in counts.items()]


def _with_shapes(resources: dict[str, Any], snn: Graph) -> dict[str, Any]:
    """``resources`` with each layer's output shape (batch left out) where the layer is named after an op or a
    value of the converted graph."""
    types = snn.types()
    shapes = {op.name: list(types[op.output].shape) for op in snn.ops}
    shapes.update({value: list(t.shape) for value, t in types.items()})
    for layer in resources["layers"]:
        if layer["name"] in shapes:
            layer["shape"] = shapes[layer["name"]]
    return resources


def check_emitted(emitted: Emitted, folder: Path, graphs: list[str], target: str) -> None:
    """A backend's :class:`Emitted` must name exactly the files it wrote: each one present, none other new."""
    written = {p.name for p in folder.iterdir()} - set(graphs)
    claimed = set(emitted.files)
    missing, unclaimed = sorted(claimed - written), sorted(written - claimed)
    if missing or unclaimed or len(claimed) != len(emitted.files):
        raise ConversionError(
            f"the {target} backend's emit is inconsistent: it reported {sorted(emitted.files)} but wrote "
            f"{sorted(written)} (missing {missing}, unreported {unclaimed}); this is a bug in the backend"
        )


def require_finite(doc: Any, name: str, path: str = "") -> Any:
    """``doc`` unchanged if every number in it is finite; otherwise a ConversionError naming the key, since JSON
    cannot hold NaN or Inf and such a number in what compile writes means a step before went wrong."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            require_finite(value, name, f"{path}.{key}" if path else str(key))
    elif isinstance(doc, (list, tuple)):
        for i, value in enumerate(doc):
            require_finite(value, name, f"{path}[{i}]")
    elif isinstance(doc, (float, np.floating)) and not np.isfinite(doc):
        raise ConversionError(
            f"{name}: {path or 'the document'} is {float(doc)}, which JSON cannot hold; a step before produced a "
            "non-finite number (check the model's weights and the calibration data)"
        )
    return doc


def _shapes_option(input_shapes) -> Any:
    if input_shapes is None:
        return None
    if isinstance(input_shapes, dict):
        return {k: list(v) for k, v in sorted(input_shapes.items())}
    return list(input_shapes)


def emulate_artifact(
    artifact: Artifact | str | Path,
    inputs: np.ndarray,
    *,
    steps: int | None = None,
    mode: str | None = None,
    checkpoints: tuple[int, ...] = (),
    encoding: Encoding | None = None,
    neuron_counts: bool = False,
    engine: str = "numpy",
    device: str | None = None,
):
    """Run an artifact with the emulator of the target it was compiled for, with ``encoding`` or else the
    encoding its manifest records, on the emulator ``engine`` (numpy, or torch where the target has it) and its
    torch ``device`` (None: cuda when there is one, else cpu).

    The inputs pass the input policy first (:mod:`neurodeploy.data.policy`): checked against the input range
    the manifest records (integer 8-bit images are divided by 255, with a warning, for a model calibrated on
    [0, 1]); ``steps`` is checked against ``NEURODEPLOY_MAX_STEPS`` before anything is allocated."""
    if steps is not None:
        check_step_count(steps, "the emulation")
    if not isinstance(artifact, Artifact):
        artifact = load_artifact(artifact)
    backend = get_backend(artifact.target)
    check_engine(backend.target, backend.engines, engine, device)  # before the inputs are checked
    if steps is None:
        steps = check_step_count(
            artifact.manifest["target"].get("default_steps", backend.default_steps), "the artifact's default_steps"
        )
    encoding = encoding if encoding is not None else artifact_encoding(artifact)
    inputs = checked_inputs(artifact, inputs, encoding)
    result = backend.emulate(
        artifact,
        inputs,
        steps=steps,
        mode=mode,
        checkpoints=checkpoints,
        encoding=encoding,
        neuron_counts=neuron_counts,
        engine=engine,
        device=device,
    )
    require_finite_outputs(result, artifact.target)
    return result


def require_finite_outputs(result: Any, target: str) -> None:
    """Refuse an emulation whose readout holds NaN or Inf (a float overflow inside the network, e.g. from huge
    weights): its predictions would be meaningless."""
    readouts = [("outputs", result.outputs)] + [(f"outputs after {t} steps", a) for t, a in result.checkpoints.items()]
    for what, array in readouts:
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise ConversionError(
                f"the emulation on {target} produced {bad:,} NaN or Inf value(s) among its {np.size(array):,} "
                f"{what}: the network overflows float32 on these inputs (check the model for very large weights)"
            )


def check_step_count(steps: Any, what: str) -> int:
    """``steps`` as an int: a whole number >= 1 within ``NEURODEPLOY_MAX_STEPS`` (see :mod:`neurodeploy.limits`)."""
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)):
        raise DataError(f"{what}: time steps must be a whole number, got {steps!r}")
    if steps < 1:
        raise DataError(f"{what}: time steps must be at least 1, got {steps}")
    limits.check_steps(int(steps), what)
    return int(steps)


def checked_inputs(artifact: Artifact, inputs: Any, encoding: Encoding, where: str | None = None) -> Any:
    """``inputs`` after the input policy (:func:`neurodeploy.data.policy.check_values`), against the range the
    artifact's manifest records for its first input; a dict of arrays is checked array by array."""
    recorded = recorded_range(artifact.manifest)
    if isinstance(inputs, dict):
        first = (artifact.manifest.get("inputs") or [{}])[0].get("name")
        return {
            name: check_values(
                x,
                where=f"{where or 'input'} {name!r}",
                kind=encoding.kind,
                recorded=recorded if name == first else None,
            )
            for name, x in inputs.items()
        }
    return check_values(inputs, where=where or "the input", kind=encoding.kind, recorded=recorded)


def artifact_classes(artifact: Artifact) -> int | None:
    """The number of classes: the size of the first output per sample (None if the manifest does not say)."""
    outputs = artifact.manifest.get("outputs") or [{}]
    shape = outputs[0].get("shape") if isinstance(outputs[0], dict) else None
    if not isinstance(shape, list) or not all(isinstance(d, int) and d > 0 for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64))


def artifact_encoding(artifact: Artifact) -> Encoding:
    """The input encoding an artifact was compiled with (its first input's; direct when none is recorded)."""
    inputs = artifact.manifest.get("inputs") or [{}]
    return Encoding.from_manifest(inputs[0].get("encoding"))
