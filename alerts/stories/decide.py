"""The decision policy: given an item's features and the stories blocking found for it, does it
join one of them or start a new story, and why. Pure: it reads the stories, changes nothing.

Three outcomes, by what each costs when wrong: a wrong **join** hides news (the story's message
is edited, and edits do not notify); a wrong **follow-up** only mutes it (posted as a reply to
the story's message, visible, without a notification); a needless **new** story only annoys.
So an item joins only when confidently the same event; it follows a story up when it shares a
specific subject and the kind of action with it and nothing vetoes the pair, but the evidence
is not enough to join; else it is a new story.

The steps, in order: the item must name a subject; each candidate story must be open, and
pass the gates (same outlet, other companies, the vetoes against its first headline); its
closest member headline is scored, and the closest that could be followed up; the best story
of each is chosen; ``_conclude`` turns them (or the vetoes met) into the outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Literal

from .features import (
    AGENCY_NAMES,
    COUNTRY_NAMES,
    Headline,
    by_kind,
    conflict,
    nested,
    numbers_agree,
    same_subject,
    specific_of,
)

if TYPE_CHECKING:
    from .index import Story

JOIN: Literal["join"] = "join"
FOLLOW: Literal["follow-up"] = "follow-up"
NEW: Literal["new"] = "new"
Outcome = Literal["join", "follow-up", "new"]

OPPOSITE = {"restrict": "allow", "allow": "restrict"}
# An outlet's second headline on a story it just reported, saying exactly what one of the
# story's headlines says, is the same article re-titled (a new guid and URL), not a new event.
RETITLE_WITHIN = timedelta(hours=1)
CHIPS = "chips"  # the watchlist category of models, the most specific subjects


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowUpRules:
    """What a follow-up needs besides the kind of action, a specific subject and no veto. The
    bot uses ``FOLLOW_UP``; the evaluation loosens or tightens it to show the trade-off
    (``benchmarks/eval_events.py --follow-ups``)."""

    enabled: bool = True
    same_actor: bool = True  # led by the same actor, or neither names one
    within: bool = True  # names no company the story does not (chips: one of the story's)
    model: bool = True  # names the model the headline it follows names
    min_similarity: float = 0.0


FOLLOW_UP = FollowUpRules()


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Why an item joined a story, followed one up or started one; logged, kept with the alert
    (``/why``), and shown by the ``cluster`` command."""

    outcome: Outcome
    story: Story | None = None  # the story joined, or followed up
    score: float = 0.0  # the similarity to that story (else the best to an open one, or 0)
    shared: tuple[str, ...] = ()  # what the item shares with the story joined or followed
    reason: str = ""  # why a new story, or a follow-up and not a join

    @property
    def thread(self) -> int | None:
        """A follow-up's thread: the story whose message it replies to. A follow-up of a
        follow-up replies to the first story of the thread, so threads stay flat."""
        if self.outcome != FOLLOW or self.story is None:
            return None
        return self.story.parent if self.story.parent is not None else self.story.id

    def explain(self) -> str:
        if self.outcome == JOIN and self.story is not None:
            return (
                f'joins story {self.story.id} "{self.story.title}" (similarity '
                f"{self.score:.2f}, shared: {', '.join(self.shared)})"
            )
        if self.outcome == FOLLOW and self.story is not None:
            under = (
                f", in the thread of story {self.thread}" if self.thread != self.story.id else ""
            )
            return (
                f'follow-up of story {self.story.id} "{self.story.title}" (shares '
                f"{', '.join(self.shared)}; not enough to join: {self.reason}{under})"
            )
        return f"new story ({self.reason})"


