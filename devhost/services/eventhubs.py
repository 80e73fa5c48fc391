"""The Event Hubs stand-in (devhost/node/eventhubs-standin.js) on free ports.

The real azure-eventhub SDK talks to it over plain AMQP: `UseDevelopmentEmulator=true` in the connection
string turns TLS off, and with TLS off the SDK connects to the port given in the Endpoint
(`Endpoint=sb://127.0.0.1:<port>`), so the app's standard `from_connection_string` path needs no extra
client arguments. A small HTTP port shows what arrived (`GET /events`), for tests and tools.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from devhost.services.process import NODE_DIR, ManagedProcess, ServiceStartError, port_accepts, start_process

HOST = "127.0.0.1"
SCRIPT = NODE_DIR / "eventhubs-standin.js"
# The stand-in accepts any CBS token, so the SAS key only has to let the SDK sign one.
SAS_KEY_NAME = "devhost"
SAS_KEY = "devhost-not-a-secret"


@dataclass
class EventHubsStandIn:
    process: ManagedProcess
    amqp_port: int
    http_port: int
    hub_name: str
    partition_count: int

    @property
    def connection_string(self) -> str:
        """A namespace-level connection string; the hub name is passed separately, as the app does."""
        return (
            f"Endpoint=sb://{HOST}:{self.amqp_port};SharedAccessKeyName={SAS_KEY_NAME};"
            f"SharedAccessKey={SAS_KEY};UseDevelopmentEmulator=true"
        )

    def received(self, hub: str | None = None) -> list[dict[str, Any]]:
        """Every event the stand-in holds, in arrival order; all hubs when `hub` is None.

        Each is `{hub, partition, sequenceNumber, offset, partitionKey, body, bodyEncoding, properties,
        messageId, contentType, enqueuedTime}`. A data body is text when it is UTF-8 (bodyEncoding "utf8"),
        else base64 ("base64"); AMQP value and sequence bodies come as JSON ("amqp-value",
        "amqp-sequence"). `enqueuedTime` is ISO 8601 UTC; `offset` is a string, as the SDK has it.
        """
        query = f"?{urllib.parse.urlencode({'hub': hub})}" if hub is not None else ""
        return cast(list[dict[str, Any]], self._request("GET", f"/events{query}"))

    def clear(self, hub: str | None = None) -> None:
        """Drops the stored events, like retention expiring them: sequence numbers and offsets carry on."""
        query = f"?{urllib.parse.urlencode({'hub': hub})}" if hub is not None else ""
        self._request("DELETE", f"/events{query}")

    def stop(self) -> None:
        self.process.stop()

    def start_again(self, timeout: float = 20) -> None:
        """Start a stopped stand-in again: same ports, and the events in its journal."""
        self.process = self.process.respawn()
        self.process.wait_until(
            lambda: port_accepts(HOST, self.amqp_port) and port_accepts(HOST, self.http_port), timeout
        )

    def set_unavailable(self, unavailable: bool) -> None:
        """Drop every AMQP connection and refuse new ones (True) until called with False."""
        self._request("POST", "/fault", {"unavailable": unavailable})

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{HOST}:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # fixed http URL
            return json.load(response)


def start_eventhubs_standin(
    log_dir: Path,
    hub_name: str = "chorus-events",
    partitions: int = 4,
    timeout: float = 20,
    data_file: Path | None = None,
) -> EventHubsStandIn:
    """Start the stand-in on free ports; with `data_file`, its events are journaled there and
    replayed at start."""
    if not (NODE_DIR / "node_modules" / "rhea").is_dir():
        raise ServiceStartError(f"rhea is missing in {NODE_DIR}: run `make install` (it runs npm ci there)")
    log_path = log_dir / "eventhubs-standin.log"
    # The log is appended to, so only a ready line written after this start counts.
    log_start = log_path.stat().st_size if log_path.exists() else 0
    argv = [
        "node",
        str(SCRIPT),
        "--host",
        HOST,
        # Port 0: the stand-in binds free ports itself and reports them, so there is no race for them.
        "--port",
        "0",
        "--http-port",
        "0",
        "--hub",
        hub_name,
        "--partitions",
        str(partitions),
    ]
    if data_file is not None:
        argv += ["--data-file", str(data_file.absolute())]
    process = start_process("eventhubs-standin", argv, log_path, cwd=NODE_DIR)
    ports: dict[str, int] = {}

    def ready() -> bool:
        line = _ready_line(log_path, log_start)
        if line is None:
            return False
        ports.update(amqp=int(line["amqpPort"]), http=int(line["httpPort"]))
        return port_accepts(HOST, ports["amqp"]) and port_accepts(HOST, ports["http"])

    process.wait_until(ready, timeout)
    # Started again later (a fault's stop and start), it must come back on the same ports.
    process.argv[process.argv.index("--port") + 1] = str(ports["amqp"])
    process.argv[process.argv.index("--http-port") + 1] = str(ports["http"])
    return EventHubsStandIn(process, ports["amqp"], ports["http"], hub_name, partitions)


def _ready_line(log_path: Path, start: int) -> dict[str, Any] | None:
    try:
        with log_path.open("rb") as log:
            log.seek(start)
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith('{"ready":true'):
            try:
                return cast(dict[str, Any], json.loads(line))
            except ValueError:  # the line is still being written
                return None
    return None
