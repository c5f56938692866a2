"""What a valid config is: frozen dataclasses, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..logs import redact_database_url
from .values import split_listen

DEFAULT_CATEGORIES = ("chips", "companies", "export_terms")
DEFAULT_RULE: dict[str, Any] = {
    "name": "chip-trade",
    "all_of": ["export_terms"],
    "any_of": ["chips", "companies"],
}
TELEGRAM_API_BASE = "https://api.telegram.org/bot"


@dataclass(frozen=True, kw_only=True)
class Term:
    """One watchlist entry: a canonical name plus everything that may stand for it."""

    name: str
    category: str
    aliases: tuple[str, ...] = ()
    case_sensitive: bool = False
    context: tuple[str, ...] = ()  # at least one of these words must also appear
    exclude: tuple[str, ...] = ()  # none of these words may appear
    fuzzy: bool | None = None  # None: decided by the term's shape (long names only)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A named combination of categories; a headline alerts when any rule holds."""

    name: str
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()  # canonical term names; at least one must match
    # A relation: one match from each role (a role is one or more categories), all in the same
    # field and within ``within`` words of each other ("Nvidia can sell H200 to China").
    relation: tuple[tuple[str, ...], ...] = ()
    within: int = 8


@dataclass(frozen=True, kw_only=True)
class FeedConfig:
    name: str
    url: str
    interval_seconds: int  # the shortest interval: busy feeds are polled this often
    max_interval_seconds: int = 3600  # quiet feeds slow down to at most this

    @property
    def jitter_seconds(self) -> int:
        """How late the scheduler may fire the feed's tick (so feeds do not fire in step); a
        feed counts as due this much before its next poll time, or a tick that fires less late
        than the last one would find it not due and skip a whole interval."""
        return min(30, self.interval_seconds // 10)


@dataclass(frozen=True, kw_only=True)
class PollConfig:
    interval_seconds: int = 300
    max_interval_seconds: int = 3600
    adaptive: bool = True
    timeout_seconds: float = 20.0
    max_age_hours: float = 24.0
    concurrency: int = 16
    per_host_concurrency: int = 2
    max_bytes: int = 5_000_000
    max_backoff_seconds: int = 6 * 3600
    failing_after_hours: float = 24.0


@dataclass(frozen=True, kw_only=True)
class StoriesConfig:
    """Story clustering, momentum and retention."""

    window_hours: float = 48.0
    threshold: float = 0.4
    momentum_sources: int = 3
    momentum_minutes: float = 60.0
    edit_delay_seconds: float = 30.0
    retention_days: float = 30.0


@dataclass(frozen=True, kw_only=True)
class TelegramConfig:
    chat_id: str
    api_base_url: str = TELEGRAM_API_BASE
    admins: tuple[int, ...] = ()
    link_preview: bool = False


@dataclass(frozen=True, kw_only=True)
class SlackConfig:
    pass


OPS_LISTEN_DEFAULT = "127.0.0.1:9108"


@dataclass(frozen=True, kw_only=True)
class OpsConfig:
    """The ``run`` process's /healthz and /metrics endpoint."""

    listen: str = OPS_LISTEN_DEFAULT  # "host:port"; "" = off
    paused_after_minutes: float = 60.0  # a destination down this long makes /healthz 503

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, or None when the endpoint is off."""
        return split_listen(self.listen) if self.listen else None


@dataclass(frozen=True, kw_only=True)
class Destinations:
    telegram: TelegramConfig | None = None
    slack: SlackConfig | None = None

    def names(self) -> tuple[str, ...]:
        """Destination names in delivery order; ``console`` when nothing else is on."""
        names = tuple(n for n in ("telegram", "slack") if getattr(self, n) is not None)
        return names or ("console",)


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path
    database: Path | str  # a SQLite file, or a PostgreSQL URL (a str, so that // survives)
    poll: PollConfig
    feeds: tuple[FeedConfig, ...]
    watchlists: dict[str, tuple[Term, ...]] = field(hash=False)
    rules: tuple[Rule, ...]
    destinations: Destinations
    stories: StoriesConfig = StoriesConfig()
    log_format: str = "text"  # or "json": one JSON object a line (--log-format wins)
    ops: OpsConfig = OpsConfig()

    def summary(self) -> str:
        """A few human lines: what this config polls, watches and where it sends."""
        terms = ", ".join(f"{cat}={len(terms)}" for cat, terms in self.watchlists.items())
        lines = [
            f"config {self.path}: OK",
            f"  database: {redact_database_url(str(self.database))}",
            f"  feeds: {len(self.feeds)} (default interval {self.poll.interval_seconds}s)",
            f"  watchlists: {terms}",
            f"  rules: {', '.join(r.name for r in self.rules)}",
            f"  destinations: {', '.join(self.destinations.names())}",
        ]
        return "\n".join(lines)