def decide(
    item: Headline,
    *,
    at: datetime,
    source: str,
    candidates: Callable[[Headline], Iterable[Story]],
    similarity: Callable[[Headline, Headline, bool], float],
    categories: Mapping[str, str],
    window: timedelta,
    threshold: float,
    rules: FollowUpRules = FOLLOW_UP,
) -> Decision:
    """The story this item belongs to, or why it starts a new one.

    ``candidates``: the stories blocking finds for an item; ``similarity``: how alike two
    headlines are; ``categories``: each subject's watchlist category (company or chip)."""
    if not item.entities:
        return Decision(outcome=NEW, reason="it names no chip or company to match on")
    mine = by_kind(item.specific)
    mine_specific = specific_of(item.entities)
    scored: dict[tuple[int, bool], float] = {}

    def alike(item: Headline, member: Headline, idioms: bool = False) -> float:
        idioms = idioms and (item.soft or member.soft)  # else both ways are one
        key = (id(member), idioms)  # each member scored once (each way)
        if key not in scored:
            scored[key] = similarity(item, member, idioms)
        return scored[key]

    best: tuple[float, Story, Headline] | None = None
    follow: Followed | None = None
    vetoes: Counter[str] = Counter()
    # In order of id: of stories as alike, the first reported wins, whatever order blocking
    # found them in.
    for story in sorted(candidates(item), key=attrgetter("id")):
        if not _open(story, at, window):
            continue
        reason = _gate(item, story, at=at, source=source, mine=mine)
        if reason:
            vetoes[reason] += 1
            continue
        follow = _likelier(follow, _followed(item, story, mine_specific, categories, alike, rules))
        score, closest = _closest(item, story, mine_specific, categories, alike)
        if rules.enabled and (item.soft or any(m.soft for m in story.members)):
            # Alike enough to join only when a kind of action said as an idiom counts ("tells
            # firms to avoid", "not permitted"): weaker evidence, so a follow-up.
            read, near = _closest(item, story, mine_specific, categories, alike, idioms=True)
            if near is not None and read >= threshold > score:
                if near.lead == item.lead or _within(item, story, categories):
                    why = "its kind of action is said as an idiom"
                    # A tie goes to this reason, which says more.
                    follow = _likelier(_alike_but(item, near, read, story, why), follow)
        if closest is None:
            vetoes["nothing but the subject"] += 1
            continue
        if not mine_specific and specific_of(story.entities):
            # A vague headline (no specific chip or company) never joins a specific story: a
            # word in common is all they can share ("Biden administration unveils rule to cap
            # AI chip exports" / "Trump administration blocks Nvidia's China-tailored AI
            # processor"). Alike enough to join, it follows the story up.
            if rules.enabled and score >= threshold:
                follow = _likelier(
                    follow, _alike_but(item, closest, score, story, "it names no chip or company")
                )
            vetoes["a more specific story"] += 1
            continue
        if score >= threshold and closest.lead != item.lead:
            # Alike enough, but only one of them names who acted ("Nvidia wins US approval…" /
            # "US clears Nvidia…", "TSMC to halt shipments after US order" / "US orders
            # TSMC…"): not confident, so a follow-up (when the item names nobody the story
            # does not), unless a member led as the item is joins.
            if rules.enabled and (not rules.within or _within(item, story, categories)):
                follow = _likelier(
                    follow,
                    _alike_but(item, closest, score, story, "only one of them names who acted"),
                )
            score, closest = _closest(item, story, mine_specific, categories, alike, lead=item.lead)
            if closest is None:
                vetoes["who acted"] += 1
                continue
        if best is None or score > best[0]:
            best = (score, story, closest)
    return _conclude(item, best, follow, vetoes, threshold)


def _alike_but(item: Headline, member: Headline, score: float, story: Story, why: str) -> Followed:
    """A follow-up of a story alike enough to join, but for ``why``."""
    return Followed(
        score=score,
        story=story,
        shared=tuple(sorted(_display(t) for t in item.tokens & member.tokens)),
        reason=f"similarity {score:.2f}, but {why}",
    )


def _open(story: Story, at: datetime, window: timedelta) -> bool:
    """Reported within the window, and first reported no longer than two windows ago, so
    steady coverage of one subject cannot keep a story open for months."""
    return story.last_seen >= at - window and at - 2 * window <= story.first_seen <= at + window


def _gate(
    item: Headline, story: Story, *, at: datetime, source: str, mine: dict[str, frozenset[str]]
) -> str:
    """Why the item can neither join nor follow up this story, or ""."""
    if source and source in story.sources and not _retitled(item, story, at):
        return "the same outlet"
    if conflict(mine, story.specific):
        return "other companies or chips"
    # A specific headline is never hidden in a vaguer story, nor muted under one.
    if mine and not specific_of(story.entities):
        return "a vaguer story"
    return veto(item, story.members[0]) if story.members else ""


