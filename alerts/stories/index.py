"""The stories of the window, indexed for blocking: which stories a new item is compared with,
how alike two headlines are (token rarity), and expiry."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice, takewhile

from . import decide as policy
from .decide import FOLLOW_UP, JOIN, Decision, FollowUpRules
from .features import Headline, by_kind, generic_subject

MAX_MEMBERS = 8  # member headlines a story keeps to compare with (the first ones)
ACTION_WEIGHT = 2.5  # a kind of action agreeing counts like a fairly rare word (it is a class)
IDF_FLOOR = 1.0  # the weight of a token every stored item has
EXPIRE_EVERY = timedelta(minutes=10)
POSTING_READ = 256  # most recently active stories read from each posting for one item
CANDIDATES = 32  # stories compared in full with one item, the best ranked by blocking


def _subject_key(term: str) -> str:
    """The index key of a subject: everyday subjects ("chips", "semiconductors", "AI chips")
    share one, so two vague headlines about one event find each other."""
    return "" if generic_subject(term) else term


class Rarity:
    """How rare each token is among the items seen (document frequency), for IDF weights."""

    __slots__ = ("df", "docs")

    def __init__(self) -> None:
        self.df: Counter[str] = Counter()
        self.docs = 0

    def observe(self, tokens: Iterable[str]) -> None:
        self.docs += 1
        self.df.update(set(tokens))

    def total(self, tokens: Iterable[str]) -> float:
        """The tokens' summed weight. ``fsum`` is exact whatever the order: a plain sum of
        floats follows the set's order, which changes with PYTHONHASHSEED, so a decision on the
        threshold could differ between two runs of the same code on the same items."""
        docs, df = self.docs + 1, self.df
        return math.fsum(
            ACTION_WEIGHT if t[0] == "!" else IDF_FLOOR + math.log(docs / (df.get(t, 0) + 1))
            for t in tokens
        )


@dataclass(slots=True)
class Story:
    """A cluster of items about one event; ``alert_id`` is the alert it was posted as.

    An item is compared with the story's member headlines one by one (the best counts), never
    with the union of all their words: a union grows with every member until it resembles
    everything. Only the first ``MAX_MEMBERS`` headlines are kept as members."""

    id: int
    first_seen: datetime
    last_seen: datetime
    # The first member is the headline people saw: it defines the event (see ``decide``).
    members: list[Headline] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # outlets, first one first
    alert_id: int | None = None
    title: str = ""
    parent: int | None = None  # a follow-up: the story whose thread it is posted in
    specific: dict[str, frozenset[str]] = field(default_factory=dict)  # kept by StoryIndex

    @property
    def entities(self) -> set[str]:
        return set().union(*(m.entities for m in self.members))

    @property
    def words(self) -> set[str]:
        return set().union(*(m.words for m in self.members))

    def absorb(self, h: Headline, *, source: str, at: datetime) -> bool:
        """Count the item in; returns whether its headline became a member."""
        if source not in self.sources:
            self.sources.append(source)
        self.last_seen = max(self.last_seen, at)
        if len(self.members) < MAX_MEMBERS:
            self.members.append(h)
            return True
        return False


class StoryIndex:
    """Recent stories, indexed by subject and by word, for clustering new items against.

    Stories and every posting are kept in order of last activity, so expiry pops from the old
    end and blocking reads the recent end: however much history the window holds, a new item
    reads at most ``POSTING_READ`` ids per key and compares at most ``CANDIDATES`` stories."""

    def __init__(
        self,
        *,
        window: timedelta,
        threshold: float,
        categories: Mapping[str, str] | None = None,
        rarity: Rarity | None = None,
        follow_up: FollowUpRules = FOLLOW_UP,
    ):
        self.window = window
        self.threshold = threshold
        self.follow_up = follow_up
        # Subject term -> its watchlist category, to know which of a stored story's subjects
        # are companies and which are chips; learnt from each item too.
        self._category: dict[str, str] = dict(categories or {})
        self.rarity = rarity or Rarity()
        self.stories: dict[int, Story] = {}
        self._by_entity: dict[str, dict[int, None]] = {}
        self._by_word: dict[str, dict[int, None]] = {}
        self._expired_at: datetime | None = None

    def _keys(self, story: Story) -> tuple[tuple[dict[str, dict[int, None]], set[str]], ...]:
        """Each index with the keys the story is filed under in it."""
        return (
            (self._by_entity, {_subject_key(e) for e in story.entities}),
            (self._by_word, story.words),
        )

    def _post(self, story: Story) -> None:
        """(Re)file the story under all its keys, as the most recently active."""
        sid = story.id
        self.stories.pop(sid, None)
        self.stories[sid] = story
        keys_by_index = self._keys(story)
        category = self._category
        story.specific = by_kind(
            (category[e], e) for e in story.entities if e in category and not generic_subject(e)
        )
        for index, keys in keys_by_index:
            for key in keys:
                posting = index.get(key)
                if posting is None:
                    index[key] = {sid: None}
                else:
                    posting.pop(sid, None)
                    posting[sid] = None

    def add(self, story: Story) -> None:
        self._post(story)

    def absorb(self, story: Story, item: Headline, *, source: str, at: datetime) -> bool:
        member = story.absorb(item, source=source, at=at)
        self._post(story)
        return member

    def assign(
        self, item: Headline, *, at: datetime, source: str, title: str, new_id: int
    ) -> tuple[Decision, Story]:
        """Count the item towards token rarity, decide, then record: the item joins the story
        chosen, or starts story ``new_id`` (a follow-up's in the thread it follows up)."""
        self.rarity.observe(item.tokens)
        decision = self.decide(item, at, source=source)
        if decision.outcome == JOIN:
            assert decision.story is not None  # a join names its story
            self.absorb(decision.story, item, source=source, at=at)
            return decision, decision.story
        story = Story(id=new_id, first_seen=at, last_seen=at, title=title, parent=decision.thread)
        story.absorb(item, source=source, at=at)
        self.add(story)
        return decision, story

    def _candidates(self, item: Headline) -> set[int]:
        """Stories that share a subject with the item, ranked by how many of the item's
        subjects and distinctive words they share (reading only the recent end of each
        posting); the best ``CANDIDATES`` of them."""
        hits: Counter[int] = Counter()
        subjects = []
        specific = {term for _, term in item.specific}
        for entity in {_subject_key(e) for e in item.entities}:
            posting = self._by_entity.get(entity)
            if posting:
                subjects.append(posting)
                recent = list(islice(reversed(posting), POSTING_READ))
                hits.update(recent)
                if entity in specific:  # sharing "micron" says more than sharing "chips"
                    hits.update(recent)
        if not subjects:
            return set()
        for word in item.words:
            posting = self._by_word.get(word)
            if posting:
                # A shared distinctive word says more than a shared subject: it counts double.
                recent = list(islice(reversed(posting), POSTING_READ))
                hits.update(recent)
                hits.update(recent)
        found: set[int] = set()
        for posting in subjects:
            found |= hits.keys() & posting.keys()
        if len(found) > CANDIDATES:
            # Of stories sharing as much, the newest (ids grow): an item sharing only an
            # everyday subject ("chips") ties with every vague story of the window, and its
            # event's story is likelier among the recent ones than among the first ids
            # (``nlargest`` keeps the first of equals).
            return set(
                heapq.nlargest(CANDIDATES, sorted(found, reverse=True), key=hits.__getitem__)
            )
        return found

    def candidate_stories(self, item: Headline) -> list[Story]:
        """The stories blocking picks for the item (see ``_candidates``)."""
        return [self.stories[sid] for sid in self._candidates(item)]

    def expire(self, now: datetime) -> None:
        """Forget stories not reported within the window (at most every few minutes: the
        time check in ``decide`` keeps results exact in between)."""
        if self._expired_at is not None and now - self._expired_at < EXPIRE_EVERY:
            return
        self._expired_at = now
        cutoff = now - self.window
        gone = list(takewhile(lambda story: story.last_seen < cutoff, self.stories.values()))
        for story in gone:
            del self.stories[story.id]
            for index, keys in self._keys(story):
                for key in keys:
                    posting = index.get(key)
                    if posting is not None:
                        posting.pop(story.id, None)
                        if not posting:
                            del index[key]

    def similarity(self, item: Headline, member: Headline, idioms: bool = False) -> float:
        """Weighted Dice of the two headlines' event tokens (each weighted by its rarity). A
        kind of action one of them says only as an idiom is no evidence that they agree (unless
        ``idioms``, as for a follow-up): it counts in what each says, not in what they share."""
        shared = item.tokens & member.tokens
        if not idioms and (item.soft or member.soft):
            shared -= {f"!{h.primary}" for h in (item, member) if h.soft}
        if not shared:
            return 0.0
        total = self.rarity.total
        return 2 * total(shared) / (total(item.tokens) + total(member.tokens))

    def decide(self, item: Headline, at: datetime, *, source: str = "") -> Decision:
        """The story this item belongs to, or why it starts a new one (the policy is
        ``decide.decide``; this index supplies the candidates and the similarity)."""
        if item.entities:
            self._category.update((term, kind) for kind, term in item.specific)
        return policy.decide(
            item,
            at=at,
            source=source,
            candidates=self.candidate_stories,
            similarity=self.similarity,
            categories=self._category,
            window=self.window,
            threshold=self.threshold,
            rules=self.follow_up,
        )
