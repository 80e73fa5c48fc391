"""The outbox relay timer: drains the outbox for OUTBOX_DRAIN_SECONDS, waking on NOTIFY.

Timer functions run as a singleton, so one relay runs at a time in Azure; with a
schedule of every minute and a drain of 55 s the outbox is watched continuously.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app_context import get_app_context
from shared_code.ops.runbook import delete_old_outbox_events
from shared_code.outbox.assembly import outbox_relay

bp = func.Blueprint()
log = logging.getLogger("chorus.outbox")


@bp.timer_trigger(schedule="%OUTBOX_RELAY_SCHEDULE%", arg_name="timer", run_on_startup=True, use_monitor=True)
async def outbox_relay_timer(timer: func.TimerRequest) -> None:
    ctx = await get_app_context()
    report = await outbox_relay(ctx).drain(ctx.settings.outbox_drain_seconds)
    log.info(
        "outbox relay drained for %.1f s: %d published, %d failed, %d dead, %d round(s)%s",
        report.seconds,
        report.published,
        report.failed,
        report.dead,
        report.rounds,
        f"; errors: {report.errors[-1]}" if report.errors else "",
    )


# Retention runs in a short budget each time; a backlog shrinks over several runs.
RETENTION_BUDGET_SECONDS = 50.0


@bp.timer_trigger(
    schedule="%OUTBOX_RETENTION_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True
)
async def prune_published_outbox(timer: func.TimerRequest) -> None:
    ctx = await get_app_context()
    deleted = await delete_old_outbox_events(ctx, RETENTION_BUDGET_SECONDS)
    log.info(
        "outbox retention: deleted %d published event(s) older than %.0f day(s)",
        deleted,
        ctx.settings.outbox_retention_days,
    )
