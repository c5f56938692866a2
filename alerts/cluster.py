"""Story clustering: one alert per event, however many outlets carry it.

A new alerting item joins a recent story (last reported within ``window``) when its headline is
similar enough to the story's headlines after normalisation, weighted by the watchlist entities
they share. Similarity is the share of the item's (weighted) words that the story already has:

- watchlist entities (matched canonical terms) weigh most, and at least one must be shared;
- everyday domain words ("US", "China", "chip", "AI", "export") weigh least;
- an action opposite to the one the story's first headline reports vetoes a join: a story about
  a ban never absorbs an item about an approval
  ("US bans H20 exports" vs "US allows H20 exports").

Candidates come from an inverted index of the entities of stories inside the window, so a new
item never scans all history.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .config import StoriesConfig
from .match import Match, normalise
from .store import MAX_MEMBERS, Store

STOPWORDS = frozenset("""
a an the and or but of to in on at for from by with as is are was were be been being it its
this that these those into over after before amid about than then so not no yes will would can
could may might must should has have had do does did says said say report reports reported
reportedly sources source new news how why what who when where which while just also more most
up down out off via per vs amid under between against again still yet all any some other such
i we you he she they them his her their our your my me us_ if week today year years
""".split())
# Words nearly every headline in this domain has: they count, but for little.
GENERIC = frozenset("""
us china chinese america american beijing washington chip semiconductor ai export import
nvidia sale sell trade rule government official company firm market stock share tech
""".split())
ACTIONS = {
    "restrict": """ban bans banned banning bar bars barred block blocks blocked curb curbs curbed
        restrict restricts restricted restriction restrictions halt halts halted stop stops
        stopped tighten tightens tightened tightening limit limits limited prohibit prohibits
        prohibited blacklist blacklists blacklisted sanction sanctions sanctioned crackdown
        revoke revokes revoked suspend suspends suspended deny denies denied reject rejects
        rejected""",
    "allow": """allow allows allowed approve approves approved approval clear clears cleared
        lift lifts lifted ease eases eased easing grant grants granted resume resumes resumed
        permit permits permitted waive waives waived waiver exempt exempts exemption relax
        relaxes relaxed greenlight greenlights""",
}
_ACTION_OF = {w: group for group, words in ACTIONS.items() for w in words.split()}
_US_RE = re.compile(r"\bU\.\s?S\.(?:\s?A\.)?|\bUnited States\b", re.IGNORECASE)
_SYNONYMS = {"chinese": "china", "semiconductors": "semiconductor", "chips": "chip",
             "chipmaker": "chip", "chipmakers": "chip", "exports": "export", "imports": "import",
             "sales": "sale", "selling": "sell", "sells": "sell", "gpus": "gpu", "rules": "rule",
             "american": "us", "america": "us", "usa": "us", "prc": "china"}

ENTITY_WEIGHT = 2.0
GENERIC_WEIGHT = 0.4
WORD_WEIGHT = 1.0
ACTION_BONUS = 0.15  # the item reports the same kind of action the story does
EXPIRE_EVERY = timedelta(minutes=10)
BROAD_SUBJECT = 200  # stories per subject in the window above which blocking also needs a word


@dataclass(frozen=True, slots=True)
class Headline:
    """The clustering features of one headline: its words, the watchlist terms it matched
    (subjects: the chips and companies it is about; other terms, e.g. policy words, count
    as plain words) and the kinds of action it reports."""

    words: frozenset[str]
    entities: frozenset[str]
    actions: frozenset[str]


SUBJECT_CATEGORIES = frozenset({"chips", "companies"})


def headline_features(title: str, matches: Iterable[Match] = (),
                      subjects: frozenset[str] = SUBJECT_CATEGORIES) -> Headline:
    text = _US_RE.sub(" us ", title)
    words, actions = set(), set()
    for word in normalise(text).split():
        if word in _ACTION_OF:
            actions.add(_ACTION_OF[word])
        word = _SYNONYMS.get(word, word)
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss") and word.isalpha():
            word = word[:-1]
        if word not in STOPWORDS and len(word) > 1:
            words.add(word)
    matches = list(matches)
    entities = frozenset(m.term.casefold() for m in matches if m.category in subjects)
    # A matched phrase counts once, as its entity or as one word, not again word by word.
    for m in matches:
        words.difference_update(_SYNONYMS.get(w, w) for w in normalise(m.text).split())
        if m.category not in subjects:
            words.add("§" + m.term.casefold())
    return Headline(words=frozenset(words), entities=entities, actions=frozenset(actions))


def _weight(word: str) -> float:
    return GENERIC_WEIGHT if word in GENERIC else WORD_WEIGHT


@dataclass(slots=True)
class Story:
    """A cluster of items about one event; ``alert_id`` is the alert it was posted as.

    An item is compared with the story's member headlines one by one (the best counts), never
    with the union of all their words: a union grows with every member until it resembles
    everything, and the story would swallow unrelated news. Only the first ``MAX_MEMBERS``
    headlines are kept as members, which bounds both that work and the index."""

    id: int
    first_seen: datetime
    last_seen: datetime
    members: list[tuple[frozenset[str], frozenset[str]]] = field(default_factory=list)
    # The kind of action the story's first headline (the alert people saw) reports; later
    # members do not redefine the event ("… to clear US export hurdles" is no approval story).
    actions: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    alert_id: int | None = None
    title: str = ""

    @property
    def words(self) -> set[str]:
        return set().union(*(w for w, _ in self.members))

    @property
    def entities(self) -> set[str]:
        return set().union(*(e for _, e in self.members))

    def absorb(self, h: Headline, *, source: str, at: datetime) -> bool:
        """Count the item in; returns True when its headline became a member."""
        if not self.sources:
            self.actions = set(h.actions)
        if source not in self.sources:
            self.sources.append(source)
        self.last_seen = max(self.last_seen, at)
        if len(self.members) < MAX_MEMBERS:
            self.members.append((h.words, h.entities))
            return True
        return False


@dataclass(frozen=True, slots=True)
class Decision:
    """Why an item joined a story or started one; logged and shown by ``match``-style output."""

    story: Story | None
    score: float
    shared_entities: tuple[str, ...] = ()
    reason: str = ""

    def explain(self) -> str:
        if self.story is None:
            return f"new story ({self.reason})"
        return (f"joins story {self.story.id} \"{self.story.title}\" (similarity "
                f"{self.score:.2f}, shared: {', '.join(self.shared_entities)})")


def _containment(item: Headline, words: frozenset[str], entities: frozenset[str]) -> float:
    total = sum(_weight(w) for w in item.words) + ENTITY_WEIGHT * len(item.entities)
    if not total:
        return 0.0
    shared = sum(_weight(w) for w in item.words & words)
    return (shared + ENTITY_WEIGHT * len(item.entities & entities)) / total


def similarity(item: Headline, story: Story) -> float:
    """The weighted share of the item's words and entities found in the story's closest
    member headline, plus a bonus when the item reports the story's kind of action."""
    best = max((_containment(item, w, e) for w, e in story.members), default=0.0)
    bonus = ACTION_BONUS if item.actions and item.actions <= story.actions else 0.0
    return best + bonus


