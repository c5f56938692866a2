"""One poll cycle, in three steps per feed: ``gather`` (fetch, parse, read what the store
knows), ``decide`` (pure: a ``FeedPlan`` of new items, alerts and the next poll), then, after
story placement across feeds, ``apply`` (the only writes; a dry run skips them). No clocks, no
sleeping: the caller passes ``now`` in the ``PollContext``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from .config import Config, FeedConfig, PollConfig
from .coordinate import Coordinator, feed_lease
from .dedupe import edited_titles, find_new, title_key
from .deliver import personal_destination
from .errors import ParseError
from .fetch import Fetcher, FetchResult, Validators
from .logs import event
from .match import Matcher
from .outlets import outlet_name
from .parse import parse_feed
from .store import Store
from .stories import FOLLOW, JOIN, NEW, Clusterer, outlet_of
from .types import Alert, FeedItem, FeedState, MatchResult, NewItem, ParsedFeed

log = logging.getLogger("chipwatch.pipeline")
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedOutcome:
    """What one poll of one feed did."""

    feed: str
    status: Literal["ok", "not_modified", "unchanged", "error", "disabled", "skipped"]
    items: int = 0
    new_items: int = 0
    alerts: int = 0
    story_joins: int = 0  # alerting items that joined an existing story instead of alerting
    story_followups: int = 0  # of the alerts, follow-ups: replies in a story's thread, quiet
    error: str | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    flagged: bool = False  # failing for longer than poll.failing_after_hours
    next_poll_at: datetime | None = None
    previews: tuple[Alert, ...] = ()  # dry-run only: the alerts that would have been queued
    elsewhere: bool = False  # skipped: not due, or claimed by another instance


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
    def elsewhere(self) -> int:
        """Feeds another instance on the same database polled (or had just polled)."""
        return sum(o.elsewhere for o in self.outcomes)

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


def next_interval(
    feed: FeedConfig,
    poll: PollConfig,
    *,
    previous: float | None,
    had_new: bool,
    hint: float | None = None,
) -> float:
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


def backoff_seconds(
    feed: FeedConfig, poll: PollConfig, *, failures: int, retry_after: float | None = None
) -> float:
    """Seconds until the next try after ``failures`` failures in a row: the interval doubled per
    failure, at least what ``Retry-After`` asked for, capped by ``max_backoff_seconds``."""
    seconds = feed.interval_seconds * 2.0 ** max(0, failures - 1)
    if retry_after:
        seconds = max(seconds, retry_after)
    return min(seconds, float(poll.max_backoff_seconds))


@dataclass(frozen=True, slots=True, kw_only=True)
class PollContext:
    """What every feed's poll in one cycle shares."""

    config: Config
    store: Store
    matcher: Matcher
    fetcher: Fetcher
    now: datetime
    clusterer: Clusterer | None = None
    dry_run: bool = False  # decide and report, apply nothing
    # skip feeds that are not due (the scheduler ticks at the shortest interval)
    respect_schedule: bool = False
    # several instances on one database: claim each feed, and place stories under a lock
    coordinator: Coordinator | None = None
    # called as each feed's fetch and decision are done (``once``'s progress line)
    on_feed_done: Callable[[], object] | None = None


# --- gather: everything the decision needs, read from the store and the network -----------


