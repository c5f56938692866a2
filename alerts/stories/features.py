"""Headline features: what a headline says happened, reduced to tokens a story can be matched on
(see the package docstring), and how two headlines' subjects compare."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..match import normalise
from ..types import Match
from .vocab import VOCAB

STOPWORDS = VOCAB.stopwords
GENERIC = VOCAB.generic
# Kinds of action; when a headline has several, the first in ``PRIORITY`` is the event it
# reports.
PRIORITY = VOCAB.priority
_ACTION_OF = VOCAB.actions
_ANNOUNCING = VOCAB.announcing
_POLICY_KINDS = frozenset({"restrict", "allow", "tariff"})
_ACTORS = VOCAB.countries
_AGENCIES = VOCAB.agencies
_LEADERS = VOCAB.leaders
# "Government" and "official" after a name are the name acting ("Dutch government seizes…").
_NOT_ACTING = (GENERIC - {"government", "official"}) | VOCAB.not_acting
_SKIP_LEAD = STOPWORDS | VOCAB.skip_lead
_MARKET = VOCAB.market
_MOVES = VOCAB.moves
_CONNECTIVES = VOCAB.connectives
_SYNONYMS = VOCAB.synonyms
POLICY_TOKENS = VOCAB.policy_tokens
AGENCY_NAMES = frozenset(_AGENCIES.values())
COUNTRY_NAMES = frozenset(_ACTORS.values())

# Phrases whose words mislead one by one.
_PHRASES = (
    (re.compile(r"\bdeep[- ]ultraviolet\b", re.I), " DUV "),
    (re.compile(r"\bextreme[- ]ultraviolet\b", re.I), " EUV "),
    (re.compile(r"\bgraphics[- ]processing(?:\s+units?)?\b", re.I), " GPU "),
    # "to take a $5.5 billion charge" is an accounting loss, not a criminal charge.
    (
        re.compile(
            r"\b(?:take|takes|taking|took|book|books|booked|record|records|recorded)\s+"
            r"(?:an?\s+)?(?:\$?[\d.,]+\s*(?:bn|billion|million|mn|m)?\s+)?"
            r"(?:charge|charges|writedown|write-down)\b",
            re.I,
        ),
        " writedown ",
    ),
    # "Seizes control of Nexperia" is a takeover; customs seizing chips is a legal action.
    (
        re.compile(
            r"\b(?:(?:take|takes|took|taking)\s+(?:over|control)|"
            r"(?:seize|seizes|seized|seizing)\s+control)\b",
            re.I,
        ),
        " takeover ",
    ),
    (
        re.compile(
            r"\b(?:issue|issues|issued|issuing|grant|grants|granting|win|wins|won|get|"
            r"gets|got|receive|receives|received|secure|secures|secured)\s+"
            r"(?:\w+\s+){0,3}?(?:licen[cs]es?|approvals?|permits?|waivers?)\b",
            re.I,
        ),
        " granted licence ",
    ),
)
# A section label before a colon ("Tech war: …", "Report: …") says nothing about the event.
_KICKER_RE = re.compile(r"^\s*(?:[^\s:]+\s+){0,2}[^\s:]+\s*:\s+(?=\S)")
_US_RE = re.compile(r"\bU\.\s?S\.(?:\s?A\.)?|\bUnited States\b", re.IGNORECASE)
# Amounts and counts; not model numbers (H20, 910C, 7nm) and not years.
_NUMBER_RE = re.compile(
    r"(?<![\w.-])\$?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(%|bn|mn|m|k|b|tn|billion|million|"
    r"thousand|trillion|percent|per cent)?(?![\w-])",
    re.IGNORECASE,
)
_SCALE = {
    "k": 3,
    "thousand": 3,
    "m": 6,
    "mn": 6,
    "million": 6,
    "b": 9,
    "bn": 9,
    "billion": 9,
    "tn": 12,
    "trillion": 12,
}


@dataclass(frozen=True, slots=True)
class Headline:
    """The clustering features of one headline.

    ``tokens`` say what happened (see the package docstring); ``entities`` are the chips and
    companies it is about, ``specific`` those of them that are not everyday words ((category,
    term) pairs); ``actions`` the kinds of action; ``actors`` its third countries and agencies;
    ``numbers`` its amounts; ``lead`` the actor it opens with ("china" in "China bans…")."""

    tokens: frozenset[str]
    entities: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    specific: frozenset[tuple[str, str]] = frozenset()
    actors: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    lead: str = ""
    primary: str = ""  # the kind of action it reports (see ``PRIORITY``)

    @property
    def words(self) -> frozenset[str]:
        """Its distinctive words and policy terms: what blocking and "says more" look at."""
        return frozenset(t for t in self.tokens if t[0].isalnum() or t[0] == "§")

    def encode(self) -> list[str]:
        """Tokens for storage (``Story`` members are saved as these lists)."""
        extra = [f"^{self.lead}"] if self.lead else []
        extra += [f"&{a}" for a in sorted(self.actions)]
        return sorted(self.tokens) + extra

    @staticmethod
    def decode(
        stored: Iterable[str], entities: Iterable[str], *, actions: Iterable[str] = ()
    ) -> Headline:
        """A stored member back. Stories stored before schema 5 kept plain words, and the
        first headline's kinds of action beside them (``actions``)."""
        tokens, kinds, lead = set(), set(), ""
        for t in stored:
            if t.startswith("^"):
                lead = t[1:]
            elif t.startswith("&"):
                kinds.add(t[1:])
            else:
                tokens.add(sys.intern(t))
        kinds = kinds or set(actions)
        primary = next((t[1:] for t in tokens if t.startswith("!") and t != "!plan"), "")
        return Headline(
            tokens=frozenset(tokens),
            entities=shared_set(frozenset(map(sys.intern, entities))),
            actions=shared_set(frozenset(kinds)),
            primary=primary or next((a for a in PRIORITY if a in kinds and a != "plan"), ""),
            actors=shared_set(frozenset(t[1:] for t in tokens if t.startswith("@"))),
            numbers=shared_set(frozenset(t[1:] for t in tokens if t.startswith("#"))),
            lead=sys.intern(lead),
        )


