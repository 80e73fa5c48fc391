"""Notes for missed targets: the evidence measured in this run (CPU per operation, where the host's
samples landed when `--profile` ran py-spy) and what bounds the target and would lift it, as found by
profiling (bench/README.md, docs/cost-model.md). Added to a scenario's notes only when a target is missed.
"""

from __future__ import annotations

from typing import Any

from bench.result import ScenarioResult

WHY: dict[str, str] = {
    "write_path": (
        "Bound: host CPU. Profile of c=8 (bench/results/profile-write_path-c8.txt, py-spy over both "
        "workers): of the workers' busy samples about a third serve the HTTP requests and two thirds the "
        "pipeline behind each accepted post on the same two event loops (the relay's claim, projections, "
        "Event Hubs send and record; the posts_v2 change feed, fan-out state and feed item); by library, "
        "psycopg's sends, asyncio/TLS and aiohttp lead. On a quiet machine a POST costs about 7 ms of host "
        "CPU in all (the quiet full run of 2026-12-03), of which about 2.5 ms is the request itself. The "
        "target, 60 % of the direct rate (≈ 350 posts/s at c=8 on that run), would take ≈ 2.5 cores of "
        "Python for the app plus about 1 core for the services (PostgreSQL above all): more than the "
        "machine has. Even with the "
        "pipeline elsewhere (Azure runs the relay and change-feed functions on instances of their own), "
        "the requests alone (≈ 0.9 core) and the services would fill both cores, with the load generator "
        "still to run. The p99 ratio follows from the saturation: a request's steps wait "
        "behind the relay's and fan-out's batches on the same loop. The direct-psycopg baseline runs no "
        "Python between its statements and none of the pipeline. Removed this round: four statements per "
        "new post (14 → 10) and the Event Hubs probes that each delivery ran on its own (6 % of samples); "
        "a rate-limit charge no longer waits for a durable commit of its own (sql/0025)."
    ),
    "feed_read": (
        "Degraded reads: on the quiet full run of 2026-12-03 the services used a full core (the single-"
        "threaded Node emulator saturated) while the host used a tenth of one, every round's p99 was the "
        "1.5 s Cosmos request budget plus the PostgreSQL fallback, and the direct reads took 2-3 s: the "
        "emulator, not the app, bounds these reads; a read that misses the budget is served from "
        "PostgreSQL (Chorus-Degraded) and is not counted as a feed read. "
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
        "Bound: host CPU per Cosmos request. Profile (bench/results/profile-relay_drain.txt): the Cosmos "
        "projection writes and the change-feed fan-out of the posts being published take half of the "
        "workers' samples, the relay's own loop (claims, records, Event Hubs) under a tenth. Per event "
        "the app sends about 8 Cosmos requests (posts_v2, authorPosts, counters by the relay; the change "
        "feed's posts_v2 reads, fan-out state read and write, the author's feed item) where the baseline "
        "sends the 3 upserts of the relay's projection only; at ≈ 0.5 ms of SDK and TLS client CPU per "
        "request (fanout's figure) that is ≈ 4 of the ≈ 6 ms of host CPU per event measured on the quiet "
        "full run of 2026-12-03 (claims, records, the admin mirror and the Event Hubs send the rest), so "
        "about 1.25 cores of Python drained ≈ 200 events/s; 70 % of that run's direct rate (≈ 420 "
        "events/s) would take ≈ 2.5 cores. The emulator is not the limit: the services together (PostgreSQL "
        "and the emulators) used about a third of a core on that run. What would lift it: the change-feed functions on instances of their own (as Azure scales them), which "
        "a 2-core machine cannot give them."
    ),
    "fanout": (
        "Bound: the same Cosmos requests as the baseline, one feed item each through the same Python SDK "
        "(≈ 0.5 ms of host CPU per item on both sides), at FANOUT_CONCURRENCY = 64; the app adds per "
        "item the feed document's projection and the bounded scheduling, and per post a PostgreSQL page "
        "per 1,000 followers, the fan-out state and trim checks, while the relay and lease loops share "
        "its event loop. So it runs within a few per cent of the floor, either side of it from run to run; "
        "it cannot do fewer requests than one per recipient: "
        "transactional batches are per partition key (one recipient each), and above "
        "FANOUT_MAX_FOLLOWERS posts are pulled at read time instead (celebrity)."
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
        "latency, and one follower's read → its next (each sampled follower has a poller of its own, so "
        "that is one read: the resolution of its time). Commit → visible is at most commit → pullable "
        "plus one feed read; the feed read's own time is bounded by the host's CPU per read and the "
        "single-threaded emulator on this machine. Bound of the read: each page asks one authorPosts query per big author followed "
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
            jobs = ", ".join(f"{name} {share} %" for name, share in profile.get("by_activity_pct", [])[:6])
            parts.append(
                f"{key} py-spy ({profile.get('samples')} samples): {areas}; by job: {jobs}; top frames: {leaves}"
            )
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