def _closest(
    item: Headline,
    story: Story,
    mine_specific: frozenset[str],
    categories: Mapping[str, str],
    similarity: Callable[[Headline, Headline, bool], float],
    *,
    lead: str | None = None,
    idioms: bool = False,
) -> tuple[float, Headline | None]:
    """The story's member headline most like the item (of those led by ``lead``, when given),
    and its score (``None``: no member shares more than the subject with it, or every one
    vetoes it). ``idioms``: a kind of action said as an idiom counts as agreeing (it does not,
    for a join)."""
    first = story.members[0] if story.members else None
    score, closest = 0.0, None
    for member in story.members:
        if member is not first and veto(item, member):
            continue
        if lead is not None and member.lead != lead:
            continue
        # A headline naming the company but not the model is no report of the model's event
        # ("Commerce revokes some Nvidia licences…" / "US tells Nvidia its H20 now needs a
        # licence").
        if mine_specific and not _covers(item, member, categories):
            continue
        # Sharing only the kind of action is an event only about the same subjects, one side
        # naming no other ("US bans Nvidia H20 sales" / "Washington blocks Nvidia H20
        # sales"), or when the item names only everyday subjects, one of the member's ("US
        # blocks sales of some AI chips") and is led by the same actor. Never when one of them
        # says its kind only as an idiom (unless ``idioms``): that is no evidence of one event.
        if all(t[0] == "!" for t in item.tokens & member.tokens):
            if not idioms and (item.soft or member.soft):
                continue
            theirs = specific_of(member.entities)
            if not _nested_by_kind(mine_specific, theirs, categories) and not (
                not mine_specific
                and item.lead
                and item.lead == member.lead
                and item.entities & member.entities
            ):
                continue
        s = similarity(item, member, idioms)
        if s > score:
            score, closest = s, member
    return score, closest


@dataclass(frozen=True, slots=True, kw_only=True)
class Followed:
    """A story an item could follow up, with what they share and why it is not a join."""

    score: float
    story: Story
    shared: tuple[str, ...]
    reason: str


def _likelier(a: Followed | None, b: Followed | None) -> Followed | None:
    if a is None or (b is not None and b.score > a.score):
        return b
    return a


def _followed(
    item: Headline,
    story: Story,
    mine_specific: frozenset[str],
    categories: Mapping[str, str],
    similarity: Callable[[Headline, Headline, bool], float],
    rules: FollowUpRules = FOLLOW_UP,
) -> Followed | None:
    """Whether the item can follow the story up, however unalike their words: one of the
    story's headlines (its first one did not veto the item: see ``_gate``)

    - agrees with the item on the kind of action and is not vetoed by it;
    - is led by the same actor, or neither names one ("Nvidia tells suppliers to halt H20
      production" is not "Washington tightens grip on Nvidia's H20");
    - shares a specific subject with it, and the item names no company the story does not,
      no chip unless one of the story's, and a chip of the headline's if it names one (see
      ``_within`` and ``_covers``). When neither the item nor the story names a specific
      subject, the item must share a word, term, number or country instead, and name its
      actor ("China tightens rare earth export rules" / "China expands rare earth export
      controls").

    Everyday subjects ("AI chips") are not enough, nor is the kind of action alone."""
    if not rules.enabled or not item.primary:
        return None
    vague = not mine_specific
    if vague and not (item.lead and not specific_of(story.entities)):
        return None
    if rules.within and not _within(item, story, categories):
        return None
    found: Followed | None = None
    for member in story.members:
        if member.primary != item.primary or veto(item, member):
            continue
        if rules.same_actor and item.lead != member.lead:
            continue
        if vague:
            subjects = {_display(t) for t in item.tokens & member.tokens if t[0] != "!"}
        else:
            theirs = specific_of(member.entities)
            subjects = {x for x in mine_specific if any(same_subject(x, y) for y in theirs)}
        if not subjects or (rules.model and not _covers(item, member, categories)):
            continue
        s = similarity(item, member, True)  # a follow-up reads idioms as what they say
        if s < rules.min_similarity:
            continue
        if found is None or s > found.score:
            found = Followed(
                score=s,
                story=story,
                shared=(*sorted(subjects), item.primary),
                reason=f"similarity {s:.2f}",
            )
    return found


def _within(item: Headline, story: Story, categories: Mapping[str, str]) -> bool:
    """The item names no specific company the story does not, and chips only when one of them
    is the story's ("Nvidia to launch three China-focused chips, H20, L20 and L2" is within
    "Nvidia plans H20 chip for China"; "TSMC halts orders from Huawei" is not within "US adds
    Huawei to trade blacklist")."""
    mine = by_kind((categories.get(e, ""), e) for e in specific_of(item.entities))
    story_kinds = by_kind((categories.get(e, ""), e) for e in specific_of(story.entities))
    for kind, terms in mine.items():
        theirs = story_kinds.get(kind, frozenset())
        inside = [any(same_subject(x, y) for y in theirs) for x in terms]
        if not (any(inside) if kind == CHIPS else all(inside)):
            return False
    return True


