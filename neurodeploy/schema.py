"""A small declarative validator for the JSON documents an artifact holds (the manifest, program files).

A schema is built from a few node types (:class:`Int`, :class:`Number`, :class:`Str`, :class:`Bool`,
:class:`List`, :class:`Dict`, :class:`Map`, :class:`Switch`, :class:`OneOf`, :class:`Array`, :data:`ANY`) and
checked with :func:`validate`, which raises one error naming the file, the JSON path and what was expected::

    manifest.json: files['x'].bytes: expected an integer >= 0

:class:`Dict` checks the keys it names (required or optional) and ignores others, so a newer writer may add
keys. Booleans are not integers here (JSON tells them apart; Python does not), and numbers must be finite.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from neurodeploy.errors import ArtifactError, NeurodeployError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Mismatch(Exception):
    """A value does not fit its schema: where (a JSON path, as a list of keys and indices) and what was expected."""

    def __init__(self, path: list[str | int], expected: str) -> None:
        super().__init__(expected)
        self.path = path
        self.expected = expected


def format_path(path: Sequence[str | int]) -> str:
    """``["files", "x", "bytes"]`` -> ``files.x.bytes``; indices as ``[0]``, other keys as ``['../x']``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, _Key):
            out += f"[{str(part)!r}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


class _Key(str):
    """A key of a :class:`Map` (always shown as ``['key']``)."""


class Schema:
    """A node of a schema: :meth:`check` raises :class:`Mismatch` when a value does not fit."""

    description = "a value"

    def check(self, value: Any, path: list[str | int]) -> None:
        raise NotImplementedError

    def fail(self, path: list[str | int]) -> Mismatch:
        return Mismatch(path, f"expected {self.description}")


class _Any(Schema):
    description = "any value"

    def check(self, value: Any, path: list[str | int]) -> None:
        return None


ANY = _Any()
"""Any JSON value."""


class Null(Schema):
    description = "null"

    def check(self, value: Any, path: list[str | int]) -> None:
        if value is not None:
            raise self.fail(path)


def _bounds(noun: str, low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{noun} in [{low}, {high}]"
    if low is not None:
        return f"{noun} >= {low}"
    if high is not None:
        return f"{noun} <= {high}"
    return noun


class Int(Schema):
    """An integer (not a boolean), optionally within [low, high]."""

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.low, self.high = low, high
        self.description = _bounds("an integer", low, high)

    def check(self, value: Any, path: list[str | int]) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise self.fail(path)


class Number(Schema):
    """A finite number (an integer or a float, not a boolean), optionally within [low, high]."""

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        self.low, self.high = low, high
        self.description = _bounds("a finite number", low, high)

    def check(self, value: Any, path: list[str | int]) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path)
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            raise self.fail(path)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise self.fail(path)


class Bool(Schema):
    description = "true or false"

    def check(self, value: Any, path: list[str | int]) -> None:
        if not isinstance(value, bool):
            raise self.fail(path)


class Str(Schema):
    """A string; optionally one of ``choices``, or matching ``pattern`` (described by ``meaning``)."""

    def __init__(
        self, *, choices: Sequence[str] | None = None, pattern: str | None = None, meaning: str | None = None
    ) -> None:
        self.choices = tuple(choices) if choices is not None else None
        self.pattern = re.compile(pattern) if pattern is not None else None
        if meaning is not None:
            self.description = meaning
        elif self.choices is not None:
            self.description = "one of " + ", ".join(repr(c) for c in self.choices)
        elif pattern is not None:
            self.description = f"a string matching {pattern}"
        else:
            self.description = "a string"

    def check(self, value: Any, path: list[str | int]) -> None:
        if not isinstance(value, str):
            raise self.fail(path)
        if self.choices is not None and value not in self.choices:
            raise self.fail(path)
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise self.fail(path)


class List(Schema):
    """A list whose items fit ``item``; optionally of exactly ``length`` items, or between min and max."""

    def __init__(
        self, item: Schema = ANY, *, length: int | None = None, min_len: int = 0, max_len: int | None = None
    ) -> None:
        self.item, self.length, self.min_len, self.max_len = item, length, min_len, max_len
        if length is not None:
            count = f"a list of {length}"
        elif min_len and max_len is None:
            count = f"a list of at least {min_len}"
        elif max_len is not None:
            count = f"a list of {min_len} to {max_len}"
        else:
            count = "a list"
        self.description = count if item is ANY else f"{count} ({item.description} each)"

    def check(self, value: Any, path: list[str | int]) -> None:
        if not isinstance(value, list):
            raise self.fail(path)
        n = len(value)
        if (self.length is not None and n != self.length) or n < self.min_len:
            raise self.fail(path)
        if self.max_len is not None and n > self.max_len:
            raise self.fail(path)
        if self.item is not ANY:
            for i, item in enumerate(value):
                self.item.check(item, [*path, i])