class StoryIndex:
    """Recent stories, indexed by entity, for clustering new items against."""

    def __init__(self, *, window: timedelta, threshold: float):
        self.window = window
        self.threshold = threshold
        self.stories: dict[int, Story] = {}
        self._by_entity: dict[str, set[int]] = defaultdict(set)
        self._by_word: dict[str, set[int]] = defaultdict(set)
        self._expired_at: datetime | None = None

    def add(self, story: Story) -> None:
        self.stories[story.id] = story
        for entity in story.entities:
            self._by_entity[entity].add(story.id)
        for word in story.words - GENERIC:
            self._by_word[word].add(story.id)

    def absorb(self, story: Story, item: Headline, *, source: str, at: datetime) -> None:
        if story.absorb(item, source=source, at=at):
            for entity in item.entities:
                self._by_entity[entity].add(story.id)
            for word in item.words - GENERIC:
                self._by_word[word].add(story.id)

    def _candidates(self, item: Headline) -> set[int]:
        """Stories sharing a subject with the item. A subject with many stories in the window
        ("nvidia") is narrowed to those that also share a distinctive word, so the work per
        item stays bounded however much history the window holds."""
        candidates: set[int] = set()
        narrowed: set[int] | None = None
        for entity in item.entities:
            posting = self._by_entity.get(entity)
            if not posting:
                continue
            if len(posting) <= BROAD_SUBJECT:
                candidates |= posting
                continue
            if narrowed is None:
                narrowed = set()
                for word in item.words - GENERIC:
                    ids = self._by_word.get(word)
                    if ids and len(ids) <= BROAD_SUBJECT:
                        narrowed |= ids
            candidates |= posting & narrowed
        return candidates

    def expire(self, now: datetime) -> None:
        """Forget stories not reported within the window (at most every few minutes: the
        time check in ``decide`` keeps results exact in between)."""
        if self._expired_at is not None and now - self._expired_at < EXPIRE_EVERY:
            return
        self._expired_at = now
        cutoff = now - self.window
        for sid in [sid for sid, s in self.stories.items() if s.last_seen < cutoff]:
            story = self.stories.pop(sid)
            for index, keys in ((self._by_entity, story.entities), (self._by_word, story.words)):
                for key in keys:
                    ids = index.get(key)
                    if ids is not None:
                        ids.discard(sid)
                        if not ids:
                            del index[key]

    def decide(self, item: Headline, at: datetime) -> Decision:
        """The story this item belongs to, or why it starts a new one."""
        if not item.entities:
            return Decision(None, 0.0, reason="it names no chip or company to match on")
        cutoff = at - self.window
        candidates = self._candidates(item)
        best: Decision | None = None
        vetoed = 0
        for sid in candidates:
            story = self.stories[sid]
            if not cutoff <= story.last_seen and story.first_seen <= at + timedelta(hours=1):
                continue
            if item.actions and story.actions and not (item.actions & story.actions):
                vetoed += 1
                continue
            # A shared chip or company alone is not an event: something else must match too
            # (a policy term, a non-generic word, or the same kind of action).
            if not (item.actions & story.actions
                    or any((item.words & w) - GENERIC for w, _ in story.members)):
                continue
            score = similarity(item, story)
            if best is None or score > best.score:
                best = Decision(story, score, tuple(sorted(item.entities & story.entities)))
        if best is not None and best.score >= self.threshold:
            return best
        if best is not None:
            return Decision(None, best.score,
                            reason=f"best similarity {best.score:.2f} to story {best.story.id} "
                                   f"is below {self.threshold:.2f}")
        if vetoed:
            return Decision(None, 0.0, reason="related stories report the opposite action")
        return Decision(None, 0.0, reason="no recent story names the same chip or company")


