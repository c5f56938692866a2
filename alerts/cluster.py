"""Story clustering: one alert per event, however many outlets carry it; never one alert for
two events.

A wrong join hides news (the story's message is edited, and edits do not notify), a missed join
costs one extra message, so joining needs agreement on the *event*, not on the subject:

- **Event overlap.** Each headline is reduced to the tokens that say what happened: its
  distinctive words, the kind of action (``!restrict``, ``!allow``, ``!legal``…, so "bans" and
  "blocks" agree), the policy terms it matched (``§entity list``), third countries and agencies
  (``@japan``, ``@justice``) and numbers (``#23``). Watchlist subjects (Nvidia, H20), the US and
  China and everyday words are left out: they say who, not what; so are a section label
  ("Tech war: …") and a market reaction wrapped around the event ("Nvidia stock tumbles as US
  bans…": the event is what follows "as"). Tokens are weighted by how rare they are among the
  stored items (IDF, learned as items arrive), and the measure is symmetric (weighted Dice over
  both headlines).
- **Vetoes.** No join between items of the same outlet (it does not report one event twice; its
  updates are edits, caught earlier, or the same article re-titled at once: the very event
  tokens and subjects of a story headline within an hour); between opposite directions (a ban
  and an approval) or different kinds of action, or a plan and the action ("weighs curbs" /
  "imposes curbs"; a product planned is the product offered); between different third
  countries, agencies, leading actors ("China bans…" against "Dutch government…") or numbers
  ("23 types" against "140 entities"); between other companies or other models of the same
  company. Agreeing on the kind of action alone joins only headlines about the same subjects
  (kind by kind, one side naming no other), or a vaguer item (everyday subjects only) led by
  the same actor; never a specific item into a vaguer story.
- **Subject.** Candidates share a chip or company with the item (inverted indexes over the
  stories in the window, read from their most recently active end, so a new item never scans
  all history).
- **Lifetime.** A story takes new items while reported within the window, and for at most two
  windows after its first report.
"""

from __future__ import annotations

import gc
import heapq
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import islice, takewhile
from urllib.parse import urlsplit

from .config import StoriesConfig, Term
from .match import normalise
from .types import Match, StoryRecord

MAX_MEMBERS = 8  # member headlines a story keeps to compare with (the first ones)

