"""What crosses the poll's steps: the context a cycle shares, what was fetched and known,
the plan, and each feed's outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ..config import Config, FeedConfig
from ..coordinate import Coordinator
from ..fetch import Fetcher, FetchResult, Validators
from ..match import Matcher
from ..store import Store
from ..stories import Clusterer
from ..types import Alert, FeedItem, FeedState, HubLink, NewItem, ParsedFeed

log = logging.getLogger("chipwatch.pipeline")


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
    pushed: bool = False  # the body came from the feed's WebSub hub, not from a fetch
    subscribed: bool = False  # a hub pushes this feed: polled at its slowest, a safety net


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
    pushed: bool = False  # items a hub pushed: the feed's poll state is left as it was
    hub: HubLink | None = None  # WebSub discovery to record (websub on)

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
