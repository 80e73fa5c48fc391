"""py-spy against the host process while a scenario's measured phase runs (`python -m bench --profile`).

The collapsed stacks are kept in bench/results/profiles/; the summary (where the host's samples land, by
leaf frame and by library) goes into the scenario's notes as the evidence for what bounds it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = Path(sys.executable).parent / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:]*):?(?P<line>\d*)\)$")
# A leaf frame's file → the part of the stack it belongs to (first match wins).
AREAS = (
    ("json (de)serialisation", ("json/", "orjson")),
    ("pydantic", ("pydantic",)),
    ("JWT / crypto", ("jwt/", "cryptography")),
    ("Cosmos SDK", ("azure/cosmos",)),
    ("azure-core pipeline", ("azure/core",)),
    ("Event Hubs SDK / AMQP", ("azure/eventhub", "pyamqp", "uamqp")),
    ("psycopg", ("psycopg",)),
    ("aiohttp", ("aiohttp", "multidict", "yarl")),
    ("logging", ("logging/",)),
    ("asyncio / selectors / ssl", ("asyncio/", "selectors", "ssl.py")),
    ("local host (devhost)", ("devhost/",)),
    ("app (functions, shared_code)", ("functions/", "shared_code/")),
    ("azure.functions SDK", ("azure/functions",)),
)
# Which of the app's jobs a sample worked for: the first frame, from the root down, that names one. A
# worker's one event loop serves HTTP and runs the relay timer and the change-feed leases, so this says
# how its CPU divides between them. py-spy shows a task's own coroutines only, so a task that a job
# gathered (one Cosmos write of a batch) starts at its own coroutine: hence the markers of the jobs'
# inner parts too. Callbacks the loop runs outside any task (a client transport's reads and writes)
# name no job.
ACTIVITIES = (
    ("HTTP requests", ("HttpFrontEnd", "aiohttp/web_protocol", "functions/http_support")),
    (
        "relay (outbox timer)",
        ("run_timer (", "shared_code/outbox/", "functions/outbox.py", "EventHubsPublisher", "azure/eventhub"),
    ),
    (
        "change feed (fan-out, counters)",
        (
            "devhost/host/change_feed.py",
            "functions/change_feed.py",
            "services/change_feed.py",
            "services/feeds.py",
        ),
    ),
    ("Cosmos projection writes (relay; change-feed counters)", ("CosmosWriter",)),
    ("psycopg (stack cut short: no job named)", ("psycopg",)),
    ("client I/O callbacks (no job named)", ("aiohttp/client", "sslproto", "asyncio/selector_events")),
)


class PySpy:
    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.pid = pid
        self.out = out
        self.rate = rate
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            str(PY_SPY),
            "record",
            "--pid",
            str(self.pid),
            "--format",
            "raw",
            "--rate",
            str(self.rate),
            "--nonblocking",
            # The host process starts the app in worker processes (FUNCTIONS_WORKER_PROCESS_COUNT):
            # sample them all.
            "--subprocesses",
            "-o",
            str(self.out),
        ]
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603

    def stop(self) -> dict[str, Any]:
        if self._process is None:
            return {}
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return {"error": "py-spy did not stop"}
        return (
            summarise(self.out) if self.out.exists() else {"error": "py-spy wrote nothing (ptrace refused?)"}
        )


def summarise(path: Path, top: int = 12) -> dict[str, Any]:
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        leaves[_short(leaf)] += count
        area = _area(frames)
        areas[area] += count
        activities["idle" if area.startswith("idle") else _activity(frames)] += count
        processes[_process(frames)] += count
        for frame in set(frames):
            if "shared_code/" in frame or "functions/" in frame or "devhost/host" in frame:
                inclusive[_short(frame)] += count
    if total == 0:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "by_area_pct": share(areas),
        "by_activity_pct": share(activities),
        "by_process_pct": share(processes),
        "top_leaf_frames_pct": share(leaves),
        "top_app_frames_inclusive_pct": share(inclusive),
        "collapsed_stacks": str(path),
    }


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file}:{match['line']})"


def _activity(frames: list[str]) -> str:
    for frame in frames:
        for activity, markers in ACTIVITIES:
            if any(marker in frame for marker in markers):
                return activity
    return "other (no job named)"


_WORKER = re.compile(r"devhost worker --index (\d+)")


def _process(frames: list[str]) -> str:
    """Which process a sample came from: py-spy --subprocesses names it in the stack's first frames."""
    for frame in frames[:3]:
        match = _WORKER.search(frame)
        if match:
            return f"worker {match[1]}"
    return "host process" if frames and frames[0].startswith("process ") else "single process"


def _area(frames: list[str]) -> str:
    """What a sample was doing: the first frame, from the leaf up, that belongs to a known part."""
    leaf = frames[-1]
    if "select (selectors" in leaf or "epoll" in leaf or "poll (selectors" in leaf:
        return "idle (event loop waiting)"
    if leaf.startswith("_worker (") and "concurrent/futures/thread.py" in leaf:
        return "idle (thread pool waiting)"
    if any("get_env_proxy_for_url" in f or "netrc_from_env" in f for f in frames):
        return "proxy/.netrc lookup per HTTP request (aiohttp trust_env)"
    for frame in reversed(frames):
        for area, markers in AREAS:
            if any(marker in frame for marker in markers):
                return area
    return "other"


def summary_text(title: str, summary: dict[str, Any]) -> str:
    """A summary as a short text (what bench/results/profile-*.txt keep; the stacks themselves are large)."""
    lines = [f"# {title}", "", f"py-spy samples: {summary.get('samples', 0)} (100 Hz, every worker process)"]
    sections = (
        ("by_process_pct", "By process"),
        ("by_activity_pct", "By the app's job (HTTP requests, relay, change feed)"),
        ("by_area_pct", "By library (the first known frame from the leaf up)"),
        ("top_app_frames_inclusive_pct", "App and host frames, inclusive"),
        ("top_leaf_frames_pct", "Leaf frames"),
    )
    for key, heading in sections:
        lines += ["", f"## {heading}", ""]
        lines += [f"{share:5.1f} %  {name}" for name, share in summary.get(key, [])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # python -m bench.profiling TITLE COLLAPSED_STACKS: the text summary of a py-spy raw profile.
    print(summary_text(sys.argv[1], summarise(Path(sys.argv[2]), top=15)), end="")
