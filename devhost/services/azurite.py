"""Azurite (Blob, Queue, Table) in memory on free ports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devhost.services.process import ManagedProcess, free_port, node_bin, port_accepts, start_process

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


def start_azurite(log_dir: Path, timeout: float = 30) -> Azurite:
    blob, queue, table = free_port(), free_port(), free_port()
    argv = [
        str(node_bin("azurite")),
        "--silent",
        "--inMemoryPersistence",
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
    process = start_process("azurite", argv, log_dir / "azurite.log")
    process.wait_until(lambda: all(port_accepts("127.0.0.1", p) for p in (blob, queue, table)), timeout)
    return Azurite(process, blob, queue, table)
