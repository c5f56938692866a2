"""What a valid config is: frozen dataclasses, with their defaults, and each number's limits
declared beside its field (``Annotated[int, Limit(10, 600)]``), where the loader finds them."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from ..logs import redact_credentials
from .values import split_listen

TELEGRAM_API_BASE = "https://api.telegram.org/bot"
SLACK_API_BASE = "https://slack.com/api/"
SLACK_WEBHOOK_HOST = "hooks.slack.com"


@dataclass(frozen=True)
class Limit:
    """The range a number field takes from config.yaml (an ``int`` field: whole numbers only)."""

    lo: float
    hi: float


INTERVAL = Limit(10, 7 * 86400)  # poll intervals, and each feed's own


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
    # A pattern (RE2 syntax) matched instead of the name and aliases; the name is how it is shown.
    regex: str | None = None


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
    within: Annotated[int, Limit(1, 100)] = 8
    description: str = ""  # what it catches, in a few words, for /watchlist

    def describe(self) -> str:
        """What the rule asks, for a person: its description, then its conditions."""
        parts = [
            f"{label} {', '.join(values)}"
            for label, values in (
                ("all of", self.all_of),
                ("any of", self.any_of),
                ("none of", self.none_of),
                ("a term of", self.terms),
                ("from feeds tagged", self.tags),
            )
            if values
        ]
        if self.relation:
            roles = " · ".join(" or ".join(role) for role in self.relation)
            parts.insert(0, f"{roles}, within {self.within} words")
        conditions = "; ".join(parts)
        return f"{self.description} — {conditions}" if self.description else conditions

    tags: tuple[str, ...] = ()  # holds only for items from a feed with one of these tags

    def applies(self, feed_tags: Collection[str]) -> bool:
        """Whether the rule may hold for an item from a feed with these tags."""
        return not self.tags or not set(self.tags).isdisjoint(feed_tags)


# Without ``rules``, this one applies; it needs the categories it names.
DEFAULT_RULE = Rule(name="chip-trade", all_of=("export_terms",), any_of=("chips", "companies"))
DEFAULT_CATEGORIES = tuple(sorted({*DEFAULT_RULE.all_of, *DEFAULT_RULE.any_of}))


@dataclass(frozen=True, kw_only=True)
class FeedConfig:
    name: str
    url: str
    interval_seconds: Annotated[int, INTERVAL]  # the shortest: busy feeds are polled this often
    max_interval_seconds: Annotated[int, INTERVAL] = 3600  # quiet feeds slow down to at most this
    # Fetched through this proxy (http://, https://, socks5://, socks5h://): the feed's own
    # ``proxy``, else ``poll.proxy``; a feed's ``proxy: ""`` goes direct.
    proxy: str | None = None
    tags: tuple[str, ...] = ()  # e.g. primary, china: rules and destinations may name them

    @property
    def jitter_seconds(self) -> int:
        """How late the scheduler may fire the feed's tick (so feeds do not fire in step); a
        feed counts as due this much before its next poll time, or a tick that fires less late
        than the last one would find it not due and skip a whole interval."""
        return min(30, self.interval_seconds // 10)


@dataclass(frozen=True, kw_only=True)
class PollConfig:
    interval_seconds: Annotated[int, INTERVAL] = 300
    max_interval_seconds: Annotated[int, INTERVAL] = 3600
    adaptive: bool = True
    timeout_seconds: Annotated[float, Limit(1, 600)] = 20.0
    max_age_hours: Annotated[float, Limit(0.1, 24 * 365)] = 24.0
    concurrency: Annotated[int, Limit(1, 1000)] = 16
    per_host_concurrency: Annotated[int, Limit(1, 100)] = 2
    max_bytes: Annotated[int, Limit(10_000, 200_000_000)] = 5_000_000
    max_backoff_seconds: Annotated[int, Limit(60, 7 * 86400)] = 6 * 3600
    failing_after_hours: Annotated[float, Limit(0.1, 24 * 365)] = 24.0
    proxy: str | None = None  # every feed's proxy, unless a feed names its own


@dataclass(frozen=True, kw_only=True)
class StoriesConfig:
    """Story clustering, momentum and retention."""

    window_hours: Annotated[float, Limit(1, 24 * 30)] = 48.0
    threshold: Annotated[float, Limit(0.05, 1.0)] = 0.4
    momentum_sources: Annotated[int, Limit(2, 1000)] = 3
    momentum_minutes: Annotated[float, Limit(1, 24 * 60)] = 60.0
    edit_delay_seconds: Annotated[float, Limit(0, 3600)] = 30.0
    retention_days: Annotated[float, Limit(1, 3650)] = 30.0


LEARNED_RULE = "learned"  # the rule name an alert made by the learned opinion carries


@dataclass(frozen=True, kw_only=True)
class LearnedConfig:
    """The learned second opinion on items the rules leave alone (``alerts.relevance``)."""

    enabled: bool = True
    # it alerts at or above this score; the default is the one chosen by cross-validation when
    # the shipped model was trained (benchmarks/train_relevance.py)
    threshold: Annotated[float, Limit(0.5, 1.0)] = 0.89


TELEGRAM_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
SLACK_TOKEN_ENV = "SLACK_BOT_TOKEN"
SLACK_WEBHOOK_ENV = "SLACK_WEBHOOK_URL"


@dataclass(frozen=True, kw_only=True)
class TelegramConfig:
    chat_id: str
    token_env: str = TELEGRAM_TOKEN_ENV  # the environment variable holding the bot's token
    api_base_url: str = TELEGRAM_API_BASE
    admins: tuple[int, ...] = ()
    link_preview: bool = False


@dataclass(frozen=True, kw_only=True)
class SlackConfig:
    """No channel: an incoming webhook (its URL in ``webhook_env``). A channel: a Slack app
    posting there with a bot token (in ``token_env``), which can edit its alerts and thread
    follow-ups."""

    channel: str | None = None  # "#chip-news" or a channel id ("C0123ABCD")
    api_base_url: str = SLACK_API_BASE
    # the host a webhook URL must be on (a stand-in for tests, or a proxy: then http is allowed)
    webhook_host: str = SLACK_WEBHOOK_HOST
    token_env: str = SLACK_TOKEN_ENV
    webhook_env: str = SLACK_WEBHOOK_ENV

    @property
    def secret_env(self) -> str:
        """The environment variable this destination's secret is read from."""
        return self.token_env if self.channel else self.webhook_env


