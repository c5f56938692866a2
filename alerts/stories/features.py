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
_HEDGES = VOCAB.hedges
_IDIOMS = VOCAB.idioms
_NEGATIONS = VOCAB.negations
_UNPROVEN = VOCAB.unproven | VOCAB.hedges
_PROBE_OBJECTS = VOCAB.probe_objects
_POLICY_KINDS = frozenset({"restrict", "allow", "tariff", "probe"})
_ACTORS = VOCAB.countries
_AGENCIES = VOCAB.agencies
_LEADERS = VOCAB.leaders
# "Government" and "official" after a name are the name acting ("Dutch government seizes…").
_NOT_ACTING = (GENERIC - {"government", "official"}) | VOCAB.not_acting
_SKIP_LEAD = STOPWORDS | VOCAB.skip_lead
_MARKET = VOCAB.market
_MOVES = VOCAB.moves
_CONNECTIVES = VOCAB.connectives
_CONTEXT = VOCAB.context
_SYNONYMS = VOCAB.synonyms
POLICY_TOKENS = VOCAB.policy_tokens
AGENCY_NAMES = frozenset(_AGENCIES.values())
COUNTRY_NAMES = frozenset(_ACTORS.values())


@dataclass(frozen=True, slots=True)
class _Phrase:
    """A phrase rewritten before the words are read, and the lower-case pieces of text one of
    which it cannot match without (checked first: most headlines have none of them)."""

    needs: tuple[str, ...]
    pattern: re.Pattern[str]
    replacement: str


# Put before the action word of an idiom's rewriting: the kind of action it says is an idiom's,
# weaker evidence (see ``idioms`` in vocab.yaml). A token no headline has; it is not read as a
# word.
_IDIOM_MARK = "zzidiom"


def _phrase(needs: str, pattern: str, replacement: str, *, idiom: bool = False) -> _Phrase:
    """``idiom``: the kind of action the replacement says (its word marked ``^``) is an
    idiom's."""
    replacement = replacement.replace("^", f"{_IDIOM_MARK} " if idiom else "")
    return _Phrase(tuple(needs.split()), re.compile(pattern, re.I), replacement)