STOPWORDS = frozenset(
    """
a an the and or but of to in on at for from by with as is are was were be been being it its
this that these those into over after before amid about than then so not no yes will would can
could may might must should has have had do does did says said say report reports reported
reportedly sources source new news how why what who when where which while just also more most
up down out off via per vs under between against again still yet all any some other such
i we you he she they them his her their our your my me if week today year years first
order orders ordered fresh further latest another additional
face faces facing hit hits take takes taking took make makes making made get gets getting got
see sees seen show shows showing showed find finds found tell tells told give gives giving gave
go goes going went come comes coming came put puts keep keeps seek seeks seeking use uses using
used open opens opened set sets look looks looking want wants need needs needed help helps
""".split()
)
# Words nearly every headline in this domain has: they say who or what about, not what happened.
GENERIC = frozenset(
    """
chip semiconductor ai export import nvidia sale sell trade rule government official company
firm market stock share tech gpu processor technology industry maker product deal business
advanc high end top cutting edge flagship data center centr datacentr
""".split()
)  # the last line: how outlets rank chips ("advanced", "top") and their market
# Direction and kind of action. A headline's verbs are folded into these classes, so "bans",
# "blocks" and "curbs" agree, and "bans" and "allows" are opposite directions.
ACTIONS = {
    # A product made to fit the rules ("offers A800 for China to meet US rules").
    "product": """launch launches launched unveil unveils unveiled offer offers offered
        designed developing develops readies readying introduce introduces debut debuts release
        releases tweak tweaks tweaked create creates created comply complies complying
        compliant meet meets sidestep sidesteps skirt skirts circumvent circumvents override
        around workaround tailored nerfed replacement alternative downgraded variant""",
    # Not done yet: weighed, planned, threatened ("US weighs curbs" is not "US imposes curbs").
    "plan": """weigh weighs weighing mull mulls mulling consider considers considering
        considered plan plans planning mulled eye eyes eyeing mulls propose proposes proposed
        draft drafts drafting threaten threatens threatened prepare prepares preparing
        could may might possible possibly potential potentially likely""",
    "writedown": "writedown writedowns loss losses",
    "legal": """charge charges charged indict indicts indicted indictment plead pleads pleaded
        guilty smuggle smuggles smuggled smuggling smuggler smugglers arrest arrests arrested
        fraud prosecute prosecutes prosecuted penalty penalties fine fines fined settle settles
        settlement convict convicted sentence sentenced seize seizes seized seizure lawsuit
        sue sues sued""",
    "probe": """probe probes probed probing investigate investigates investigated
        investigating investigation inquiry summon summons summoned scrutiny review reviews
        reviewing audit subpoena subpoenas subpoenaed""",
    "tariff": "tariff tariffs duty duties levy levies",
    "deal": """agree agrees agreed pact accord agreement""",
    "allow": """granted allow allows allowed approve approves approved approval clear clears cleared
        lift lifts lifted ease eases eased easing grant grants granted resume resumes resumed
        permit permits permitted waive waives waived waiver exempt exempts exemption relax
        relaxes relaxed greenlight greenlights rescind rescinds rescinded repeal repeals
        repealed scrap scraps scrapped reverse reverses reversed reversal relent relents
        loosen loosens loosened unblock unblocks""",
    "restrict": """ban bans banned banning bar bars barred barring block blocks blocked blocking
        curb curbs curbed curbing restrict restricts restricted restricting restriction
        restrictions halt halts halted halting stop stops stopped tighten tightens tightened
        tightening limit limits limited prohibit prohibits prohibited blacklist blacklists
        blacklisted sanction sanctions sanctioned crackdown revoke revokes revoked suspend
        suspends suspended deny denies denied reject rejects rejected controls""",
    "control": "takeover seize seizes seized control nationalise nationalize",
    "trade": """buy buys bought buying purchase purchases purchased ship ships shipped
        shipping shipment shipments supply supplies supplied""",
}
# Announcing is not making a product when what is announced is a rule ("US unveils sweeping
# export controls").
_ANNOUNCING = frozenset(
    "launch launches launched unveil unveils unveiled introduce introduces "
    "release releases debut debuts".split()
)
_POLICY_KINDS = frozenset({"restrict", "allow", "tariff"})
# When a headline has several kinds, the first in this order is the event it reports: the
# others are usually context ("… to comply with US curbs", "… after US ban").
PRIORITY = tuple(ACTIONS)
_ACTION_OF = {w: kind for kind, words in ACTIONS.items() for w in words.split()}
OPPOSITE = {"restrict": "allow", "allow": "restrict"}
# Who acts. US and China are in nearly every headline (as actor or target): they only count as
# a headline's leading actor. Third countries and agencies are event tokens, and vetoes.
_ACTORS = {
    "us": "us",
    "washington": "us",
    "biden": "us",
    "trump": "us",
    "america": "us",
    "american": "us",
    "usa": "us",
    "white house": "us",
    "lutnick": "us",
    "raimondo": "us",
    "china": "china",
    "chinese": "china",
    "beijing": "china",
    "prc": "china",
    "japan": "japan",
    "japanese": "japan",
    "tokyo": "japan",
    "meti": "japan",
    "dutch": "netherlands",
    "netherlands": "netherlands",
    "hague": "netherlands",
    "taiwan": "taiwan",
    "taiwanese": "taiwan",
    "taipei": "taiwan",
    "korea": "korea",
    "korean": "korea",
    "seoul": "korea",
    "eu": "eu",
    "european": "eu",
    "europe": "eu",
    "brussels": "eu",
    "uk": "uk",
    "britain": "uk",
    "british": "uk",
    "germany": "germany",
    "german": "germany",
    "berlin": "germany",
    "france": "france",
    "french": "france",
    "india": "india",
    "indian": "india",
    "malaysia": "malaysia",
    "malaysian": "malaysia",
    "singapore": "singapore",
    "singaporean": "singapore",
    "vietnam": "vietnam",
    "thailand": "thailand",
    "indonesia": "indonesia",
    "uae": "uae",
    "emirates": "uae",
    "emirati": "uae",
    "abu dhabi": "uae",
    "saudi": "saudi",
    "riyadh": "saudi",
    "qatar": "qatar",
    "russia": "russia",
    "russian": "russia",
    "moscow": "russia",
    "iran": "iran",
    "iranian": "iran",
    "israel": "israel",
    "israeli": "israel",
    "hong kong": "hongkong",
    "canada": "canada",
    "canadian": "canada",
    "mexico": "mexico",
    "australia": "australia",
}
_AGENCIES = {
    "commerce": "commerce",
    "bis": "commerce",
    "commerce department": "commerce",
    "justice": "justice",
    "doj": "justice",
    "prosecutors": "justice",
    "prosecutor": "justice",
    "fbi": "justice",
    "court": "justice",
    "judge": "justice",
    "jury": "justice",
    "congress": "congress",
    "lawmakers": "congress",
    "senate": "congress",
    "senators": "congress",
    "senator": "congress",
    "house panel": "congress",
    "treasury": "treasury",
    "ofac": "treasury",
    "pentagon": "defense",
    "customs": "customs",
    "cyberspace": "cyberspace",
    "cac": "cyberspace",
    "samr": "antitrust",
    "antitrust": "antitrust",
    "competition": "antitrust",
    "mofcom": "mofcom",
    "commerce ministry": "mofcom",
    "ministry of commerce": "mofcom",
    "miit": "miit",
    "ndrc": "ndrc",
    "sec": "sec",
}
_AGENCY_NAMES = frozenset(_AGENCIES.values())
_COUNTRY_NAMES = frozenset(_ACTORS.values())
_LEADERS = {
    **_ACTORS,
    "commerce": "us",
    "bis": "us",
    "commerce department": "us",
    "justice": "us",
    "doj": "us",
    "fbi": "us",
    "congress": "us",
    "lawmakers": "us",
    "senate": "us",
    "treasury": "us",
    "pentagon": "us",
    "cac": "china",
    "cyberspace": "china",
    "samr": "china",
    "mofcom": "china",
    "miit": "china",
    "ndrc": "china",
    "commerce ministry": "china",
}
_NOT_ACTING = (GENERIC - {"government", "official"}) | {
    "stock",
    "shares",
    "internet",
    "sector",
    "giant",
    "giants",
    "buyer",
    "customer",
    "carmaker",
    "startup",
    "startups",
    "market",
    "ambition",
}
_SKIP_LEAD = STOPWORDS | {"exclusive", "update", "breaking", "analysis", "new"}
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
    (re.compile(r"\b(?:take|takes|took|taking)\s+(?:over|control)\b", re.I), " takeover "),
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
# A market reaction wrapped around the event ("Nvidia stock tumbles as US bans…", "Chinese
# stocks fall on report…"): the event is the clause after the connective, and the reaction's
# own words differ from outlet to outlet.
_MARKET = frozenset(
    "stock stocks share shares premarket investor investors market markets "
    "index indexes indices".split()
)
_MOVES = frozenset(
    """fall falls fell tumble tumbles tumbled slip slips slipped slump slumps
    slumped drop drops dropped sink sinks sank slide slides slid plunge plunges plunged lower
    rise rises rose jump jumps jumped surge surges surged rally rallies rallied gain gains
    gained climb climbs climbed dip dips dipped soar soars soared selloff""".split()
)
_CONNECTIVES = frozenset("as on after amid following over".split())
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
_SYNONYMS = {
    "chinese": "china",
    "semiconductors": "semiconductor",
    "chips": "chip",
    "chipmaker": "chip",
    "chipmakers": "chip",
    "exports": "export",
    "imports": "import",
    "sales": "sale",
    "selling": "sell",
    "sells": "sell",
    "sold": "sell",
    "gpus": "gpu",
    "rules": "rule",
    "tools": "equipment",
    "tool": "equipment",
    "machines": "equipment",
    "machine": "equipment",
    "toolmaker": "equipment",
    "toolmakers": "equipment",
    "regulations": "rule",
    "regulation": "rule",
    "measures": "rule",
    "subsidiaries": "affiliate",
    "subsidiary": "affiliate",
    "affiliates": "affiliate",
    "units": "affiliate",
    "unit": "affiliate",
    "datacenter": "datacentre",
    "datacenters": "datacentre",
    "processors": "processor",
    "accelerators": "gpu",
    "accelerator": "gpu",
    "companies": "company",
    "firms": "firm",
}

