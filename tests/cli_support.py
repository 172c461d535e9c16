"""Helpers for the CLI, bad-input and artifact tests: the bundled MNIST model, tiny ONNX models built with
onnx.helper, and ways to run the command line (in-process and as the installed console script)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from neurodeploy.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist"
BUNDLED_MODEL = EXAMPLE / "mnist_cnn.onnx"
CALIBRATION = EXAMPLE / "calibration.npz"
TEST_IMAGES = EXAMPLE / "test_images.npz"
TINY_CLASSES = 3


def tiny_model(
    batch: int | str | None = "N",
    height: int | str | None = 28,
    width: int | str | None = 28,
    *,
    name: str = "input",
    classes: int = TINY_CLASSES,
    seed: int = 0,
    reshape: list[int] | None = None,
) -> onnx.ModelProto:
    """Conv(1->4, 3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(4->classes), opset 17.

    A dimension given as a string is dynamic (a ``dim_param``); ``None`` leaves it dynamic and unnamed. ``reshape``
    replaces the Flatten with a Reshape to that constant shape (as exporters write ``x.view(1, -1)``).
    """
    rng = np.random.default_rng(seed)
    weights = {
        "conv.w": rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32),
        "conv.b": rng.normal(0, 0.1, (4,)).astype(np.float32),
        "fc.w": rng.normal(0, 0.5, (classes, 4)).astype(np.float32),
        "fc.b": rng.normal(0, 0.1, (classes,)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", [name, "conv.w", "conv.b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1)
        if reshape is None
        else helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, 1, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()]
        + ([] if reshape is None else [numpy_helper.from_array(np.array(reshape, np.int64), "shape")]),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="neurodeploy-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def copy_bundled(folder: Path, name: str = "model.onnx") -> Path:
    """A copy of the bundled MNIST CNN in ``folder`` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    shutil.copyfile(BUNDLED_MODEL, path)
    return path


def save_tiny(folder: Path, name: str = "tiny.onnx", **kwargs) -> Path:
    """``tiny_model(**kwargs)`` saved in ``folder`` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    onnx.save(tiny_model(**kwargs), path)
    return path


def load_test_images() -> tuple[np.ndarray, np.ndarray]:
    with np.load(TEST_IMAGES) as data:
        return data["x"], data["y"]


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | os.PathLike) -> Result:
    """Run ``neurodeploy.cli.main`` in-process; usage errors (argparse's SystemExit) give their exit code.

    ``main`` logs to the captured stderr while it runs and puts the root logger back afterwards.
    """
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def console_script() -> str:
    """The installed ``neurodeploy`` script of the interpreter running the tests."""
    found = shutil.which("neurodeploy", path=str(Path(sys.executable).parent))
    assert found is not None, f"no neurodeploy script next to {sys.executable}"
    return found


def run_script(args: Sequence[str | os.PathLike], cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """The installed console script with ``args``; ``env`` replaces the environment (default: inherited)."""
    proc = subprocess.run(
        [console_script(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit code 1, no traceback, exactly one ``error: `` line (and nothing else but warnings); return it."""
    assert result.code == 1, result
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.err
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), result.err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def listing(folder: Path) -> list[str]:
    """Every entry of ``folder`` (hidden ones included), sorted."""
    return sorted(p.name for p in folder.iterdir())


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def minimal_manifest() -> dict:
    """The smallest manifest body ``write_artifact``'s ``fill`` may return that ``load_artifact`` accepts."""
    from neurodeploy.artifact import ARTIFACT_FORMAT

    return {
        "neurodeploy": {"version": "0", "artifact_format": ARTIFACT_FORMAT},
        "target": {"name": "reference", "modes": ["snn", "ann"]},
        "pipeline": "",
        "options": {"calibration": None},
        "inputs": [{"name": "input", "shape": [1], "dtype": "float32", "encoding": "direct"}],
        "outputs": [{"name": "output", "shape": [1]}],
        "warnings": [],
    }


def edit_manifest(folder: Path, change) -> dict:
    """Apply ``change(manifest)`` to ``folder``'s manifest.json (the manifest has no checksum of its own)."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return manifest


def relist(folder: Path, *names: str) -> None:
    """Record the current size and sha256 of ``names`` in ``folder``'s manifest, as compile would have: an edit
    that keeps the manifest in step, so the checksums cannot be what catches it."""

    def change(manifest: dict) -> None:
        for name in names:
            data = (folder / name).read_bytes()
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    edit_manifest(folder, change)


def dead_pid() -> int:
    """The id of a process that surely no longer runs: a child that was started, waited for and reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def load_script(name: str):
    """The module ``scripts/NAME.py`` (a generator of a documented table), loaded from its file."""
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location(name, root / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look themselves up there)
    spec.loader.exec_module(module)
    return module
