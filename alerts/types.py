"""The records that cross stages: what parsing, matching, clustering, storage and delivery
hand each other. Frozen dataclasses; no stage defines another's types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedItem:
    """One entry of one feed, as plain text."""

    feed: str
    guid: str  # the feed's own id, or a stable one derived from link/title
    link: str
    title: str
    summary: str
    published: datetime | None  # UTC; None when the feed gave no usable date
    source: str = ""  # the outlet an aggregator took it from (RSS/Atom <source>), if named


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    items: tuple[FeedItem, ...]
    # set when the document was not well-formed (salvaged) or its encoding was mislabelled or
    # guessed; the items are still good
    warning: str | None = None
    ttl_minutes: int | None = None  # RSS <ttl>: how long the publisher says the feed may be cached
    format: str = ""  # "rss", "rdf" or "atom"
    salvaged: bool = False  # True when the strict XML parse failed and the forgiving one was used
    # WebSub discovery from the feed's own <link rel="hub"> / <atom:link rel="self">, absolute
    hubs: tuple[str, ...] = ()
    self_link: str | None = None


# --- matching --------------------------------------------------------------------------------

Kind = Literal["exact", "alias", "fuzzy", "regex"]
Field = Literal["title", "summary"]


@dataclass(frozen=True, slots=True)
class Match:
    """One watchlist term found in an item: what, where, how and how sure."""

    category: str
    term: str  # canonical name from the watchlist
    text: str  # the exact text in the headline or summary
    kind: Kind
    score: float
    field: Field = "title"
    at: int = -1  # word index in its field (relation rules); -1 when unknown

    def to_json(self) -> dict:
        return {
            "category": self.category,
            "term": self.term,
            "text": self.text,
            "kind": self.kind,
            "score": round(self.score, 1),
        }


def _quoted(phrase: str) -> str:
    """A phrase in quotes, a single word as it is."""
    return f'"{phrase}"' if " " in phrase else phrase


@dataclass(frozen=True, slots=True, kw_only=True)
class Opinion:
    """The learned second opinion on an item the rules left alone (``alerts.relevance``)."""

    score: float  # how likely it is chip-trade news, 0 to 1
    threshold: float  # it alerts at or above this
    # the words and phrases that weighed most for it, and how much
    weighed: tuple[tuple[str, float], ...]

    @property
    def alert(self) -> bool:
        return self.score >= self.threshold

    def explain(self) -> str:
        """``learned 0.94: "slams the", china, "ai chips"``"""
        return f"learned {self.score:.2f}: " + ", ".join(_quoted(text) for text, _ in self.weighed)

    def to_json(self) -> dict:
        return {
            "score": round(self.score, 3),
            "threshold": self.threshold,
            "alert": self.alert,
            "features": [text for text, _ in self.weighed],
        }


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Everything the matcher found in one item, and the rules that held; ``opinion`` is the
    learned second opinion when it was asked (no rule held, and the item qualified)."""

    matches: tuple[Match, ...]
    rules: tuple[str, ...]
    opinion: Opinion | None = None
    # terms found but vetoed by their exclude list: (term, category, text, the exclude word)
    vetoed: tuple[tuple[str, str, str, str], ...] = ()

    @property
    def alert(self) -> bool:
        return bool(self.rules)

    def categories(self) -> frozenset[str]:
        return frozenset(m.category for m in self.matches)

    def to_json(self) -> dict:
        """The contract's fields, and ``learned`` when the learned opinion was asked."""
        found = {
            "alert": self.alert,
            "rules": list(self.rules),
            "matches": [m.to_json() for m in self.matches],
        }
        if self.opinion:
            found["learned"] = self.opinion.to_json()
        return found

    def explain(self) -> str:
        """A few lines for a person: verdict, then each match, then the learned opinion."""
        if self.alert:
            head = f"ALERT: rule(s) {', '.join(self.rules)} held"
        elif self.matches:
            head = "no alert: matches found, but no rule holds"
        elif self.vetoed:
            head = "no alert: the terms found were vetoed by their exclude lists"
        else:
            head = "no alert: nothing on the watchlists matched"
        lines = [head]
        for m in self.matches:
            lines.append(
                f"  {m.category}: {m.term} ← {m.text!r} ({m.kind}, {m.field}, score {m.score:.0f})"
            )
        for term, category, text, word in self.vetoed:
            lines.append(f"  {category}: {term} ← {text!r} vetoed: {word!r} is on its exclude list")
        if self.opinion:
            o = self.opinion
            verdict = "alerts" if o.alert else "no alert"
            weighed = ", ".join(f"{_quoted(text)} {c:+.2f}" for text, c in o.weighed) or "nothing"
            lines.append(
                f"  learned opinion {o.score:.2f} (threshold {o.threshold:g}, {verdict});"
                f" weighed most: {weighed}"
            )
        return "\n".join(lines)