@dataclass(frozen=True, kw_only=True)
class ConsoleConfig:
    """Alerts printed to standard output."""


DESTINATION_KINDS = ("telegram", "slack", "console")


@dataclass(frozen=True, kw_only=True)
class DigestConfig:
    """A scheduled digest: the period's alerts in one message, every day (or week) at ``at``
    in ``timezone`` (a week's on ``weekday``); ``empty``: send "nothing" or skip."""

    every: str = "day"  # day | week
    at: str = "08:00"  # HH:MM, local to ``timezone``
    timezone: str = "UTC"  # an IANA name (zoneinfo)
    weekday: str = "mon"  # for every: week (mon … sun)
    empty: str = "skip"  # skip | send

    def describe(self) -> str:
        """ "daily at 08:00 Europe/Berlin", "weekly on mon at 08:00 UTC"."""
        when = "daily" if self.every == "day" else f"weekly on {self.weekday}"
        return f"{when} at {self.at} {self.timezone}"


DIGEST_EVERY = ("day", "week")
DIGEST_EMPTY = ("skip", "send")


@dataclass(frozen=True, kw_only=True)
class Destination:
    """A named place alerts go, of one kind, and the alerts it takes: those for which every
    filter given holds (no filter: every alert)."""

    name: str
    telegram: TelegramConfig | None = None
    slack: SlackConfig | None = None
    console: ConsoleConfig | None = None
    rules: tuple[str, ...] = ()  # one of these rules made the alert
    categories: tuple[str, ...] = ()  # a term of one of these watchlists matched
    # The item came from one of these feeds, or from a feed with one of these tags (one filter:
    # where the item came from).
    feeds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    digest: DigestConfig | None = None  # also (or, with instant: false, only) a digest
    instant: bool = True  # each alert as it comes
    key: str = field(default="destinations", compare=False)  # where it is in config.yaml
    # the line its secret is asked for by: its kind's key (a Slack app's: its channel)
    line: int | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return next(k for k in DESTINATION_KINDS if getattr(self, k) is not None)

    @property
    def filtered(self) -> bool:
        return bool(self.rules or self.categories or self.feeds or self.tags)

    def takes(
        self,
        *,
        rules: Collection[str],
        categories: Collection[str],
        feed: str,
        feed_tags: Collection[str],
    ) -> bool:
        """Whether an alert made by ``rules``, with matches in ``categories``, from ``feed``
        (tagged ``feed_tags``) goes here."""
        return (
            (not self.rules or not set(self.rules).isdisjoint(rules))
            and (not self.categories or not set(self.categories).isdisjoint(categories))
            and (
                not (self.feeds or self.tags)
                or feed in self.feeds
                or not set(self.tags).isdisjoint(feed_tags)
            )
        )

    def describe(self) -> str:
        """Its kind and where, then what it takes, for ``check-config``."""
        if self.telegram is not None:
            where = f"telegram {self.telegram.chat_id}"
        elif self.slack is not None:
            where = f"slack {self.slack.channel}" if self.slack.channel else "slack webhook"
        else:
            where = "console"
        takes = [
            f"{label} {', '.join(values)}"
            for label, values in (("rules", self.rules), ("categories", self.categories))
            if values
        ]
        source = [f"feeds {', '.join(self.feeds)}"] if self.feeds else []
        source += [f"feeds tagged {', '.join(self.tags)}"] if self.tags else []
        if source:
            takes.append("from " + " or ".join(source))
        modes = ["instant"] if self.instant else []
        if self.digest is not None:
            modes.append(f"digest {self.digest.describe()}")
        mode = f" [{', '.join(modes)}]" if self.digest is not None else ""
        return f"{self.name} ({where}): {'; '.join(takes) or 'every alert'}{mode}"