class Dict(Schema):
    """An object with the ``required`` keys and, when present, the ``optional`` ones; other keys are ignored."""

    description = "an object"

    def __init__(self, required: Mapping[str, Schema] | None = None, optional: Mapping[str, Schema] | None = None):
        self.required = dict(required or {})
        self.optional = dict(optional or {})

    def check(self, value: Any, path: list[str | int]) -> None:
        if not isinstance(value, dict):
            raise self.fail(path)
        for key, schema in self.required.items():
            if key not in value:
                raise Mismatch([*path, key], f"missing; expected {schema.description}")
            schema.check(value[key], [*path, key])
        for key, schema in self.optional.items():
            if key in value:
                schema.check(value[key], [*path, key])


class Map(Schema):
    """An object whose keys fit ``key`` (a :class:`Str`) and whose values fit ``value``."""

    def __init__(self, value: Schema = ANY, key: Str | None = None, *, max_len: int | None = None) -> None:
        self.value, self.key, self.max_len = value, key or Str(), max_len
        self.description = "an object"

    def check(self, value: Any, path: list[str | int]) -> None:
        if not isinstance(value, dict):
            raise self.fail(path)
        if self.max_len is not None and len(value) > self.max_len:
            raise Mismatch(path, f"expected an object of at most {self.max_len} entries")
        for key, item in value.items():
            where = [*path, _Key(key)]
            self.key.check(key, where)
            self.value.check(item, where)


class Switch(Schema):
    """An object whose ``key`` (a string) picks the schema of the rest: ``{"type": "dense", ...}``."""

    description = "an object"

    def __init__(self, key: str, cases: Mapping[str, Schema]) -> None:
        self.key, self.cases = key, dict(cases)
        self.tag = Str(choices=tuple(self.cases))

    def check(self, value: Any, path: list[str | int]) -> None:
        if not isinstance(value, dict):
            raise self.fail(path)
        if self.key not in value:
            raise Mismatch([*path, self.key], f"missing; expected {self.tag.description}")
        self.tag.check(value[self.key], [*path, self.key])
        self.cases[value[self.key]].check(value, path)


class OneOf(Schema):
    """A value that fits one of ``options`` (tried in order)."""

    def __init__(self, *options: Schema) -> None:
        self.options = options
        self.description = " or ".join(o.description for o in options)

    def check(self, value: Any, path: list[str | int]) -> None:
        deepest: Mismatch | None = None
        for option in self.options:
            try:
                option.check(value, path)
                return
            except Mismatch as exc:
                if len(exc.path) > len(path) and (deepest is None or len(exc.path) > len(deepest.path)):
                    deepest = exc  # the value had the right outer shape: report what is wrong inside it
        if deepest is not None:
            raise deepest
        raise self.fail(path)


def Optional(schema: Schema) -> OneOf:
    """``schema`` or null."""
    return OneOf(schema, Null())


class Array(Schema):
    """A rectangular nested list of numbers (a numpy array in JSON): ``kind`` ``"i"`` integers only, ``"f"`` any
    finite numbers; optionally of ``ndim`` dimensions."""

    def __init__(self, kind: str = "f", ndim: int | None = None) -> None:
        self.kind, self.ndim = kind, ndim
        numbers = "integers" if kind == "i" else "finite numbers"
        dims = f"a {ndim}-dimensional array" if ndim is not None else "a number or a nested list"
        self.description = f"{dims} of {numbers}"

    def check(self, value: Any, path: list[str | int]) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, list)):
            raise self.fail(path)
        try:
            array = np.asarray(value)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise self.fail(path) from None
        if self.ndim is not None and array.ndim != self.ndim:
            raise self.fail(path)
        if array.size == 0:
            if array.dtype.kind not in "if":
                raise self.fail(path)
            return
        if array.dtype.kind == "i" or (self.kind == "f" and array.dtype.kind == "f" and np.all(np.isfinite(array))):
            return
        raise self.fail(path)


def validate(
    schema: Schema, value: Any, file: str, *, error: type[NeurodeployError] = ArtifactError, context: str = ""
) -> None:
    """Check ``value`` (the JSON document of ``file``) against ``schema``; raise ``error``
    ``"FILE: PATH: expected ..."`` on the first mismatch (``context`` is appended, e.g. what to do about it)."""
    try:
        schema.check(value, [])
    except Mismatch as exc:
        where = format_path(exc.path)
        raise error(f"{file}: {where + ': ' if where else ''}{exc.expected}{context}") from None
    except RecursionError:
        raise error(f"{file}: nested too deeply{context}") from None
