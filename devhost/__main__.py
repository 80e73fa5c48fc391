"""The local host and stack.

python -m devhost run      the stack and the host as separate processes; the app at http://127.0.0.1:7071/api
python -m devhost stack    only the services (and local.settings.json for `func start`)
python -m devhost host     only the host (FUNCTIONS_WORKER_PROCESS_COUNT workers), against the running
                           stack described by .devhost/stack.json
python -m devhost fault SERVICE ACTION    inject or heal a fault in the running stack
python -m devhost token SUBJECT [--role user|moderator|admin]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from devhost.settings_file import PROJECT_DIR, TOKEN_ROLES, write_local_settings

if TYPE_CHECKING:
    from devhost.stack import LocalStack

log = logging.getLogger("devhost")

# How often the stack looks for a service that died under it.
WATCH_INTERVAL_SECONDS = 1.0
READY_LINE = "Chorus is running at"
# Where data, logs and stack.json live (devhost.stack.STATE_DIR): imported lazily below, so that the
# supervisor and the host process, which never touch a service, stay small.
STATE_DIR = PROJECT_DIR / ".devhost"


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    # The Azure SDKs log every HTTP request at INFO.
    for noisy in ("azure", "uamqp", "azure.eventhub", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _serve_stack(stack: LocalStack) -> int:
    """Serve the fault control until SIGINT/SIGTERM or until a service dies; return the exit code."""
    from devhost.control_server import ControlServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    control = ControlServer(stack)
    stack.control_url = await control.start()
    stack.write_stack_file()
    if stack.state_dir.absolute() == STATE_DIR:
        # For `func start`; only for the default state dir, so a test's stack never overwrites it.
        write_local_settings(stack.settings)
    log.info(
        "stack is up; endpoints in %s, fault control at %s", stack.state_dir / "stack.json", stack.control_url
    )
    print(
        "The local stack is up. `python -m devhost host` (or `func start`, with local.settings.json) "
        "hosts the app against it. Ctrl-C stops the stack.",
        flush=True,
    )
    exit_code = 0
    try:
        while not stop.is_set():
            crashed = stack.crashed()
            if crashed:
                log.error(
                    "%s stopped unexpectedly; see its log in %s. Shutting the stack down.",
                    ", ".join(crashed),
                    stack.log_dir,
                )
                exit_code = 1
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WATCH_INTERVAL_SECONDS):
                    await stop.wait()
    finally:
        await control.stop()
    return exit_code


def _running_stack_pid(state_dir: Path) -> int | None:
    """The process id of a stack still running from `state_dir`, if any."""
    try:
        pid = json.loads((state_dir / "stack.json").read_text()).get("stackPid")
    except (OSError, ValueError):
        return None
    if not isinstance(pid, int) or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A stale stack.json whose process id now belongs to something else (Linux can tell).
    with contextlib.suppress(OSError):
        if b"devhost" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    return pid


def _run_stack(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    running = _running_stack_pid(args.state_dir)
    if running is not None:
        # A second stack would start by deleting (or sharing) the first one's data.
        print(
            f"error: a stack is already running from {args.state_dir} (process {running}); "
            "stop it first, or use another --state-dir",
            file=sys.stderr,
        )
        return 1
    from devhost.stack import LocalStack

    stack = LocalStack(state_dir=args.state_dir)
    try:
        stack.start(fresh=not args.keep_data)
        return asyncio.run(_serve_stack(stack))
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()
        log.info("stopped every process the local stack started")


def read_stack_file(state_dir: Path) -> dict[str, object]:
    stack_file = state_dir / "stack.json"
    try:
        described: dict[str, object] = json.loads(stack_file.read_text())
    except FileNotFoundError:
        raise SystemExit(
            f"error: no running stack ({stack_file} is missing): start one with `make stack` "
            "(or use `make run`, which starts both)"
        ) from None
    return described


def apply_app_settings(app_settings: dict[str, str]) -> None:
    """The stack's settings, except where the environment already sets one (it overrides)."""
    for name, value in app_settings.items():
        os.environ.setdefault(name, value)


async def _serve_worker(state_dir: Path, port: int, index: int) -> int:
    """One worker of the host: the whole app on the shared port (SO_REUSEPORT)."""
    from devhost.host.server import FunctionHost
    from devhost.host.workers import worker_file

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    function_host = FunctionHost(PROJECT_DIR, state_dir, port=port, worker_index=index, reuse_port=True)
    await function_host.start()
    # Tells the host process this worker serves (a restarted worker has a new process id).
    ready_file = worker_file(state_dir, index)
    ready_file.parent.mkdir(parents=True, exist_ok=True)
    ready_file.write_text(json.dumps({"pid": os.getpid(), "index": index}) + "\n")
    try:
        await stop.wait()
    finally:
        await function_host.stop()
        with contextlib.suppress(OSError):
            if json.loads(ready_file.read_text()).get("pid") == os.getpid():
                ready_file.unlink()
    return 0