class Clusterer:
    """Clusters the pipeline's alerting items against the stories of the last ``window``.

    Story ids are handed out here, before the poll's transaction, so items of one batch can
    join a story another item of the same batch started."""

    def __init__(self, store: Store, config: StoriesConfig, *, now: datetime):
        self.config = config
        self.index = StoryIndex(window=timedelta(hours=config.window_hours),
                                threshold=config.threshold)
        for r in store.recent_stories(since=now - self.index.window):
            self.index.add(Story(id=r.id, first_seen=r.first_seen, last_seen=r.last_seen,
                                 members=[(frozenset(w), frozenset(e)) for w, e in r.members],
                                 actions=set(r.actions), sources=list(r.sources),
                                 alert_id=r.alert_id, title=r.title))
        self._next_id = store.max_story_id() + 1

    def place(self, title: str, matches: Sequence[Match], *, source: str,
              at: datetime) -> tuple[Decision, Headline, int, bool]:
        """Decide and record in memory: returns (decision, features, story id, is new)."""
        self.index.expire(at)
        features = headline_features(title, matches)
        decision = self.index.decide(features, at)
        if decision.story is not None:
            self.index.absorb(decision.story, features, source=source, at=at)
            return decision, features, decision.story.id, False
        story = Story(id=self._next_id, first_seen=at, last_seen=at, title=title)
        self._next_id += 1
        story.absorb(features, source=source, at=at)
        self.index.add(story)
        return decision, features, story.id, True


def cluster_offline(items: Sequence[tuple[str, datetime, str, Sequence[Match]]], *,
                    window: timedelta, threshold: float) -> list[int]:
    """Cluster (title, time, source, matches) in time order; returns a story id per item.
    Used by the evaluation and the benchmark; the pipeline uses ``StoryIndex`` with the store."""
    index = StoryIndex(window=window, threshold=threshold)
    order = sorted(range(len(items)), key=lambda i: items[i][1])
    assigned = [0] * len(items)
    next_id = 1
    for i in order:
        title, at, source, matches = items[i]
        h = headline_features(title, matches)
        decision = index.decide(h, at)
        if decision.story is not None:
            index.absorb(decision.story, h, source=source, at=at)
            assigned[i] = decision.story.id
        else:
            story = Story(id=next_id, first_seen=at, last_seen=at, title=title)
            story.absorb(h, source=source, at=at)
            index.add(story)
            assigned[i] = next_id
            next_id += 1
    return assigned