# --- storage and delivery ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A matched item that must reach its destinations; ``id`` is its outbox key."""

    id: int
    feed: str
    title: str
    link: str
    summary: str
    published: datetime | None
    created_at: datetime
    matches: tuple[Match, ...]
    rules: tuple[str, ...]
    story_id: int | None = None
    sources: tuple[str, ...] = ()  # every outlet that carried the story, first one first
    major: bool = False  # many sources within a short time
    # (outlet, headline) of joining outlets whose headline says more than the alert's title
    reports: tuple[tuple[str, str], ...] = ()
    # A quiet follow-up: the alert whose message it replies to, without a notification, and that
    # story's headline (to name it when there is no message to reply to). None: it notifies.
    thread_of: int | None = None
    thread_title: str = ""
    followups: int = 0  # follow-ups threaded under this alert's story so far
    decision: str = ""  # why the clusterer placed it so (new story, follow-up), for /why


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryRecord:
    """A story's persistent state (see ``alerts.stories``)."""

    id: int
    alert_id: int | None
    title: str
    first_seen: datetime
    last_seen: datetime
    members: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (tokens, entities) each
    actions: tuple[str, ...]
    sources: tuple[str, ...]
    major: bool
    outlets: tuple[str, ...] = ()  # who reported it (the same-outlet rule)
    parent: int | None = None  # a follow-up's story: the story it is threaded under


@dataclass(frozen=True, slots=True, kw_only=True)
class NewItem:
    """An item seen for the first time, with its match result when it should alert."""

    item: FeedItem
    canonical_link: str
    result: MatchResult | None  # None: record as seen without alerting
    title_key: str = ""
    # Clustering (decided by alerts.stories): the story this item starts (new_story) or joins
    # instead of alerting, and what the story keeps of it.
    story_id: int | None = None
    new_story: bool = False
    outlet: str = ""  # who published it: <source>, else the link's host, else the feed
    source_name: str = ""  # how alerts name that outlet (alerts.outlets: "Reuters")
    member: tuple[str, ...] | None = None  # its clustering tokens, when it became a member
    entities: tuple[str, ...] = ()
    story_actions: tuple[str, ...] = ()  # of the story's first headline
    report: bool = False  # its headline says more than the story's title: show it
    # A follow-up (a new story that does not notify): the story whose message its alert replies
    # to, quietly. None: a new story notifies.
    thread: int | None = None
    decision: str = ""  # the clusterer's explanation of where it went, kept for /why
    # Who gets its alert (decided by the pipeline): the configured destinations when a rule
    # held, plus personal subscribers ("telegram:12345"); empty: recorded as seen, no alert.
    destinations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredItem:
    """A seen item as the database keeps it, for replaying (``backtest``, ``/watch``)."""

    feed: str
    title: str
    summary: str
    link: str
    seen_at: datetime
    alerted: bool  # a rule held for it when it was seen (it alerted or joined a story)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedState:
    """A feed's fetch state as stored: validators, failures, schedule."""

    name: str
    url: str  # as configured
    effective_url: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    first_polled_at: datetime | None
    last_polled_at: datetime | None
    last_ok_at: datetime | None
    last_new_at: datetime | None
    last_status: str | None
    last_error: str | None
    consecutive_failures: int
    failing_since: datetime | None
    next_poll_at: datetime | None
    interval_seconds: float | None
    disabled_reason: str | None

    @property
    def fetch_url(self) -> str:
        return self.effective_url or self.url


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedDigest:
    """A scheduled digest in the outbox: its messages, rendered for its destination's sink
    when it was queued, and how many of them went out."""

    destination: str
    period_end: datetime
    parts: tuple[Any, ...]  # Telegram HTML, a Slack payload, or console text, one per message
    sent_parts: int = 0
    attempts: int = 0


# --- WebSub ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HubLink:
    """A feed's WebSub hub as its last poll found it (``hub`` None: it names none), and the
    topic to subscribe to (its ``rel="self"``, else the feed's URL)."""

    hub: str | None
    topic: str


WebSubState = Literal["requested", "active", "unsubscribing", "denied"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSubscription:
    """One subscription at a hub, as stored: ``id`` is the last segment of its callback URL."""

    id: str
    feed: str
    hub: str
    topic: str
    secret: str = field(repr=False)  # never in a log line, nor in a repr
    state: WebSubState
    pending: Literal["subscribe", "unsubscribe"] | None  # asked of the hub, not verified yet
    created_at: datetime
    requested_at: datetime | None = None
    verified_at: datetime | None = None
    lease_seconds: int | None = None
    expires_at: datetime | None = None
    due_at: datetime | None = None  # when the subscriber acts on it next (renew, retry)
    attempts: int = 0  # requests in a row that the hub refused or did not verify
    last_error: str | None = None
    pushes: int = 0
    last_push_at: datetime | None = None