_SHARED_SETS: dict[frozenset, frozenset] = {}


def shared_set(value: frozenset) -> frozenset:
    """One instance per distinct small set: tens of thousands of stories repeat a few hundred
    combinations of subjects and kinds of action."""
    if len(value) > 4 or len(_SHARED_SETS) > 50_000:
        return value
    return _SHARED_SETS.setdefault(value, value)


SUBJECT_CATEGORIES = frozenset({"chips", "companies"})
# Matched terms of these categories tell events apart ("ByteDance" orders, not "Alibaba" ones);
# the others say who acts, or are the domain itself, or are read from the words themselves.
EVENT_CATEGORIES = frozenset({"chip_buyers"})


def _word(word: str) -> str:
    word = _SYNONYMS.get(word, word)
    if len(word) > 4 and word.isalpha():  # a light stemmer: outlets differ in tense and number
        if word.endswith("ies"):
            word = word[:-3] + "y"
        elif word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        if len(word) > 5 and word.endswith("ing"):
            word = word[:-3]
        elif len(word) > 4 and word.endswith("ed"):
            word = word[:-2]
        elif len(word) > 4 and word.endswith("e"):
            word = word[:-1]
    return word


@lru_cache(maxsize=4096)
def generic_subject(term: str) -> bool:
    """Whether a subject is made only of everyday words ("AI chip", "semiconductors")."""
    words = [_word(w) for w in normalise(term).split()]
    # Nvidia is in nearly every headline, yet still tells a story about it from one about AMD.
    return bool(words) and all(w in GENERIC and w != "nvidia" for w in words)


