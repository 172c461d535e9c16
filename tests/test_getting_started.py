"""docs/getting-started.md works as written: its Python export runs and gives a model that compiles, and every
command of its shell blocks (past the environment set-up) runs from a scratch folder holding examples/ and hil/."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from neurodeploy.compiler import compile_model

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "getting-started.md"
SETUP = ("make", ".", "neurodeploy targets")
"""Lines of the page's first block, which builds the environment this test already runs in."""


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def commands() -> list[str]:
    lines = []
    for block in blocks("sh"):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command and not command.startswith(SETUP):
                lines.append(command)
    return lines


def test_the_page_has_the_steps_it_promises():
    names = [shlex.split(c)[1] for c in commands()]
    for step in ("compile", "inspect", "emulate", "evaluate", "report", "hil"):
        assert step in names


def test_the_pytorch_export_gives_a_model_that_compiles(tmp_path):
    pytest.importorskip("torch")
    (code,) = blocks("python")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, timeout=600)
    artifact = compile_model(tmp_path / "my_cnn.onnx", "reference", tmp_path / "out")
    assert artifact.manifest["inputs"][0]["shape"] == [1, 28, 28]


def test_every_command_runs_as_written(tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "hil").symlink_to(ROOT / "hil")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("NEURODEPLOY_BOARDS", None)
    outputs = {}
    for command in commands():
        done = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        outputs[command] = done.stdout
    emulated = next(out for command, out in outputs.items() if command.startswith("neurodeploy emulate"))
    assert "accuracy" in emulated
    assert (tmp_path / "speck-report.md").read_text().startswith("# mnist_cnn.onnx for speck")
    assert "pass:" in next(out for command, out in outputs.items() if command.startswith("neurodeploy hil run"))
