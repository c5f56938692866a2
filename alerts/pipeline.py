"""One poll cycle: fetch → parse → dedupe → match → store (outbox). No clocks, no sleeping:
the caller passes ``now``, so a cycle is a plain function of its inputs and the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from .config import Config, FeedConfig, PollConfig
from .cluster import Clusterer, outlet_of
from .dedupe import edited_titles, find_new, title_key
from .errors import ParseError
from .fetch import FetchResult, Fetcher, Validators
from .logs import event
from .match import Matcher
from .parse import parse_feed
from .store import Store
from .types import Alert, FeedItem, MatchResult, NewItem, ParsedFeed

log = logging.getLogger("chipwatch.pipeline")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedOutcome:
    """What one poll of one feed did."""

    feed: str
    status: Literal["ok", "not_modified", "unchanged", "error", "disabled", "skipped"]
    items: int = 0
    new_items: int = 0
    alerts: int = 0
    error: str | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    flagged: bool = False  # failing for longer than poll.failing_after_hours
    next_poll_at: datetime | None = None
    previews: tuple[Alert, ...] = ()  # dry-run only: the alerts that would have been queued


@dataclass(frozen=True, slots=True)
class CycleReport:
    outcomes: tuple[FeedOutcome, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> int:
        return sum(o.status in ("ok", "not_modified", "unchanged") for o in self.outcomes)

    @property
    def failed(self) -> tuple[FeedOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "error")

    @property
    def disabled(self) -> tuple[FeedOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "disabled")

    @property
    def flagged(self) -> tuple[FeedOutcome, ...]:
        return tuple(o for o in self.outcomes if o.flagged)

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


def next_interval(feed: FeedConfig, poll: PollConfig, *, previous: float | None, had_new: bool,
                  hint: float | None = None) -> float:
    """Seconds until the next poll after a success. Busy feeds stay at ``interval_seconds``; each
    quiet poll stretches the interval by half, up to ``max_interval_seconds``. ``hint`` (from
    Cache-Control max-age or RSS <ttl>) is a lower bound, capped by the same maximum."""
    low, high = feed.interval_seconds, feed.max_interval_seconds
    if not poll.adaptive or had_new or previous is None:
        seconds = float(low)
    else:
        seconds = min(float(high), max(float(low), previous * 1.5))
    if hint:
        seconds = max(seconds, min(hint, float(high)))
    return seconds


def backoff_seconds(feed: FeedConfig, poll: PollConfig, *, failures: int,
                    retry_after: float | None = None) -> float:
    """Seconds until the next try after ``failures`` failures in a row: the interval doubled per
    failure, at least what ``Retry-After`` asked for, capped by ``max_backoff_seconds``."""
    seconds = feed.interval_seconds * 2.0 ** max(0, failures - 1)
    if retry_after:
        seconds = max(seconds, retry_after)
    return min(seconds, float(poll.max_backoff_seconds))


async def poll_feed(feed: FeedConfig, *, config: Config, store: Store, matcher: Matcher,
                    fetcher: Fetcher, now: datetime, dry_run: bool = False,
                    respect_schedule: bool = False,
                    clusterer: Clusterer | None = None) -> FeedOutcome:
    """Poll one feed and queue its alerts. Never raises for the feed's own failures.

    ``respect_schedule`` skips a feed whose backoff, Retry-After or adaptive interval says it is
    not due yet (the scheduler ticks at the shortest interval and relies on this)."""
    prepared = await _guarded(feed, store=store, now=now, dry_run=dry_run, work=_prepare(
        feed, config=config, store=store, matcher=matcher, fetcher=fetcher, now=now,
        dry_run=dry_run, respect_schedule=respect_schedule))
    if isinstance(prepared, FeedOutcome):
        return prepared
    placed = [_placed(n, clusterer, now=now) for n in prepared.items]
    return await _guarded(feed, store=store, now=now, dry_run=dry_run, work=_finish(
        prepared, placed, config=config, store=store, now=now, dry_run=dry_run))


async def _guarded(feed: FeedConfig, *, store: Store, now: datetime, dry_run: bool, work):  # noqa: ANN001, ANN202
    """Run one feed's step; a bug on one feed's data must not stop the others."""
    try:
        return await work
    except Exception as exc:
        log.exception("feed_poll_crashed feed=%s", feed.name)
        error = f"internal: {type(exc).__name__}: {exc}"
        if not dry_run:
            store.record_failure(feed.name, feed.url, error, now=now)
        return FeedOutcome(feed=feed.name, status="error", error=error)


def _failed(feed: FeedConfig, error: str, *, config: Config, store: Store, now: datetime,
            dry_run: bool, retry_after: float | None = None) -> FeedOutcome:
    if dry_run:
        event(log, "feed_polled", logging.WARNING, status="error", feed=feed.name, error=error)
        return FeedOutcome(feed=feed.name, status="error", error=error, consecutive_failures=1)
    previous = store.feed_state(feed.name)
    failures = (previous.consecutive_failures if previous and previous.url == feed.url else 0) + 1
    wait = backoff_seconds(feed, config.poll, failures=failures, retry_after=retry_after)
    state = store.record_failure(feed.name, feed.url, error, now=now,
                                 next_poll_at=now + timedelta(seconds=wait))
    since = state.failing_since or now
    flagged = now - since >= timedelta(hours=config.poll.failing_after_hours)
    event(log, "feed_polled", logging.WARNING, status="error", feed=feed.name, error=error,
          failures=state.consecutive_failures, retry_in=f"{wait:g}s")
    if flagged:
        event(log, "feed_failing_long", logging.ERROR, feed=feed.name,
              since=since.isoformat(timespec="minutes"), error=error)
    return FeedOutcome(feed=feed.name, status="error", error=error,
                       consecutive_failures=state.consecutive_failures, failing_since=since,
                       flagged=flagged, next_poll_at=state.next_poll_at)


@dataclass(slots=True, kw_only=True)
class _Prepared:
    """A feed fetched and parsed, its new items matched, nothing placed or recorded yet."""

    feed: FeedConfig
    result: FetchResult
    parsed: ParsedFeed  # without its entries (``item_count`` says how many there were)
    item_count: int
    moved: dict[str, object]
    first_poll: bool
    previous: float | None  # the adaptive interval before this poll
    items: list[NewItem]


async def _prepare(feed: FeedConfig, *, config: Config, store: Store, matcher: Matcher,
                   fetcher: Fetcher, now: datetime, dry_run: bool,
                   respect_schedule: bool) -> FeedOutcome | _Prepared:
    state = store.feed_state(feed.name)
    if state is not None and state.url != feed.url:
        state = None  # the config points somewhere new: start afresh
    if state is not None and state.disabled_reason:
        return FeedOutcome(feed=feed.name, status="disabled", error=state.disabled_reason)
    if (respect_schedule and state is not None and state.next_poll_at is not None
            and state.next_poll_at > now):
        return FeedOutcome(feed=feed.name, status="skipped", next_poll_at=state.next_poll_at)

    url = state.fetch_url if state else feed.url
    validators = Validators()
    if state is not None and state.last_status != "error":
        validators = Validators(etag=state.etag, last_modified=state.last_modified)
    result = await fetcher.fetch(feed.name, url, validators=validators,
                                 previous_hash=state.body_hash if state else None)
    moved: dict[str, object] = {}
    if result.moved_to and result.moved_to != url:
        moved["effective_url"] = result.moved_to
        event(log, "feed_moved", logging.WARNING, feed=feed.name, old=url, new=result.moved_to)

    if result.status == "gone":
        reason = f"410 Gone at {url} ({now:%Y-%m-%d}); fix or remove the feed in the config"
        if not dry_run:
            store.update_feed(feed.name, feed.url, disabled_reason=reason, last_status="gone",
                              last_polled_at=now, last_error="http_410", **moved)
        event(log, "feed_disabled", logging.ERROR, feed=feed.name, reason=reason)
        return FeedOutcome(feed=feed.name, status="disabled", error=reason)
    if result.status == "error":
        if moved and not dry_run:
            store.update_feed(feed.name, feed.url, **moved)
        return _failed(feed, result.error or "unknown", config=config, store=store, now=now,
                       dry_run=dry_run, retry_after=result.retry_after)

    previous = state.interval_seconds if state else None
    if result.status in ("not_modified", "unchanged"):
        interval = next_interval(feed, config.poll, previous=previous, had_new=False,
                                 hint=result.max_age)
        if not dry_run:
            store.record_unchanged(feed.name, feed.url, result.status, now=now,
                                   next_poll_at=now + timedelta(seconds=interval),
                                   interval_seconds=interval, **moved)
        event(log, "feed_polled", status=result.status, feed=feed.name,
              next_in=f"{interval:g}s")
        return FeedOutcome(feed=feed.name, status=result.status)

    try:
        # In a worker thread: a multi-megabyte body takes the parser a while, and the event
        # loop must keep fetching and delivering meanwhile.
        parsed = await asyncio.to_thread(parse_feed, result.body, feed=feed.name,
                                         url=result.final_url or url,
                                         content_type=result.content_type)
    except ParseError as exc:
        if moved and not dry_run:
            store.update_feed(feed.name, feed.url, **moved)
        return _failed(feed, f"parse: {exc}", config=config, store=store, now=now,
                       dry_run=dry_run)

    first_poll = state is None or state.first_polled_at is None
    cutoff = now - timedelta(hours=config.poll.max_age_hours)
    fresh = find_new(store, parsed.items)
    keys = [title_key(item.title) for item, _ in fresh]
    edits = edited_titles(keys, store.recent_title_keys(feed.name, since=now - EDIT_LOOKBACK))
    muted = store.active_mutes(now=now) if fresh else {}
    subscriptions = store.subscriptions() if fresh and config.destinations.telegram else []
    new = []
    for i, (item, link) in enumerate(fresh):
        result_, extra = None, ()
        if i in edits:
            event(log, "item_edited", feed=feed.name, title=item.title)
        elif _eligible(item, first_poll=first_poll, cutoff=cutoff):
            result_ = matcher.match(item.title, item.summary)
            if muted:
                result_ = matcher.without(result_, muted)
            extra = subscribers(result_, subscriptions)
        who = (*(config.destinations.names() if result_ and result_.alert else ()), *extra)
        new.append(NewItem(item=item, canonical_link=link, result=result_,
                           title_key=keys[i], destinations=tuple(dict.fromkeys(who))))
    # Only what recording needs waits for the other feeds: not the body, not every entry.
    return _Prepared(feed=feed, result=replace(result, body=b""), parsed=replace(parsed, items=()),
                     item_count=len(parsed.items), moved=moved, first_poll=first_poll,
                     previous=previous, items=new)


async def _finish(p: _Prepared, new: list[NewItem], *, config: Config, store: Store,
                  now: datetime, dry_run: bool,
                  deferred: list[NewItem] | None = None) -> FeedOutcome:
    """Record a prepared poll with its placed items (or, in a dry run, only preview it)."""
    feed, result, parsed, moved, first_poll = p.feed, p.result, p.parsed, p.moved, p.first_poll
    previous = p.previous
    # Items that joined an existing story add a source to its alert instead of alerting.
    alerting = [n for n in new if n.result is not None and n.result.alert
                and (n.story_id is None or n.new_story)]
    ttl = getattr(parsed, "ttl_minutes", None)
    hints = [h for h in (result.max_age, ttl * 60.0 if ttl else None) if h]
    interval = next_interval(feed, config.poll, previous=previous, had_new=bool(new),
                             hint=max(hints) if hints else None)
    previews: tuple[Alert, ...] = ()
    if dry_run:
        previews = tuple(_preview(n, now) for n in alerting)
    else:
        fields: dict[str, object] = dict(
            etag=result.validators.etag, last_modified=result.validators.last_modified,
            body_hash=result.body_hash, next_poll_at=now + timedelta(seconds=interval),
            interval_seconds=interval, **moved)
        if new:
            fields["last_new_at"] = now
        store.record_poll(feed.name, feed.url, new, now=now, edit_delay=_edit_delay(config),
                          deferred=deferred, **fields)
        _momentum(new, config=config, store=store, now=now)
    event(log, "feed_polled", status="ok", feed=feed.name, items=p.item_count,
          new=len(new), alerts=len(alerting), first_poll=first_poll or None,
          next_in=f"{interval:g}s", warning=parsed.warning)
    return FeedOutcome(feed=feed.name, status="ok", items=p.item_count, new_items=len(new),
                       alerts=len(alerting), previews=previews)


def _edit_delay(config: Config) -> timedelta:
    """Story updates within this delay merge into one edit of the sent alert."""
    return timedelta(seconds=config.stories.edit_delay_seconds)


def _momentum(new: Sequence[NewItem], *, config: Config, store: Store, now: datetime) -> None:
    for n in new:
        if n.story_id is not None and not n.new_story and store.mark_major(
                n.story_id, momentum_sources=config.stories.momentum_sources,
                within=timedelta(minutes=config.stories.momentum_minutes), now=now,
                edit_delay=_edit_delay(config)):
            event(log, "story_major", story=n.story_id, title=n.item.title)


EDIT_LOOKBACK = timedelta(days=7)


def subscribers(result: MatchResult, subscriptions: Sequence[tuple[int, str, str]]) -> tuple[str, ...]:
    """Personal destinations (``telegram:<chat id>``) for an item: subscribed to a term it
    matched (with or without a rule holding), or to a rule that held."""
    if not subscriptions or not result.matches:
        return ()
    terms = {m.term.casefold() for m in result.matches}
    return tuple(dict.fromkeys(
        f"telegram:{chat}" for chat, kind, value in subscriptions
        if (kind == "term" and value.casefold() in terms) or (kind == "rule" and value in result.rules)))


def _placed(new: NewItem, clusterer: Clusterer | None, *, now: datetime) -> NewItem:
    """Cluster an alerting item: it starts a story, or joins one instead of alerting."""
    item = new.item
    outlet = outlet_of(source=item.source, link=item.link, feed=item.feed)
    name = item.source.strip() or item.feed
    new = replace(new, outlet=outlet, source_name=name)
    if clusterer is None:
        return new
    title = strip_source_suffix(item.title, item.source)
    if new.result is None or not new.result.alert:
        clusterer.observe(title)
        return new
    placed = clusterer.place(title, new.result.matches, source=outlet, at=now)
    event(log, "story_new" if placed.new_story else "story_joined", story=placed.story_id,
          feed=item.feed, outlet=outlet if outlet != item.feed else None, title=item.title,
          decision=placed.decision.explain())
    return replace(new, story_id=placed.story_id, new_story=placed.new_story,
                   member=tuple(placed.member) if placed.member is not None else None,
                   entities=placed.entities, story_actions=placed.actions,
                   report=placed.says_more)


def strip_source_suffix(title: str, source: str) -> str:
    """"Headline - Reuters" → "Headline", as aggregators such as Google News title items."""
    source = source.strip()
    for sep in (" - ", " | ", " — ", " – "):
        if source and title.endswith(sep + source):
            return title[: -len(sep + source)].rstrip()
    return title


def _preview(new: NewItem, now: datetime) -> Alert:
    item, result = new.item, new.result
    assert result is not None
    return Alert(id=0, feed=item.feed, title=item.title, link=item.link, summary=item.summary,
                 published=item.published, created_at=now, matches=result.matches,
                 rules=result.rules)


async def run_cycle(feeds: Sequence[FeedConfig], *, config: Config, store: Store,
                    matcher: Matcher, fetcher: Fetcher, now: datetime,
                    dry_run: bool = False, respect_schedule: bool = False,
                    clusterer: Clusterer | None = None) -> CycleReport:
    """Poll the given feeds concurrently (the fetcher bounds concurrency, globally and per
    host), then place every feed's new items in order of publication, across feeds, so a
    story's first report starts it whichever feed carried it; then record each feed."""
    prepared = await asyncio.gather(*(
        _guarded(f, store=store, now=now, dry_run=dry_run, work=_prepare(
            f, config=config, store=store, matcher=matcher, fetcher=fetcher, now=now,
            dry_run=dry_run, respect_schedule=respect_schedule)) for f in feeds))
    ready = [p for p in prepared if isinstance(p, _Prepared)]
    placed = _place_in_order(ready, clusterer, now=now)
    outcomes, deferred = [], []
    for p in prepared:
        if isinstance(p, _Prepared):
            p = await _guarded(p.feed, store=store, now=now, dry_run=dry_run, work=_finish(
                p, placed[id(p)], config=config, store=store, now=now, dry_run=dry_run,
                deferred=deferred))
        outcomes.append(p)
    if deferred:
        store.apply_joins(deferred, now=now, edit_delay=_edit_delay(config))
        _momentum(deferred, config=config, store=store, now=now)
    return CycleReport(tuple(outcomes))


def _place_in_order(ready: Sequence[_Prepared], clusterer: Clusterer | None, *,
                    now: datetime) -> dict[int, list[NewItem]]:
    """Each prepared feed's items, placed in story order: by publication time across feeds
    (undated ones last). One article reached through two feeds in this cycle alerts once."""
    order = sorted(((n.item.published or now, k, j) for k, p in enumerate(ready)
                    for j, n in enumerate(p.items)), key=lambda t: (t[0], t[1], t[2]))
    done: dict[tuple[int, int], NewItem] = {}
    links: set[str] = set()
    for _, k, j in order:
        n = ready[k].items[j]
        if n.result is not None and n.canonical_link:
            if n.canonical_link in links:
                n = replace(n, result=None)  # the same article from another feed: seen, silent
            links.add(n.canonical_link)
        done[(k, j)] = _placed(n, clusterer, now=now)
    return {id(p): [done[(k, j)] for j in range(len(p.items))] for k, p in enumerate(ready)}
