"""Safety caps on what a model, an artifact or a command line can make neurodeploy allocate or run.

Every cap is checked before the work (or the allocation) it guards, and every refusal is a
:class:`~neurodeploy.errors.LimitError` naming the cap, the amount asked for and the environment variable that
raises it. The defaults are far above what the chips can hold, so they bound only hostile or broken inputs.

=================================  ==========================================  ===============
environment variable               what it bounds                              default
=================================  ==========================================  ===============
``NEURODEPLOY_MAX_CONSTANT_BYTES``  one constant folded at import               1 GiB
``NEURODEPLOY_MAX_ACTIVATION_BYTES`` one value of one sample (float32)          256 MiB
``NEURODEPLOY_MAX_STEPS``          time steps of one emulation or evaluation   100000
``NEURODEPLOY_MAX_FILE_BYTES``     one file read from an artifact              4 GiB
``NEURODEPLOY_MAX_JSON_BYTES``     one JSON document read from an artifact     64 MiB
``NEURODEPLOY_MAX_WEIGHT``         magnitude of a weight, bias or statistic    10**9
=================================  ==========================================  ===============
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from neurodeploy.errors import LimitError

_ENV = {
    "max_constant_bytes": "NEURODEPLOY_MAX_CONSTANT_BYTES",
    "max_activation_bytes": "NEURODEPLOY_MAX_ACTIVATION_BYTES",
    "max_steps": "NEURODEPLOY_MAX_STEPS",
    "max_file_bytes": "NEURODEPLOY_MAX_FILE_BYTES",
    "max_json_bytes": "NEURODEPLOY_MAX_JSON_BYTES",
    "max_weight": "NEURODEPLOY_MAX_WEIGHT",
}


@dataclass(frozen=True)
class Limits:
    """The caps in force (see the module docstring for the environment variables)."""

    max_constant_bytes: int = 1 << 30
    max_activation_bytes: int = 1 << 28
    max_steps: int = 100_000
    max_file_bytes: int = 4 << 30
    max_json_bytes: int = 64 << 20
    max_weight: int = 10**9
    """Trained weights, biases and BatchNorm statistics stay far below this (a folded BatchNorm scale is at most
    1 / sqrt(epsilon)); a larger one is a broken or hostile model, whose products overflow float32."""


def current() -> Limits:
    """The caps from the environment, read anew on every call (so tests and long-lived processes can change
    them); a malformed value is a LimitError naming the variable."""
    values: dict[str, int] = {}
    for f in fields(Limits):
        variable = _ENV[f.name]
        text = os.environ.get(variable)
        if text is None or not text.strip():
            continue
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            raise LimitError(f"{variable}={text!r} is not a whole number") from None
        if value < 1:
            raise LimitError(f"{variable}={text!r} must be at least 1")
        values[f.name] = value
    return Limits(**values)


def _refuse(cap: str, asked: int, what: str, unit: str) -> LimitError:
    limit = getattr(current(), cap)
    return LimitError(
        f"{what} needs {asked:,} {unit}, over the limit of {limit:,}; if this is intended, raise it with "
        f"{_ENV[cap]}={asked}"
    )


def check(cap: str, asked: int, what: str, unit: str = "bytes") -> None:
    """Raise LimitError if ``asked`` exceeds the cap named ``cap`` (a field of :class:`Limits`); ``what``
    says what would be made, e.g. ``"ConstantOfShape node 'c0': the constant"``."""
    if cap not in _ENV:
        raise KeyError(cap)
    if asked > getattr(current(), cap):
        raise _refuse(cap, asked, what, unit)


def check_steps(steps: int, what: str = "the emulation") -> None:
    """Refuse more time steps than ``NEURODEPLOY_MAX_STEPS`` allows."""
    check("max_steps", int(steps), what, "time steps")


def env_variable(cap: str) -> str:
    """The environment variable that sets the cap ``cap``."""
    return _ENV[cap]