# Policy terms that say what happened. The rest ("export controls", "ban", "curbs") are the
# domain itself, or actions, which the action classes already fold together.
POLICY_TOKENS = {
    "entity list": "entity list",
    "export licence": "licence",
    "licence": "licence",
    "import approval": "import",
    "imports": "import",
    "security review": "security review",
    "smuggling": "smuggling",
    "diversion": "smuggling",
    "export violations": "violations",
    "seizure": "seizure",
    "waiver": "waiver",
    "exemption": "waiver",
    "discourage": "discourage",
    "tariffs": "tariff",
    "duties": "tariff",
    "customs": "customs",
}
ACTION_WEIGHT = 2.5  # a kind of action agreeing counts like a fairly rare word (it is a class)
IDF_FLOOR = 1.0  # the weight of a token every stored item has
EXPIRE_EVERY = timedelta(minutes=10)
# An outlet's second headline on a story it just reported, saying exactly what one of the
# story's headlines says, is the same article re-titled (a new guid and URL), not a new event.
RETITLE_WITHIN = timedelta(hours=1)
POSTING_READ = 256  # most recently active stories read from each posting for one item
CANDIDATES = 32  # stories compared in full with one item, the best ranked by blocking
IDF_ITEMS = 20000  # stored titles read at startup to learn token rarity


