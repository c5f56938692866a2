"""Helpers the benchmarks share, one copy each. A script imports it as ``common``: Python puts
the script's own folder, ``benchmarks/``, on ``sys.path``."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from alerts.stories import FOLLOW_UP, FollowUpRules  # the scripts put the repository on the path

# What made-up names (companies, details, new words) of the synthetic data are built from.
SYLLABLES = (
    "ax bel cor dyn el fen gra hal ion jun kor lum mar nex or pel quan ros sil tek ul vel wen xin "
    "yang zen tron vix ra lis mi chip sem ica on ta"
).split()


def made_up_word(rng: random.Random, *, syllables: list[str] = SYLLABLES, most: int = 3) -> str:
    """A capitalised word of two to ``most`` syllables."""
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, most))).capitalize()


# The follow-up rules from loosest to strictest, for the trade-off table (eval_events.py and
# eval_cluster.py --follow-ups NAME): each adds one need to the one before; "shipped" is the bot.
FOLLOW_UP_LEVELS = {
    "kind": FollowUpRules(same_actor=False, within=False, model=False),
    "actor": FollowUpRules(within=False, model=False),
    "within": FollowUpRules(model=False),
    "shipped": FOLLOW_UP,
    "similar": FollowUpRules(min_similarity=0.2),
    "off": FollowUpRules(enabled=False),
}


def parse_date(value: str) -> datetime | None:
    """A date as the sets write it (ISO 8601 or RFC 822; UTC when no zone is given), or None."""
    value = value.strip()
    if not value:
        return None
    for parse in (
        lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
        parsedate_to_datetime,
    ):
        try:
            d = parse(value)
        except (ValueError, TypeError, IndexError):
            continue
        return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    return None
