"""``neurodeploy evaluate --report DIR``: a report folder that evaluations of one model on one data set add to.

Each evaluation writes ``evaluation-<target>-<mode>.json`` (its numbers, the summary of the artifact it compiled
and one sample's spike raster) and the folder's ``report.html`` and ``report.md`` are rendered again from every
evaluation file there (:mod:`neurodeploy.htmlreport`): accuracy against T with the ANN and one line per target,
then each evaluation. A second run of the same target and mode replaces its file. Every file is written whole
(:func:`neurodeploy.fileio.write_file_atomic`); the folder is checked before any work: it must be a folder (or
absent), and the evaluations already there must be of the same model and data.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from neurodeploy import htmlreport
from neurodeploy.errors import DataError
from neurodeploy.fileio import file_kind, output_mode, read_regular_file, write_file_atomic

FORMAT = 1
"""The version of the evaluation files' layout."""
PATTERN = "evaluation-*.json"


def check_report_folder(folder: Path, model: str, data: str) -> None:
    """Refuse, before any work, a ``--report`` folder that is something else than a folder, or that holds
    evaluations of another model or data set (their accuracy would share one chart)."""
    mode = output_mode(folder, str(folder))
    if mode is not None and not stat.S_ISDIR(mode):
        raise DataError(f"--report {folder} exists and is {file_kind(mode)}, not a folder; choose another folder")
    for entry in _evaluations(folder) if mode is not None else []:
        found = entry["evaluation"]
        if found.get("model") != model or found.get("data", {}).get("source") != data:
            raise DataError(
                f"--report {folder} holds an evaluation of {found.get('model')} on "
                f"{found.get('data', {}).get('source')}, not of {model} on {data}; choose another folder"
            )


def _evaluations(folder: Path) -> list[dict[str, Any]]:
    """The evaluation files in ``folder``, by name; one that is not ours (not JSON, another layout) is an error
    naming it."""
    found = []
    for path in sorted(folder.glob(PATTERN)):
        try:
            entry = json.loads(read_regular_file(path, what="an evaluation file"))
        except (ValueError, UnicodeDecodeError):
            raise DataError(
                f"{path} is not an evaluation file (not JSON); remove it or choose another folder"
            ) from None
        if (
            not isinstance(entry, dict)
            or entry.get("format") != FORMAT
            or not isinstance(entry.get("evaluation"), dict)
        ):
            raise DataError(
                f"{path} is not an evaluation file of this neurodeploy (format {FORMAT}); remove it or choose another "
                "folder"
            )
        found.append(entry)
    return found


def file_name(report: dict[str, Any]) -> str:
    """``evaluation-<target>-<mode>.json``, with anything but letters, digits, ``.``, ``_`` and ``-`` replaced."""
    name = f"{report['target']}-{report.get('mode') or 'default'}"
    return "evaluation-" + re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".json"


def write_report_folder(
    folder: Path, report: dict[str, Any], artifact: dict[str, Any] | None, raster: dict[str, Any] | None
) -> Path:
    """Add one evaluation (``report``, the summary of its ``artifact``, its ``raster``) to ``folder`` and render
    the folder's report again; returns the page's path."""
    check_report_folder(folder, report["model"], report["data"]["source"])
    os.makedirs(folder, exist_ok=True)
    entry = {"format": FORMAT, "evaluation": report, "artifact": artifact, "raster": raster}
    write_file_atomic(folder / file_name(report), (json.dumps(entry, indent=1, allow_nan=False) + "\n").encode())
    evaluations = _evaluations(folder)
    write_file_atomic(folder / "report.md", htmlreport.evaluation_markdown(evaluations).encode())
    return write_file_atomic(folder / "report.html", htmlreport.page(None, evaluations).encode())
