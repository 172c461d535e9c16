"""``neurodeploy inspect``, ``neurodeploy report`` and every artifact's ``report.md``: what an artifact holds, read
from its manifest and ``report.json``, for a person: the model it came from, what it takes and gives, how it was
converted, what it uses of the chip layer by layer, and its warnings.

Nothing is recomputed: :func:`summary` gathers what the compile recorded (the artifact's files are checked as
every reader checks them), :func:`text` lays it out for a terminal and :func:`markdown` for a notebook or a pull
request. A folder that is not an artifact, or one of another format, is the artifact reader's one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from neurodeploy.artifact import Artifact, load_artifact
from neurodeploy.backends.registry import get_backend
from neurodeploy.errors import ArtifactError, NeurodeployError

COLUMNS = ("layer", "op", "neurons", "synapses", "fan-in", "fan-out", "core")


def summary(folder: str | os.PathLike | Artifact, *, embedded: bool = False) -> dict[str, Any]:
    """What the artifact in ``folder`` holds, as a JSON-ready dict (see the module). ``embedded``: as the compile
    writes it into the artifact's ``report.md`` (no path and no file list: the same wherever it is compiled)."""
    artifact = folder if isinstance(folder, Artifact) else load_artifact(Path(folder))
    report = artifact.read_json("report.json") if "report.json" in artifact.files else {}
    if not isinstance(report, dict):
        raise ArtifactError(f"{artifact.where('report.json')} is not a JSON object; compile again")
    files = None if embedded else {name: entry["bytes"] for name, entry in sorted(artifact.files.items())}
    where = "" if embedded else str(artifact.root)
    return describe(
        artifact.manifest, report, where, has_ann=artifact.has_ann, files=files, quantization=_quantization(report)
    )


def _quantization(report: dict[str, Any]) -> list[dict[str, str]] | None:
    """The target backend's per-layer quantization rows of ``report`` (None where that backend is not installed
    here or cannot read its section: the summary then says so)."""
    target = report.get("target")
    name = report.get("resources", {}).get("target") if isinstance(report.get("resources"), dict) else None
    if not isinstance(target, dict) or not isinstance(name, str):
        return []
    try:
        return get_backend(name).quantization_rows(target)
    except NeurodeployError:
        return None
    except (AttributeError, KeyError, TypeError, ValueError):  # a section this backend version does not read
        return None


