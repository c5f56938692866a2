"""Gather: fetch and parse one feed and read what the store knows of its items. Writes nothing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

from ..config import FeedConfig
from ..dedupe import find_new
from ..errors import ParseError
from ..fetch import FetchResult, Validators
from ..parse import parse_feed
from ..store import Store
from ..types import FeedState
from .model import FeedOutcome, Fetched, Known, PollContext
from .schedule import not_due

log = logging.getLogger("chipwatch.pipeline")


EDIT_LOOKBACK = timedelta(days=7)


def _state(feed: FeedConfig, store: Store) -> FeedState | None:
    state = store.feed_state(feed.name)
    return None if state is not None and state.url != feed.url else state


async def gather(
    feed: FeedConfig, ctx: PollContext, *, pushed: FetchResult | None = None
) -> Fetched | FeedOutcome:
    """Fetch and parse one feed and read what the store knows of its items. Writes nothing.
    ``pushed``: the body a WebSub hub delivered, taken instead of a fetch."""
    state = _state(feed, ctx.store)
    url = state.fetch_url if state else feed.url
    if pushed is not None:
        if state is not None and state.disabled_reason:
            return FeedOutcome(feed=feed.name, status="disabled", error=state.disabled_reason)
        result = pushed
    else:
        skip = not_due(feed, state, now=ctx.now, respect_schedule=ctx.respect_schedule)
        if skip is not None:
            return skip
        validators = Validators()
        if state is not None and state.last_status != "error":
            validators = Validators(etag=state.etag, last_modified=state.last_modified)
        result = await ctx.fetcher.fetch(
            feed.name,
            url,
            validators=validators,
            previous_hash=state.body_hash if state else None,
            proxy=feed.proxy,
        )
    subscribed = (
        pushed is None
        and ctx.config.websub is not None
        and ctx.store.websub_active(feed.name, now=ctx.now)
    )
    fetched = Fetched(
        feed=feed,
        state=state,
        url=url,
        result=replace(result, body=b""),
        pushed=pushed is not None,
        subscribed=subscribed,
    )
    if result.status != "ok":
        return fetched
    try:
        # In a worker thread: a multi-megabyte body takes the parser a while, and the event
        # loop must keep fetching and delivering meanwhile.
        parsed = await asyncio.to_thread(
            parse_feed,
            result.body,
            feed=feed.name,
            url=result.final_url or url,
            content_type=result.content_type,
        )
    except ParseError as exc:
        return replace(fetched, parse_error=f"parse: {exc}")
    store, now = ctx.store, ctx.now
    fresh = tuple(find_new(store, parsed.items))
    known = Known(
        fresh=fresh,
        recent_title_keys=tuple(store.recent_title_keys(feed.name, since=now - EDIT_LOOKBACK)),
        muted=store.active_mutes(now=now) if fresh else {},
        subscriptions=tuple(store.subscriptions())
        if fresh and ctx.config.destinations.telegram
        else (),
    )
    return replace(fetched, parsed=parsed, known=known)
