"""Apply: record a plan (its items already placed in stories) and log it; the only writes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ..config import Config
from ..logs import event
from ..store import Store
from ..types import Alert, NewItem
from .model import FeedOutcome, FeedPlan, PollContext

log = logging.getLogger("chipwatch.pipeline")


def apply(
    plan: FeedPlan, ctx: PollContext, *, deferred: list[NewItem] | None = None
) -> FeedOutcome:
    """Record a plan (its items already placed in stories) and log it; a dry run only logs
    and previews."""
    feed, store, now, dry = plan.feed, ctx.store, ctx.now, ctx.dry_run
    if plan.hub is not None and not dry:
        store.record_hub(feed.name, plan.hub, now=now)
    if plan.pushed and plan.status != "ok":
        # The feed's poll state (validators, schedule, failures) is the polls' alone.
        event(log, "feed_push_failed", logging.WARNING, feed=feed.name, error=plan.error)
        return FeedOutcome(feed=feed.name, status="error", error=plan.error)
    moved: dict[str, object] = {"effective_url": plan.moved_to} if plan.moved_to else {}
    if plan.moved_to:
        event(log, "feed_moved", logging.WARNING, feed=feed.name, old=plan.url, new=plan.moved_to)
    if plan.status == "gone":
        if not dry:
            store.update_feed(
                feed.name,
                feed.url,
                disabled_reason=plan.error,
                last_status="gone",
                last_polled_at=now,
                last_error="http_410",
                **moved,
            )
        event(log, "feed_disabled", logging.ERROR, feed=feed.name, reason=plan.error)
        return FeedOutcome(feed=feed.name, status="disabled", error=plan.error)
    if plan.status == "error":
        assert plan.error is not None
        if not dry:
            if moved:
                store.update_feed(feed.name, feed.url, **moved)
            store.record_failure(
                feed.name, feed.url, plan.error, now=now, next_poll_at=plan.next_poll_at
            )
        event(
            log,
            "feed_polled",
            logging.WARNING,
            status="error",
            feed=feed.name,
            error=plan.error,
            failures=plan.failures,
            retry_in=f"{plan.interval:g}s",
        )
        if plan.flagged:
            since = plan.failing_since or now
            event(
                log,
                "feed_failing_long",
                logging.ERROR,
                feed=feed.name,
                since=since.isoformat(timespec="minutes"),
                error=plan.error,
            )
        return FeedOutcome(
            feed=feed.name,
            status="error",
            error=plan.error,
            consecutive_failures=plan.failures,
            failing_since=plan.failing_since,
            flagged=plan.flagged,
            next_poll_at=plan.next_poll_at,
        )
    if plan.status != "ok":
        if not dry:
            store.record_unchanged(
                feed.name,
                feed.url,
                plan.status,
                now=now,
                next_poll_at=plan.next_poll_at,
                interval_seconds=plan.interval,
                **moved,
            )
        event(log, "feed_polled", status=plan.status, feed=feed.name, next_in=f"{plan.interval:g}s")
        return FeedOutcome(feed=feed.name, status=plan.status)
    for title in plan.edited:
        event(log, "item_edited", feed=feed.name, title=title)
    alerting = plan.alerting
    previews: tuple[Alert, ...] = ()
    if dry:
        previews = tuple(preview(n, now) for n in alerting)
    else:
        # What a hub pushed records its items only: the poll state is the polls'.
        fields: dict[str, Any] = (
            {}
            if plan.pushed
            else dict(
                etag=plan.validators.etag,
                last_modified=plan.validators.last_modified,
                body_hash=plan.body_hash,
                next_poll_at=plan.next_poll_at,
                interval_seconds=plan.interval,
                **moved,
            )
        )
        if plan.items:
            fields["last_new_at"] = now
        store.record_poll(
            feed.name,
            feed.url,
            plan.items,
            now=now,
            edit_delay=edit_delay(ctx.config),
            deferred=deferred,
            pushed=plan.pushed,
            **fields,
        )
        momentum(plan.items, config=ctx.config, store=store, now=now)
    event(
        log,
        "feed_pushed" if plan.pushed else "feed_polled",
        status=None if plan.pushed else "ok",
        feed=feed.name,
        items=plan.item_count,
        new=len(plan.items),
        alerts=len(alerting),
        first_poll=(plan.first_poll and not plan.pushed) or None,
        next_in=None if plan.pushed else f"{plan.interval:g}s",
        warning=plan.warning,
    )
    joins = sum(
        n.result is not None and n.result.alert and n.story_id is not None and not n.new_story
        for n in plan.items
    )
    return FeedOutcome(
        feed=feed.name,
        status="ok",
        items=plan.item_count,
        new_items=len(plan.items),
        alerts=len(alerting),
        story_joins=joins,
        story_followups=sum(n.thread is not None for n in alerting),
        previews=previews,
    )


def edit_delay(config: Config) -> timedelta:
    """Story updates within this delay merge into one edit of the sent alert."""
    return timedelta(seconds=config.stories.edit_delay_seconds)


def momentum(new: Sequence[NewItem], *, config: Config, store: Store, now: datetime) -> None:
    """A story carried by ``stories.momentum_sources`` distinct sources within
    ``stories.momentum_minutes`` becomes major: its alert is edited to say so."""
    since = now - timedelta(minutes=config.stories.momentum_minutes)
    for n in new:
        if n.story_id is None or n.new_story:
            continue
        sources = store.story_momentum(n.story_id, since=since)
        if sources is not None and sources >= config.stories.momentum_sources:
            store.mark_major(n.story_id, now=now, edit_delay=edit_delay(config))
            event(log, "story_major", story=n.story_id, title=n.item.title, sources=sources)


def preview(new: NewItem, now: datetime) -> Alert:
    item, result = new.item, new.result
    assert result is not None
    return Alert(
        id=0,
        feed=item.feed,
        title=item.title,
        link=item.link,
        summary=item.summary,
        published=item.published,
        created_at=now,
        matches=result.matches,
        rules=result.rules,
    )
