"""Decide (pure): a poll's ``FeedPlan`` from what was fetched and known; no I/O."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from ..config import Config, FeedConfig
from ..dedupe import edited_titles, title_key
from ..deliver import personal_destination
from ..match import Matcher
from ..types import FeedItem, FeedState, HubLink, MatchResult, NewItem
from .model import FeedPlan, Fetched, Known
from .schedule import backoff_seconds, next_interval

log = logging.getLogger("chipwatch.pipeline")


def decide(fetched: Fetched, *, config: Config, matcher: Matcher, now: datetime) -> FeedPlan:
    """The poll's outcome from what was fetched and what was known; no I/O."""
    feed, state, result = fetched.feed, fetched.state, fetched.result
    moved = result.moved_to if result.moved_to and result.moved_to != fetched.url else None
    plan = FeedPlan(
        feed=feed,
        status="ok",
        url=fetched.url,
        moved_to=moved,
        pushed=fetched.pushed,
        hub=discover(fetched) if config.websub is not None and not fetched.pushed else None,
    )
    if result.status == "gone":
        return replace(
            plan,
            status="gone",
            error=(
                f"410 Gone at {fetched.url} ({now:%Y-%m-%d}); fix or remove the feed in the config"
            ),
        )
    # The next poll counts from when this one went out: a fetch that waited for a slot
    # (more feeds due than ``concurrency`` allows) would otherwise be due again at once.
    polled = now + timedelta(seconds=result.queued)
    error = (result.error or "unknown") if result.status == "error" else fetched.parse_error
    if error is not None:
        return _failure(
            plan,
            state,
            error,
            config=config,
            now=now,
            polled=polled,
            retry_after=result.retry_after if result.status == "error" else None,
        )
    previous = state.interval_seconds if state else None
    if result.status in ("not_modified", "unchanged"):
        interval = next_interval(
            feed,
            config.poll,
            previous=previous,
            had_new=False,
            hint=result.max_age,
            pushed=fetched.subscribed,
        )
        return replace(
            plan,
            status=result.status,
            interval=interval,
            next_poll_at=polled + timedelta(seconds=interval),
        )
    parsed, known = fetched.parsed, fetched.known
    assert parsed is not None and known is not None
    first_poll = state is None or state.first_polled_at is None
    items, edited = _new_items(
        known, feed, config=config, matcher=matcher, now=now, first_poll=first_poll
    )
    ttl = parsed.ttl_minutes
    hints = [h for h in (result.max_age, ttl * 60.0 if ttl else None) if h]
    interval = next_interval(
        feed,
        config.poll,
        previous=previous,
        had_new=bool(items),
        hint=max(hints) if hints else None,
        pushed=fetched.subscribed,
    )
    return replace(
        plan,
        interval=interval,
        next_poll_at=polled + timedelta(seconds=interval),
        validators=result.validators,
        body_hash=result.body_hash,
        items=items,
        edited=edited,
        item_count=len(parsed.items),
        first_poll=first_poll,
        warning=parsed.warning,
    )


def discover(fetched: Fetched) -> HubLink | None:
    """The feed's WebSub hub and topic: from ``Link:`` headers first, else from the feed's own
    links (the spec's order); the topic is ``rel="self"``, else the feed's URL. None when
    nothing can be said (a 304 or a failure: the body's links are as last time)."""
    result, parsed = fetched.result, fetched.parsed
    body_hubs, body_self = (parsed.hubs, parsed.self_link) if parsed else ((), None)
    hubs = result.hubs or body_hubs
    if hubs:
        topic = (result.self_link if result.hubs else body_self) or result.self_link or body_self
        return HubLink(hub=hubs[0], topic=topic or fetched.url)
    if parsed is None:
        return None
    return HubLink(hub=None, topic=fetched.url)


def _failure(
    plan: FeedPlan,
    state: FeedState | None,
    error: str,
    *,
    config: Config,
    now: datetime,
    polled: datetime,
    retry_after: float | None,
) -> FeedPlan:
    failures = (state.consecutive_failures if state else 0) + 1
    wait = backoff_seconds(plan.feed, config.poll, failures=failures, retry_after=retry_after)
    since = (state.failing_since if state else None) or now
    return replace(
        plan,
        status="error",
        error=error,
        failures=failures,
        failing_since=since,
        flagged=now - since >= timedelta(hours=config.poll.failing_after_hours),
        interval=wait,
        next_poll_at=polled + timedelta(seconds=wait),
    )


def _new_items(
    known: Known,
    feed: FeedConfig,
    *,
    config: Config,
    matcher: Matcher,
    now: datetime,
    first_poll: bool,
) -> tuple[tuple[NewItem, ...], tuple[str, ...]]:
    """Each unseen item matched (unless it is an edit or too old; the rules limited to feed
    tags apply by this feed's), with the destinations that take its alert."""
    cutoff = now - timedelta(hours=config.poll.max_age_hours)
    keys = [title_key(item.title) for item, _ in known.fresh]
    edits = edited_titles(keys, list(known.recent_title_keys))
    new, edited = [], []
    for i, (item, link) in enumerate(known.fresh):
        result = None
        extra: tuple[str, ...] = ()
        if i in edits:
            edited.append(item.title)
        elif _eligible(item, first_poll=first_poll, cutoff=cutoff):
            result = matcher.match(item.title, item.summary, tags=feed.tags)
            if known.muted:
                result = matcher.without(result, known.muted, feed.tags)
            extra = subscribers(result, known.subscriptions)
        routed = (
            config.destinations.route(
                rules=result.rules,
                categories=result.categories(),
                feed=feed.name,
                feed_tags=feed.tags,
            )
            if result and result.alert
            else ()
        )
        who = (*routed, *extra)
        new.append(
            NewItem(
                item=item,
                canonical_link=link,
                result=result,
                title_key=keys[i],
                destinations=tuple(dict.fromkeys(who)),
            )
        )
    return tuple(new), tuple(edited)


def _eligible(item: FeedItem, *, first_poll: bool, cutoff: datetime) -> bool:
    """The backlog rule: old items never alert; on a feed's first poll, undated ones don't either."""
    if item.published is None:
        return not first_poll
    return item.published >= cutoff


def subscribers(
    result: MatchResult, subscriptions: Sequence[tuple[int, str, str]]
) -> tuple[str, ...]:
    """Personal destinations (``telegram:<chat id>``) for an item: subscribed to a term it
    matched (with or without a rule holding), or to a rule that held."""
    if not subscriptions or not result.matches:
        return ()
    terms = {m.term.casefold() for m in result.matches}
    return tuple(
        dict.fromkeys(
            personal_destination(chat)
            for chat, kind, value in subscriptions
            if (kind == "term" and value.casefold() in terms)
            or (kind == "rule" and value in result.rules)
        )
    )