def _covers(item: Headline, member: Headline, categories: Mapping[str, str]) -> bool:
    """The member names no chip, or the item names one of its chips."""
    theirs = [e for e in specific_of(member.entities) if categories.get(e) == CHIPS]
    return not theirs or any(
        same_subject(x, y)
        for x in specific_of(item.entities)
        if categories.get(x) == CHIPS
        for y in theirs
    )


def _conclude(
    item: Headline,
    best: tuple[float, Story, Headline] | None,
    follow: Followed | None,
    vetoes: Counter[str],
    threshold: float,
) -> Decision:
    """The outcome: join the best story when it is alike enough; else follow up the story it
    can follow; else a new story, saying why."""
    if best is not None and best[0] >= threshold:
        score, story, closest = best
        shared = sorted(item.entities & story.entities) + sorted(
            _display(t) for t in item.tokens & closest.tokens
        )
        return Decision(outcome=JOIN, story=story, score=score, shared=tuple(shared))
    if follow is not None:
        return Decision(
            outcome=FOLLOW,
            story=follow.story,
            score=follow.score,
            shared=follow.shared,
            reason=follow.reason,
        )
    if best is not None:
        score, story, closest = best
        return Decision(
            outcome=NEW,
            score=score,
            reason=f"best similarity {score:.2f} to story {story.id} is below {threshold:.2f}",
        )
    if vetoes:
        reason, _ = vetoes.most_common(1)[0]
        return Decision(
            outcome=NEW, reason=_REASONS.get(reason, f"related stories report {reason}")
        )
    return Decision(outcome=NEW, reason="no recent story names the same chip or company")


def veto(item: Headline, member: Headline) -> str:
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
        and not numbers_agree(item.numbers, member.numbers)
    ):
        return "a plan, not the action"
    for a, b in ((item, member), (member, item)):
        if (
            a.primary in OPPOSITE
            and OPPOSITE[a.primary] in b.actions
            and a.primary not in b.actions
        ):
            return "the opposite action"
    for kinds in (AGENCY_NAMES, COUNTRY_NAMES):
        mine, theirs = item.actors & kinds, member.actors & kinds
        if mine and theirs and not mine & theirs:
            return "other countries or agencies"
    if item.lead and member.lead and item.lead != member.lead:
        return "another actor"
    if item.numbers and member.numbers and not numbers_agree(item.numbers, member.numbers):
        return "other numbers"
    return ""


def _nested_by_kind(
    mine: frozenset[str], theirs: frozenset[str], categories: Mapping[str, str]
) -> bool:
    """They name a specific subject in common, and for each kind (companies, chips) one side
    names nothing the other does not, or nothing of that kind: "Applied Materials faces probe
    over shipments to SMIC" / "Applied Materials subpoenaed over chip equipment"."""
    if not any(same_subject(x, y) for x in mine for y in theirs):
        return False
    a = by_kind((categories.get(e, ""), e) for e in mine)
    b = by_kind((categories.get(e, ""), e) for e in theirs)
    return all(kind not in b or nested(terms, b[kind]) for kind, terms in a.items())


def _retitled(item: Headline, story: Story, at: datetime) -> bool:
    """Whether an item of an outlet already in the story is that outlet's article re-titled:
    within ``RETITLE_WITHIN`` of the story's last report, with the very event tokens and
    subjects of one of its headlines ("Nvidia says US order restricts sales of AI chips to
    China" / "Nvidia says US ordered it to stop sales of AI chips to China")."""
    return at - story.last_seen <= RETITLE_WITHIN and any(
        m.tokens == item.tokens and m.entities == item.entities for m in story.members
    )


def _display(token: str) -> str:
    return token.lstrip("!§@#%")


_REASONS = {
    "the same outlet": "related stories are from the same outlet, which reports an event once",
    "other companies or chips": "related stories are about other companies or chips",
    "nothing but the subject": "recent stories share the chip or company but nothing else",
    "the opposite action": "related stories report the opposite action",
    "a vaguer story": "related stories name no chip or company, and this item does",
    "a more specific story": "related stories name a chip or company, and this item names none",
    "who acted": (
        "a related story is alike, but only one of them names who acted, and this item names "
        "a company or chip the story does not"
    ),
}
