"""A stand-in for ``neurodeploy.cli.main`` that misbehaves on demand, so the harness's own test can check that every
class of finding is detected: ``main([command, behaviour, ...])``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np


def _write_npz(path: str, value: float) -> None:
    np.savez(path, outputs=np.full((2, 3), value, np.float32), predictions=np.zeros(2, np.int64))


def main(argv: list[str]) -> int:
    behaviour = argv[1]
    if behaviour == "ok":
        return 0
    if behaviour == "error":
        sys.stderr.write("error: a clean refusal\n")
        return 1
    if behaviour == "internal":
        sys.stderr.write("internal error: ZeroDivisionError: division by zero (rerun with --debug)\n")
        return 1
    if behaviour == "silent_failure":
        return 1
    if behaviour == "traceback":
        raise ValueError("escaped main")
    if behaviour == "printed_traceback":
        sys.stderr.write('Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: 3\n')
        return 1
    if behaviour == "hang":
        time.sleep(3600)
    if behaviour == "crash":
        os.abort()
    if behaviour == "memory":
        try:
            bytearray(64 << 30)
        except MemoryError as exc:
            sys.stderr.write(f"internal error: MemoryError: {exc}\n")
            return 1
    if behaviour == "read_canary":
        Path("secret.txt").read_bytes()  # the working directory's canary
        return 0
    if behaviour == "read_outside":
        Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else Path("/etc/passwd").read_bytes()
        return 0
    if behaviour == "read_unlisted":
        Path("../art/unlisted.json").read_bytes()
        return 0
    if behaviour == "follow_symlink":
        Path("../art/linked.json").read_bytes()
        return 0
    if behaviour == "copy_canary":
        Path("out").mkdir(exist_ok=True)
        Path("out/weights.bin").write_bytes(Path("../secret.txt").read_bytes())
        return 0
    if behaviour == "write_outside":
        Path("../data/new.txt").write_bytes(b"x")
        return 0
    if behaviour == "delete_canary":
        os.remove("secret.txt")
        return 0
    if behaviour == "leftover":
        Path(".out.tmp-1").write_bytes(b"x")
        return 0
    if behaviour == "replace_output":
        Path("y.tmp").write_bytes(b"x")
        os.replace("y.tmp", "y.npz")
        return 0
    if behaviour == "nan":
        _write_npz(argv[argv.index("--output") + 1], float("nan"))
        return 0
    if behaviour == "finite":
        _write_npz(argv[argv.index("--output") + 1], 0.5)
        return 0
    if behaviour == "no_output":
        return 0
    raise SystemExit(f"unknown behaviour {behaviour!r}")
