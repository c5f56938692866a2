"""One poll cycle: fetch → parse → dedupe → match → store (outbox). No clocks, no sleeping:
the caller passes ``now``, so a cycle is a plain function of its inputs and the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import httpx

from .config import Config, FeedConfig
from .dedupe import find_new
from .errors import ParseError
from .fetch import Validators, fetch_feed
from .logs import event
from .match import Matcher
from .parse import FeedItem, parse_feed
from .store import Alert, NewItem, Store

log = logging.getLogger("chipwatch.pipeline")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedOutcome:
    """What one poll of one feed did."""

    feed: str
    status: Literal["ok", "not_modified", "error"]
    items: int = 0
    new_items: int = 0
    alerts: int = 0
    error: str | None = None
    consecutive_failures: int = 0
    previews: tuple[Alert, ...] = ()  # dry-run only: the alerts that would have been queued


@dataclass(frozen=True, slots=True)
class CycleReport:
    outcomes: tuple[FeedOutcome, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> int:
        return sum(o.status != "error" for o in self.outcomes)

    @property
    def failed(self) -> tuple[FeedOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "error")

    @property
    def new_items(self) -> int:
        return sum(o.new_items for o in self.outcomes)

    @property
    def alerts(self) -> int:
        return sum(o.alerts for o in self.outcomes)


def _eligible(item: FeedItem, *, first_poll: bool, cutoff: datetime) -> bool:
    """The backlog rule: old items never alert; on a feed's first poll, undated ones don't either."""
    if item.published is None:
        return not first_poll
    return item.published >= cutoff


async def poll_feed(feed: FeedConfig, *, config: Config, store: Store, matcher: Matcher,
                    client: httpx.AsyncClient, now: datetime, dry_run: bool = False) -> FeedOutcome:
    """Poll one feed and queue its alerts. Never raises for the feed's own failures."""
    try:
        return await _poll_feed(feed, config=config, store=store, matcher=matcher, client=client,
                                now=now, dry_run=dry_run)
    except Exception as exc:  # a bug on one feed's data must not stop the others
        log.exception("feed_poll_crashed feed=%s", feed.name)
        error = f"internal: {type(exc).__name__}: {exc}"
        if not dry_run:
            store.record_failure(feed.name, feed.url, error, now=now)
        return FeedOutcome(feed=feed.name, status="error", error=error)


def _failed(feed: FeedConfig, error: str, *, store: Store, now: datetime,
            dry_run: bool) -> FeedOutcome:
    failures = 1
    if not dry_run:
        store.record_failure(feed.name, feed.url, error, now=now)
        state = store.feed_state(feed.name)
        failures = state.consecutive_failures if state else 1
    event(log, "feed_polled", logging.WARNING, status="error", feed=feed.name, error=error,
          failures=failures)
    return FeedOutcome(feed=feed.name, status="error", error=error, consecutive_failures=failures)


async def _poll_feed(feed: FeedConfig, *, config: Config, store: Store, matcher: Matcher,
                     client: httpx.AsyncClient, now: datetime, dry_run: bool) -> FeedOutcome:
    state = store.feed_state(feed.name)
    validators = Validators()
    if state is not None and state.url == feed.url and state.last_status != "error":
        validators = Validators(etag=state.etag, last_modified=state.last_modified)
    result = await fetch_feed(client, feed, poll=config.poll, validators=validators)
    if result.status == "error":
        return _failed(feed, result.error or "unknown", store=store, now=now, dry_run=dry_run)
    if result.status == "not_modified":
        if not dry_run:
            store.record_not_modified(feed.name, feed.url, now=now)
        event(log, "feed_polled", status="not_modified", feed=feed.name)
        return FeedOutcome(feed=feed.name, status="not_modified")
    try:
        parsed = parse_feed(result.body, feed=feed.name, url=result.url,
                            content_type=result.content_type)
    except ParseError as exc:
        return _failed(feed, f"parse: {exc}", store=store, now=now, dry_run=dry_run)

    first_poll = state is None or state.first_polled_at is None
    cutoff = now - timedelta(hours=config.poll.max_age_hours)
    new = []
    for item, link in find_new(store, parsed.items):
        result_ = (matcher.match(item.title, item.summary)
                   if _eligible(item, first_poll=first_poll, cutoff=cutoff) else None)
        new.append(NewItem(item=item, canonical_link=link, result=result_))
    alerting = [n for n in new if n.result is not None and n.result.alert]
    previews: tuple[Alert, ...] = ()
    if dry_run:
        previews = tuple(_preview(n, now) for n in alerting)
    else:
        store.record_poll(feed.name, feed.url, new, destinations=config.destinations.names(),
                          etag=result.validators.etag,
                          last_modified=result.validators.last_modified, now=now)
    event(log, "feed_polled", status="ok", feed=feed.name, items=len(parsed.items),
          new=len(new), alerts=len(alerting), first_poll=first_poll or None,
          warning=parsed.warning)
    return FeedOutcome(feed=feed.name, status="ok", items=len(parsed.items), new_items=len(new),
                       alerts=len(alerting), previews=previews)


def _preview(new: NewItem, now: datetime) -> Alert:
    item, result = new.item, new.result
    assert result is not None
    return Alert(id=0, feed=item.feed, title=item.title, link=item.link, summary=item.summary,
                 published=item.published, created_at=now, matches=result.matches,
                 rules=result.rules)


async def run_cycle(feeds: Sequence[FeedConfig], *, config: Config, store: Store,
                    matcher: Matcher, client: httpx.AsyncClient, now: datetime,
                    dry_run: bool = False) -> CycleReport:
    """Poll the given feeds concurrently (bounded by ``poll.concurrency``)."""
    gate = asyncio.Semaphore(config.poll.concurrency)

    async def one(feed: FeedConfig) -> FeedOutcome:
        async with gate:
            return await poll_feed(feed, config=config, store=store, matcher=matcher,
                                   client=client, now=now, dry_run=dry_run)

    return CycleReport(tuple(await asyncio.gather(*(one(f) for f in feeds))))
