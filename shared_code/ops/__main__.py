"""`python -m shared_code.ops`: the runbook operations from a shell, with the app's settings
(from the environment, as the app reads them; with the local stack: `eval "$(python -m devhost env)"`).

    requeue [--event-id N ...]        dead outbox events back to pending
    skip --event-id N [...] --reason TEXT   give up on dead events, recording why
    change-feed-failures              open change-feed failures, oldest first
    replay-change-feed-failure ID     replay one recorded failed batch, once
    rebuild-feed USER_ID              one user's home feed, rebuilt from PostgreSQL
    reconcile [--repair] [--user-id U] [--feed-sample N]
    schema-drift                      the live schema against sql/
    schema-snapshot --database-url U  write sql/schema.snapshot.json from a freshly migrated database
    prune-outbox [--budget-seconds S] delete published events older than OUTBOX_RETENTION_DAYS
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any
from uuid import UUID

from shared_code.db.unit_of_work import Actor

OPERATOR = Actor(subject="operator-cli", role="system")


async def _run(args: argparse.Namespace) -> Any:
    from shared_code.app_context import AppContext
    from shared_code.bootstrap import runbook as build_runbook
    from shared_code.settings import load_settings

    ctx = await AppContext.create(load_settings())
    runbook = build_runbook(ctx)
    try:
        if args.command == "requeue":
            return (await runbook.requeue_dead_events(OPERATOR, args.event_id or None)).to_json()
        if args.command == "skip":
            return (await runbook.skip_dead_events(OPERATOR, args.event_id, args.reason)).to_json()
        if args.command == "change-feed-failures":
            return (await runbook.list_change_feed_failures(OPERATOR)).to_json()
        if args.command == "replay-change-feed-failure":
            return (await runbook.replay_change_feed_failure(OPERATOR, args.failure_id)).to_json()
        if args.command == "rebuild-feed":
            return (await runbook.rebuild_user_feed(OPERATOR, args.user_id)).to_json()
        if args.command == "reconcile":
            result = await runbook.reconcile_projections(
                OPERATOR, args.repair, args.user_id, args.feed_sample
            )
            return result.to_json()
        if args.command == "schema-drift":
            return (await runbook.schema_drift_report(OPERATOR)).to_json()
        if args.command == "prune-outbox":
            return {"deleted": await runbook.delete_old_outbox_events(args.budget_seconds)}
        raise AssertionError(args.command)
    finally:
        await ctx.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared_code.ops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    requeue = commands.add_parser("requeue")
    requeue.add_argument("--event-id", type=int, action="append")
    skip = commands.add_parser("skip", help="give up on dead outbox events, recording why")
    skip.add_argument("--event-id", type=int, action="append", required=True)
    skip.add_argument("--reason", required=True, help="recorded on each skipped event")
    commands.add_parser("change-feed-failures", help="open change-feed failures, oldest first")
    replay = commands.add_parser("replay-change-feed-failure", help="replay one recorded failed batch, once")
    replay.add_argument("failure_id", type=int)
    rebuild = commands.add_parser("rebuild-feed")
    rebuild.add_argument("user_id", type=UUID)
    rec = commands.add_parser("reconcile")
    rec.add_argument("--repair", action="store_true")
    rec.add_argument("--user-id", type=UUID)
    rec.add_argument("--feed-sample", type=int, default=10)
    commands.add_parser("schema-drift")
    snapshot = commands.add_parser("schema-snapshot")
    snapshot.add_argument(
        "--database-url",
        required=True,
        help="an empty database with every migration applied (and nothing else)",
    )
    prune = commands.add_parser("prune-outbox")
    prune.add_argument("--budget-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)

    if args.command == "schema-snapshot":
        from shared_code.ops.schema_drift import SNAPSHOT_FILE, write_snapshot

        write_snapshot(args.database_url)
        print(f"wrote {SNAPSHOT_FILE}")
        return 0
    try:
        result = asyncio.run(_run(args))
    except Exception as exc:  # an operator gets one line that says what failed, not a stack trace
        print(f"error: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    drifted = args.command == "schema-drift" and result.get("drifted")
    return 3 if drifted else 0


if __name__ == "__main__":
    sys.exit(main())
