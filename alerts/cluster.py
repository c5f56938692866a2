"""Story clustering: one alert per event, however many outlets carry it.

A new alerting item joins a recent story (last reported within ``window``) when its headline is
similar enough to the story's headlines after normalisation, weighted by the watchlist entities
they share. Similarity is the share of the item's (weighted) words that the story already has:

- watchlist entities (matched canonical terms) weigh most, and at least one must be shared;
- everyday domain words ("US", "China", "chip", "AI", "export") weigh least;
- an action opposite to the one the story's first headline reports vetoes a join: a story about
  a ban never absorbs an item about an approval
  ("US bans H20 exports" vs "US allows H20 exports");
- naming other companies, or other chips, than the story does vetoes a join too ("US halts
  Micron HBM exports" vs "US halts Samsung HBM exports"); everyday chip words ("AI chips",
  "semiconductors") are shared subjects but never specific ones;
- a story takes new items while it was reported within the window, and for at most two windows
  after its first report, so steady coverage cannot keep one story open for months.

Candidates come from inverted indexes (subjects, words) over the stories inside the window, read
from their most recently active end and ranked by overlap, so a new item never scans all
history.
"""

from __future__ import annotations

import gc
import heapq
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import islice, takewhile

from .config import StoriesConfig, Term
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
POSTING_READ = 256  # most recently active stories read from each posting for one item
CANDIDATES = 32     # stories compared in full with one item, the best ranked by blocking


@dataclass(frozen=True, slots=True)
class Headline:
    """The clustering features of one headline: its words, the watchlist terms it matched
    (subjects: the chips and companies it is about; other terms, e.g. policy words, count
    as plain words) and the kinds of action it reports. ``weight`` is the weighted size of
    words and entities, the denominator of every similarity the item takes part in."""

    words: frozenset[str]
    entities: frozenset[str]
    actions: frozenset[str]
    weight: float = 0.0
    # (category, term) of the specific subjects among the entities: "nvidia", "h20", not
    # "ai chip".
    specific: frozenset[tuple[str, str]] = frozenset()


SUBJECT_CATEGORIES = frozenset({"chips", "companies"})


def _word(word: str) -> str:
    word = _SYNONYMS.get(word, word)
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss") and word.isalpha():
        word = word[:-1]
    return word


@lru_cache(maxsize=4096)
def _generic_subject(term: str) -> bool:
    """Whether a subject is made only of everyday words ("AI chip", "semiconductors")."""
    words = [_word(w) for w in normalise(term).split()]
    # Nvidia is in nearly every headline, yet still tells a story about it from one about AMD.
    return bool(words) and all(w in GENERIC and w != "nvidia" for w in words)