OPS_LISTEN_DEFAULT = "127.0.0.1:9108"


@dataclass(frozen=True, kw_only=True)
class OpsConfig:
    """The ``run`` process's /healthz and /metrics endpoint."""

    listen: str = OPS_LISTEN_DEFAULT  # "host:port"; "" = off
    # a destination down this long makes /healthz 503
    paused_after_minutes: Annotated[float, Limit(0, 7 * 24 * 60)] = 60.0

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, or None when the endpoint is off."""
        return split_listen(self.listen) if self.listen else None


WEBSUB_LISTEN_DEFAULT = "127.0.0.1:8080"


@dataclass(frozen=True, kw_only=True)
class WebSubConfig:
    """WebSub push: feeds whose publisher names a hub are subscribed to; the hub calls
    ``callback_url`` (its path and below), which reaches this process on ``listen``."""

    callback_url: str  # the public URL of the callback; each subscription gets a path below it
    listen: str = WEBSUB_LISTEN_DEFAULT  # "host:port" (the same as ops.listen: one server)
    lease_seconds: Annotated[int, Limit(3600, 30 * 86400)] = 10 * 86400  # asked of the hub

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)

    @property
    def path(self) -> str:
        """The callback's path prefix, ``/websub/`` for ``https://bot.example.com/websub``."""
        return urlsplit(self.callback_url).path.rstrip("/") + "/"


CONSOLE = Destination(name="console", console=ConsoleConfig())


