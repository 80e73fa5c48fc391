"""The local host's change-feed processor (devhost/host/change_feed.py) as two hosts at once against one
emulator: the leases split between them, no lease is owned by both, every document is handled, and when
one host stops the other takes its leases over and carries on from their checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient

from devhost.host.app_index import FunctionSpec
from devhost.host.change_feed import ChangeFeedTrigger, TriggerConfig
from tests.support.polling import eventually

if TYPE_CHECKING:
    from devhost.services.cosmos import CosmosEmulator

LEASES = 4


class Processor:
    """One host's processor for one trigger, recording which documents it was handed."""

    def __init__(self, owner: str, emulator: CosmosEmulator, database: str, tmp_path: Path) -> None:
        self.owner = owner
        self.handled: list[str] = []
        spec = FunctionSpec(name="on_change", user_function=lambda documents: None, bindings=())
        config = TriggerConfig(
            connection_string=emulator.connection_string,
            database=database,
            container="watched",
            lease_database=database,
            lease_container="leases",
            lease_prefix="on-change-",
            start_from_beginning=True,
            start_from_time=None,
            max_items=7,
            poll_delay_seconds=0.05,
        )
        self.trigger = ChangeFeedTrigger(spec, config, self._invoke, tmp_path / owner, owner)
        self.task: asyncio.Task[None] | None = None

    async def _invoke(
        self,
        spec: FunctionSpec,
        trigger_value: Any,
        *,
        summary: str = "",
        trace_parent: str | None = None,
        retry_count: int = 0,
    ) -> None:
        self.handled.extend(json.loads(d.to_json())["id"] for d in trigger_value)

    def start(self) -> None:
        self.task = asyncio.create_task(self.trigger.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    @property
    def owned(self) -> set[str]:
        return set(self.trigger.owned_leases)


@pytest.fixture
async def watched(
    cosmos_emulator: CosmosEmulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, ContainerProxy, ContainerProxy]]:
    monkeypatch.setenv("DEVHOST_CHANGE_FEED_LEASES", str(LEASES))
    name = f"leases_{uuid.uuid4().hex[:10]}"
    async with CosmosClient(cosmos_emulator.endpoint, credential=cosmos_emulator.key) as client:
        database = await client.create_database(name)
        container = await database.create_container("watched", partition_key=PartitionKey("/pk"))
        leases = await database.create_container("leases", partition_key=PartitionKey("/id"))
        yield name, container, leases
        await client.delete_database(name)


async def write(container: ContainerProxy, prefix: str, count: int) -> set[str]:
    ids = {f"{prefix}-{i}" for i in range(count)}
    for doc_id in sorted(ids):
        await container.upsert_item({"id": doc_id, "pk": uuid.uuid4().hex})
    return ids


async def lease_owners(leases: ContainerProxy) -> dict[str, str | None]:
    return {d["id"]: d.get("Owner") async for d in leases.query_items("SELECT * FROM c")}


async def test_two_hosts_split_the_leases_and_handle_every_document(
    cosmos_emulator: CosmosEmulator, watched: tuple[str, ContainerProxy, ContainerProxy], tmp_path: Path
) -> None:
    database, container, leases = watched
    before = await write(container, "before", 30)
    a, b = (Processor(name, cosmos_emulator, database, tmp_path) for name in ("host-a:7071", "host-b:7072"))
    a.start()
    b.start()
    try:

        def split() -> bool:
            return len(a.owned) == len(b.owned) == LEASES // 2 and not a.owned & b.owned

        await eventually(lambda: asyncio.sleep(0, split()), bool, timeout=20, what="the leases split 2/2")
        owners = await lease_owners(leases)
        assert len(owners) == LEASES
        assert {lease for lease, owner in owners.items() if owner == a.owner} == a.owned
        assert {lease for lease, owner in owners.items() if owner == b.owner} == b.owned

        # every document handled; those written after the split exactly once, by one host
        await eventually(
            lambda: asyncio.sleep(0, set(a.handled) | set(b.handled)),
            lambda seen: before <= seen,
            timeout=20,
            what="every document written before the hosts started",
        )
        handled_before = len(a.handled) + len(b.handled)
        after = await write(container, "after", 40)
        await eventually(
            lambda: asyncio.sleep(0, set(a.handled) | set(b.handled)),
            lambda seen: after <= seen,
            timeout=20,
            what="every document written after the split",
        )
        counts = Counter(i for i in a.handled + b.handled if i.startswith("after-"))
        assert set(counts.values()) == {1}, counts
        assert {i for i in a.handled if i.startswith("after-")} and {
            i for i in b.handled if i.startswith("after-")
        }, "both hosts handled documents"
        assert not (set(a.handled) & set(b.handled) & after)
        assert split(), "the split held"
        assert handled_before >= len(before)

        # host b stops: it releases its leases, host a takes them and carries on from their checkpoints
        await b.stop()
        await eventually(
            lambda: asyncio.sleep(0, len(a.owned)), lambda n: n == LEASES, timeout=20, what="a owns all"
        )
        assert set((await lease_owners(leases)).values()) == {a.owner}
        b_seen = set(b.handled)
        late = await write(container, "late", 20)
        await eventually(
            lambda: asyncio.sleep(0, set(a.handled)), lambda seen: late <= seen, timeout=20, what="late docs"
        )
        assert not (b_seen & set(a.handled) & after), "a did not re-handle what b had checkpointed"
    finally:
        for processor in (a, b):
            if processor.task is not None and not processor.task.done():
                await processor.stop()


async def test_a_lease_changed_by_another_host_is_let_go(
    cosmos_emulator: CosmosEmulator, watched: tuple[str, ContainerProxy, ContainerProxy], tmp_path: Path
) -> None:
    """An ETag-conditional takeover: whoever changes a lease last owns it; the other notices and stops."""
    database, _, leases = watched
    a = Processor("host-a:7071", cosmos_emulator, database, tmp_path)
    a.start()
    try:
        await eventually(lambda: asyncio.sleep(0, len(a.owned)), lambda n: n == LEASES, timeout=20)
        lease = await leases.read_item(sorted(a.owned)[0], partition_key=sorted(a.owned)[0])
        lease["Owner"] = "host-z:7099"  # another host's takeover (renewed far ahead, so not expired)
        lease["timestamp"] = time.time() + 3600
        await leases.replace_item(lease["id"], {k: v for k, v in lease.items() if not k.startswith("_")})
        await eventually(
            lambda: asyncio.sleep(0, lease["id"] in a.owned), lambda owned: not owned, timeout=20
        )
        owners = await lease_owners(leases)
        assert owners[lease["id"]] == "host-z:7099"
        assert sum(owner == a.owner for owner in owners.values()) == LEASES - 1
    finally:
        await a.stop()
