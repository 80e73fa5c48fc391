"""Peak memory of a running local stack and host, per component, until Ctrl-C or --seconds.

    .venv/bin/python tools/memory_by_component.py PID [--seconds N] [--interval S]

PID is `python -m devhost run`'s process (or any process whose descendants are the stack and host).
Two figures per component: RSS (what `ps` shows; PostgreSQL's shared buffers count once in every
backend that touched them) and PSS (shared pages divided among the processes sharing them: the memory
the component really costs). The totals at the end are the peaks of the sums, sampled together.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import psutil

MIB = 2**20


def component(process: psutil.Process) -> str:
    command = " ".join(process.cmdline())
    for needle, name in (
        ("cosmos-emulator", "cosmos emulator (node)"),
        ("azurite", "azurite (node)"),
        ("eventhubs-standin", "event hubs stand-in (node)"),
        ("devhost worker", "host workers (python)"),
        ("devhost host", "host process (python)"),
        ("devhost stack", "stack process (python)"),
        ("devhost run", "supervisor (python)"),
        ("postgres", "postgresql"),
    ):
        if needle in command:
            return name
    return "other"


def sample(root: psutil.Process) -> dict[str, tuple[float, float, int]]:
    """Per component: RSS MiB, PSS MiB, processes."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for process in [root, *root.children(recursive=True)]:
        try:
            info = process.memory_full_info()
            name = component(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        totals[name][0] += info.rss / MIB
        totals[name][1] += getattr(info, "pss", info.rss) / MIB
        totals[name][2] += 1
    return {name: (rss, pss, int(count)) for name, (rss, pss, count) in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pid", type=int)
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: until Ctrl-C)")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    root = psutil.Process(args.pid)
    peaks: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    peak_rss_total = peak_pss_total = 0.0
    started = time.monotonic()
    try:
        while root.is_running() and (not args.seconds or time.monotonic() - started < args.seconds):
            now = sample(root)
            for name, (rss, pss, count) in now.items():
                peak = peaks[name]
                peak[0], peak[1], peak[2] = max(peak[0], rss), max(peak[1], pss), max(peak[2], count)
            peak_rss_total = max(peak_rss_total, sum(v[0] for v in now.values()))
            peak_pss_total = max(peak_pss_total, sum(v[1] for v in now.values()))
            time.sleep(args.interval)
    except (KeyboardInterrupt, psutil.NoSuchProcess):
        pass
    print(f"{'component':32} {'peak RSS MiB':>12} {'peak PSS MiB':>12} {'processes':>9}")
    for name, (peak_rss, peak_pss, processes) in sorted(peaks.items(), key=lambda kv: -kv[1][0]):
        print(f"{name:32} {peak_rss:12.0f} {peak_pss:12.0f} {int(processes):9d}")
    print(f"{'total (peak of the sums)':32} {peak_rss_total:12.0f} {peak_pss_total:12.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
