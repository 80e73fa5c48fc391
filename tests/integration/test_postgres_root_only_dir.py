"""PostgreSQL starts from a data directory under a directory only root may enter, as root, without
loosening the permissions of that directory or of any directory above it or above the checkout."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devhost.services.postgres import RUNTIME_ROOT, remove_data_dir, start_postgres
from devhost.settings_file import PROJECT_DIR

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another system user"),
    pytest.mark.timeout(120),
]


def modes_up_from(path: Path) -> dict[Path, int]:
    modes = {}
    for directory in (path, *path.parents):
        modes[directory] = stat.S_IMODE(directory.stat().st_mode)
    return modes


@pytest.fixture
def root_only_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="chorus-root-only-"))
    directory.chmod(0o700)
    try:
        yield directory
    finally:
        for link in directory.rglob("*"):
            if link.is_symlink():
                remove_data_dir(link)
        shutil.rmtree(directory)


def test_postgres_runs_from_a_root_only_dir_and_loosens_nothing(root_only_dir: Path) -> None:
    data_dir = root_only_dir / "state" / "pgdata"
    before = modes_up_from(root_only_dir) | modes_up_from(PROJECT_DIR)

    server = start_postgres(data_dir, root_only_dir / "logs", durable=False)
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        # A stop and a start (as a fault does) keep the port and the data.
        server.stop()
        server.start_again()
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT n FROM kept").fetchone() == (42,)
    finally:
        server.stop()

    assert modes_up_from(root_only_dir) | modes_up_from(PROJECT_DIR) == before
    # The data lives outside the root-only directory, owned by the system user; the state dir links to it.
    assert data_dir.is_symlink()
    assert server.data_dir.parent == RUNTIME_ROOT / "data"
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700

    remove_data_dir(data_dir)
    assert not data_dir.exists()
    assert not server.data_dir.exists()
