"""Indexing a v2 Python app the way the worker does: import `function_app`, take its one
FunctionApp, call `get_functions()` once, read each function's raw bindings."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func


class AppIndexError(RuntimeError):
    """The app cannot be indexed; the message says why and which function."""


@dataclass(frozen=True)
class RetryPolicy:
    """The Functions retry policy of a non-HTTP trigger (`@app.retry`)."""

    strategy: str  # "fixed_delay" | "exponential_backoff"
    max_retry_count: int  # -1: retry for ever
    delay_seconds: float = 0.0
    minimum_seconds: float = 0.0
    maximum_seconds: float = 0.0

    def delay_before(self, retry_number: int) -> float:
        """Seconds to wait before retry number `retry_number` (1-based)."""
        if self.strategy == "fixed_delay":
            return self.delay_seconds
        return float(min(self.maximum_seconds, self.minimum_seconds * 2.0 ** (retry_number - 1)))

    def allows(self, retry_number: int) -> bool:
        return self.max_retry_count < 0 or retry_number <= self.max_retry_count


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    user_function: Callable[..., Any]
    bindings: tuple[Mapping[str, Any], ...]
    retry: RetryPolicy | None = None
    parameters: tuple[str, ...] = field(default=())

    @property
    def trigger(self) -> Mapping[str, Any]:
        for binding in self.bindings:
            if str(binding.get("type", "")).endswith("Trigger"):
                return binding
        raise AppIndexError(f"function {self.name} has no trigger binding")

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


def load_function_app(app_dir: Path, module_name: str = "function_app") -> list[FunctionSpec]:
    """Import `app_dir/function_app.py` (as `module_name`) and return its functions.

    The module is executed afresh on every call, because `get_functions()` may be
    called only once per FunctionApp object.
    """
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module_spec = importlib.util.spec_from_file_location(module_name, app_dir / "function_app.py")
    if module_spec is None or module_spec.loader is None:
        raise AppIndexError(f"{app_dir / 'function_app.py'} cannot be imported")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise AppIndexError(f"{module_name}.py must define exactly one FunctionApp; found {len(apps)}")
    return [_spec(function) for function in apps[0].get_functions()]


def _spec(function: Any) -> FunctionSpec:
    name = function.get_function_name()
    user_function = function.get_user_function()
    bindings = tuple(json.loads(raw) for raw in function.get_raw_bindings())
    retry_settings = function.get_settings_dict("retry_policy")
    retry = _retry_policy(name, retry_settings) if retry_settings else None
    parameters = tuple(inspect.signature(user_function).parameters)
    spec = FunctionSpec(name, user_function, bindings, retry, parameters)
    bound = {b["name"] for b in bindings} | {"context"}
    unbound = [p for p in parameters if p not in bound]
    if unbound:
        raise AppIndexError(f"function {name}: parameters {unbound} match no binding")
    spec.trigger  # noqa: B018  # fail at index time, not at the first invocation
    return spec


def _retry_policy(name: str, settings: Mapping[str, Any]) -> RetryPolicy:
    strategy = settings.get("strategy")
    if strategy not in ("fixed_delay", "exponential_backoff"):
        raise AppIndexError(f"function {name}: unknown retry strategy {strategy!r}")
    return RetryPolicy(
        strategy=str(strategy),
        max_retry_count=int(settings["max_retry_count"]),
        delay_seconds=timespan_seconds(settings.get("delay_interval") or "00:00:00"),
        minimum_seconds=timespan_seconds(settings.get("minimum_interval") or "00:00:00"),
        maximum_seconds=timespan_seconds(settings.get("maximum_interval") or "00:00:00"),
    )


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")


def timespan_seconds(text: str) -> float:
    """A .NET TimeSpan `[d.]hh:mm:ss[.fff]` in seconds."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise AppIndexError(f"{text!r} is not a TimeSpan (hh:mm:ss)")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


_SETTING_REF = re.compile(r"%([^%]+)%")


def resolve_setting_refs(value: str, environ: Mapping[str, str] = os.environ) -> str:
    """Replace `%NAME%` with the app setting NAME, as the host does."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise AppIndexError(f"binding refers to app setting %{name}%, which is not set")
        return environ[name]

    return _SETTING_REF.sub(lookup, value)