@dataclass(frozen=True, slots=True)
class Headline:
    """The clustering features of one headline.

    ``tokens`` say what happened (see the module docstring); ``entities`` are the chips and
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
            entities=_shared(frozenset(map(sys.intern, entities))),
            actions=_shared(frozenset(kinds)),
            primary=primary or next((a for a in PRIORITY if a in kinds and a != "plan"), ""),
            actors=_shared(frozenset(t[1:] for t in tokens if t.startswith("@"))),
            numbers=_shared(frozenset(t[1:] for t in tokens if t.startswith("#"))),
            lead=sys.intern(lead),
        )


_SHARED: dict[frozenset, frozenset] = {}


def _shared(value: frozenset) -> frozenset:
    """One instance per distinct small set: tens of thousands of stories repeat a few hundred
    combinations of subjects and kinds of action."""
    if len(value) > 4 or len(_SHARED) > 50_000:
        return value
    return _SHARED.setdefault(value, value)


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


def _specific_of(entities: Iterable[str]) -> frozenset[str]:
    return frozenset(e for e in entities if not _generic_subject(e))


def _nested(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both name specific subjects, and one names nothing the other does not (a family and
    its model count as one)."""
    if not a or not b:
        return False
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return all(any(_same_subject(x, y) for y in large) for x in small)


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
            if not _generic_subject(term):
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
        entities=_shared(frozenset(entities)),
        actions=_shared(frozenset(actions)),
        specific=_shared(frozenset(specific)),
        actors=_shared(frozenset(actors)),
        numbers=_shared(frozenset(numbers)),
        lead="" if lead == "-" else lead,
        primary=primary,
    )


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
        docs, df = self.docs + 1, self.df
        return sum(
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


@dataclass(frozen=True, slots=True)
class Decision:
    """Why an item joined a story or started one; logged and shown by ``cluster``."""

    story: Story | None
    score: float
    shared: tuple[str, ...] = ()
    reason: str = ""

    def explain(self) -> str:
        if self.story is None:
            return f"new story ({self.reason})"
        return (
            f'joins story {self.story.id} "{self.story.title}" (similarity '
            f"{self.score:.2f}, shared: {', '.join(self.shared)})"
        )


def _veto(item: Headline, member: Headline) -> str:
    """Why two headlines cannot report one event, or ""."""
    if item.primary and member.primary and item.primary != member.primary:
        if OPPOSITE.get(item.primary) == member.primary:
            return "the opposite action"
        return "another kind of action"
    # A rule weighed is not the rule imposed; a product planned is the product offered (an
    # outlet's "plans a chip for China" is another's "offers a chip for China").
    if (
        item.primary == member.primary
        and item.primary != "product"
        and ("plan" in item.actions) != ("plan" in member.actions)
        and not item.numbers & member.numbers
    ):
        return "a plan, not the action"
    for a, b in ((item, member), (member, item)):
        if (
            a.primary in OPPOSITE
            and OPPOSITE[a.primary] in b.actions
            and a.primary not in b.actions
        ):
            return "the opposite action"
    for kinds in (_AGENCY_NAMES, _COUNTRY_NAMES):
        mine, theirs = item.actors & kinds, member.actors & kinds
        if mine and theirs and not mine & theirs:
            return "other countries or agencies"
    if item.lead and member.lead and item.lead != member.lead:
        return "another actor"
    if item.numbers and member.numbers and not item.numbers & member.numbers:
        return "other numbers"
    return ""


def _display(token: str) -> str:
    return token.lstrip("!§@#%")


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
    ):
        self.window = window
        self.threshold = threshold
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
        return ((self._by_entity, story.entities), (self._by_word, story.words))

    def _post(self, story: Story) -> None:
        """(Re)file the story under all its keys, as the most recently active."""
        sid = story.id
        self.stories.pop(sid, None)
        self.stories[sid] = story
        keys_by_index = self._keys(story)
        category = self._category
        story.specific = _by_kind(
            (category[e], e)
            for e in keys_by_index[0][1]
            if e in category and not _generic_subject(e)
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
        chosen, or starts story ``new_id``."""
        self.rarity.observe(item.tokens)
        decision = self.decide(item, at, source=source)
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

    def _nested_by_kind(self, mine: frozenset[str], theirs: frozenset[str]) -> bool:
        """They name a specific subject in common, and for each kind (companies, chips) one
        side names nothing the other does not, or nothing of that kind: "Applied Materials
        faces probe over shipments to SMIC" / "Applied Materials subpoenaed over chip
        equipment"."""
        if not any(_same_subject(x, y) for x in mine for y in theirs):
            return False
        a = _by_kind((self._category.get(e, ""), e) for e in mine)
        b = _by_kind((self._category.get(e, ""), e) for e in theirs)
        return all(kind not in b or _nested(terms, b[kind]) for kind, terms in a.items())

    def similarity(self, item: Headline, member: Headline) -> float:
        """Weighted Dice of the two headlines' event tokens (each weighted by its rarity)."""
        shared = item.tokens & member.tokens
        if not shared:
            return 0.0
        total = self.rarity.total
        return 2 * total(shared) / (total(item.tokens) + total(member.tokens))

    def decide(self, item: Headline, at: datetime, *, source: str = "") -> Decision:
        """The story this item belongs to, or why it starts a new one."""
        if not item.entities:
            return Decision(None, 0.0, reason="it names no chip or company to match on")
        # Open stories: reported within the window, and first reported no longer than two
        # windows ago, so steady coverage of one subject cannot keep a story open for months.
        earliest, latest, born = at - self.window, at + self.window, at - 2 * self.window
        self._category.update((term, kind) for kind, term in item.specific)
        mine = _by_kind(item.specific)
        best: Decision | None = None
        vetoes: Counter[str] = Counter()
        for sid in self._candidates(item):
            story = self.stories[sid]
            if story.last_seen < earliest or not born <= story.first_seen <= latest:
                continue
            if source and source in story.sources and not _retitled(item, story, at):
                vetoes["the same outlet"] += 1
                continue
            if _conflict(mine, story.specific):
                vetoes["other companies or chips"] += 1
                continue
            first = story.members[0] if story.members else None
            reason = _veto(item, first) if first is not None else ""
            if reason:
                vetoes[reason] += 1
                continue
            score, closest = 0.0, None
            mine_specific = _specific_of(item.entities)
            for member in story.members:
                if member is not first and _veto(item, member):
                    continue
                # Sharing only the kind of action is an event only about the same subjects,
                # one side naming no other ("US bans Nvidia H20 sales" / "Washington blocks
                # Nvidia H20 sales"), or when the item names only everyday subjects ("US
                # blocks sales of some AI chips") and is led by the same actor. Never the
                # other way round: a specific headline is not hidden in a vaguer story.
                if all(t[0] == "!" for t in item.tokens & member.tokens):
                    theirs = _specific_of(member.entities)
                    if not self._nested_by_kind(mine_specific, theirs) and not (
                        not mine_specific and item.lead and item.lead == member.lead
                    ):
                        continue
                s = self.similarity(item, member)
                if s > score:
                    score, closest = s, member
            if closest is None:
                vetoes["nothing but the subject"] += 1
                continue
            if best is None or score > best.score:
                shared = sorted(item.entities & story.entities) + sorted(
                    _display(t) for t in item.tokens & closest.tokens
                )
                best = Decision(story, score, tuple(shared))
        if best is not None and best.score >= self.threshold:
            return best
        if best is not None:
            assert best.story is not None  # every candidate above names its story
            return Decision(
                None,
                best.score,
                reason=f"best similarity {best.score:.2f} to story {best.story.id} "
                f"is below {self.threshold:.2f}",
            )
        if vetoes:
            reason, _ = vetoes.most_common(1)[0]
            return Decision(
                None, 0.0, reason=_REASONS.get(reason, f"related stories report {reason}")
            )
        return Decision(None, 0.0, reason="no recent story names the same chip or company")


def _retitled(item: Headline, story: Story, at: datetime) -> bool:
    """Whether an item of an outlet already in the story is that outlet's article re-titled:
    within ``RETITLE_WITHIN`` of the story's last report, with the very event tokens and
    subjects of one of its headlines ("Nvidia says US order restricts sales of AI chips to
    China" / "Nvidia says US ordered it to stop sales of AI chips to China")."""
    return at - story.last_seen <= RETITLE_WITHIN and any(
        m.tokens == item.tokens and m.entities == item.entities for m in story.members
    )


_REASONS = {
    "the same outlet": "related stories are from the same outlet, which reports an event once",
    "other companies or chips": "related stories are about other companies or chips",
    "nothing but the subject": "recent stories share the chip or company but nothing else",
    "the opposite action": "related stories report the opposite action",
}


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
    ):
        self.config = config
        categories = {
            term.name.casefold(): term.category
            for terms in (watchlists or {}).values()
            for term in terms
        }
        self.index = StoryIndex(
            window=timedelta(hours=config.window_hours),
            threshold=config.threshold,
            categories=categories,
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
                self.index.add(_story_of(r))
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
            self.index.add(_story_of(r))  # replaces the copy held, if any
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
        is_new = decision.story is None
        if is_new:
            self._next_id += 1
        member = story.members[-1] is features if story.members else False
        first = story.members[0] if story.members else features
        return Placement(
            decision=decision,
            story_id=story.id,
            new_story=is_new,
            member=features.encode() if member else None,
            entities=tuple(sorted(features.entities)),
            actions=tuple(sorted(first.actions)),
            says_more=not is_new and says_more(features, first),
        )


def _story_of(r: StoryRecord) -> Story:
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
    new_story: bool
    member: list[str] | None  # the headline's stored features when it became a member
    entities: tuple[str, ...]
    actions: tuple[str, ...]  # of the story's first headline
    says_more: bool = False


def cluster_offline(
    items: Sequence[tuple[str, datetime, str, Sequence[Match]]],
    *,
    window: timedelta,
    threshold: float,
) -> list[int]:
    """Cluster (title, time, source, matches) in time order; returns a story id per item.
    Used by the evaluation and the tests; the pipeline uses ``Clusterer`` with the store."""
    index = StoryIndex(window=window, threshold=threshold)
    assigned = [0] * len(items)
    next_id = 1
    for i in sorted(range(len(items)), key=lambda i: items[i][1]):
        title, at, source, matches = items[i]
        features = headline_features(title, matches)
        decision, story = index.assign(features, at=at, source=source, title=title, new_id=next_id)
        next_id += decision.story is None
        assigned[i] = story.id
    return assigned
