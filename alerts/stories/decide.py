"""The decision policy: given an item's features and the stories blocking found for it, does it
join one of them or start a new story, and why. Pure: it reads the stories, changes nothing.

The steps, in order: the item must name a subject; each candidate story must be open, and
pass the gates (same outlet, other companies, the vetoes against its first headline); its
closest member headline is scored; the best story is chosen; ``_conclude`` turns the best
(or the vetoes met) into the outcome. A new outcome (a follow-up of an earlier story) belongs
in ``_conclude``, beside ``JOIN`` and ``NEW``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from .features import (
    AGENCY_NAMES,
    COUNTRY_NAMES,
    Headline,
    by_kind,
    conflict,
    nested,
    same_subject,
    specific_of,
)

if TYPE_CHECKING:
    from .index import Story

JOIN: Literal["join"] = "join"
NEW: Literal["new"] = "new"
Outcome = Literal["join", "new"]

OPPOSITE = {"restrict": "allow", "allow": "restrict"}
# An outlet's second headline on a story it just reported, saying exactly what one of the
# story's headlines says, is the same article re-titled (a new guid and URL), not a new event.
RETITLE_WITHIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Why an item joined a story or started one; logged, and shown by the ``cluster`` command."""

    outcome: Outcome
    story: Story | None = None  # the story joined
    score: float = 0.0  # the best similarity to an open story (0: none was scored)
    shared: tuple[str, ...] = ()  # what the item shares with the story joined
    reason: str = ""  # why a new story

    def explain(self) -> str:
        if self.outcome == JOIN and self.story is not None:
            return (
                f'joins story {self.story.id} "{self.story.title}" (similarity '
                f"{self.score:.2f}, shared: {', '.join(self.shared)})"
            )
        return f"new story ({self.reason})"


def decide(
    item: Headline,
    *,
    at: datetime,
    source: str,
    candidates: Callable[[Headline], Iterable[Story]],
    similarity: Callable[[Headline, Headline], float],
    categories: Mapping[str, str],
    window: timedelta,
    threshold: float,
) -> Decision:
    """The story this item belongs to, or why it starts a new one.

    ``candidates``: the stories blocking finds for an item; ``similarity``: how alike two
    headlines are; ``categories``: each subject's watchlist category (company or chip)."""
    if not item.entities:
        return Decision(outcome=NEW, reason="it names no chip or company to match on")
    mine = by_kind(item.specific)
    mine_specific = specific_of(item.entities)
    best: tuple[float, Story, Headline] | None = None
    vetoes: Counter[str] = Counter()
    for story in candidates(item):
        if not _open(story, at, window):
            continue
        reason = _gate(item, story, at=at, source=source, mine=mine)
        if reason:
            vetoes[reason] += 1
            continue
        score, closest = _closest(item, story, mine_specific, categories, similarity)
        if closest is None:
            vetoes["nothing but the subject"] += 1
            continue
        if best is None or score > best[0]:
            best = (score, story, closest)
    return _conclude(item, best, vetoes, threshold)


def _open(story: Story, at: datetime, window: timedelta) -> bool:
    """Reported within the window, and first reported no longer than two windows ago, so
    steady coverage of one subject cannot keep a story open for months."""
    return story.last_seen >= at - window and at - 2 * window <= story.first_seen <= at + window


def _gate(
    item: Headline, story: Story, *, at: datetime, source: str, mine: dict[str, frozenset[str]]
) -> str:
    """Why the item cannot join this story whatever its score, or ""."""
    if source and source in story.sources and not _retitled(item, story, at):
        return "the same outlet"
    if conflict(mine, story.specific):
        return "other companies or chips"
    return veto(item, story.members[0]) if story.members else ""


def _closest(
    item: Headline,
    story: Story,
    mine_specific: frozenset[str],
    categories: Mapping[str, str],
    similarity: Callable[[Headline, Headline], float],
) -> tuple[float, Headline | None]:
    """The story's member headline most like the item, and its score (``None``: no member
    shares more than the subject with it, or every one vetoes it)."""
    first = story.members[0] if story.members else None
    score, closest = 0.0, None
    for member in story.members:
        if member is not first and veto(item, member):
            continue
        # Sharing only the kind of action is an event only about the same subjects, one side
        # naming no other ("US bans Nvidia H20 sales" / "Washington blocks Nvidia H20
        # sales"), or when the item names only everyday subjects ("US blocks sales of some AI
        # chips") and is led by the same actor. Never the other way round: a specific headline
        # is not hidden in a vaguer story.
        if all(t[0] == "!" for t in item.tokens & member.tokens):
            theirs = specific_of(member.entities)
            if not _nested_by_kind(mine_specific, theirs, categories) and not (
                not mine_specific and item.lead and item.lead == member.lead
            ):
                continue
        s = similarity(item, member)
        if s > score:
            score, closest = s, member
    return score, closest


def _conclude(
    item: Headline,
    best: tuple[float, Story, Headline] | None,
    vetoes: Counter[str],
    threshold: float,
) -> Decision:
    """The outcome: join the best story when it is alike enough, else a new story, saying why."""
    if best is not None:
        score, story, closest = best
        if score >= threshold:
            shared = sorted(item.entities & story.entities) + sorted(
                _display(t) for t in item.tokens & closest.tokens
            )
            return Decision(outcome=JOIN, story=story, score=score, shared=tuple(shared))
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
    for kinds in (AGENCY_NAMES, COUNTRY_NAMES):
        mine, theirs = item.actors & kinds, member.actors & kinds
        if mine and theirs and not mine & theirs:
            return "other countries or agencies"
    if item.lead and member.lead and item.lead != member.lead:
        return "another actor"
    if item.numbers and member.numbers and not item.numbers & member.numbers:
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
}