@dataclass(frozen=True, kw_only=True)
class Destinations:
    """The named destinations, in delivery order; none written: the console."""

    routes: tuple[Destination, ...] = ()

    @property
    def all(self) -> tuple[Destination, ...]:
        return self.routes or (CONSOLE,)

    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.all)

    def route(
        self,
        *,
        rules: Collection[str],
        categories: Collection[str],
        feed: str,
        feed_tags: Collection[str],
    ) -> tuple[str, ...]:
        """The names of the destinations that take an alert as it comes (see
        ``Destination.takes``); a digest-only one (``instant: false``) is left out: its digest
        picks the period's alerts itself."""
        return tuple(
            d.name
            for d in self.all
            if d.instant
            and d.takes(rules=rules, categories=categories, feed=feed, feed_tags=feed_tags)
        )

    @property
    def digests(self) -> tuple[Destination, ...]:
        """The destinations with a scheduled digest."""
        return tuple(d for d in self.all if d.digest is not None)

    @property
    def bot(self) -> Destination | None:
        """The first Telegram destination: its bot answers commands and writes to
        subscribers."""
        return next((d for d in self.routes if d.telegram is not None), None)

    @property
    def telegram(self) -> TelegramConfig | None:
        return self.bot.telegram if self.bot else None

    @property
    def slack(self) -> SlackConfig | None:
        return next((d.slack for d in self.routes if d.slack is not None), None)

    @property
    def admins(self) -> tuple[int, ...]:
        """Who may run admin commands: the admins of every Telegram destination."""
        return tuple(dict.fromkeys(a for d in self.routes if d.telegram for a in d.telegram.admins))


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
    learned: LearnedConfig = LearnedConfig()
    websub: WebSubConfig | None = None  # None: off
    # The line each section and destination key was written on ("destinations.slack": 40), for
    # errors found after loading, such as a secret missing from the environment.
    lines: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    def line(self, key: str) -> int | None:
        """Where ``key``, or the nearest enclosing key written in the file, is."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return None

    def summary(self) -> str:
        """A few human lines: what this config polls, watches and where it sends."""
        terms = ", ".join(f"{cat}={len(terms)}" for cat, terms in self.watchlists.items())
        lines = [
            f"config {self.path}: OK",
            f"  database: {redact_credentials(str(self.database))}",
            f"  feeds: {len(self.feeds)} (default interval {self.poll.interval_seconds}s)",
            *(
                f"  proxy: {redact_credentials(p)} for {n} feed(s)"
                for p, n in Counter(f.proxy for f in self.feeds if f.proxy).items()
            ),
            f"  watchlists: {terms}",
            f"  rules: {', '.join(r.name for r in self.rules)}",
            "  learned opinion: "
            + (f"on, threshold {self.learned.threshold:g}" if self.learned.enabled else "off"),
            f"  destinations: {', '.join(self.destinations.names())}",
            "  websub: "
            + (
                f"on, callback {self.websub.callback_url}, listening on {self.websub.listen}"
                if self.websub
                else "off"
            ),
        ]
        tagged = [f"{f.name} [{', '.join(f.tags)}]" for f in self.feeds if f.tags]
        if tagged:
            lines.append(f"  feed tags: {'; '.join(tagged)}")
        if len(self.destinations.all) > 1 or any(
            d.filtered or d.digest for d in self.destinations.routes
        ):
            lines.append("  routes:")
            lines += [f"    {d.describe()}" for d in self.destinations.all]
        return "\n".join(lines)


@functools.cache
def limits(cls: type) -> dict[str, tuple[Limit, type]]:
    """``cls``'s number fields: name -> (its limit, ``int`` or ``float``)."""
    found: dict[str, tuple[Limit, type]] = {}
    for name, hint in get_type_hints(cls, include_extras=True).items():
        if get_origin(hint) is Annotated:
            kind, *extras = get_args(hint)
            found.update((name, (x, kind)) for x in extras if isinstance(x, Limit))
    return found


def keys(cls: type) -> set[str]:
    """The keys of ``cls``'s section of config.yaml: its fields' names."""
    return {f.name for f in fields(cls)}
