"""Whether a rule holds for a headline's matches (from a feed with given tags): its categories
(``Matcher`` finds the candidates by them), then its terms, its relation and its feed tags."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

from .config import Rule
from .types import Match


def judge(
    candidates: Sequence[Rule], matches: Sequence[Match], tags: Collection[str]
) -> tuple[str, ...]:
    """Of the rules whose categories are met, those whose terms, relations and tags hold too."""
    if not candidates:
        return ()
    names = {m.term for m in matches}
    return tuple(
        rule.name
        for rule in candidates
        if rule.applies(tags)
        and not (rule.terms and names.isdisjoint(rule.terms))
        and not (rule.relation and relation_span(rule, matches) is None)
    )


def relation_span(rule: Rule, matches: Sequence[Match]) -> tuple[Match, ...] | None:
    """One match per role of a relation rule, all in one field and spanning at most
    ``rule.within`` words, in reading order; None when there is no such combination."""
    for field in ("title", "summary"):
        candidates = [
            [m for m in matches if m.field == field and m.at >= 0 and m.category in role]
            for role in rule.relation
        ]
        if not all(candidates):
            continue
        for combo in itertools.product(*candidates):
            at = [m.at for m in combo]
            if max(at) - min(at) <= rule.within:
                return tuple(sorted(combo, key=lambda m: m.at))
    return None
