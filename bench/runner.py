"""One benchmark run: start the host, run the scenarios, stop the host, write the results."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from azure.cosmos.aio import CosmosClient

from bench.analysis import annotate
from bench.context import BenchContext
from bench.host import HostProcess, ResourceSampler
from bench.loadgen import Http
from bench.report import markdown, write_json, write_png
from bench.result import ScenarioResult
from bench.scenarios import SCENARIOS
from devhost.settings_file import PROJECT_DIR
from shared_code.adapters.cosmos import direct_transport

log = logging.getLogger("bench")


async def run_bench(quick: bool, only: list[str] | None, out_dir: Path, profile: bool = False) -> list[Path]:
    names = [n for n in SCENARIOS if not only or n in only]
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before anything runs)
    started_at = dt.datetime.now(dt.UTC)
    began = time.monotonic()
    load_at_start = _load()
    scratch = Path(tempfile.mkdtemp(prefix="chorus-bench-"))
    host = HostProcess(scratch / "state")
    results: list[ScenarioResult] = []
    spans: list[tuple[str, float, float]] = []
    log.info("starting the local host (python -m devhost run) in %s", scratch)
    stack = host.start()
    sampler = ResourceSampler(host.pid, tree_pid=host.run_pid)
    sampler.start()
    try:
        async with (
            Http(stack.base_url) as http,
            CosmosClient(
                stack.cosmos_endpoint, credential=stack.cosmos_key, transport=direct_transport()
            ) as cosmos,
        ):
            ctx = BenchContext(
                quick=quick,
                out_dir=out_dir,
                host=host,
                stack=stack,
                http=http,
                sampler=sampler,
                cosmos=cosmos,
                profile=profile,
            )
            for name in names:
                log.info("scenario %s …", name)
                t0 = sampler.now()
                try:
                    result = await SCENARIOS[name](ctx)
                except Exception:
                    log.exception("scenario %s failed", name)
                    result = ScenarioResult(name, "failed", error=traceback.format_exc())
                t1 = sampler.now()
                try:
                    await ctx.drop_baseline()
                except Exception as exc:  # the scenario's result stands; only memory stays higher
                    log.warning("could not delete the baselines' Cosmos database after %s: %s", name, exc)
                result.seconds = t1 - t0
                result.resources = result.resources or sampler.window(t0, t1)
                annotate(result)
                spans.append((name, t0, t1))
                results.append(result)
                log.info(
                    "scenario %s done in %.0f s: %s",
                    name,
                    t1 - t0,
                    "; ".join(f"{t.what}: {t.measured}" for t in result.targets) or result.error,
                )
    finally:
        sampler.stop()
        host.stop()
        shutil.copy(host.log_path, out_dir / "host.log") if host.log_path.exists() else None
        shutil.rmtree(scratch, ignore_errors=True)
    run = {
        "quick": quick,
        "only": only,
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": time.monotonic() - began,
        "machine": f"{os.cpu_count()} cores, {_memory_gib()} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        "load_at_start": load_at_start,
        "load_at_end": _load(),
        "commit": _commit(),
        "scenario_spans": [{"name": n, "start_s": round(a, 1), "end_s": round(b, 1)} for n, a, b in spans],
    }
    paths = [out_dir / "latest.json", out_dir / "latest.md", out_dir / "latest.png"]
    write_json(paths[0], run, results)
    paths[1].write_text(markdown(json.loads(paths[0].read_text())))
    write_png(paths[2], results, sampler.samples, spans)
    return paths


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _memory_gib() -> int:
    import psutil

    return round(float(psutil.virtual_memory().total) / 2**30)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],  # noqa: S607
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
        return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def summary_line(paths: list[Path]) -> str:
    return "wrote " + ", ".join(
        str(p.relative_to(PROJECT_DIR)) if p.is_relative_to(PROJECT_DIR) else str(p) for p in paths
    )


__all__: list[Any] = ["run_bench", "summary_line"]
