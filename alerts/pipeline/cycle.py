"""One cycle: gather and decide every feed concurrently, place stories across feeds, apply each plan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from ..config import FeedConfig
from ..coordinate import feed_lease
from ..fetch import FetchResult
from ..logs import event
from ..types import NewItem
from .apply import apply, edit_delay, momentum
from .decide import decide
from .gather import gather
from .model import CycleReport, FeedOutcome, FeedPlan, PollContext
from .place import place_in_order
from .schedule import due_by

log = logging.getLogger("chipwatch.pipeline")
T = TypeVar("T")


async def run_cycle(
    feeds: Sequence[FeedConfig],
    ctx: PollContext,
    *,
    pushed: Mapping[str, FetchResult] | None = None,
) -> CycleReport:
    """Poll the given feeds concurrently (the fetcher bounds concurrency, globally and per
    host) and decide each; place every feed's new items in order of publication, across
    feeds, so a story's first report starts it whichever feed carried it; then apply each
    feed's plan. With a coordinator, only the feeds this instance could claim are polled.
    ``pushed``: bodies WebSub hubs delivered, by feed name, taken instead of fetches."""
    pushed = pushed or {}
    coordinator = ctx.coordinator
    if coordinator is None or ctx.dry_run:
        return await _run_cycle(feeds, ctx, pushed)
    until = ctx.now + feed_lease(ctx.config.poll, len(feeds))
    claimed: list[FeedConfig] = []
    others: dict[str, FeedOutcome] = {}
    for feed in feeds:
        due = due_by(feed, ctx.now) if ctx.respect_schedule else None
        if coordinator.claim_feed(feed, now=ctx.now, until=until, due_by=due):
            claimed.append(feed)
        else:
            others[feed.name] = FeedOutcome(feed=feed.name, status="skipped", elsewhere=True)
    try:
        report = await _run_cycle(claimed, ctx, pushed)
    finally:
        for feed in claimed:
            coordinator.release_feed(feed)
    mine = {o.feed: o for o in report.outcomes}
    return CycleReport(tuple(mine.get(f.name) or others[f.name] for f in feeds))


async def _run_cycle(
    feeds: Sequence[FeedConfig], ctx: PollContext, pushed: Mapping[str, FetchResult]
) -> CycleReport:
    async def plan(feed: FeedConfig) -> FeedPlan | FeedOutcome:
        try:
            return await _guarded(feed, ctx, _planned(feed, ctx, pushed.get(feed.name)))
        finally:
            if ctx.on_feed_done is not None:
                ctx.on_feed_done()

    planned = await asyncio.gather(*(plan(f) for f in feeds))
    plans = [p for p in planned if isinstance(p, FeedPlan)]
    placing: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
    if ctx.coordinator is not None and any(p.items for p in plans):
        # One instance at a time places and records stories, knowing what the others did.
        placing = ctx.coordinator.placement(ctx.clusterer)
    async with placing:
        placed = place_in_order(plans, ctx.clusterer, now=ctx.now)
        outcomes: list[FeedOutcome] = []
        deferred: list[NewItem] = []
        for p in planned:
            if isinstance(p, FeedPlan):
                p = await _guarded(
                    p.feed, ctx, _applied(replace(p, items=placed[id(p)]), ctx, deferred)
                )
            outcomes.append(p)
        if deferred:
            ctx.store.apply_joins(deferred, now=ctx.now, edit_delay=edit_delay(ctx.config))
            momentum(deferred, config=ctx.config, store=ctx.store, now=ctx.now)
    return CycleReport(tuple(outcomes))


async def poll_feed(feed: FeedConfig, ctx: PollContext) -> FeedOutcome:
    """Poll one feed and queue its alerts. Never raises for the feed's own failures."""
    report = await run_cycle([feed], ctx)
    return report.outcomes[0]


async def push_feed(feed: FeedConfig, pushed: FetchResult, ctx: PollContext) -> FeedOutcome:
    """What a WebSub hub pushed for one feed, through the poll's own steps (gather with the
    pushed body instead of a fetch, decide, place, apply): its new items alert as a poll's
    would. Skipped (``elsewhere``) while another instance holds the feed's lease."""
    report = await run_cycle(
        [feed], replace(ctx, respect_schedule=False), pushed={feed.name: pushed}
    )
    return report.outcomes[0]


async def _planned(
    feed: FeedConfig, ctx: PollContext, pushed: FetchResult | None = None
) -> FeedPlan | FeedOutcome:
    fetched = await gather(feed, ctx, pushed=pushed)
    if isinstance(fetched, FeedOutcome):
        return fetched
    return decide(fetched, config=ctx.config, matcher=ctx.matcher, now=ctx.now)


async def _guarded(feed: FeedConfig, ctx: PollContext, work: Awaitable[T]) -> T | FeedOutcome:
    """Run one feed's step; a bug on one feed's data must not stop the others."""
    try:
        return await work
    except Exception as exc:
        log.exception("feed_poll_crashed feed=%s", feed.name)
        error = f"internal: {type(exc).__name__}: {exc}"
        if not ctx.dry_run:
            ctx.store.record_failure(feed.name, feed.url, error, now=ctx.now)
        return FeedOutcome(feed=feed.name, status="error", error=error)


async def _applied(plan: FeedPlan, ctx: PollContext, deferred: list[NewItem]) -> FeedOutcome:
    coordinator = ctx.coordinator
    if coordinator is None or ctx.dry_run:
        return apply(plan, ctx, deferred=deferred)
    with ctx.store.db.atomic():
        # A poll that outlived its lease may have been taken over: then it records nothing.
        if not coordinator.still_holds(plan.feed):
            event(log, "feed_lease_lost", logging.WARNING, feed=plan.feed.name)
            return FeedOutcome(
                feed=plan.feed.name, status="skipped", error="lease lost to another instance"
            )
        return apply(plan, ctx, deferred=deferred)