def _by_kind(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    kinds: dict[str, set[str]] = {}
    for kind, term in pairs:
        kinds.setdefault(kind, set()).add(term)
    return {kind: frozenset(terms) for kind, terms in kinds.items()}


def _same_subject(a: str, b: str) -> bool:
    # A family and its model are one subject ("ascend" / "ascend 910c"); "h20" / "h200" are not.
    return a == b or a.startswith(b + " ") or b.startswith(a + " ")


def _conflict(mine: dict[str, frozenset[str]], theirs: dict[str, frozenset[str]]) -> bool:
    """Both name specific companies (or chips) and share none: "US halts Micron HBM exports"
    and "US halts Samsung HBM exports" are two stories, however alike their words."""
    for kind, terms in mine.items():
        other = theirs.get(kind)
        if other and not any(_same_subject(a, b) for a in terms for b in other):
            return True
    return False


def headline_features(title: str, matches: Iterable[Match] = (),
                      subjects: frozenset[str] = SUBJECT_CATEGORIES) -> Headline:
    text = _US_RE.sub(" us ", title)
    words, actions = set(), set()
    for word in normalise(text).split():
        if word in _ACTION_OF:
            actions.add(_ACTION_OF[word])
        word = _word(word)
        if word not in STOPWORDS and len(word) > 1:
            words.add(word)
    matches = list(matches)
    entities, extra, specific = set(), set(), set()
    for m in matches:
        # A matched phrase counts once, as its entity or as one word, not again word by word.
        words.difference_update(_word(w) for w in normalise(m.text).split())
        term = sys.intern(m.term.casefold())
        if m.category in subjects:
            entities.add(term)
            if not _generic_subject(term):
                specific.add((m.category, term))
        else:
            extra.add("§" + term)
    words |= extra
    # Interned: the same few thousand words recur in every story the index holds.
    words = frozenset(map(sys.intern, words))
    entities = frozenset(entities)
    weight = sum(_weight(w) for w in words) + ENTITY_WEIGHT * len(entities)
    return Headline(words=words, entities=entities, actions=frozenset(actions), weight=weight,
                    specific=frozenset(specific))


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
    specific: dict[str, frozenset[str]] = field(default_factory=dict)  # kept by StoryIndex

    @property
    def words(self) -> set[str]:
        return set().union(*(w for w, _ in self.members))

    @property
    def entities(self) -> set[str]:
        return set().union(*(e for _, e in self.members))

    def absorb(self, h: Headline, *, source: str, at: datetime) -> None:
        """Count the item in (its headline as a member while there is room)."""
        if not self.sources:
            self.actions = set(h.actions)
        if source not in self.sources:
            self.sources.append(source)
        self.last_seen = max(self.last_seen, at)
        if len(self.members) < MAX_MEMBERS:
            self.members.append((h.words, h.entities))


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


def _compare(item: Headline, story: Story) -> tuple[float, bool]:
    """(similarity, whether some member headline shares a non-generic word with the item).

    Similarity is the weighted share of the item's words and entities found in the story's
    closest member headline, plus a bonus when the item reports the story's kind of action."""
    best, distinct = 0.0, False
    if item.weight:
        for words, entities in story.members:
            shared = item.words & words
            if shared and not shared <= GENERIC:
                distinct = True
            # Words weigh 1 and generic ones GENERIC_WEIGHT: count by set sizes, in C.
            weight = (len(shared) - (1.0 - GENERIC_WEIGHT) * len(shared & GENERIC)
                      + ENTITY_WEIGHT * len(item.entities & entities))
            best = max(best, weight / item.weight)
    if item.actions and item.actions <= story.actions:
        best += ACTION_BONUS
    return best, distinct


def similarity(item: Headline, story: Story) -> float:
    """The weighted share of the item's words and entities found in the story's closest
    member headline, plus a bonus when the item reports the story's kind of action."""
    return _compare(item, story)[0]


Posting = dict[int, None]  # story ids, least recently active first


class StoryIndex:
    """Recent stories, indexed by subject and by word, for clustering new items against.

    Stories and every posting are kept in order of last activity, so expiry pops from the old
    end and blocking reads the recent end: however much history the window holds, a new item
    reads at most ``POSTING_READ`` ids per key and compares at most ``CANDIDATES`` stories."""

    def __init__(self, *, window: timedelta, threshold: float,
                 categories: Mapping[str, str] | None = None):
        self.window = window
        self.threshold = threshold
        # Subject term -> its watchlist category, to know which of a stored story's subjects
        # are companies and which are chips; learnt from each item too.
        self._category: dict[str, str] = dict(categories or {})
        self.stories: dict[int, Story] = {}
        self._by_entity: dict[str, Posting] = {}
        self._by_word: dict[str, Posting] = {}
        self._expired_at: datetime | None = None

    def _keys(self, story: Story) -> tuple[tuple[dict[str, Posting], set[str]], ...]:
        """Each index with the keys the story is filed under in it."""
        return ((self._by_entity, story.entities), (self._by_word, story.words - GENERIC))

    def _post(self, story: Story) -> None:
        """(Re)file the story under all its keys, as the most recently active."""
        sid = story.id
        self.stories.pop(sid, None)
        self.stories[sid] = story
        keys_by_index = self._keys(story)
        category = self._category
        story.specific = _by_kind((category[e], e) for e in keys_by_index[0][1]
                                  if e in category and not _generic_subject(e))
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

    def absorb(self, story: Story, item: Headline, *, source: str, at: datetime) -> None:
        story.absorb(item, source=source, at=at)
        self._post(story)

    def assign(self, item: Headline, *, at: datetime, source: str, title: str,
               new_id: int) -> tuple[Decision, Story]:
        """Decide, then record: the item joins the story chosen, or starts story ``new_id``."""
        decision = self.decide(item, at)
        if decision.story is not None:
            self.absorb(decision.story, item, source=source, at=at)
            return decision, decision.story
        story = Story(id=new_id, first_seen=at, last_seen=at, title=title)
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
        for entity in item.entities:
            posting = self._by_entity.get(entity)
            if posting:
                subjects.append(posting)
                recent = list(islice(reversed(posting), POSTING_READ))
                hits.update(recent)
                if entity in specific:  # sharing "micron" says more than sharing "chips"
                    hits.update(recent)
        if not subjects:
            return set()
        for word in item.words - GENERIC:
            posting = self._by_word.get(word)
            if posting:
                hits.update(islice(reversed(posting), POSTING_READ))
        found: set[int] = set()
        for posting in subjects:
            found |= hits.keys() & posting.keys()
        if len(found) > CANDIDATES:
            return set(heapq.nlargest(CANDIDATES, found, key=hits.__getitem__))
        return found

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

    def decide(self, item: Headline, at: datetime) -> Decision:
        """The story this item belongs to, or why it starts a new one."""
        if not item.entities:
            return Decision(None, 0.0, reason="it names no chip or company to match on")
        # Open stories: reported within the window, and first reported no longer than two
        # windows ago, so steady coverage of one subject cannot keep a story open for months.
        earliest, latest, born = at - self.window, at + self.window, at - 2 * self.window
        self._category.update((term, kind) for kind, term in item.specific)
        mine = _by_kind(item.specific)
        best: Decision | None = None
        vetoed = subject_only = other_subject = 0
        for sid in self._candidates(item):
            story = self.stories[sid]
            if story.last_seen < earliest or not born <= story.first_seen <= latest:
                continue
            if _conflict(mine, story.specific):
                other_subject += 1
                continue
            if item.actions and story.actions and not (item.actions & story.actions):
                vetoed += 1
                continue
            score, distinct = _compare(item, story)
            # A shared chip or company alone is not an event: something else must match too
            # (a policy term, a non-generic word, or the same kind of action).
            if not (distinct or item.actions & story.actions):
                subject_only += 1
                continue
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
        if other_subject:
            return Decision(None, 0.0, reason="related stories are about other companies or "
                                              "chips")
        if subject_only:
            return Decision(None, 0.0, reason="recent stories share the chip or company but "
                                              "nothing else")
        return Decision(None, 0.0, reason="no recent story names the same chip or company")


class Clusterer:
    """Clusters the pipeline's alerting items against the stories of the last ``window``.

    Story ids are handed out here, before the poll's transaction, so items of one batch can
    join a story another item of the same batch started."""

    def __init__(self, store: Store, config: StoriesConfig, *, now: datetime,
                 watchlists: Mapping[str, Sequence[Term]] | None = None):
        self.config = config
        categories = {term.name.casefold(): term.category
                      for terms in (watchlists or {}).values() for term in terms}
        self.index = StoryIndex(window=timedelta(hours=config.window_hours),
                                threshold=config.threshold, categories=categories)
        intern = sys.intern
        # Tens of thousands of stories are tens of thousands of new containers: left on, the
        # cyclic collector traverses them over and over while they load (most of the startup
        # time, measured). They hold no cycles, so nothing is left for it to find.
        enabled = gc.isenabled()
        gc.disable()
        try:
            # Oldest activity first, the order the index keeps (expiry stops at the first
            # story still in the window).
            records = sorted(store.recent_stories(since=now - self.index.window),
                             key=lambda r: r.last_seen)
            for r in records:
                members = [(frozenset(map(intern, w)), frozenset(map(intern, e)))
                           for w, e in r.members]
                self.index.add(Story(id=r.id, first_seen=r.first_seen, last_seen=r.last_seen,
                                     members=members, actions=set(r.actions),
                                     sources=list(r.sources), alert_id=r.alert_id,
                                     title=r.title))
        finally:
            if enabled:
                gc.enable()
        self._next_id = store.max_story_id() + 1

    def place(self, title: str, matches: Sequence[Match], *, source: str,
              at: datetime) -> tuple[Decision, Headline, int, bool]:
        """Decide and record in memory: returns (decision, features, story id, is new)."""
        self.index.expire(at)
        features = headline_features(title, matches)
        decision, story = self.index.assign(features, at=at, source=source, title=title,
                                            new_id=self._next_id)
        is_new = decision.story is None
        if is_new:
            self._next_id += 1
        return decision, features, story.id, is_new


def cluster_offline(items: Sequence[tuple[str, datetime, str, Sequence[Match]]], *,
                    window: timedelta, threshold: float) -> list[int]:
    """Cluster (title, time, source, matches) in time order; returns a story id per item.
    Used by the evaluation and the benchmark; the pipeline uses ``StoryIndex`` with the store."""
    index = StoryIndex(window=window, threshold=threshold)
    assigned = [0] * len(items)
    next_id = 1
    for i in sorted(range(len(items)), key=lambda i: items[i][1]):
        title, at, source, matches = items[i]
        decision, story = index.assign(headline_features(title, matches), at=at, source=source,
                                       title=title, new_id=next_id)
        next_id += decision.story is None
        assigned[i] = story.id
    return assigned
