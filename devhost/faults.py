"""Faults injected into the running local stack, as a deployment meets them.

The stack process (`python -m devhost stack`) serves a small HTTP control endpoint; its URL is
`control` in stack.json. `StackControl` is the client, used by tests and by
`python -m devhost fault SERVICE ACTION`:

    StackControl.from_state_dir(Path(".devhost")).inject("cosmos", "stop")

Actions (each service keeps its port and its data whatever happens):
  stop | start | restart   the service's process stops (gracefully, writing its data) / starts again
  pause | resume           SIGSTOP / SIGCONT: connections stay open but nothing answers
  fail-503 | fail-429      cosmos: every request answered with that status (429 with x-ms-retry-after-ms)
  unavailable              eventhubs: AMQP connections dropped and refused (its HTTP inspection still answers)
  kill-connections         postgres: every backend of the app's login terminated
  heal                     undo every fault on that service (resume, start, stop failing)
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devhost.stack import LocalStack

log = logging.getLogger("devhost.faults")

SERVICES = ("postgres", "cosmos", "eventhubs", "azurite")
ACTIONS = (
    "stop",
    "start",
    "restart",
    "pause",
    "resume",
    "fail-503",
    "fail-429",
    "unavailable",
    "kill-connections",
    "heal",
)
# Actions only some services have.
ONLY_FOR = {
    "fail-503": "cosmos",
    "fail-429": "cosmos",
    "unavailable": "eventhubs",
    "kill-connections": "postgres",
}


class FaultError(RuntimeError):
    """A fault that cannot be applied (unknown service or action, no running stack, a failed step)."""


def check(service: str, action: str) -> None:
    if service not in SERVICES:
        raise FaultError(f"unknown service {service!r}: choose one of {', '.join(SERVICES)}")
    if action not in ACTIONS:
        raise FaultError(f"unknown action {action!r}: choose one of {', '.join(ACTIONS)}")
    only = ONLY_FOR.get(action)
    if only is not None and only != service:
        raise FaultError(f"{action} applies to {only} only, not to {service}")


class FaultState:
    """What the fault control has done to each service, so that `heal` can undo it."""

    def __init__(self) -> None:
        self.stopped: set[str] = set()
        self.paused: set[str] = set()
        self.failing: dict[str, int] = {}
        self.unavailable: set[str] = set()

    def describe(self, service: str) -> dict[str, Any]:
        return {
            "stopped": service in self.stopped,
            "paused": service in self.paused,
            "failingWith": self.failing.get(service),
            "unavailable": service in self.unavailable,
        }


def apply_fault(stack: LocalStack, state: FaultState, service: str, action: str) -> dict[str, Any]:
    """Apply one action to one service of `stack` (blocking); return the service's fault state."""
    check(service, action)
    target = stack.service(service)
    if action == "stop":
        _stop(stack, state, service, target)
    elif action == "start":
        _start(stack, state, service, target)
    elif action == "restart":
        _stop(stack, state, service, target)
        _start(stack, state, service, target)
    elif action == "pause":
        if service not in state.stopped:
            target.process.pause()
            state.paused.add(service)
    elif action == "resume":
        target.process.resume()
        state.paused.discard(service)
    elif action in ("fail-503", "fail-429"):
        status = int(action.removeprefix("fail-"))
        target.set_fault(status)
        state.failing[service] = status
    elif action == "unavailable":
        target.set_unavailable(True)
        state.unavailable.add(service)
    elif action == "kill-connections":
        killed = _kill_app_connections(stack)
        log.warning("postgres: terminated %d backend(s) of the app's login (fault)", killed)
    elif action == "heal":
        _heal(stack, state, service, target)
    log.warning("fault control: %s %s", service, action)
    return {"service": service, "action": action, **state.describe(service)}


def _stop(stack: LocalStack, state: FaultState, service: str, target: Any) -> None:
    stack.held.add(service)
    state.stopped.add(service)
    state.paused.discard(service)  # stopping resumes it first (see ManagedProcess.stop)
    state.failing.pop(service, None)  # the fault lives in the process: gone with it
    state.unavailable.discard(service)
    target.stop()


def _start(stack: LocalStack, state: FaultState, service: str, target: Any) -> None:
    if service not in state.stopped and target.process.alive():
        return
    target.start_again()
    state.stopped.discard(service)
    stack.held.discard(service)
    stack.write_stack_file()  # the new process id


def _heal(stack: LocalStack, state: FaultState, service: str, target: Any) -> None:
    if service in state.paused:
        target.process.resume()
        state.paused.discard(service)
    if service in state.stopped:
        _start(stack, state, service, target)
    if service in state.failing:
        target.set_fault(None)
        del state.failing[service]
    if service in state.unavailable:
        target.set_unavailable(False)
        state.unavailable.discard(service)


def _kill_app_connections(stack: LocalStack) -> int:
    import psycopg

    from devhost.stack import APP_LOGIN

    assert stack.postgres is not None
    with psycopg.connect(stack.postgres.url(), autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
            (APP_LOGIN,),
        ).fetchall()
    return len(rows)


class StackControl:
    """Client of a running stack's fault control endpoint."""

    def __init__(self, control_url: str, timeout: float = 60.0) -> None:
        self.control_url = control_url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_state_dir(cls, state_dir: Path | str) -> StackControl:
        stack_file = Path(state_dir) / "stack.json"
        try:
            described = json.loads(stack_file.read_text())
        except FileNotFoundError:
            raise FaultError(
                f"no running stack ({stack_file} is missing): start one with `make stack` or `make run`"
            ) from None
        control = described.get("control")
        if not control:
            raise FaultError(f"{stack_file} has no control URL: restart the stack with this version")
        return cls(control)

    def inject(self, service: str, action: str) -> dict[str, Any]:
        """Apply `action` to `service` and return its fault state once the action is done."""
        check(service, action)
        return self._request("POST", f"/services/{service}/{action}")

    def heal(self, service: str) -> dict[str, Any]:
        return self.inject(service, "heal")

    def status(self) -> dict[str, Any]:
        """Every service's fault state."""
        return self._request("GET", "/services")

    def _request(self, method: str, path: str) -> dict[str, Any]:
        data = b"" if method == "POST" else None
        request = urllib.request.Request(self.control_url + path, method=method, data=data)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # local http URL
                result: dict[str, Any] = json.load(response)
                return result
        except urllib.error.HTTPError as exc:
            try:
                detail = json.load(exc).get("detail", "")
            except ValueError:
                detail = ""
            raise FaultError(f"{method} {path} failed with {exc.code}: {detail}") from None
        except OSError as exc:
            raise FaultError(
                f"the stack's control endpoint {self.control_url} did not answer: {exc}"
            ) from None
