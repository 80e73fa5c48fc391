"""FUNCTIONS_WORKER_PROCESS_COUNT as the local host reads it (devhost/host/workers.py)."""

from __future__ import annotations

import pytest

from devhost.host.workers import (
    DEFAULT_WORKERS_CAP,
    MAX_WORKERS,
    WorkerCountError,
    default_worker_count,
    worker_count,
)


def test_the_setting_is_honoured() -> None:
    assert worker_count({"FUNCTIONS_WORKER_PROCESS_COUNT": "3"}) == 3


@pytest.mark.parametrize("environ", [{}, {"FUNCTIONS_WORKER_PROCESS_COUNT": ""}])
def test_absent_or_empty_means_the_default(environ: dict[str, str]) -> None:
    assert worker_count(environ) == default_worker_count()


def test_the_default_follows_the_cores_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(16)))
    assert default_worker_count() == DEFAULT_WORKERS_CAP
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    assert default_worker_count() == 1


@pytest.mark.parametrize("raw", ["0", "-1", "two", str(MAX_WORKERS + 1)])
def test_a_count_out_of_range_is_refused_with_what_to_set(raw: str) -> None:
    with pytest.raises(WorkerCountError, match=f"1 to {MAX_WORKERS}"):
        worker_count({"FUNCTIONS_WORKER_PROCESS_COUNT": raw})
