"""Calling a user function as the worker does: bind the trigger and `context` by name,
run async functions on the loop and sync ones on a thread pool, log one line each."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import azure.functions as func

from devhost.host.app_index import FunctionSpec

log = logging.getLogger("devhost.invocations")


class _TraceContext:
    def __init__(self, trace_parent: str, trace_state: str = "") -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext:
    def __init__(self, retry_count: int, max_retry_count: int) -> None:
        self.retry_count = retry_count
        self.max_retry_count = max_retry_count
        self.exception = None


class InvocationContext(func.Context):
    """What a function gets for a parameter named `context`."""

    def __init__(
        self,
        function_name: str,
        function_directory: str,
        trace_parent: str,
        retry_count: int = 0,
        max_retry_count: int = 0,
    ) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = _TraceContext(trace_parent)
        self._retry_context = _RetryContext(retry_count, max_retry_count)
        self._thread_local_storage = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local_storage

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return self._trace_context

    @property
    def retry_context(self) -> Any:
        return self._retry_context


def new_trace_parent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


class Invoker:
    def __init__(self, app_dir: Path, max_sync_workers: int = 32) -> None:
        self._app_dir = str(app_dir)
        # Sync functions run here, as the worker runs them on its thread pool.
        self._executor = ThreadPoolExecutor(max_workers=max_sync_workers, thread_name_prefix="function")

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: Any,
        *,
        summary: str = "",
        trace_parent: str | None = None,
        retry_count: int = 0,
    ) -> Any:
        """Run the function once. Logs one line; re-raises what the function raised."""
        context = InvocationContext(
            spec.name,
            self._app_dir,
            trace_parent or new_trace_parent(),
            retry_count,
            spec.retry.max_retry_count if spec.retry else 0,
        )
        kwargs: dict[str, Any] = {}
        for parameter in spec.parameters:
            kwargs[parameter] = context if parameter == "context" else trigger_value
        started = time.perf_counter()
        outcome = "succeeded"
        try:
            if spec.is_async:
                result = await spec.user_function(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    self._executor, functools.partial(spec.user_function, **kwargs)
                )
            if isinstance(result, func.HttpResponse):
                summary = f"{summary} -> {result.status_code}".strip()
            return result
        except BaseException:
            outcome = "failed"
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            retry = f" retry={retry_count}" if retry_count else ""
            log.info(
                "%s trigger=%s %s duration=%.1fms outcome=%s%s id=%s",
                spec.name,
                spec.trigger_type,
                summary,
                elapsed_ms,
                outcome,
                retry,
                context.invocation_id,
            )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
