"""The local stack: PostgreSQL, the Cosmos DB emulator, Azurite and the Event Hubs stand-in,
started on free 127.0.0.1 ports, migrated and provisioned, and described in
`.devhost/stack.json` for operators, tools and `python -m devhost host`.

Every service keeps its data in the state directory (PostgreSQL's data directory, the Cosmos
emulator's data file, Azurite's directory, the Event Hubs stand-in's journal), so a service the
fault control stops and starts comes back with its data. A fresh start (the default) deletes that
data first; `keep_data` keeps it from the last run."""

from __future__ import annotations

import json
import logging
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from azure.cosmos import CosmosClient
from azure.storage.blob import BlobServiceClient

from devhost.cosmos_provisioning import provision
from devhost.services.azurite import Azurite, start_azurite
from devhost.services.cosmos import CosmosEmulator, start_cosmos_emulator
from devhost.services.eventhubs import EventHubsStandIn, start_eventhubs_standin
from devhost.services.postgres import PostgresServer, remove_data_dir, start_postgres
from devhost.settings_file import PROJECT_DIR, example_settings
from devhost.tokens import public_key_pem
from shared_code.db.migrations import migrate
from shared_code.db.roles import ensure_app_login

log = logging.getLogger("devhost.stack")

STATE_DIR = PROJECT_DIR / ".devhost"
APP_DATABASE = "chorus"
# The app connects as this login, not as the owner, so that row-level security applies.
APP_LOGIN = "chorus_api"
# With --keep-data the Cosmos emulator also saves while it changes, so that a crash loses at most this.
COSMOS_SAVE_INTERVAL_MS = 2000