@dataclass(frozen=True, slots=True, kw_only=True)
class Known:
    """What the store knew about a fetched feed's items before this poll."""

    fresh: tuple[tuple[FeedItem, str], ...]  # unseen items with their canonical links
    recent_title_keys: tuple[str, ...]
    muted: Mapping[str, object]
    subscriptions: tuple[tuple[int, str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """One feed fetched (and parsed, when there was something to parse)."""

    feed: FeedConfig
    state: FeedState | None  # None when new, or when the config points somewhere new
    url: str  # what was fetched
    result: FetchResult  # without its body
    parsed: ParsedFeed | None = None
    parse_error: str | None = None
    known: Known | None = None


def _state(feed: FeedConfig, store: Store) -> FeedState | None:
    state = store.feed_state(feed.name)
    return None if state is not None and state.url != feed.url else state


def not_due(
    feed: FeedConfig, state: FeedState | None, *, now: datetime, respect_schedule: bool
) -> FeedOutcome | None:
    """A feed that is not polled now: disabled, or (on schedule) not due yet."""
    if state is not None and state.disabled_reason:
        return FeedOutcome(feed=feed.name, status="disabled", error=state.disabled_reason)
    if (
        respect_schedule
        and state is not None
        and state.next_poll_at is not None
        and state.next_poll_at > due_by(feed, now)
    ):
        return FeedOutcome(feed=feed.name, status="skipped", next_poll_at=state.next_poll_at)
    return None


def due_by(feed: FeedConfig, now: datetime) -> datetime:
    """A feed whose next poll time is before this is due now (see ``jitter_seconds``)."""
    return now + timedelta(seconds=feed.jitter_seconds)


async def gather(feed: FeedConfig, ctx: PollContext) -> Fetched | FeedOutcome:
    """Fetch and parse one feed and read what the store knows of its items. Writes nothing."""
    state = _state(feed, ctx.store)
    skip = not_due(feed, state, now=ctx.now, respect_schedule=ctx.respect_schedule)
    if skip is not None:
        return skip
    url = state.fetch_url if state else feed.url
    validators = Validators()
    if state is not None and state.last_status != "error":
        validators = Validators(etag=state.etag, last_modified=state.last_modified)
    result = await ctx.fetcher.fetch(
        feed.name, url, validators=validators, previous_hash=state.body_hash if state else None
    )
    fetched = Fetched(feed=feed, state=state, url=url, result=replace(result, body=b""))
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


# --- decide: pure ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedPlan:
    """What one poll of one feed should change. Applying it is the only write."""

    feed: FeedConfig
    status: Literal["ok", "not_modified", "unchanged", "error", "gone"]
    url: str
    moved_to: str | None = None  # a permanent redirect to record
    error: str | None = None
    failures: int = 0  # in a row, this one included
    failing_since: datetime | None = None
    flagged: bool = False
    interval: float | None = None  # seconds to the next poll
    next_poll_at: datetime | None = None
    validators: Validators = Validators()
    body_hash: str | None = None
    items: tuple[NewItem, ...] = ()
    edited: tuple[str, ...] = ()  # titles recognised as edits of items already seen
    item_count: int = 0
    first_poll: bool = False
    warning: str | None = None

    @property
    def alerting(self) -> tuple[NewItem, ...]:
        return _alerting(self.items)


def _alerting(items: Sequence[NewItem]) -> tuple[NewItem, ...]:
    """Items that alert: matched, and not joining an existing story (which adds a source)."""
    return tuple(
        n
        for n in items
        if n.result is not None and n.result.alert and (n.story_id is None or n.new_story)
    )


def decide(fetched: Fetched, *, config: Config, matcher: Matcher, now: datetime) -> FeedPlan:
    """The poll's outcome from what was fetched and what was known; no I/O."""
    feed, state, result = fetched.feed, fetched.state, fetched.result
    moved = result.moved_to if result.moved_to and result.moved_to != fetched.url else None
    plan = FeedPlan(feed=feed, status="ok", url=fetched.url, moved_to=moved)
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
            feed, config.poll, previous=previous, had_new=False, hint=result.max_age
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
        known, config=config, matcher=matcher, now=now, first_poll=first_poll
    )
    ttl = parsed.ttl_minutes
    hints = [h for h in (result.max_age, ttl * 60.0 if ttl else None) if h]
    interval = next_interval(
        feed,
        config.poll,
        previous=previous,
        had_new=bool(items),
        hint=max(hints) if hints else None,
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
    known: Known, *, config: Config, matcher: Matcher, now: datetime, first_poll: bool
) -> tuple[tuple[NewItem, ...], tuple[str, ...]]:
    """Each unseen item matched (unless it is an edit or too old), with its destinations."""
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
            result = matcher.match(item.title, item.summary)
            if known.muted:
                result = matcher.without(result, known.muted)
            extra = subscribers(result, known.subscriptions)
        who = (*(config.destinations.names() if result and result.alert else ()), *extra)
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


# --- apply: the only writes -----------------------------------------------------------------


def apply(
    plan: FeedPlan, ctx: PollContext, *, deferred: list[NewItem] | None = None
) -> FeedOutcome:
    """Record a plan (its items already placed in stories) and log it; a dry run only logs
    and previews."""
    feed, store, now, dry = plan.feed, ctx.store, ctx.now, ctx.dry_run
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
        previews = tuple(_preview(n, now) for n in alerting)
    else:
        fields: dict[str, object] = dict(
            etag=plan.validators.etag,
            last_modified=plan.validators.last_modified,
            body_hash=plan.body_hash,
            next_poll_at=plan.next_poll_at,
            interval_seconds=plan.interval,
            **moved,
        )
        if plan.items:
            fields["last_new_at"] = now
        store.record_poll(
            feed.name,
            feed.url,
            plan.items,
            now=now,
            edit_delay=_edit_delay(ctx.config),
            deferred=deferred,
            **fields,
        )
        _momentum(plan.items, config=ctx.config, store=store, now=now)
    event(
        log,
        "feed_polled",
        status="ok",
        feed=feed.name,
        items=plan.item_count,
        new=len(plan.items),
        alerts=len(alerting),
        first_poll=plan.first_poll or None,
        next_in=f"{plan.interval:g}s",
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


# --- one feed, one cycle --------------------------------------------------------------------


async def poll_feed(feed: FeedConfig, ctx: PollContext) -> FeedOutcome:
    """Poll one feed and queue its alerts. Never raises for the feed's own failures."""
    report = await run_cycle([feed], ctx)
    return report.outcomes[0]


async def _planned(feed: FeedConfig, ctx: PollContext) -> FeedPlan | FeedOutcome:
    fetched = await gather(feed, ctx)
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


def _edit_delay(config: Config) -> timedelta:
    """Story updates within this delay merge into one edit of the sent alert."""
    return timedelta(seconds=config.stories.edit_delay_seconds)


def _momentum(new: Sequence[NewItem], *, config: Config, store: Store, now: datetime) -> None:
    """A story carried by ``stories.momentum_sources`` distinct sources within
    ``stories.momentum_minutes`` becomes major: its alert is edited to say so."""
    since = now - timedelta(minutes=config.stories.momentum_minutes)
    for n in new:
        if n.story_id is None or n.new_story:
            continue
        sources = store.story_momentum(n.story_id, since=since)
        if sources is not None and sources >= config.stories.momentum_sources:
            store.mark_major(n.story_id, now=now, edit_delay=_edit_delay(config))
            event(log, "story_major", story=n.story_id, title=n.item.title, sources=sources)


EDIT_LOOKBACK = timedelta(days=7)


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


def _placed(new: NewItem, clusterer: Clusterer | None, *, now: datetime, feed_url: str) -> NewItem:
    """Cluster an alerting item: it starts a story, or joins one instead of alerting."""
    item = new.item
    outlet = outlet_of(source=item.source, link=item.link, feed=item.feed)
    name = outlet_name(outlet, source=item.source, feed=item.feed, feed_url=feed_url)
    new = replace(new, outlet=outlet, source_name=name)
    if clusterer is None:
        return new
    title = strip_source_suffix(item.title, item.source)
    if new.result is None or not new.result.alert:
        clusterer.observe(title)
        return new
    placed = clusterer.place(title, new.result.matches, source=outlet, at=now)
    event(
        log,
        _STORY_EVENTS[placed.decision.outcome],
        story=placed.story_id,
        feed=item.feed,
        outlet=outlet,
        title=item.title,
        decision=placed.decision.explain(),
    )
    return replace(
        new,
        story_id=placed.story_id,
        new_story=placed.new_story,
        thread=placed.thread,
        decision=placed.decision.explain(),
        member=tuple(placed.member) if placed.member is not None else None,
        entities=placed.entities,
        story_actions=placed.actions,
        report=placed.says_more,
    )


# One log event per story decision (scripts read them: see the interface contract).
_STORY_EVENTS = {NEW: "story_new", JOIN: "story_joined", FOLLOW: "story_followup"}


def strip_source_suffix(title: str, source: str) -> str:
    """ "Headline - Reuters" → "Headline", as aggregators such as Google News title items."""
    source = source.strip()
    for sep in (" - ", " | ", " — ", " – "):
        if source and title.endswith(sep + source):
            return title[: -len(sep + source)].rstrip()
    return title


def _preview(new: NewItem, now: datetime) -> Alert:
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


async def run_cycle(feeds: Sequence[FeedConfig], ctx: PollContext) -> CycleReport:
    """Poll the given feeds concurrently (the fetcher bounds concurrency, globally and per
    host) and decide each; place every feed's new items in order of publication, across
    feeds, so a story's first report starts it whichever feed carried it; then apply each
    feed's plan. With a coordinator, only the feeds this instance could claim are polled."""
    coordinator = ctx.coordinator
    if coordinator is None or ctx.dry_run:
        return await _run_cycle(feeds, ctx)
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
        report = await _run_cycle(claimed, ctx)
    finally:
        for feed in claimed:
            coordinator.release_feed(feed)
    mine = {o.feed: o for o in report.outcomes}
    return CycleReport(tuple(mine.get(f.name) or others[f.name] for f in feeds))


async def _run_cycle(feeds: Sequence[FeedConfig], ctx: PollContext) -> CycleReport:
    async def plan(feed: FeedConfig) -> FeedPlan | FeedOutcome:
        try:
            return await _guarded(feed, ctx, _planned(feed, ctx))
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
        placed = _place_in_order(plans, ctx.clusterer, now=ctx.now)
        outcomes: list[FeedOutcome] = []
        deferred: list[NewItem] = []
        for p in planned:
            if isinstance(p, FeedPlan):
                p = await _guarded(
                    p.feed, ctx, _applied(replace(p, items=placed[id(p)]), ctx, deferred)
                )
            outcomes.append(p)
        if deferred:
            ctx.store.apply_joins(deferred, now=ctx.now, edit_delay=_edit_delay(ctx.config))
            _momentum(deferred, config=ctx.config, store=ctx.store, now=ctx.now)
    return CycleReport(tuple(outcomes))


def _place_in_order(
    ready: Sequence[FeedPlan], clusterer: Clusterer | None, *, now: datetime
) -> dict[int, tuple[NewItem, ...]]:
    """Each prepared feed's items, placed in story order: by publication time across feeds
    (undated ones last). One article reached through two feeds in this cycle alerts once."""
    order = sorted(
        (
            (n.item.published or now, k, j)
            for k, p in enumerate(ready)
            for j, n in enumerate(p.items)
        ),
        key=lambda t: (t[0], t[1], t[2]),
    )
    done: dict[tuple[int, int], NewItem] = {}
    links: set[str] = set()
    for _, k, j in order:
        n = ready[k].items[j]
        if n.result is not None and n.canonical_link:
            if n.canonical_link in links:
                n = replace(n, result=None)  # the same article from another feed: seen, silent
            links.add(n.canonical_link)
        done[(k, j)] = _placed(n, clusterer, now=now, feed_url=ready[k].feed.url)
    return {id(p): tuple(done[(k, j)] for j in range(len(p.items))) for k, p in enumerate(ready)}