# What a permission lost is ("loses its licence", "ends the waiver").
_PERMISSIONS = r"(?:\S+\s+){0,3}?(?:licen[cs]es?|waivers?|exemptions?|access|status|permits?)\b"
# Phrases whose words mislead one by one, or that say a kind of action in other words.
_PHRASES = (
    _phrase("ultraviolet", r"\bdeep[- ]ultraviolet\b", " DUV "),
    _phrase("ultraviolet", r"\bextreme[- ]ultraviolet\b", " EUV "),
    _phrase("graphics", r"\bgraphics[- ]processing(?:\s+units?)?\b", " GPU "),
    # "to take a $5.5 billion charge" is an accounting loss, not a criminal charge.
    _phrase(
        "charge writedown write-down",
        r"\b(?:take|takes|taking|took|book|books|booked|record|records|recorded)\s+"
        r"(?:an?\s+)?(?:\$?[\d.,]+\s*(?:bn|billion|million|mn|m)?\s+)?"
        r"(?:charge|charges|writedown|write-down)\b",
        " writedown ",
    ),
    # "Seizes control of Nexperia" is a takeover; customs seizing chips is a legal action.
    _phrase(
        "over control",
        r"\b(?:(?:take|takes|took|taking)\s+(?:over|control)|"
        r"(?:seize|seizes|seized|seizing)\s+control)\b",
        " takeover ",
    ),
    # Approval, the loss of a permission, avoidance, a deal, a purchase and a launch, as
    # outlets word them: idioms, except a spelling of "greenlight".
    _phrase("green", r"\bgreen[- ]?light(?:s|ed|ing)?\b", " greenlight "),
    _phrase("off", r"\bsign(?:s|ed|ing)?\s+off\b", " ^approves ", idiom=True),
    _phrase("door", r"\bopen(?:s|ed|ing)?\s+(?:the\s+)?door\s+to\b", " ^allows ", idiom=True),
    # A permission lost: an idiom, except when "suspends" (an established word) says it.
    _phrase(
        "los pull yank end",
        r"\b(?:lose|loses|losing|lost|pull|pulls|pulled|yank|yanks|yanked|end|ends|ended)\s+"
        + _PERMISSIONS,
        " ^revoked ",
        idiom=True,
    ),
    _phrase(
        "suspend", r"\b(?:suspend|suspends|suspended|suspending)\s+" + _PERMISSIONS, " revoked "
    ),
    _phrase(
        "against",
        r"\bwarn(?:s|ed|ing)?\s+(?:\w+\s+){0,2}?against\b",
        " ^discourages ",
        idiom=True,
    ),
    _phrase(
        "steer",
        r"\bsteer(?:s|ed|ing)?\b(?=(?:\s+\S+){0,4}\s+away\b)",
        " ^discourages ",
        idiom=True,
    ),
    _phrase(
        "deal",
        r"\b(?:strike|strikes|struck|sign|signs|signed|reach|reaches|reached|seal|seals|"
        r"sealed)\s+(?:\w+\s+){0,2}?deals?\b",
        " ^agree ",
        idiom=True,
    ),
    _phrase(
        "order rush",
        r"\b(?:(?:place|places|placed|placing)\s+(?:\w+\s+){0,3}?orders?|"
        r"rush(?:es|ed)?\s+to\s+(?:order|buy)|order(?:s|ed)?(?=\s+\$?\d))\b",
        " ^purchase ",
        idiom=True,
    ),
    _phrase(
        "sell ship sale",
        r"\b(?:(?:start|starts|started|starting|begin|begins|began)\s+(?:selling|shipping)|"
        r"go(?:es)?\s+on\s+sale)\b",
        " ^launches ",
        idiom=True,
    ),
    # A licence required is a restriction ("now needs an export licence", "licensing
    # requirement", "requires permits").
    _phrase(
        "licen permit",
        r"\b(?:(?:need|needs|needed|require|requires|required|requiring|impose|imposes|"
        r"imposed|imposing)\s+(?:\S+\s+){0,3}?(?:licen[cs]es?|licensing|permits?)|"
        r"licen[cs](?:e|ing)\s+requirements?)\b",
        " ^restricts licence ",
        idiom=True,
    ),
    _phrase("call", r"\bcall(?:s|ed)?\s+in\b", " ^summons ", idiom=True),
    # "To meet US rules" is a product made to fit them; meeting a minister is not.
    _phrase(
        "meet",
        r"\bmeets?\b(?=\s+(?:\S+\s+){0,3}?(?:rules?|regulations?|requirements?|curbs?|"
        r"restrictions?|controls?|limits?|thresholds?|standards?)\b)",
        " complies ",
    ),
    # Export rules are export controls.
    _phrase("export", r"\bexport\s+(?:rules?|regulations?)\b", " export ^controls ", idiom=True),
    _phrase(
        "licen approval permit waiver",
        r"\b(?:issue|issues|issued|issuing|grant|grants|granting|win|wins|won|get|"
        r"gets|got|receive|receives|received|secure|secures|secured)\s+"
        r"(?:\w+\s+){0,3}?(?:licen[cs]es?|approvals?|permits?|waivers?)\b",
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
    ``numbers`` its amounts; ``lead`` the actor it opens with ("china" in "China bans…");
    ``soft``: its kind of action is said only as an idiom or negated ("tells firms to avoid",
    "not permitted"), weaker evidence: it may make a follow-up, never confirm a join."""

    tokens: frozenset[str]
    entities: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    specific: frozenset[tuple[str, str]] = frozenset()
    actors: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    lead: str = ""
    primary: str = ""  # the kind of action it reports (see ``PRIORITY``)
    soft: bool = False

    @property
    def words(self) -> frozenset[str]:
        """Its distinctive words and policy terms: what blocking and "says more" look at."""
        return frozenset(t for t in self.tokens if t[0].isalnum() or t[0] == "§")

    def encode(self) -> list[str]:
        """Tokens for storage (``Story`` members are saved as these lists)."""
        extra = [f"^{self.lead}"] if self.lead else []
        extra += [f"&{a}" for a in sorted(self.actions)]
        extra += ["~"] if self.soft else []
        return sorted(self.tokens) + extra

    @staticmethod
    def decode(
        stored: Iterable[str], entities: Iterable[str], *, actions: Iterable[str] = ()
    ) -> Headline:
        """A stored member back. Stories stored before schema 5 kept plain words, and the
        first headline's kinds of action beside them (``actions``)."""
        tokens, kinds, lead, soft = set(), set(), "", False
        for t in stored:
            if t == "~":
                soft = True
            elif t.startswith("^"):
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
            soft=soft,
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


_UNITS = "two three four five six seven eight nine ten eleven twelve".split()
_NUMBER_WORDS = {w: n for n, w in enumerate(_UNITS, start=2)} | {
    w: n * 10
    for n, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)
}
_SCALES = "thousand|million|billion|trillion|bn|mn|tn"
# Amounts written in words ("five billion", "two dozen" is not one): "one" only before a scale,
# where it cannot be a pronoun.
_NUMBER_WORD_RE = re.compile(
    rf"\b(?:({'|'.join(_NUMBER_WORDS)})|one(?=\s+(?:{_SCALES})\b))\b", re.IGNORECASE
)


def _digits(title: str) -> str:
    return _NUMBER_WORD_RE.sub(
        lambda m: str(_NUMBER_WORDS.get((m.group(1) or "").lower(), 1)), title
    )


def numbers_agree(a: Iterable[str], b: Iterable[str]) -> bool:
    """Whether two headlines' numbers name one amount: the same, or (100 and over) within 10%
    of each other, as outlets round ("$5.5bn" / "five billion", "138 other firms" / "140")."""
    for x in a:
        for y in b:
            if x == y:
                return True
            if x[-1] == "%" or y[-1] == "%":
                continue
            low, high = sorted((float(x), float(y)))
            if low >= 100 and high <= 1.1 * low:
                return True
    return False


def _numbers(title: str) -> set[str]:
    """The amounts and counts in a title (its number words already digits)."""
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


def _key(tokens: Sequence[str], i: int) -> tuple[str, str, int]:
    """The word at ``i``, the key it reads as (two words, when they name a country or an
    agency: "white house", "commerce department"), and the index after it."""
    w = tokens[i]
    pair = f"{w} {tokens[i + 1]}" if i + 1 < len(tokens) else ""
    if pair in _AGENCIES or pair in _ACTORS:
        return w, pair, i + 2
    return w, w, i + 1


def _lead(tokens: Sequence[str]) -> str:
    """The country a headline opens with as its actor ("China bans…"), or the one it names as
    the actor of a passive ("Nvidia H200 imports approved by China"), or ""."""
    i, n = 0, len(tokens)
    while i < n:
        _, key, i = _key(tokens, i)
        if key in _SKIP_LEAD:
            continue
        # "China bans…" leads with an actor; "China AI chip curbs…", "Chinese stocks…" do not.
        after = tokens[i] if i < n else ""
        if after in ("says", "said", "say", "warns", "confirms") and key not in _LEADERS:
            continue  # "Nvidia says US…": the actor is what follows
        if key in _LEADERS:
            return _LEADERS[key] if _word(after) not in _NOT_ACTING else ""
        break
    for j in range(i, n - 1):
        if tokens[j] == "by":
            _, key, _ = _key(tokens, j + 1)
            if key in _LEADERS:
                return _LEADERS[key]
    return ""


def _acting_clause(text: str) -> list[str] | None:
    """A second clause that says what happened when the first does not ("China slows down
    its processors, Nvidia unveils less-powerful chip…": Nvidia acts): its words, else None.
    It must open with a name and a kind of action, so a list ("US orders TSMC, other
    foundries to…") is no clause."""
    head, comma, rest = text.partition(", ")
    if not comma or any(w in _ACTION_OF for w in normalise(head).split()):
        return None
    clause = normalise(rest).split()
    return clause if len(clause) >= 2 and clause[1] in _ACTION_OF else None


def headline_features(
    title: str, matches: Iterable[Match] = (), subjects: frozenset[str] = SUBJECT_CATEGORIES
) -> Headline:
    title = _digits(title)
    text = _US_RE.sub(" us ", title)
    lowered = text.lower()
    for phrase in _PHRASES:
        if any(piece in lowered for piece in phrase.needs):
            text = phrase.pattern.sub(phrase.replacement, text)
            lowered = text.lower()
    text = _KICKER_RE.sub(" ", text, count=1)
    tokens_list, idiom_at = _unmarked(normalise(text).split())
    start = _event_start(tokens_list)
    tokens_list = tokens_list[start:]
    idiom_at = {j - start for j in idiom_at}
    if idiom_at:
        text = text.replace(_IDIOM_MARK, "")
    lead = _lead(tokens_list if start else _acting_clause(text) or tokens_list)
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
    said_at: dict[str, tuple[int, str]] = {}  # where each kind is first said, and the word
    main: set[str] = set()  # the kinds said before a clause of context
    # The kinds said in other words than idioms (in a clause of context too: the reading
    # before idioms were read had no clauses of context either).
    established: set[str] = set()
    context = False
    n = len(tokens_list)
    i = 0
    while i < n:
        at = i
        w, key, i = _key(tokens_list, i)
        if key in _AGENCIES:
            actors.add(_AGENCIES[key])
            continue
        if key in _ACTORS:
            if _ACTORS[key] not in ("us", "china"):
                actors.add(_ACTORS[key])
            continue
        if w in _ACTION_OF:
            kind = _ACTION_OF[w]
            if w in _HEDGES and any(k != "plan" for k, _ in kinds):
                continue  # it hedges something said after the action, not the action
            before = tokens_list[max(0, at - 3) : at]
            idiom = w in _IDIOMS or at in idiom_at
            if _NEGATIONS.intersection(before):
                # "Not permitted", "no longer exempt": an approval negated is a restriction
                # (said in other words, so an idiom's evidence); another kind negated is none.
                if kind != "allow":
                    continue
                kind, idiom = "restrict", True
            if kind == "finding" and _unproven(tokens_list, at, kinds):
                continue
            actions.add(kind)
            kinds.append((kind, w))
            said_at.setdefault(kind, (i, w))
            if not context:
                main.add(kind)
            if not idiom:
                established.add(kind)
            continue
        if w in _CONTEXT and i > 1:
            context = True
            continue
        if w in STOPWORDS or w in _NEGATIONS:  # a negation is read with the action it negates
            continue
        w = _word(w)
        if w in STOPWORDS or w in GENERIC or len(w) < 2 or w in covered or w.isdigit():
            continue
        words.add(w)
    # When both directions appear, the one said first is the event ("eases curbs", "lifts
    # ban"; "revokes status letting Samsung ship tools"), except a ban lifted ("US ban on
    # H20 sales lifted": the easing said after, as a participle).
    if "allow" in actions and "restrict" in actions:
        (allow_at, allow_word), (restrict_at, _) = said_at["allow"], said_at["restrict"]
        if allow_at < restrict_at or allow_word.endswith("ed"):
            actions.discard("restrict")
        else:
            actions.discard("allow")
    numbers = _numbers(title)
    if (
        "product" in main
        and main & _POLICY_KINDS
        and all(w in _ANNOUNCING for kind, w in kinds if kind == "product")
    ):
        actions.discard("product")
    # "Plan" marks an action not taken yet; the event is the action planned. The kinds said
    # before a clause of context come first.
    said = actions & main
    primary = next((a for a in PRIORITY if a in said and a != "plan"), "")
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
        lead=lead,
        primary=primary,
        soft=bool(primary) and primary not in established,
    )


def _unmarked(tokens: list[str]) -> tuple[list[str], set[int]]:
    """The tokens without the idiom marks, and where each marked word now is."""
    if _IDIOM_MARK not in tokens:
        return tokens, set()
    out: list[str] = []
    marked: set[int] = set()
    for t in tokens:
        if t == _IDIOM_MARK:
            marked.add(len(out))
        else:
            out.append(t)
    return out, marked


def _unproven(tokens: Sequence[str], at: int, said: Sequence[tuple[str, str]]) -> bool:
    """Whether the finding said at ``at`` is only suspected ("suspected breach", "alleged
    violations", "possible breach", "risks violating") or, after a probe, what the probe looks
    into ("probes Nvidia over breach of law"): then the headline reports no finding."""
    if _UNPROVEN.intersection(tokens[max(0, at - 2) : at]):
        return True
    return bool(_PROBE_OBJECTS.intersection(tokens[max(0, at - 3) : at])) and any(
        k == "probe" for k, _ in said
    )