def _apply_stack_settings(state_dir: Path) -> None:
    described = read_stack_file(state_dir)
    app_settings = described.get("appSettings")
    assert isinstance(app_settings, dict)
    apply_app_settings(app_settings)


def _run_host(args: argparse.Namespace) -> int:
    from devhost.host.workers import WorkerCountError, WorkerPool, worker_count

    configure_logging(args.log_level)
    _apply_stack_settings(args.state_dir)
    try:
        count = worker_count()
    except WorkerCountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return WorkerPool(args.state_dir, args.port, count, args.log_level, PROJECT_DIR).run()


def _run_worker(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    _apply_stack_settings(args.state_dir)
    # Each worker's log lines say which worker wrote them.
    logging.getLogger().handlers[0].setFormatter(
        logging.Formatter(
            f"%(asctime)s %(levelname)-7s w{args.index} %(name)s: %(message)s", datefmt="%H:%M:%S"
        )
    )
    try:
        return asyncio.run(_serve_worker(args.state_dir, args.port, args.index))
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from devhost.supervisor import Supervisor

    configure_logging(args.log_level)
    return Supervisor(args.state_dir, args.port, args.keep_data, args.log_level).run()


def _fault(args: argparse.Namespace) -> int:
    from devhost.faults import FaultError, StackControl

    try:
        result = StackControl.from_state_dir(args.state_dir).inject(args.service, args.action)
    except FaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _schema_snapshot() -> int:
    import tempfile

    import psycopg

    from devhost.services.postgres import start_postgres
    from shared_code.db.migrations import migrate
    from shared_code.ops.schema_drift import SNAPSHOT_FILE, write_snapshot

    with tempfile.TemporaryDirectory() as scratch:
        server = start_postgres(Path(scratch) / "data", Path(scratch) / "logs", durable=False)
        try:
            with psycopg.connect(server.url(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE snapshot")
            migrate(server.url("snapshot"))
            write_snapshot(server.url("snapshot"))
        finally:
            server.stop()
    print(f"wrote {SNAPSHOT_FILE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devhost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "start the stack and the host as separate processes; restart the host if it dies"),
        ("stack", "start only the services"),
        ("host", "host the app against the running stack"),
    ):
        command = commands.add_parser(name, help=help_text)
        if name != "host":
            command.add_argument(
                "--keep-data",
                action="store_true",
                help="keep every service's data from the last run (PostgreSQL, Cosmos DB, Azurite, "
                "Event Hubs); by default they start empty",
            )
        command.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        command.add_argument(
            "--state-dir",
            type=Path,
            default=STATE_DIR,
            help="where data, logs, stack.json and the local signing key live",
        )
        if name != "stack":
            command.add_argument("--port", type=int, default=7071)
    from devhost.faults import ACTIONS, SERVICES

    fault = commands.add_parser("fault", help="inject or heal a fault in the running stack")
    fault.add_argument("service", choices=SERVICES)
    fault.add_argument("action", choices=ACTIONS)
    fault.add_argument("--state-dir", type=Path, default=STATE_DIR)
    worker = commands.add_parser("worker", help="one worker process of `host` (started by it)")
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--port", type=int, required=True)
    worker.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    worker.add_argument("--state-dir", type=Path, default=STATE_DIR)
    token = commands.add_parser("token", help="print a bearer token the local host accepts")
    token.add_argument("--state-dir", type=Path, default=STATE_DIR, help=argparse.SUPPRESS)
    token.add_argument("subject")
    token.add_argument("--role", choices=TOKEN_ROLES, default="user")
    token.add_argument("--hours", type=float, default=12.0)

    env = commands.add_parser("env", help="print the running stack's app settings as shell exports")
    env.add_argument("--state-dir", type=Path, default=STATE_DIR, help=argparse.SUPPRESS)

    commands.add_parser("schema-snapshot", help="write sql/schema.snapshot.json from sql/ (for drift checks)")

    args = parser.parse_args(argv)
    if args.command == "schema-snapshot":
        return _schema_snapshot()
    if args.command == "env":
        stack_file = args.state_dir / "stack.json"
        if not stack_file.exists():
            print(
                f"error: no running stack ({stack_file} is missing): start one with `make run`",
                file=sys.stderr,
            )
            return 1
        for name, value in json.loads(stack_file.read_text())["appSettings"].items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if args.command == "token":
        from devhost.tokens import issue_token

        print(issue_token(args.state_dir, args.subject, args.role, int(args.hours * 3600)))
        return 0
    if args.command == "fault":
        return _fault(args)
    if args.command == "stack":
        return _run_stack(args)
    if args.command == "host":
        return _run_host(args)
    if args.command == "worker":
        return _run_worker(args)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
