"""Azurite (Blob, Queue, Table) on free ports, keeping its data in a directory (or in memory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devhost.services.process import (
    ManagedProcess,
    free_port,
    node_bin,
    node_environment,
    port_accepts,
    start_process,
)

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key: public, not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    process: ManagedProcess
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        self.process.stop()

    def start_again(self, timeout: float = 30) -> None:
        """Start a stopped Azurite again: same ports, same data directory."""
        self.process = self.process.respawn()
        self.process.wait_until(self._listening, timeout)

    def _listening(self) -> bool:
        return all(port_accepts("127.0.0.1", p) for p in (self.blob_port, self.queue_port, self.table_port))


def start_azurite(log_dir: Path, timeout: float = 30, data_dir: Path | None = None) -> Azurite:
    """Azurite with its data in `data_dir` (kept across a stop and start), or in memory if None."""
    blob, queue, table = free_port(), free_port(), free_port()
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    storage = ["--location", str(data_dir.absolute())] if data_dir is not None else ["--inMemoryPersistence"]
    argv = [
        str(node_bin("azurite")),
        "--silent",
        *storage,
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(blob),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(queue),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(table),
    ]
    process = start_process("azurite", argv, log_dir / "azurite.log", env=node_environment())
    azurite = Azurite(process, blob, queue, table)
    process.wait_until(azurite._listening, timeout)
    return azurite