class DataPaths:
    """Where each service keeps its data inside the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.postgres = state_dir / "pgdata"
        self.cosmos = state_dir / "cosmos-data.json"
        self.azurite = state_dir / "azurite"
        self.eventhubs = state_dir / "eventhubs-journal.jsonl"

    def remove_all(self) -> None:
        remove_data_dir(self.postgres)
        self.cosmos.unlink(missing_ok=True)
        shutil.rmtree(self.azurite, ignore_errors=True)
        self.eventhubs.unlink(missing_ok=True)


@dataclass
class LocalStack:
    state_dir: Path = STATE_DIR
    durable: bool = True
    postgres: PostgresServer | None = None
    cosmos: CosmosEmulator | None = None
    azurite: Azurite | None = None
    eventhubs: EventHubsStandIn | None = None
    settings: dict[str, str] = field(default_factory=dict)
    control_url: str | None = None
    # Services the fault control stopped on purpose: not a crash.
    held: set[str] = field(default_factory=set)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data(self) -> DataPaths:
        return DataPaths(self.state_dir)

    def start(self, fresh: bool = True) -> None:
        """Start every service (in parallel), then migrate and provision. Stops all on failure.

        `fresh` deletes every service's data from the last run first; otherwise it is kept."""
        data = self.data
        if fresh:
            data.remove_all()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        save_interval = 0 if fresh else COSMOS_SAVE_INTERVAL_MS
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                futures: dict[str, Future[Any]] = {
                    "postgres": pool.submit(
                        start_postgres, data.postgres, self.log_dir, durable=self.durable
                    ),
                    "cosmos": pool.submit(
                        start_cosmos_emulator,
                        self.log_dir,
                        data_file=data.cosmos,
                        save_interval_ms=save_interval,
                    ),
                    "azurite": pool.submit(start_azurite, self.log_dir, data_dir=data.azurite),
                    "eventhubs": pool.submit(start_eventhubs_standin, self.log_dir, data_file=data.eventhubs),
                }
            # Keep every service that started, so that one failing still stops the others.
            errors: list[BaseException] = []
            for name, future in futures.items():
                error = future.exception()
                if error is None:
                    setattr(self, name, future.result())
                else:
                    errors.append(error)
            if errors:
                raise errors[0]
            self._prepare()
        except BaseException:
            self.stop()
            raise

    def _prepare(self) -> None:
        assert self.postgres is not None
        assert self.cosmos is not None
        assert self.azurite is not None
        assert self.eventhubs is not None
        with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{APP_DATABASE}"')
        applied = migrate(self.postgres.url(APP_DATABASE))
        ensure_app_login(self.postgres.url(APP_DATABASE), APP_LOGIN)
        log.info("PostgreSQL: %d migration(s) applied", len(applied))

        settings = example_settings()
        with CosmosClient(self.cosmos.endpoint, credential=self.cosmos.key) as cosmos:
            containers = provision(cosmos, settings["COSMOS_DATABASE"])
        log.info("Cosmos DB: database %s with %s", settings["COSMOS_DATABASE"], ", ".join(containers))

        blob = BlobServiceClient.from_connection_string(self.azurite.connection_string)
        if not blob.get_container_client(settings["MEDIA_CONTAINER"]).exists():
            blob.create_container(settings["MEDIA_CONTAINER"])
        blob.close()

        settings.update(
            {
                "AzureWebJobsStorage": self.azurite.connection_string,
                "POSTGRES_URL": self.postgres.url(APP_DATABASE, user=APP_LOGIN),
                "CosmosDB": self.cosmos.connection_string,
                "EventHubs": self.eventhubs.connection_string,
                "EVENTHUB_NAME": self.eventhubs.hub_name,
                "MediaStorage": self.azurite.connection_string,
                "AUTH_PUBLIC_KEYS_PEM": public_key_pem(self.state_dir),
            }
        )
        self.settings = settings

    def apply_to_environment(self) -> None:
        os.environ.update(self.settings)

    def describe(self) -> dict[str, Any]:
        assert self.postgres is not None
        assert self.cosmos is not None
        assert self.azurite is not None
        assert self.eventhubs is not None
        return {
            "stackPid": os.getpid(),
            "control": self.control_url,
            "postgres": {
                "url": self.postgres.url(APP_DATABASE, user=APP_LOGIN),
                "adminUrl": self.postgres.url(APP_DATABASE),
                "pid": self.postgres.process.pid,
                "dataDir": str(self.postgres.data_dir),
            },
            "cosmos": {
                "endpoint": self.cosmos.endpoint,
                "connectionString": self.cosmos.connection_string,
                "pid": self.cosmos.process.pid,
                "dataFile": str(self.data.cosmos),
            },
            "azurite": {
                "connectionString": self.azurite.connection_string,
                "pid": self.azurite.process.pid,
                "dataDir": str(self.data.azurite),
            },
            "eventHubs": {
                "connectionString": self.eventhubs.connection_string,
                "hub": self.eventhubs.hub_name,
                "inspectUrl": f"http://127.0.0.1:{self.eventhubs.http_port}/events",
                "pid": self.eventhubs.process.pid,
                "dataFile": str(self.data.eventhubs),
            },
            "logs": str(self.log_dir),
            # What the app reads (local values only): `python -m devhost env` prints them as exports.
            "appSettings": self.settings,
        }

    def write_stack_file(self) -> Path:
        """Written whole (to a temporary name, then renamed): a reader never sees half of it."""
        path = self.state_dir / "stack.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.describe(), indent=2) + "\n")
        temporary.replace(path)
        return path

    def services(self) -> list[tuple[str, Any]]:
        return [
            (n, s)
            for n, s in (
                ("postgres", self.postgres),
                ("cosmos", self.cosmos),
                ("azurite", self.azurite),
                ("eventhubs", self.eventhubs),
            )
            if s is not None
        ]

    def service(self, name: str) -> Any:
        found = dict(self.services()).get(name)
        if found is None:
            raise KeyError(name)
        return found

    def crashed(self) -> list[str]:
        """Services whose process has exited on its own (not stopped by the fault control)."""
        return [
            name for name, service in self.services() if name not in self.held and not service.process.alive()
        ]

    def stop(self) -> None:
        for name, service in reversed(self.services()):
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", name)
        (self.state_dir / "stack.json").unlink(missing_ok=True)
