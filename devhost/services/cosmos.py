"""The local Cosmos DB (NoSQL API) emulator: devhost/node/cosmos-emulator.js run under Node.

It serves HTTPS with a self-signed certificate on 127.0.0.1; the azure-cosmos SDK (sync and aio) skips
certificate verification by itself for the hosts localhost and 127.0.0.1, so clients need no TLS options.
Authentication is not checked; the well-known emulator key is used so connection strings look normal.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devhost.services.process import (
    NODE_DIR,
    ManagedProcess,
    ServiceStartError,
    node_environment,
    start_process,
)

# The public, documented Cosmos emulator key, not a secret (the emulator does not check it anyway).
WELL_KNOWN_EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)

EMULATOR_SCRIPT = NODE_DIR / "cosmos-emulator.js"
HOST = "127.0.0.1"


@dataclass
class CosmosEmulator:
    process: ManagedProcess
    port: int

    @property
    def endpoint(self) -> str:
        return f"https://{HOST}:{self.port}/"

    @property
    def key(self) -> str:
        return WELL_KNOWN_EMULATOR_KEY

    @property
    def connection_string(self) -> str:
        return f"AccountEndpoint={self.endpoint};AccountKey={self.key};"

    def stop(self) -> None:
        """SIGTERM: the emulator writes its data file (if it has one) and exits."""
        self.process.stop()

    def start_again(self, timeout: float = 30) -> None:
        """Start a stopped emulator again: same port, and the data it wrote when it stopped."""
        watcher = _ReadyLineWatcher(self.process.log_path)
        self.process = self.process.respawn()
        self.process.wait_until(watcher, timeout)

    def set_fault(self, status: int | None) -> None:
        """Answer every request with `status` (429 or 503) until called with None."""
        # The emulator's certificate is self-signed and it listens on 127.0.0.1 only.
        context = ssl._create_unverified_context()  # noqa: S323
        request = urllib.request.Request(  # noqa: S310  # the emulator's own https URL
            f"{self.endpoint}_devhost/fault",
            data=json.dumps({"status": status}).encode(),
            method="POST",
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            response.read()


class _ReadyLineWatcher:
    """Finds the emulator's `{"ready":true,"port":N}` line in its log, ignoring earlier runs' output
    (the log is opened for append, so a reused log directory may hold stale ready lines)."""

    def __init__(self, log_path: Path) -> None:
        self._log_path = log_path
        self._offset = log_path.stat().st_size if log_path.exists() else 0
        self.port: int | None = None

    def __call__(self) -> bool:
        try:
            with self._log_path.open("rb") as log:
                log.seek(self._offset)
                new_output = log.read()
        except OSError:
            return False
        for line in new_output.decode(errors="replace").splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("ready") is True:
                self.port = int(message["port"])
                return True
        return False


def start_cosmos_emulator(
    log_dir: Path,
    port: int | None = None,
    timeout: float = 30,
    data_file: Path | None = None,
    save_interval_ms: int = 0,
) -> CosmosEmulator:
    """Start the emulator on `port` (None: the OS picks one, read back from the ready line) and wait
    until it listens. Raises ServiceStartError with the log tail if it exits or times out.

    With `data_file` it loads its data from there and writes it back when it stops (and every
    `save_interval_ms` while it changes, if given)."""
    log_path = log_dir / "cosmos-emulator.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    watcher = _ReadyLineWatcher(log_path)
    argv = ["node", str(EMULATOR_SCRIPT), "--port", str(port or 0), "--host", HOST]
    if data_file is not None:
        argv += ["--data-file", str(data_file.absolute()), "--save-interval-ms", str(save_interval_ms)]
    process = start_process("cosmos-emulator", argv, log_path=log_path, env=node_environment(), cwd=NODE_DIR)
    try:
        process.wait_until(watcher, timeout)
    except BaseException:
        process.stop()
        raise
    if watcher.port is None:  # pragma: no cover - wait_until returned, so the watcher saw the line
        process.stop()
        raise ServiceStartError(f"cosmos-emulator reported no port; see {log_path}")
    # Started again later (a fault's stop and start), it must come back on the same port.
    process.argv[process.argv.index("--port") + 1] = str(watcher.port)
    return CosmosEmulator(process=process, port=watcher.port)
