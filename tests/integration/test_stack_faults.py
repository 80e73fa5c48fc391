"""The stack's fault control (`StackControl`, `python -m devhost fault`), seen through the real SDKs:
each action does what it says while it lasts, and after `heal` (or `start`) the service answers
again on the same port with the same data."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos import ContainerProxy, CosmosClient, PartitionKey
from azure.cosmos.exceptions import CosmosHttpResponseError
from azure.eventhub import EventData, EventHubProducerClient
from azure.eventhub.exceptions import EventHubError
from azure.storage.blob import BlobServiceClient

from devhost.faults import FaultError, StackControl
from devhost.settings_file import PROJECT_DIR
from tests.support.stack_process import StackProcess

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

T = TypeVar("T")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    process = StackProcess(tmp_path_factory.mktemp("faults") / "state")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def control(stack: StackProcess) -> StackControl:
    return StackControl.from_state_dir(stack.state_dir)


@pytest.fixture
def cosmos(stack: StackProcess, control: StackControl) -> Iterator[ContainerProxy]:
    """A container of this test's own, through a client that neither retries nor waits long."""
    client = CosmosClient(
        stack.described["cosmos"]["endpoint"],
        credential=stack.cosmos_key,
        retry_total=0,
        connection_timeout=2,
        read_timeout=2,
    )
    database = client.get_database_client(stack.described["appSettings"]["COSMOS_DATABASE"])
    container = database.create_container(f"faults_{uuid.uuid4().hex[:8]}", partition_key=PartitionKey("/pk"))
    try:
        yield container
    finally:
        control.heal("cosmos")
        database.delete_container(container.id)
        client.close()


def eventually(probe: Callable[[], T], timeout: float = 30.0, what: str = "the service to answer") -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_cosmos_fail_503_answers_every_request_503_until_healed(
    cosmos: ContainerProxy, control: StackControl
) -> None:
    cosmos.upsert_item({"id": "a", "pk": "p"})
    assert control.inject("cosmos", "fail-503")["failingWith"] == 503
    with pytest.raises(CosmosHttpResponseError) as failed:
        cosmos.read_item("a", partition_key="p")
    assert failed.value.status_code == 503
    assert control.heal("cosmos")["failingWith"] is None
    assert cosmos.read_item("a", partition_key="p")["id"] == "a"


def test_cosmos_fail_429_throttles_with_a_retry_after_until_healed(
    cosmos: ContainerProxy, control: StackControl
) -> None:
    cosmos.upsert_item({"id": "a", "pk": "p"})
    control.inject("cosmos", "fail-429")
    with pytest.raises(CosmosHttpResponseError) as failed:
        cosmos.read_item("a", partition_key="p")
    assert failed.value.status_code == 429
    assert int(failed.value.headers["x-ms-retry-after-ms"]) > 0
    control.heal("cosmos")
    assert cosmos.read_item("a", partition_key="p")["id"] == "a"


def test_cosmos_stop_refuses_connections_and_start_brings_back_the_same_data(
    cosmos: ContainerProxy, control: StackControl, stack: StackProcess
) -> None:
    cosmos.upsert_item({"id": "a", "pk": "p", "n": 1})
    assert control.inject("cosmos", "stop")["stopped"] is True
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        cosmos.read_item("a", partition_key="p")
    control.inject("cosmos", "start")
    assert cosmos.read_item("a", partition_key="p")["n"] == 1
    control.inject("cosmos", "restart")
    assert cosmos.read_item("a", partition_key="p")["n"] == 1
    assert (
        json.loads((stack.state_dir / "stack.json").read_text())["cosmos"]["endpoint"]
        == (stack.described["cosmos"]["endpoint"])
    )


def test_cosmos_pause_hangs_requests_and_resume_answers_them(
    cosmos: ContainerProxy, control: StackControl
) -> None:
    cosmos.upsert_item({"id": "a", "pk": "p"})
    assert control.inject("cosmos", "pause")["paused"] is True
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        cosmos.read_item("a", partition_key="p")
    control.inject("cosmos", "resume")
    assert eventually(lambda: cosmos.read_item("a", partition_key="p"))["id"] == "a"


