"""Where an alerting item goes: ``Clusterer.place`` is the one entry point the pipeline calls
(features, then the index's decision, then the story's new state for the store)."""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

from ..config import StoriesConfig, Term
from ..types import Match, StoryRecord
from .decide import FOLLOW_UP, JOIN, NEW, Decision, FollowUpRules, Outcome
from .features import Headline, headline_features
from .index import Story, StoryIndex

IDF_ITEMS = 20000  # stored titles read at startup to learn token rarity


class Clusterer:
    """Clusters the pipeline's alerting items against the stories of the last ``window``.

    Story ids are handed out here, before the poll's transaction, so items of one batch can
    join a story another item of the same batch started."""

    def __init__(
        self,
        store,  # noqa: ANN001 - a Store (same layer, so not imported)
        config: StoriesConfig,
        *,
        now: datetime,
        watchlists: Mapping[str, Sequence[Term]] | None = None,
        follow_up: FollowUpRules = FOLLOW_UP,
    ):
        self.config = config
        self.index = StoryIndex(
            window=timedelta(hours=config.window_hours),
            threshold=config.threshold,
            categories=categories_of(watchlists or {}),
            follow_up=follow_up,
        )
        # Tens of thousands of stories are tens of thousands of new containers: left on, the
        # cyclic collector traverses them over and over while they load (most of the startup
        # time, measured). They hold no cycles, so nothing is left for it to find.
        enabled = gc.isenabled()
        gc.disable()
        try:
            # Read first: what lands while loading is caught up on later (counted twice in
            # rarity at worst, never missed).
            self._seen_item = store.max_item_id()
            for title in store.recent_titles(limit=IDF_ITEMS):
                self.observe(title)
            # Oldest activity first, the order the index keeps (expiry stops at the first
            # story still in the window).
            records = sorted(
                store.recent_stories(since=now - self.index.window), key=lambda r: r.last_seen
            )
            for r in records:
                self.index.add(story_of(r))
        finally:
            if enabled:
                gc.enable()
        self._next_id = store.max_story_id() + 1

    def catch_up(self, store) -> int:  # noqa: ANN001 - a Store
        """Learn what other instances on the same database recorded since this one last
        looked: their items' titles (rarity) and the stories those items started or joined.
        Called under the placement lock, so nothing is recorded meanwhile; returns the number
        of items learnt."""
        rows = store.items_after(self._seen_item)
        touched = {story for _, _, story in rows if story is not None}
        for _, title, _ in rows:
            if title:  # an untitled item (the column allows it) teaches nothing
                self.observe(title)
        for r in store.stories_by_id(sorted(touched)):
            self.index.add(story_of(r))  # replaces the copy held, if any
        self._next_id = max(self._next_id, store.max_story_id() + 1)
        if rows:
            self._seen_item = rows[-1][0]
        return len(rows)

    def recorded(self, store) -> None:  # noqa: ANN001 - a Store
        """What this instance just recorded is known already: skip it when catching up."""
        self._seen_item = store.max_item_id()

    def observe(self, title: str) -> None:
        """Count a stored item's title towards token rarity."""
        self.index.rarity.observe(headline_features(title).tokens)

    def place(
        self, title: str, matches: Sequence[Match], *, source: str, at: datetime
    ) -> Placement:
        """Decide and record in memory where an alerting item goes."""
        self.index.expire(at)
        features = headline_features(title, matches)
        decision, story = self.index.assign(
            features, at=at, source=source, title=title, new_id=self._next_id
        )
        is_new = decision.outcome != JOIN  # a follow-up is a story of its own
        if is_new:
            self._next_id += 1
        member = story.members[-1] is features if story.members else False
        first = story.members[0] if story.members else features
        return Placement(
            decision=decision,
            story_id=story.id,
            new_story=is_new,
            thread=decision.thread,
            member=features.encode() if member else None,
            entities=tuple(sorted(features.entities)),
            actions=tuple(sorted(first.actions)),
            says_more=not is_new and says_more(features, first),
        )


def categories_of(watchlists: Mapping[str, Sequence[Term]]) -> dict[str, str]:
    """Each watchlist term (as clustering reads it) and its category (chips, companies…)."""
    return {term.name.casefold(): term.category for terms in watchlists.values() for term in terms}


def story_of(r: StoryRecord) -> Story:
    """A stored story back in memory."""
    members = [
        Headline.decode(w, e, actions=r.actions if i == 0 else ())
        for i, (w, e) in enumerate(r.members)
    ]
    return Story(
        id=r.id,
        first_seen=r.first_seen,
        last_seen=r.last_seen,
        members=members,
        sources=list(r.outlets or r.sources),
        alert_id=r.alert_id,
        title=r.title,
        parent=r.parent,
    )


def says_more(item: Headline, story_title: Headline) -> bool:
    """Whether a joining headline says something the story's title does not (a word, a
    number, a country or an agency): the alert then shows it, so even a wrong join hides
    nothing that was said."""
    extra = (
        (item.words - story_title.words)
        | (item.numbers - story_title.numbers)
        | (item.actors - story_title.actors)
    )
    return bool(extra)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the clusterer put an alerting item, and what the store must remember of it."""

    decision: Decision
    story_id: int
    new_story: bool  # a story of its own: new, or a follow-up
    thread: int | None  # a follow-up: the story whose message it replies to, quietly
    member: list[str] | None  # the headline's stored features when it became a member
    entities: tuple[str, ...]
    actions: tuple[str, ...]  # of the story's first headline
    says_more: bool = False


class Offline(NamedTuple):
    """Where ``cluster_offline`` put one item."""

    story: int
    thread: int  # the story whose message carries it: its own, or a follow-up's thread
    outcome: Outcome

    @property
    def notifies(self) -> bool:
        return self.outcome == NEW


def cluster_offline(
    items: Sequence[tuple[str, datetime, str, Sequence[Match]]],
    *,
    window: timedelta,
    threshold: float,
    categories: Mapping[str, str] | None = None,
    follow_up: FollowUpRules = FOLLOW_UP,
) -> list[Offline]:
    """Cluster (title, time, source, matches) in time order; returns where each item went.
    Used by the evaluation and the tests; the pipeline uses ``Clusterer`` with the store."""
    index = StoryIndex(
        window=window, threshold=threshold, categories=categories, follow_up=follow_up
    )
    placed: dict[int, Offline] = {}
    next_id = 1
    for i in sorted(range(len(items)), key=lambda i: items[i][1]):
        title, at, source, matches = items[i]
        features = headline_features(title, matches)
        decision, story = index.assign(features, at=at, source=source, title=title, new_id=next_id)
        next_id += decision.outcome != JOIN
        thread = story.parent if story.parent is not None else story.id
        placed[i] = Offline(story.id, thread, decision.outcome)
    return [placed[i] for i in range(len(items))]


def outlet_of(*, source: str, link: str, feed: str) -> str:
    """Who published an item: the aggregator's ``<source>``, else the link's host, else the
    feed. Redirecting hosts (Google News, FeedBurner) say nothing about the outlet."""
    if source.strip():
        return source.strip()
    try:
        host = (urlsplit(link).hostname or "").lower()
    except ValueError:
        host = ""
    host = host.removeprefix("www.")
    if host and host not in _REDIRECTORS:
        return host
    return feed


_REDIRECTORS = frozenset(
    {
        "news.google.com",
        "feedproxy.google.com",
        "feeds.feedburner.com",
        "t.co",
        "bit.ly",
        "ow.ly",
        "l.facebook.com",
        "lnkd.in",
    }
)
