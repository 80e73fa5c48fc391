"""ASP.NET-style route templates as the Functions host reads them.

`{name}`, `{name:constraint}`, `{name?}`, `{*rest}`; literal segments win over
parameters, constrained parameters over plain ones; matching is case-insensitive
for literals; values arrive as strings.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class RouteTemplateError(ValueError):
    pass


def _is_int(v: str, bits: int) -> bool:
    if not re.fullmatch(r"-?\d+", v):
        return False
    bound: int = 2 ** (bits - 1)
    return -bound <= int(v) < bound


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return v.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")


def _is_guid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return True


def _is_datetime(v: str) -> bool:
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


_SIMPLE: dict[str, Callable[[str], bool]] = {
    "int": lambda v: _is_int(v, 32),
    "long": lambda v: _is_int(v, 64),
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": _is_guid,
    "alpha": lambda v: v.isascii() and v.isalpha(),
    "double": _is_float,
    "float": _is_float,
    "decimal": _is_float,
    "datetime": _is_datetime,
}


def _constraint(text: str) -> Callable[[str], bool]:
    if text in _SIMPLE:
        return _SIMPLE[text]
    match = re.fullmatch(r"(minlength|maxlength|length|min|max|range|regex)\((.*)\)", text)
    if match is None:
        raise RouteTemplateError(f"unknown route constraint {text!r}")
    kind, arg = match.groups()
    if kind == "regex":
        pattern = re.compile(arg, re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    numbers = [int(a) for a in arg.split(",")]
    checks: dict[str, Callable[[str], bool]] = {
        "minlength": lambda v: len(v) >= numbers[0],
        "maxlength": lambda v: len(v) <= numbers[0],
        "length": lambda v: len(v) == numbers[0] if len(numbers) == 1 else numbers[0] <= len(v) <= numbers[1],
        "min": lambda v: _is_int(v, 64) and int(v) >= numbers[0],
        "max": lambda v: _is_int(v, 64) and int(v) <= numbers[0],
        "range": lambda v: _is_int(v, 64) and numbers[0] <= int(v) <= numbers[1],
    }
    return checks[kind]


# Precedence of a segment kind: lower sorts first (wins).
_LITERAL, _CONSTRAINED, _PARAMETER, _OPTIONAL, _CATCH_ALL = range(5)


@dataclass(frozen=True)
class _Segment:
    kind: int
    text: str  # literal text (lower-cased) or parameter name
    checks: tuple[Callable[[str], bool], ...] = ()


def _parse_segment(raw: str) -> _Segment:
    if not (raw.startswith("{") and raw.endswith("}")):
        if "{" in raw or "}" in raw:
            raise RouteTemplateError(f"segment {raw!r}: mixing literals and parameters is not supported")
        return _Segment(_LITERAL, raw.lower())
    body = raw[1:-1]
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *constraints = body.split(":")
    if not name.isidentifier():
        raise RouteTemplateError(f"segment {raw!r}: {name!r} is not a parameter name")
    checks = tuple(_constraint(c) for c in constraints)
    if catch_all:
        kind = _CATCH_ALL
    elif optional:
        kind = _OPTIONAL
    elif checks:
        kind = _CONSTRAINED
    else:
        kind = _PARAMETER
    return _Segment(kind, name, checks)


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    segments: tuple[_Segment, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        raw = [s for s in template.strip("/").split("/") if s]
        segments = tuple(_parse_segment(s) for s in raw)
        for i, segment in enumerate(segments):
            if segment.kind in (_OPTIONAL, _CATCH_ALL) and i != len(segments) - 1:
                raise RouteTemplateError(f"{template}: only the last segment may be optional or catch-all")
        return cls(template, segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(s.kind for s in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for i, segment in enumerate(self.segments):
            if segment.kind == _CATCH_ALL:
                rest = "/".join(parts[i:])
                if rest and not all(check(rest) for check in segment.checks):
                    return None
                if rest:
                    values[segment.text] = rest
                return values
            if i >= len(parts):
                return values if segment.kind == _OPTIONAL else None
            part = parts[i]
            if segment.kind == _LITERAL:
                if part.lower() != segment.text:
                    return None
            elif not all(check(part) for check in segment.checks):
                return None
            else:
                values[segment.text] = part
        return values if len(parts) == len(self.segments) else None


@dataclass(frozen=True)
class Route(Generic[T]):
    template: RouteTemplate
    methods: frozenset[str]  # empty: every method
    target: T


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    target: T | None
    route_params: dict[str, str]
    allowed_methods: frozenset[str]  # when a path matched but no method did


class RouteTable(Generic[T]):
    def __init__(self, routes: Iterable[Route[T]]):
        # Most specific first, as the host orders them.
        self._routes = sorted(routes, key=lambda r: r.template.precedence)

    def resolve(self, method: str, path: str) -> RouteMatch[T]:
        parts = [p for p in path.strip("/").split("/") if p]
        allowed: set[str] = set()
        for route in self._routes:
            values = route.template.match(parts)
            if values is None:
                continue
            if not route.methods or method.upper() in route.methods:
                return RouteMatch(route.target, values, frozenset())
            allowed |= route.methods
        return RouteMatch(None, {}, frozenset(allowed))
