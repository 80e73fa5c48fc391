"""The outbox relay timer: drains the outbox until just before its next scheduled run (at most
OUTBOX_DRAIN_SECONDS), waking on NOTIFY, so the outbox is watched without a gap.

Timer functions run as a singleton, so one relay runs at a time in Azure.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.functions as func

from shared_code.bootstrap import get_app_context, outbox_relay, runbook
from shared_code.domain.discovery import TRENDING_RETENTION_HOURS
from shared_code.outbox.policy import drain_budget_seconds
from shared_code.services.discovery import prune_trending_buckets
from shared_code.services.rate_limits import prune_full_buckets

bp = func.Blueprint()
log = logging.getLogger("chorus.outbox")


@bp.timer_trigger(schedule="%OUTBOX_RELAY_SCHEDULE%", arg_name="timer", run_on_startup=True, use_monitor=True)
async def outbox_relay_timer(timer: func.TimerRequest) -> None:
    ctx = await get_app_context()
    budget = drain_budget_seconds(_next_run(timer), datetime.now(UTC), ctx.settings.outbox_drain_seconds)
    report = await outbox_relay(ctx).drain(budget)
    log.info(
        "outbox relay drained for %.1f s: %d published, %d failed, %d dead, %d round(s)%s",
        report.seconds,
        report.published,
        report.failed,
        report.dead,
        report.rounds,
        f"; errors: {report.errors[-1]}" if report.errors else "",
    )


def _next_run(timer: func.TimerRequest) -> datetime | None:
    """When the host will run this timer next (its schedule status), if it says."""
    status = getattr(timer, "schedule_status", None) or {}
    try:
        next_run = datetime.fromisoformat(str(status["Next"]))
    except (KeyError, ValueError):
        return None
    return next_run if next_run.tzinfo else next_run.replace(tzinfo=UTC)


# Retention runs in a short budget each time; a backlog shrinks over several runs.
RETENTION_BUDGET_SECONDS = 50.0


@bp.timer_trigger(
    schedule="%OUTBOX_RETENTION_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True
)
async def prune_published_outbox(timer: func.TimerRequest) -> None:
    ctx = await get_app_context()
    deleted = await runbook(ctx).delete_old_outbox_events(RETENTION_BUDGET_SECONDS)
    log.info(
        "outbox retention: deleted %d published event(s) older than %.0f day(s)",
        deleted,
        ctx.settings.outbox_retention_days,
    )
    # Rate-limit buckets that are full again say nothing a missing row does not (docs/api.md "Limits").
    pruned = await prune_full_buckets(ctx.system_pool)
    log.info("rate limits: deleted %d full bucket(s)", pruned)
    # Trending reads the last 24 hours of hourly buckets; older ones would only grow the table.
    trending = await prune_trending_buckets(ctx.system_pool, datetime.now(UTC))
    log.info("trending: deleted %d hourly bucket(s) older than %d hours", trending, TRENDING_RETENTION_HOURS)