def test_postgres_kill_connections_ends_every_app_session_and_new_ones_work(
    stack: StackProcess, control: StackControl
) -> None:
    app_url = stack.described["postgres"]["url"]
    with psycopg.connect(app_url, autocommit=True) as victim:
        victim.execute("SELECT 1")
        control.inject("postgres", "kill-connections")
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
    with psycopg.connect(app_url) as fresh:
        assert fresh.execute("SELECT 1").fetchone() == (1,)


def test_postgres_stop_and_start_keep_the_port_and_the_data(
    stack: StackProcess, control: StackControl
) -> None:
    admin_url = stack.described["postgres"]["adminUrl"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS fault_kept (n int)")
        conn.execute("INSERT INTO fault_kept VALUES (7)")
    control.inject("postgres", "stop")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(admin_url, connect_timeout=2)
    control.inject("postgres", "heal")
    with psycopg.connect(admin_url) as conn:
        assert (7,) in conn.execute("SELECT n FROM fault_kept").fetchall()


def send_one(stack: StackProcess, body: str) -> None:
    producer = EventHubProducerClient.from_connection_string(
        stack.described["eventHubs"]["connectionString"],
        eventhub_name=stack.described["eventHubs"]["hub"],
        retry_total=0,
    )
    with producer:
        batch = producer.create_batch(partition_key=body)
        batch.add(EventData(body))
        producer.send_batch(batch, timeout=5)


def received_bodies(stack: StackProcess) -> list[str]:
    with urllib.request.urlopen(stack.described["eventHubs"]["inspectUrl"], timeout=10) as response:
        return [event["body"] for event in json.load(response)]


def test_eventhubs_unavailable_refuses_producers_until_healed_and_keeps_its_events(
    stack: StackProcess, control: StackControl
) -> None:
    before = f"before-{uuid.uuid4().hex[:8]}"
    after = f"after-{uuid.uuid4().hex[:8]}"
    send_one(stack, before)
    assert control.inject("eventhubs", "unavailable")["unavailable"] is True
    with pytest.raises(EventHubError):
        send_one(stack, "lost")
    control.heal("eventhubs")
    send_one(stack, after)
    bodies = received_bodies(stack)
    assert before in bodies
    assert after in bodies
    assert "lost" not in bodies


def test_eventhubs_restart_keeps_events_and_ports(stack: StackProcess, control: StackControl) -> None:
    body = f"kept-{uuid.uuid4().hex[:8]}"
    send_one(stack, body)
    control.inject("eventhubs", "restart")
    assert body in received_bodies(stack)
    send_one(stack, f"{body}-again")


def test_azurite_stop_and_start_keep_blobs(stack: StackProcess, control: StackControl) -> None:
    name = f"{uuid.uuid4().hex}.txt"
    connection_string = stack.described["azurite"]["connectionString"]
    media = stack.described["appSettings"]["MEDIA_CONTAINER"]
    with BlobServiceClient.from_connection_string(connection_string) as blobs:
        blobs.get_container_client(media).upload_blob(name, b"kept")
    control.inject("azurite", "stop")
    control.inject("azurite", "start")
    with BlobServiceClient.from_connection_string(connection_string) as blobs:
        assert blobs.get_container_client(media).download_blob(name).readall() == b"kept"


def test_the_cli_applies_a_fault_and_refuses_one_that_does_not_apply(
    stack: StackProcess, control: StackControl
) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devhost", "fault", *args, "--state-dir", str(stack.state_dir)],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
        )

    applied = cli("cosmos", "fail-503")
    try:
        assert applied.returncode == 0, applied.stderr
        assert json.loads(applied.stdout)["failingWith"] == 503
        assert control.status()["cosmos"]["failingWith"] == 503
    finally:
        assert cli("cosmos", "heal").returncode == 0
    refused = cli("azurite", "fail-503")
    assert refused.returncode == 1
    assert "applies to cosmos only" in refused.stderr
    with pytest.raises(FaultError):
        control.inject("postgres", "unavailable")


def test_no_running_stack_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="no running stack"):
        StackControl.from_state_dir(tmp_path)


def test_a_second_stack_on_the_same_state_dir_is_refused_and_the_first_keeps_its_data(
    stack: StackProcess,
) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "devhost", "stack", "--state-dir", str(stack.state_dir)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert "a stack is already running" in second.stderr
    with psycopg.connect(stack.described["postgres"]["adminUrl"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