def describe(
    manifest: dict[str, Any],
    report: dict[str, Any],
    where: str,
    *,
    has_ann: bool,
    files: dict[str, int] | None = None,
    quantization: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The summary of an artifact from its manifest and ``report.json`` sections (the compile calls this before
    the manifest lists the files: ``files`` None leaves the list out)."""
    target = manifest["target"]
    found = report.get("resources")
    resources: dict[str, Any] = found if isinstance(found, dict) else {}
    layers = [layer for layer in resources.get("layers", []) if isinstance(layer, dict)]
    board = None
    if "board_ready" in target:
        board = {"ready": bool(target["board_ready"]), "reason": str(target.get("board_reason", ""))}
    options = manifest.get("options", {})
    return {
        "artifact": where,
        "neurodeploy": manifest["neurodeploy"],
        "target": {
            key: target.get(key)
            for key in ("name", "fidelity", "default_steps", "pipeline_delay", "modes", "runs_on")
            if key in target
        },
        "source": manifest.get("source", {}),
        "inputs": manifest.get("inputs", []),
        "outputs": manifest.get("outputs", []),
        "pipeline": manifest.get("pipeline", ""),
        "calibration": options.get("calibration"),
        "target_options": options.get("target_options", {}),
        "has_ann": has_ann,
        "board": board,
        "resources": {
            "neurons": resources.get("neurons"),
            "synapses": resources.get("synapses"),
            "cores_used": resources.get("cores_used"),
            "layers": layers,
            "notes": [str(n) for n in resources.get("notes", [])],
        },
        "quantization": quantization,
        "warnings": [str(w) for w in manifest.get("warnings", [])],
        "files": files,
    }


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")" if isinstance(shape, list) else str(shape)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def _facts(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines of the summary's head."""
    target, source = info["target"], info["source"]
    version = f"neurodeploy {info['neurodeploy'].get('version', '?')}"
    facts = [("artifact", f"{info['artifact']} ({version})") if info["artifact"] else ("written by", version)]
    details = [str(target.get("fidelity", "")), f"default T {target.get('default_steps', '?')}"]
    if target.get("pipeline_delay"):
        details.append(f"pipeline delay {target['pipeline_delay']} step(s)")
    facts.append(("target", f"{target.get('name')} ({', '.join(d for d in details if d)})"))
    if info["target_options"]:
        facts.append(("options", ", ".join(f"{k}={v}" for k, v in sorted(info["target_options"].items()))))
    origin = [str(source.get("format", "?"))]
    if source.get("opset") is not None:
        origin.append(f"opset {source['opset']}")
    if source.get("sha256"):
        origin.append(f"sha256 {str(source['sha256'])[:12]}")
    facts.append(("model", f"{source.get('file', '?')} ({', '.join(origin)})"))
    for entry in info["inputs"]:
        rng = entry.get("range")
        extra = f", range [{rng[0]:g}, {rng[1]:g}]" if isinstance(rng, list) and len(rng) == 2 else ""
        facts.append(
            (
                "input",
                f"{entry.get('name')}: {entry.get('dtype', '')} {_shape(entry.get('shape'))}, "
                f"encoding {entry.get('encoding', '?')}{extra}",
            )
        )
    for entry in info["outputs"]:
        how = ", ".join(str(entry[k]) for k in ("readout", "decision") if entry.get(k))
        facts.append(("output", f"{entry.get('name')}: {_shape(entry.get('shape'))}" + (f", {how}" if how else "")))
    facts.append(("pipeline", info["pipeline"] or "(none)"))
    calibration = info["calibration"]
    if isinstance(calibration, dict):
        facts.append(("calibration", f"{calibration.get('source', '?')} ({calibration.get('samples', '?')} samples)"))
    elif info["has_ann"]:
        facts.append(("calibration", "none (thresholds from weight bounds)"))
    else:
        facts.append(("calibration", "none (the thresholds are the spiking model's own)"))
    facts.append(
        ("ANN", "kept (emulate --mode ann compares)" if info["has_ann"] else "none: the model arrived spiking")
    )
    if info["board"] is not None:
        state = "board-ready" if info["board"]["ready"] else "not board-ready"
        facts.append(("board", f"{state}: {info['board']['reason']}"))
    runs_on = target.get("runs_on")
    if isinstance(runs_on, dict):  # where each part runs (e.g. chip, host)
        facts += [(f"runs on ({where})", str(what)) for where, what in runs_on.items()]
    elif runs_on:
        facts.append(("runs on", str(runs_on)))
    resources = info["resources"]
    facts.append(
        (
            "resources",
            f"{_count(resources['neurons'])} neurons, {_count(resources['synapses'])} synapses, "
            f"{_count(resources['cores_used'])} cores",
        )
    )
    return facts


def _rows(info: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for layer in info["resources"]["layers"]:
        core = layer.get("core")
        rows.append(
            (
                str(layer.get("name", "?")),
                str(layer.get("op_type", "?")),
                _count(layer.get("neurons")),
                _count(layer.get("synapses")),
                _count(layer.get("fan_in")),
                _count(layer.get("fan_out")),
                "-" if core is None else str(core),
            )
        )
    return rows


def text(info: dict[str, Any]) -> str:
    """The summary for a terminal: the facts, the per-layer table, notes and warnings."""
    facts = _facts(info)
    width = max(len(label) for label, _ in facts)
    lines = [f"{label.ljust(width)}  {value}" for label, value in facts]
    rows = [COLUMNS, *_rows(info)]
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
        lines.append("")
        for k, row in enumerate(rows):
            cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
    table = _quantization_table(info)
    if table:
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        lines += ["", "quantization:"]
        for k, row in enumerate(table):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
    elif info.get("quantization") is None:
        lines += ["", "quantization: the target's backend is not installed here (its rows are in report.json)"]
    for title, items in (("notes", info["resources"]["notes"]), ("warnings", info["warnings"])):
        if items:
            lines += ["", f"{title} ({len(items)}):", *(f"  - {item}" for item in items)]
    return "\n".join(lines) + "\n"


def _quantization_table(info: dict[str, Any]) -> list[tuple[str, ...]]:
    """The quantization rows as a table (header first; the union of their columns, in order); [] when none."""
    rows = info.get("quantization") or []
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    if not rows:
        return []
    return [tuple(columns), *(tuple(str(row.get(c, "-")) for c in columns) for row in rows)]


def markdown(info: dict[str, Any]) -> str:
    """The summary as Markdown."""
    target = info["target"]
    lines = [f"# {info['source'].get('file', 'model')} for {target.get('name')}", ""]
    lines += [f"- **{label}**: {value}" for label, value in _facts(info)]
    rows = _rows(info)
    if rows:
        lines += [
            "",
            "## Layers",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "| " + " | ".join("---" for _ in COLUMNS) + " |",
        ]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    table = _quantization_table(info)
    if table:
        lines += ["", "## Quantization", "", "| " + " | ".join(table[0]) + " |", "|" + " --- |" * len(table[0])]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table[1:]]
    for title, items in (("Notes", info["resources"]["notes"]), ("Warnings", info["warnings"])):
        if items:
            lines += ["", f"## {title}", "", *(f"- {item}" for item in items)]
    if info["files"] is not None:
        lines += ["", "## Files", "", *(f"- `{name}`: {size:,} bytes" for name, size in info["files"].items())]
    return "\n".join(lines) + "\n"
