"""What the fault suite shares: the fault host's settings, people on a host, and the report of measured
figures."""

from __future__ import annotations

from typing import Any

import aiohttp

from devhost.settings_file import LOAD_TEST_RATE_LIMITS
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_over_http
from tests.support.running_stack import HostProcess, RunningStack

SERVICES = ("postgres", "cosmos", "eventhubs", "azurite")


# Small retry figures so that a poison event goes dead within seconds and a claim left by a killed
# host is taken over within seconds; the outage tests then also show that an outage spends no attempt
# (with 3 attempts 1 s apart, an outage that spent them would leave dead events behind).
FAULT_HOST_SETTINGS = {
    # The suite's storms are load: generous rate limits, set explicitly (docs/api.md "Limits").
    **LOAD_TEST_RATE_LIMITS,
    "OUTBOX_MAX_ATTEMPTS": "3",
    "OUTBOX_BACKOFF_BASE_SECONDS": "1",
    "OUTBOX_CLAIM_LEASE_SECONDS": "10",
    # Two worker processes, as the Functions host can run: every fault is seen by a host whose HTTP,
    # timers and change-feed leases are spread over workers (tests/faults/test_host_crashes.py also
    # kills one worker alone).
    "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
}


REPORT: list[dict[str, Any]] = []


def record(fault: str, **figures: Any) -> None:
    """Keep what a fault test measured, for the report."""
    REPORT.append({"fault": fault, **figures})


class People:
    """New users for one test, over HTTP, on a given host."""

    def __init__(self, http: aiohttp.ClientSession, stack: RunningStack, host: HostProcess) -> None:
        self._http, self._stack, self._host = http, stack, host

    async def new(self, role: str = "user") -> ApiUser:
        return await onboard_over_http(self._http, self._host.base_url, self._stack.state_dir, role=role)

    def via(self, user: ApiUser, other: HostProcess) -> ApiUser:
        """The same user, talking to another host."""
        return ApiUser(user.http, other.base_url, user.token, user.id, user.username)
