"""Compile the demo's and the examples' artifacts at two commits and compare every file's sha256.

A refactoring that changes no behaviour must leave every artifact byte-identical, and every emulation's
outputs value-identical. This script checks that:

    .venv/bin/python scripts/compare_artifacts.py OLD_REF            # OLD_REF against the working tree
    .venv/bin/python scripts/compare_artifacts.py OLD_REF NEW_REF

Each side is checked out into a temporary git worktree (the working tree itself for the new side when no
NEW_REF is given) and run with this environment's Python, its sources first on PYTHONPATH. For each case the
artifact folder's files are hashed (sha256), and the emulation outputs of the first test images are hashed
array by array (an .npz file's bytes hold zip timestamps). Prints one line per case and exits 1 on any
difference. ``digest OUT`` runs one side only (used internally).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MNIST = "examples/mnist"

# name: (compile arguments, emulate runs: (mode or None, steps))
CASES: dict[str, tuple[list[str], list[tuple[str | None, int]]]] = {
    "demo-reference": (
        [f"{MNIST}/mnist_cnn.onnx", "-t", "reference", "--calibration", f"{MNIST}/calibration.npz"],
        [("ann", 64), ("snn", 64)],
    ),
    "demo-loihi": (
        [f"{MNIST}/mnist_cnn.onnx", "-t", "loihi", "--calibration", f"{MNIST}/calibration.npz"],
        [("binary", 32), ("graded", 1)],
    ),
    "demo-speck": (
        [f"{MNIST}/mnist_cnn.onnx", "-t", "speck", "--calibration", f"{MNIST}/calibration.npz"],
        [("binned", 32), ("event", 16)],
    ),
    "loihi-netx": (
        [
            f"{MNIST}/mnist_cnn.onnx",
            "-t",
            "loihi2",
            "--calibration",
            f"{MNIST}/calibration.npz",
            "--conversion",
            "reset=zero,initial=0",
        ],
        [("binary", 16)],
    ),
    "dynapcnn-spikes-per-event": (
        [
            f"{MNIST}/mnist_cnn.onnx",
            "-t",
            "dynapcnn",
            "--calibration",
            f"{MNIST}/calibration.npz",
            "-X",
            "spikes_per_event=8",
        ],
        [("binned", 16)],
    ),
    "qcfs-reference": (["examples/mnist_qcfs/mnist_qcfs.onnx", "-t", "reference"], [("snn", 16)]),
    "qcfs-loihi": (["examples/mnist_qcfs/mnist_qcfs.onnx", "-t", "loihi"], [("binary", 16)]),
    "nmnist-reference": (
        ["examples/nmnist/nmnist_cnn.onnx", "-t", "reference", "--calibration", "nmnist", "--encoding", "events"],
        [],
    ),
    "nmnist-speck": (
        [
            "examples/nmnist_speck/nmnist_cnn.onnx",
            "-t",
            "speck",
            "--calibration",
            "nmnist",
            "--encoding",
            "events",
            "-X",
            "spikes_per_event=8",
        ],
        [],
    ),
}
EMULATE_SAMPLES = 16

# name: evaluate arguments (the JSON document is reproducible: no timings in it)
_DATA = ["--data", f"{MNIST}/test_images.npz", "--limit", "64", "--calibration", f"{MNIST}/calibration.npz"]
EVALUATIONS: dict[str, list[str]] = {
    "evaluate-reference": [f"{MNIST}/mnist_cnn.onnx", *_DATA, "--steps", "4,16", "--workers", "1"],
    "evaluate-loihi-graded": [f"{MNIST}/mnist_cnn.onnx", "-t", "loihi", "--mode", "graded", *_DATA, "--steps", "1,2"],
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digest(out: Path, tree: Path) -> dict[str, dict[str, str]]:
    """Compile and emulate every case with the sources in ``tree``; {case: {file or run: sha256}}."""
    env = dict(os.environ)
    paths = [tree, tree / "backends/loihi/src", tree / "backends/speck/src"]
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    if (ROOT.parent / "shared" / "data").is_dir():  # a worktree outside the checkout finds no ../shared/data
        env.setdefault("NEURODEPLOY_DATA", str(ROOT.parent / "shared" / "data"))
    cli = [sys.executable, "-c", "import sys; from neurodeploy.cli import main; sys.exit(main(sys.argv[1:]))"]
    result: dict[str, dict[str, str]] = {}
    for name, (args, runs) in CASES.items():
        folder = out / name
        compiled = subprocess.run(
            [*cli, "compile", "-q", *args, "-o", str(folder)], cwd=tree, env=env, capture_output=True, text=True
        )
        if compiled.returncode != 0:
            result[name] = {"compile failed": compiled.stderr.strip()[-400:]}
            continue
        files = {p.name: _sha256(p) for p in sorted(folder.iterdir())}
        for mode, steps in runs:
            npz = out / f"{name}-{mode}.npz"
            ran = subprocess.run(
                [
                    *cli,
                    "emulate",
                    "-q",
                    str(folder),
                    "-i",
                    f"{MNIST}/test_images.npz",
                    "--limit",
                    str(EMULATE_SAMPLES),
                    "--steps",
                    str(steps),
                    "--mode",
                    str(mode),
                    "-o",
                    str(npz),
                ],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
            )
            if ran.returncode != 0:
                files[f"emulate {mode}"] = "failed: " + ran.stderr.strip()[-400:]
                continue
            import numpy as np

            with np.load(npz) as arrays:
                h = hashlib.sha256()
                for key in sorted(arrays.files):
                    a = arrays[key]
                    h.update(f"{key}{a.dtype}{a.shape}".encode())
                    h.update(np.ascontiguousarray(a).tobytes())
            files[f"emulate {mode} T={steps}"] = h.hexdigest()
        result[name] = files
    for name, args in EVALUATIONS.items():
        report = out / f"{name}.json"
        ran = subprocess.run(
            [*cli, "evaluate", "-q", *args, "--json", str(report)], cwd=tree, env=env, capture_output=True, text=True
        )
        if ran.returncode != 0:
            result[name] = {"evaluate failed": ran.stderr.strip()[-400:]}
        else:
            result[name] = {report.name: _sha256(report)}
    return result


def _worktree(ref: str, where: Path) -> Path:
    subprocess.run(["git", "worktree", "add", "--detach", str(where), ref], cwd=ROOT, check=True, capture_output=True)
    return where


def _side(tree: Path, tmp: Path, label: str) -> dict[str, dict[str, str]]:
    out = tmp / f"out-{label}"
    out.mkdir()
    report = tmp / f"{label}.json"
    subprocess.run(
        [sys.executable, __file__, "digest", str(out), "--tree", str(tree), "--json", str(report)], check=True
    )
    return json.loads(report.read_text())


def compare(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> int:
    differences = 0
    for case in sorted(set(old) | set(new)):
        a, b = old.get(case, {}), new.get(case, {})
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        failed = [f"{k}: {v}" for k, v in {**a, **b}.items() if "failed" in k or str(v).startswith("failed")]
        status = "identical" if not diff and not failed else "DIFFERENT"
        print(f"{case:28s} {len(b):3d} entries  {status}")
        for key in diff:
            print(f"    {key}: {a.get(key, '(absent)')[:16]} -> {b.get(key, '(absent)')[:16]}")
        for line in failed:
            print(f"    {line}")
        differences += bool(diff or failed)
    total = sum(len(v) for v in new.values())
    print(f"{len(new)} cases, {total} files and emulation outputs compared: {differences} case(s) differ")
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["digest"]:
        d = argparse.ArgumentParser(description="compile and hash one side")
        d.add_argument("out", type=Path)
        d.add_argument("--tree", type=Path, default=ROOT)
        d.add_argument("--json", type=Path, required=True)
        args = d.parse_args(argv[1:])
        args.json.write_text(json.dumps(digest(args.out, args.tree.resolve()), indent=1, sort_keys=True))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the commit to compare with")
    parser.add_argument("new", nargs="?", help="the commit to compare (default: the working tree)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="compare-artifacts-") as tmp_name:
        tmp = Path(tmp_name)
        trees = []
        try:
            old_tree = trees.append(_worktree(args.old, tmp / "old")) or trees[-1]
            new_tree = ROOT if args.new is None else trees.append(_worktree(args.new, tmp / "new")) or trees[-1]
            old = _side(old_tree, tmp, "old")
            new = _side(new_tree, tmp, "new")
        finally:
            for tree in trees:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        return compare(old, new)


if __name__ == "__main__":
    sys.exit(main())
