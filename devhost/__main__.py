"""The local host and stack.

python -m devhost run      the stack plus the app at http://127.0.0.1:7071/api
python -m devhost stack    only the stack, and local.settings.json for `func start`
python -m devhost token SUBJECT [--role user|moderator|admin]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shlex
import signal
import sys
from pathlib import Path

from devhost.settings_file import PROJECT_DIR, write_local_settings
from devhost.stack import STATE_DIR, LocalStack
from devhost.tokens import ROLES, issue_token

log = logging.getLogger("devhost")

# How often the host looks for a service that died under it.
WATCH_INTERVAL_SECONDS = 1.0


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    # The Azure SDKs log every HTTP request at INFO.
    for noisy in ("azure", "uamqp", "azure.eventhub", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _serve(stack: LocalStack, host_port: int | None) -> int:
    """Run until SIGINT/SIGTERM or until a service dies; return the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    function_host = None
    if host_port is not None:
        from devhost.host.server import FunctionHost

        stack.apply_to_environment()
        function_host = FunctionHost(PROJECT_DIR, stack.state_dir, port=host_port)
        await function_host.start()
        print(f"Chorus is running at {function_host.base_url}/api  (Ctrl-C stops everything)", flush=True)
    exit_code = 0
    try:
        while not stop.is_set():
            crashed = stack.crashed()
            if crashed:
                log.error(
                    "%s stopped unexpectedly; see its log in %s. Shutting everything down.",
                    ", ".join(crashed),
                    stack.log_dir,
                )
                exit_code = 1
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_SECONDS)
    finally:
        if function_host is not None:
            await function_host.stop()
    return exit_code


def _run(args: argparse.Namespace, with_host: bool) -> int:
    configure_logging(args.log_level)
    stack = LocalStack(state_dir=args.state_dir)
    try:
        stack.start(fresh=not args.keep_data)
        log.info("stack is up; endpoints in %s", args.state_dir / "stack.json")
        if not with_host:
            write_local_settings(stack.settings)
            print(
                "The local stack is up. local.settings.json now points at it: run `func start` "
                "in another terminal. Ctrl-C stops the stack.",
                flush=True,
            )
        return asyncio.run(_serve(stack, args.port if with_host else None))
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()
        log.info("stopped every process the local stack started")


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
    for name, help_text in (("run", "start the stack and host the app"), ("stack", "start only the stack")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--keep-data",
            action="store_true",
            help="keep PostgreSQL data from the last run (Cosmos, Azurite and Event Hubs "
            "are in memory and always start empty)",
        )
        command.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        command.add_argument(
            "--state-dir",
            type=Path,
            default=STATE_DIR,
            help="where data, logs, stack.json and the local signing key live",
        )
        if name == "run":
            command.add_argument("--port", type=int, default=7071)
    token = commands.add_parser("token", help="print a bearer token the local host accepts")
    token.add_argument("--state-dir", type=Path, default=STATE_DIR, help=argparse.SUPPRESS)
    token.add_argument("subject")
    token.add_argument("--role", choices=ROLES, default="user")
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
        print(issue_token(args.state_dir, args.subject, args.role, int(args.hours * 3600)))
        return 0
    return _run(args, with_host=args.command == "run")


if __name__ == "__main__":
    sys.exit(main())
