"""The Functions host's singleton lock, on a blob lease in the host storage account (Azurite locally).

In Azure a timer function runs on one instance at a time: its listener holds a lease on the blob
`azure-webjobs-hosts/locks/{hostId}/{function}.Listener` in AzureWebJobsStorage, renews it while it
runs, and every other instance (and every other worker process) polls to take it over. The local host
does the same against Azurite through azure-storage-blob, so two workers, or two hosts sharing a stack,
never run one timer at once.

A holder proposes a lease id derived from its name (machine, port and worker index): a worker
restarted in the same place takes its own lease back at once instead of waiting for it to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient

from devhost.host.cancellation import raise_if_stopping

log = logging.getLogger("devhost.singleton")

LOCK_CONTAINER = "azure-webjobs-hosts"
# Blob leases last 15 to 60 s. The host's listener lock renews well before expiry; a holder that dies
# leaves the lock to expire, and the others poll for it this often.
LEASE_SECONDS = int(os.environ.get("DEVHOST_SINGLETON_LEASE_SECONDS", "15"))
RENEW_SECONDS = LEASE_SECONDS / 3
POLL_SECONDS = float(os.environ.get("DEVHOST_SINGLETON_POLL_SECONDS", "2"))
_LEASE_NAMESPACE = uuid.UUID("1f0e8a52-2b1c-4c53-9a57-7d7c3d3f6a10")


def host_id(environ: dict[str, str] | None = None) -> str:
    """The host id that scopes locks: AzureFunctionsWebHost__hostid if set, as in Azure, else one fixed
    local id (every host against one stack is one app, as instances of one Function App are)."""
    environ = dict(os.environ) if environ is None else environ
    return environ.get("AzureFunctionsWebHost__hostid") or "chorus-devhost"


def storage_connection(environ: dict[str, str] | None = None) -> str | None:
    """AzureWebJobsStorage, if it names a real account (not the settings file's placeholder)."""
    environ = dict(os.environ) if environ is None else environ
    value = environ.get("AzureWebJobsStorage", "")
    if not value or value.strip().lower().startswith("usedevelopmentstorage"):
        return None
    return value


class SingletonLock:
    """One named lock: `try_acquire`, `renew`, `release`; each says whether this holder has it."""

    def __init__(self, connection_string: str, scope: str, name: str, holder: str) -> None:
        self.name = name
        self.holder = holder
        self._service = BlobServiceClient.from_connection_string(connection_string)
        self._container = self._service.get_container_client(LOCK_CONTAINER)
        self._blob = self._container.get_blob_client(f"locks/{scope}/{name}")
        self._closed = False
        self._lease_id = str(uuid.uuid5(_LEASE_NAMESPACE, f"{holder}|{name}"))

    @property
    def _lease(self) -> BlobLeaseClient:
        # A new client per call: the SDK's forgets its id on release; this holder's id never changes.
        return BlobLeaseClient(self._blob, lease_id=self._lease_id)

    async def try_acquire(self) -> bool:
        for _ in range(2):
            try:
                await self._lease.acquire(lease_duration=LEASE_SECONDS)
                return True
            except ResourceNotFoundError:
                await self._create_blob()
            except HttpResponseError as exc:
                if exc.status_code == 409:  # another holder has it
                    return False
                raise
        return False

    async def renew(self) -> bool:
        try:
            await self._lease.renew()
            return True
        except HttpResponseError as exc:
            if exc.status_code in (404, 409, 412):  # taken over, or the blob is gone
                return False
            raise

    async def release(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(AzureError):
            await self._lease.release()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._service.close()

    async def _create_blob(self) -> None:
        """The lock's blob (and its container), as the host creates them on first use."""
        with contextlib.suppress(ResourceExistsError):
            await self._container.create_container()
        with contextlib.suppress(ResourceExistsError):
            await self._blob.upload_blob(b"", overwrite=False)


async def run_while_held(
    lock: SingletonLock, body: Callable[[asyncio.Event], Awaitable[None]], label: str
) -> None:
    """Until cancelled: wait for `lock`, then run `body(lost)` while renewing it. `lost` is set when the
    lock is taken over or could not be renewed before it expired; `body` returns at its next chance
    (a run under way finishes first, as the host lets an invocation finish when its listener stops)."""
    try:
        while True:
            if not await _acquire(lock, label):
                await asyncio.sleep(POLL_SECONDS)
                continue
            log.info("%s: took the singleton lock (%s)", label, lock.holder)
            lost = asyncio.Event()
            keeper = asyncio.create_task(_keep(lock, lost, label), name=f"{label} lock renewal")
            try:
                await body(lost)
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            if not lost.is_set():
                return
    finally:
        await asyncio.shield(_release(lock))


async def _acquire(lock: SingletonLock, label: str) -> bool:
    try:
        return await lock.try_acquire()
    except AzureError as exc:
        raise_if_stopping(exc)
        log.warning(
            "%s: the host storage (AzureWebJobsStorage) did not answer for the singleton lock (%s); "
            "the timer waits until it does",
            label,
            getattr(exc, "status_code", None) or type(exc).__name__,
        )
        return False


async def _keep(lock: SingletonLock, lost: asyncio.Event, label: str) -> None:
    renewed = time.monotonic()
    while True:
        await asyncio.sleep(RENEW_SECONDS)
        try:
            if await lock.renew():
                renewed = time.monotonic()
                continue
            why = "another holder took it"
        except Exception as exc:  # whatever failed, the lease is ours until it expires
            raise_if_stopping(exc)
            if time.monotonic() - renewed < LEASE_SECONDS - RENEW_SECONDS:
                log.warning(
                    "%s: renewing the singleton lock failed (%s); trying again", label, type(exc).__name__
                )
                continue
            why = f"renewing failed ({type(exc).__name__}) until it expired"
        log.warning("%s: lost the singleton lock (%s); this worker stops firing it", label, why)
        lost.set()
        return


async def _release(lock: SingletonLock) -> None:
    await lock.release()
    await lock.close()
