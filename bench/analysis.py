"""Notes for missed targets: the evidence measured in this run (CPU per operation, where the host's
samples landed when `--profile` ran py-spy) and what bounds the target and would lift it, as found by
profiling (bench/README.md, docs/cost-model.md). Added to a scenario's notes only when a target is missed.
"""

from __future__ import annotations

from typing import Any

from bench.result import ScenarioResult

WHY: dict[str, str] = {
    "write_path": (
        "Bound: the local host is ONE Python process with one event loop that serves HTTP and also runs the "
        "relay timer and the change-feed functions for every post it accepts (per post: the claim/record "
        "transactions, the posts_v2 create and counters patch, the Event Hubs send, the admin-mirror insert, "
        "the change-feed read, the fan-out upserts and the lease write) and shares POSTGRES_POOL_MAX = 10 "
        "connections between them, so each accepted post costs several times the CPU of its own request, on "
        "a 2-core machine shared with PostgreSQL, the Node emulators, the load generator and other users. "
        "The direct-psycopg baseline runs none of that, and is itself bounded by PostgreSQL's commits (fsync "
        "on, as `make run`). Already fixed after earlier runs: the Cosmos and Blob clients no longer look up "
        "proxy variables and ~/.netrc on every request (commit 09ba900; it was ~15-20 % of the host's "
        "samples). What would lift it further: in Azure the relay and the change-feed functions run on their "
        "own instances (Functions scale out per trigger), so an HTTP worker does only the request; locally, "
        "a host with more than one worker process."
    ),
    "feed_read": (
        "Bound: each GET /api/feed is a PostgreSQL transaction (4 statements) wrapped around two Cosmos "
        "requests to a single-threaded Node emulator over TLS, on the same event loop that also runs the "
        "relay and change-feed loops; the direct baseline (the same I/O without the app) sets the floor, and "
        "the remaining gap is the app's Python per request (JWT verification, pydantic models of 50 feed items "
        "and their JSON encoding; the SDK's read_items for the page's counters builds its query and hashes "
        "every partition key in Python, ≈ 13 % of the host's samples in a profiled run). What would lift it: "
        "read the page and its counters before opening the PostgreSQL transaction (shorter transactions, "
        "fewer pooled connections held), carry counts on feed items for older posts so fewer counters are "
        "read, more than one worker process; against real Cosmos (single-digit-millisecond point reads and "
        "single-partition queries) the Cosmos part shrinks."
    ),
    "relay_drain": (
        "Bound: the relay shares the host's one event loop with the change-feed fan-out of the very posts it "
        "publishes (each published post is read back from the posts_v2 change feed and fanned out), with one "
        "Event Hubs send per aggregate (a batch of 200 distinct posts is 200 AMQP sends) and the admin-mirror "
        "transaction; it works in rounds (claim 200, handle them 32 at a time, record), so a round waits for "
        "its slowest event; the baseline only upserts, continuously. Already fixed after earlier runs: the "
        "claim's plan on stale statistics (a9cf08d) and the per-request proxy lookup (09ba900). What would "
        "lift it: claim the next round while the current one finishes (or handle events as a stream with a "
        "bounded window), run the relay and the change-feed functions in separate workers (as Azure does)."
    ),
    "fanout": (
        "Bound: the fan-out writes one feed item per request through the Python SDK on the host's event loop "
        "(bounded at FANOUT_CONCURRENCY = 64), with a PostgreSQL page read per 1,000 followers; the baseline "
        "does the same upserts without the change-feed machinery. What would lift it: larger concurrency "
        "against real Cosmos; transactional batches are per partition key (one recipient each), so they do "
        "not help here; for very large audiences, fan-out on read for authors above a follower threshold."
    ),
    "freshness": (
        "Bound: commit → NOTIFY → the relay's next round (it may be busy with a round already) → posts_v2; "
        "then the posts_v2 change-feed function's poll (feedPollDelay 200 ms) → the fan-out of 101 upserts at "
        "concurrency 64 on the host's shared event loop → visible. A post committed while no relay run is "
        "active waits for the next run (see the note on pauses, if any). What would lift it: a shorter "
        "change-feed poll for posts_v2, fan-out in its own worker, and a relay that never pauses."
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
