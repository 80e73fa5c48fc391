"""Notes for missed targets: the evidence measured in this run (CPU per operation, where the host's
samples landed when `--profile` ran py-spy) and what bounds the target and would lift it, as found by
profiling (bench/README.md, docs/cost-model.md). Added to a scenario's notes only when a target is missed.
"""

from __future__ import annotations

from typing import Any

from bench.result import ScenarioResult

WHY: dict[str, str] = {
    "write_path": (
        "Bound: with the default FUNCTIONS_WORKER_PROCESS_COUNT (one worker per core, at most 2) the app "
        "runs in two worker processes, each with one event loop that serves HTTP and also runs its share of "
        "the relay timer (on one worker at a time) and the change-feed leases for every post accepted (per post: the claim/record transactions, the posts_v2, authorPosts and "
        "counters writes, the Event Hubs send, the admin-mirror insert, the change-feed read, the fan-out "
        "and the lease write), on a 2-core machine shared with PostgreSQL, the Node emulators, the load "
        "generator and other users. The direct-psycopg baseline runs none of that, and is itself bounded by "
        "PostgreSQL's commits (fsync on, as `make run`). In Azure the relay and the change-feed functions "
        "run on their own instances (Functions scale out per trigger), so an HTTP worker does only the "
        "request; locally, more worker processes (FUNCTIONS_WORKER_PROCESS_COUNT) spread it, at the cost "
        "of memory, on cores that are already all busy here."
    ),
    "feed_read": (
        "Bound: each GET /api/feed is two short PostgreSQL transactions (who the caller is and whom they "
        "pull; what they must not see) around Cosmos requests to a single-threaded Node emulator over TLS "
        "(the userFeed page, one query per pulled author, the floor, then posts_v2, publicProfiles and "
        "counters read_items), on the same event loop that also runs the relay and change-feed loops; the "
        "direct baseline (the same I/O without the app) sets the floor, and the remaining gap is the app's "
        "Python per request (JWT verification, the merge, pydantic models of the page's items and their "
        "JSON encoding). Against real Cosmos (single-digit-millisecond point reads and single-partition "
        "queries) the Cosmos part shrinks."
    ),
    "relay_drain": (
        "Bound: the relay streams (up to 3 claimed batches in flight; one Event Hubs send per aggregate: "
        "batching by partition was withdrawn, see docs/reliability.md) but shares its worker process and "
        "event loop with the change-feed fan-out of the very "
        "posts it publishes (each published post is read back from the posts_v2 change feed and fanned "
        "out) and with the admin-mirror transaction; the baseline only upserts, continuously, from a "
        "process that does nothing else. What would lift it: the relay and the change-feed functions in "
        "separate workers or instances (as Azure runs them)."
    ),
    "fanout": (
        "Bound: the fan-out writes one feed item per request through the Python SDK on the app's event loop "
        "(bounded at FANOUT_CONCURRENCY = 64), with a PostgreSQL page read per 1,000 followers and the "
        "fan-out state and trim checks; the baseline does the same upserts without the change-feed "
        "machinery, from a process that does nothing else. Transactional batches are per partition key "
        "(one recipient each), so they do not help here; above FANOUT_MAX_FOLLOWERS posts are pulled at "
        "read time instead (celebrity)."
    ),
    "freshness": (
        "Bound: commit → NOTIFY → the relay's stream (it may be busy with batches in flight) → posts_v2; "
        "then the posts_v2 change-feed function's poll (feedPollDelay 200 ms) → the fan-out of 101 upserts "
        "at concurrency 64 on the app's shared event loop → visible. A post committed while no relay run "
        "is active waits for the next run (see the note on pauses, if any)."
    ),
    "celebrity": (
        "Bound of the visibility: a celebrity's post is pulled at read time, so it shows once the relay has "
        "written it to authorPosts (its pull window is opened in the post's own transaction); the figures "
        "split it: commit → in authorPosts (direct point read), → window covers it, the polling reads' own "
        "latency, and the pollers' revisit of one follower (the sample round-robin among POLLERS "
        "readers, so about sample / POLLERS reads apart: the resolution of each follower's time, bounded "
        "by how many feed reads per second the host and the single-threaded emulator serve on this "
        "machine: the host's CPU per read, in the evidence, against the share of the cores it gets). "
        "A follower whose first read after the commit already shows the post (counted) waited only for "
        "the sweep to reach it. Bound of the read: each page asks one authorPosts query per big author followed "
        "(20 here) besides the userFeed page and hydration, all to a single-threaded emulator; the direct "
        "baseline asks the same, so the ratio is the app's own work per page."
    ),
}


def annotate(result: ScenarioResult) -> None:
    missed = [t for t in result.targets if t.met is False]
    if not missed or result.error:
        return
    evidence = _evidence(result)
    if evidence:
        result.notes.append("Evidence from this run: " + evidence)
    if result.name in WHY:
        result.notes.append(WHY[result.name])


def _evidence(result: ScenarioResult) -> str:
    parts: list[str] = []
    for key, figure in _with_rounds(result.figures):
        resources = figure.get("resources") or {}
        rate = figure.get("rate_per_s") or figure.get("items_per_s") or figure.get("events_per_s")
        if resources and rate:
            host_ms = 1000.0 * float(resources.get("host_cpu_cores", 0)) / float(rate)
            parts.append(
                f"{key}: host CPU {resources.get('host_cpu_cores')} cores (≈{host_ms:.1f} ms of host CPU per "
                f"operation), services {resources.get('services_cpu_cores')}, load generator "
                f"{resources.get('harness_cpu_cores')}, load average up to {resources.get('load1_max')}"
            )
        profile: dict[str, Any] = figure.get("profile") or {}
        if profile.get("by_area_pct"):
            areas = ", ".join(f"{name} {share} %" for name, share in profile["by_area_pct"][:6])
            leaves = ", ".join(
                f"{name} {share} %" for name, share in profile.get("top_leaf_frames_pct", [])[:4]
            )
            parts.append(f"{key} py-spy ({profile.get('samples')} samples): {areas}; top frames: {leaves}")
    if isinstance(result.figures.get("profile"), dict) and result.figures["profile"].get("by_area_pct"):
        profile = result.figures["profile"]
        areas = ", ".join(f"{name} {share} %" for name, share in profile["by_area_pct"][:6])
        parts.append(f"py-spy ({profile.get('samples')} samples): {areas}")
    resources = result.figures.get("resources")
    if isinstance(resources, dict) and resources:
        parts.append(
            f"host CPU {resources.get('host_cpu_cores')} cores, services "
            f"{resources.get('services_cpu_cores')}, load average up to {resources.get('load1_max')}"
        )
    return "; ".join(parts)


def _with_rounds(figures: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each figure, and each round inside one (scenarios measured in alternating rounds list them)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for key, figure in figures.items():
        if isinstance(figure, dict):
            found.append((key, figure))
            rounds = figure.get("rounds")
        else:
            rounds = figure if key == "rounds" else None
        if isinstance(rounds, list):
            prefix = "" if key == "rounds" else f"{key} "
            found += [(f"{prefix}round {i + 1}", r) for i, r in enumerate(rounds) if isinstance(r, dict)]
    return found
