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
        artifact.manifest,
        report,
        where,
        has_ann=artifact.has_ann,
        files=files,
        quantization=_backend_rows(report, "quantization"),
        placement=_backend_rows(report, "placement") or [],
    )


def _backend_rows(report: dict[str, Any], kind: str) -> list[dict[str, Any]] | None:
    """The target backend's per-layer ``quantization`` rows (from ``report``'s target section) or per-core
    ``placement`` rows (from the whole report); None where that backend is not installed here or cannot read
    its section (the summary then says so)."""
    target = report.get("target")
    name = report.get("resources", {}).get("target") if isinstance(report.get("resources"), dict) else None
    if not isinstance(target, dict) or not isinstance(name, str):
        return []
    try:
        backend = get_backend(name)
        return backend.quantization_rows(target) if kind == "quantization" else backend.placement_rows(report)
    except NeurodeployError:
        return None
    except (AttributeError, KeyError, TypeError, ValueError):  # a section this backend version does not read
        return None


def calibration_ranges(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per converted activation whose threshold the calibration data set: its value range on those data (see
    :func:`neurodeploy.conversion.statistics.value_range`) and its threshold λ (the median over channels where
    each channel has its own); [] without calibration data."""
    conversion = report.get("conversion", {}).get("convert-to-snn", {}) if isinstance(report, dict) else {}
    ranges, lambdas = conversion.get("ranges", []), conversion.get("lambda", {})
    found = []
    for values in ranges if isinstance(ranges, list) else []:  # in the network's order
        name = values.get("layer") if isinstance(values, dict) else None
        lam = lambdas.get(name) if isinstance(lambdas, dict) else None
        per_channel = isinstance(lam, list)
        threshold = float(sorted(lam)[len(lam) // 2]) if per_channel and lam else lam
        if isinstance(values, dict) and isinstance(threshold, (int, float)):
            values = {k: v for k, v in values.items() if k != "layer"}
            found.append({"layer": name, "range": values, "threshold": float(threshold), "per_channel": per_channel})
    return found


def describe(
    manifest: dict[str, Any],
    report: dict[str, Any],
    where: str,
    *,
    has_ann: bool,
    files: dict[str, int] | None = None,
    quantization: list[dict[str, str]] | None = None,
    placement: list[dict[str, Any]] | None = None,
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
        "placement": placement or [],
        "graph": report.get("graph") if isinstance(report.get("graph"), dict) else {},
        "calibration_ranges": calibration_ranges(report),
        "warnings": [str(w) for w in manifest.get("warnings", [])],
        "files": files,
    }


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")" if isinstance(shape, list) else str(shape)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def facts(info: dict[str, Any]) -> list[tuple[str, str]]:
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
    for key, label in (("ann", "ANN graph"), ("snn", "SNN graph")):
        counts = info.get("graph", {}).get(key)
        if isinstance(counts, list) and counts and all(isinstance(c, list) and len(c) == 2 for c in counts):
            ops = ", ".join(f"{op} {n}" for op, n in counts)
            facts.append((label, f"{sum(int(n) for _, n in counts)} ops ({ops})"))
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
    head = facts(info)
    width = max(len(label) for label, _ in head)
    lines = [f"{label.ljust(width)}  {value}" for label, value in head]
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


def layer_table(info: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per layer joining its resources (with its output shape where the compile recorded it) and its
    quantization row (matched by name; a quantized layer the resources do not list gets a row of its own),
    header first; [] when there are no layers."""
    quantized = {row.get("layer"): row for row in info.get("quantization") or []}
    extra = [c for c in dict.fromkeys(c for row in quantized.values() for c in row) if c != "layer"]
    shapes = {layer.get("name"): layer.get("shape") for layer in info["resources"]["layers"]}
    header = (*COLUMNS[:2], "shape", *COLUMNS[2:], *extra)
    rows = []
    for row in _rows(info):
        found = quantized.pop(row[0], {})
        shape = shapes.get(row[0])
        rows.append((*row[:2], "-" if shape is None else _shape(shape), *row[2:], *(found.get(c, "-") for c in extra)))
    for name, found in quantized.items():
        rows.append((str(name), *("-" for _ in COLUMNS[1:]), "-", *(found.get(c, "-") for c in extra)))
    return [header, *rows] if rows else []


def print_rich(info: dict[str, Any], console: Any) -> None:
    """The summary on a ``rich`` console (a terminal that shows colour and box drawing): the facts, one table
    joining each layer's resources and quantization, the placement per chip, notes and warnings."""
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    for label, value in facts(info):
        head.add_row(f"[bold]{label}[/bold]", value)
    console.print(head)
    joined = layer_table(info)
    width = len(COLUMNS) + 1  # the resources' columns and the shape; the quantization's in a table of its own
    for title, rows in (
        ("layers", [row[:width] for row in joined]),
        ("quantization", [row[:1] + row[width:] for row in joined] if joined and len(joined[0]) > width else []),
    ):
        if rows:
            table = Table(title=title, title_justify="left")
            for k, column in enumerate(rows[0]):
                table.add_column(column, justify="left" if k < 3 or title == "quantization" else "right")
            for row in rows[1:]:
                table.add_row(*row)
            console.print(table)
    if info.get("quantization") is None:
        console.print("quantization: the target's backend is not installed here (its rows are in report.json)")
    chips: dict[Any, list[dict[str, Any]]] = {}
    for row in info.get("placement") or []:
        chips.setdefault(row.get("chip"), []).append(row)
    for chip, cores in chips.items():
        where = "chip not assigned by the compiler" if chip is None else f"chip {chip}"
        used = f"{len(cores)} cores, {sum(c['neurons'] for c in cores):,} neurons"
        console.print(f"placement ({where}): {used}", highlight=False)
    for title, items, style in (("notes", info["resources"]["notes"], ""), ("warnings", info["warnings"], "yellow")):
        if items:
            console.print(f"\n[bold]{title} ({len(items)}):[/bold]")
            for item in items:
                console.print(f"  - {item}", style=style or None, markup=False, highlight=False)


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
    lines += [f"- **{label}**: {value}" for label, value in facts(info)]
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
