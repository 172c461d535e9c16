"""torch for the emulators' torch engine (``--emulator torch``): imported when that engine is asked for, never
when neurodeploy is imported, and the device it runs on, checked before any work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from neurodeploy.errors import DataError

INSTALL = "pip install neurodeploy[torch]"


def import_torch() -> Any:
    """The torch module, or a :class:`DataError` saying how to install it."""
    try:
        import torch
    except ImportError:
        raise DataError(f"the torch emulator engine needs torch, which is not installed: {INSTALL}") from None
    return torch


def resolve_device(device: str | None) -> Any:
    """The ``torch.device`` to run on: ``device`` (a torch device string: cpu, cuda, cuda:1, ...), or when None
    cuda where torch sees a CUDA device and cpu otherwise. An unknown device string, or a CUDA device where there
    is none, is a :class:`DataError`."""
    torch = import_torch()
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"--device {device!r} is not a torch device ({reason}); use e.g. cpu or cuda") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise DataError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise DataError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA device(s) here")
    elif chosen.type == "meta":
        raise DataError(f"--device {device}: the meta device holds no data; use cpu or cuda")
    elif chosen.type != "cpu":
        try:
            torch.zeros(1, device=chosen)
        except (RuntimeError, AssertionError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"--device {device}: torch cannot use it here ({reason})") from None
    return chosen


@contextmanager
def exact_floats() -> Iterator[None]:
    """No reduced-precision float32 products while an integer engine runs (TF32 on CUDA, bf16 passes on a CPU):
    its float32 sums are exact only in full float32; no gradients. The previous settings are restored."""
    torch = import_torch()
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
