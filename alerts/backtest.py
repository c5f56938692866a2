"""Replay the items stored in a window through a (candidate) config: what would newly alert,
what would stop alerting. Reads the database read-only; sends and records nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .config import LEARNED_RULE, Config, LearnedConfig
from .errors import ConfigError
from .match import Matcher, compile_matcher
from .store import stored_items
from .types import MatchResult, StoredItem


@dataclass(frozen=True, slots=True)
class Change:
    item: StoredItem
    result: MatchResult  # under the candidate config

    @property
    def learned_only(self) -> bool:
        """It alerts by the learned opinion alone (no rule of the config holds)."""
        return self.result.rules == (LEARNED_RULE,)


@dataclass(frozen=True, slots=True)
class BacktestReport:
    since: datetime
    items: int
    newly: tuple[Change, ...]  # would alert now, did not then
    stopped: tuple[Change, ...]  # alerted then, would not now
    kept: int  # alerted then and would still

    @property
    def learned_only(self) -> int:
        """How many of those that would newly alert do so by the learned opinion alone."""
        return sum(change.learned_only for change in self.newly)


def backtest(config: Config, *, since: datetime, matcher: Matcher | None = None) -> BacktestReport:
    """The stored items seen since ``since`` through ``config``'s watchlists and rules
    (``matcher``: that config's, when the caller has compiled it already)."""
    matcher = matcher or compile_matcher(config.watchlists, config.rules, config.learned)
    items = stored_items(config.database, since=since)
    tags = {f.name: f.tags for f in config.feeds}  # the rules limited to feed tags need them
    newly, stopped, kept = [], [], 0
    for item in items:
        result = matcher.match(item.title, item.summary, tags=tags.get(item.feed, ()))
        if result.alert and not item.alerted:
            newly.append(Change(item, result))
        elif item.alerted and not result.alert:
            stopped.append(Change(item, result))
        elif result.alert:
            kept += 1
    return BacktestReport(
        since=since, items=len(items), newly=tuple(newly), stopped=tuple(stopped), kept=kept
    )


def term_preview(
    config: Config, category: str, name: str, *, since: datetime, limit: int = 3
) -> tuple[int, list[StoredItem]]:
    """How many stored items since ``since`` the term would match (it, as configured in
    ``category``), and the first ``limit`` of them."""
    term = next(
        (t for t in config.watchlists.get(category, ()) if t.name.casefold() == name.casefold()),
        None,
    )
    if term is None:
        raise ConfigError(f"no term {name!r} in watchlist {category!r}", file=str(config.path))
    # The whole watchlist, so the term's guards ("@governments") are judged as in the bot; no
    # rules, and no learned opinion: only the term's matches count.
    matcher = compile_matcher(config.watchlists, (), LearnedConfig(enabled=False))
    hits = [
        i
        for i in stored_items(config.database, since=since)
        if any(m.term == term.name for m in matcher.match(i.title, i.summary).matches)
    ]
    return len(hits), hits[:limit]