def by_kind(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    kinds: dict[str, set[str]] = {}
    for kind, term in pairs:
        kinds.setdefault(kind, set()).add(term)
    return {kind: frozenset(terms) for kind, terms in kinds.items()}


def specific_of(entities: Iterable[str]) -> frozenset[str]:
    return frozenset(e for e in entities if not generic_subject(e))


def nested(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both name specific subjects, and one names nothing the other does not (a family and
    its model count as one)."""
    if not a or not b:
        return False
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return all(any(same_subject(x, y) for y in large) for x in small)


def same_subject(a: str, b: str) -> bool:
    # A family and its model are one subject ("ascend" / "ascend 910c"); "h20" / "h200" are not.
    return a == b or a.startswith(b + " ") or b.startswith(a + " ")


def conflict(mine: dict[str, frozenset[str]], theirs: dict[str, frozenset[str]]) -> bool:
    """Both name specific companies (or chips) and share none: "US halts Micron HBM exports"
    and "US halts Samsung HBM exports" are two stories, however alike their words."""
    for kind, terms in mine.items():
        other = theirs.get(kind)
        if other and not any(same_subject(a, b) for a in terms for b in other):
            return True
    return False


def _numbers(title: str) -> set[str]:
    out = set()
    for m in _NUMBER_RE.finditer(title):
        digits, unit = m.group(1).replace(",", ""), (m.group(2) or "").lower()
        if not unit and len(digits) == 4 and digits[:2] in ("19", "20"):
            continue  # a year
        if unit in ("%", "percent", "per cent"):
            out.add(digits + "%")
            continue
        try:
            value = float(digits) * 10 ** _SCALE.get(unit, 0)
        except ValueError:
            continue
        out.add(f"{value:g}")
    return out


def _event_start(words: Sequence[str]) -> int:
    """Where the event's clause starts: after a market-reaction wrapper, if there is one."""
    market = move = False
    for i, w in enumerate(words[:12]):
        if w in _CONNECTIVES and market and move and i + 1 < len(words):
            return i + 1
        market = market or w in _MARKET
        move = move or w in _MOVES
    return 0


def headline_features(
    title: str, matches: Iterable[Match] = (), subjects: frozenset[str] = SUBJECT_CATEGORIES
) -> Headline:
    text = _US_RE.sub(" us ", title)
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    tokens_list = normalise(_KICKER_RE.sub(" ", text, count=1)).split()
    tokens_list = tokens_list[_event_start(tokens_list) :]
    matches = list(matches)
    covered: set[str] = set()
    entities, specific, tokens = set(), set(), set()
    for m in matches:
        term = sys.intern(m.term.casefold())
        if m.category in subjects or m.category in EVENT_CATEGORIES or term in POLICY_TOKENS:
            # A matched phrase counts once, as its entity or policy term, not word by word.
            covered.update(_word(w) for w in normalise(m.text).split())
        if m.category in subjects:
            entities.add(term)
            if not generic_subject(term):
                specific.add((m.category, term))
        elif term in POLICY_TOKENS:
            tokens.add("§" + POLICY_TOKENS[term])
        elif m.category in EVENT_CATEGORIES:
            tokens.add(sys.intern(_word(term.replace(" ", ""))))
    words, actions, actors = set(), set(), set()
    kinds: list[tuple[str, str]] = []
    lead = ""
    n = len(tokens_list)
    i = 0
    while i < n:
        w = tokens_list[i]
        pair = f"{w} {tokens_list[i + 1]}" if i + 1 < n else ""
        if pair in _AGENCIES or pair in _ACTORS:
            key, i = pair, i + 2
        else:
            key, i = w, i + 1
        if not lead and key not in _SKIP_LEAD:
            # "China bans…" leads with an actor; "China AI chip curbs…", "Chinese stocks…" do not.
            after = tokens_list[i] if i < n else ""
            if after in ("says", "said", "say", "warns", "confirms") and key not in _LEADERS:
                pass  # "Nvidia says US…": the actor is what follows
            else:
                lead = _LEADERS.get(key, "-") if _word(after) not in _NOT_ACTING else "-"
        if key in _AGENCIES:
            actors.add(_AGENCIES[key])
            continue
        if key in _ACTORS:
            if _ACTORS[key] not in ("us", "china"):
                actors.add(_ACTORS[key])
            continue
        if w in _ACTION_OF:
            kind = _ACTION_OF[w]
            actions.add(kind)
            kinds.append((kind, w))
            continue
        if w in STOPWORDS:
            continue
        w = _word(w)
        if w in STOPWORDS or w in GENERIC or len(w) < 2 or w in covered or w.isdigit():
            continue
        words.add(w)
    # A ban lifted is an approval: when both directions appear, the verbs of easing win over
    # the nouns they act on ("eases curbs", "lifts ban").
    if "allow" in actions and "restrict" in actions:
        actions.discard("restrict")
    numbers = _numbers(title)
    if (
        "product" in actions
        and actions & _POLICY_KINDS
        and all(w in _ANNOUNCING for kind, w in kinds if kind == "product")
    ):
        actions.discard("product")
    # "Plan" marks an action not taken yet; the event is the action planned.
    primary = next((a for a in PRIORITY if a in actions and a != "plan"), "")
    words |= {t for t in tokens if t[0] == "§"}
    tokens |= words
    if primary:
        tokens.add("!" + primary)
    if "plan" in actions and primary != "product":  # a product planned is the product
        tokens.add("!plan")
    tokens |= {"@" + a for a in actors}
    tokens |= {"#" + x for x in numbers}
    return Headline(
        tokens=frozenset(map(sys.intern, tokens)),
        entities=shared_set(frozenset(entities)),
        actions=shared_set(frozenset(actions)),
        specific=shared_set(frozenset(specific)),
        actors=shared_set(frozenset(actors)),
        numbers=shared_set(frozenset(numbers)),
        lead="" if lead == "-" else lead,
        primary=primary,
    )
