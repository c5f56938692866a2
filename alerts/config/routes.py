"""The ``destinations:`` section: a list of named destinations, each of one kind (``telegram``,
``slack`` or ``console``) with optional filters (``rules``, ``categories``, ``feeds``, ``tags``),
or today's mapping form (``telegram:``, ``slack:``), which means one destination each, named
after its kind, taking every alert.

A filter may only name what the config defines (a rule, a watchlist, a feed, a feed's tag), so
a typo is an error at load time rather than a destination that silently never gets anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import values
from .model import (
    DESTINATION_KINDS,
    DIGEST_EMPTY,
    DIGEST_EVERY,
    ConsoleConfig,
    Destination,
    Destinations,
    DigestConfig,
    SlackConfig,
    TelegramConfig,
    keys,
)

if TYPE_CHECKING:
    from .checker import Checker

FILTERS = ("rules", "categories", "feeds", "tags")
_ITEM_KEYS = {"name", *DESTINATION_KINDS, *FILTERS, "digest", "instant"}
_WHAT = {"rules": "rule", "categories": "watchlist", "feeds": "feed", "tags": "feed tag"}


@dataclass(frozen=True, kw_only=True)
class Known:
    """What the rest of the config defines, that a destination's filters may name."""

    rules: frozenset[str]
    categories: frozenset[str]
    feeds: frozenset[str]
    tags: frozenset[str]


def parse_destinations(c: Checker, node: Any, line: int | None, known: Known) -> Destinations:
    if node is None:
        return Destinations()
    if isinstance(node, list):
        return _listed(c, node, line, known)
    if not isinstance(node, dict):
        raise c.fail(
            "must be a list of named destinations (- name: …), or the mapping form "
            f"(telegram: …, slack: …), got {type(node).__name__}",
            "destinations",
            line,
        )
    m = c.mapping(node, "destinations", line, {"telegram", "slack", "console"})
    routes = []
    if "telegram" in m:
        key, tln = "destinations.telegram", c.key_line(m, "telegram", line)
        telegram = _telegram(c, m["telegram"] if m["telegram"] is not None else {}, key, tln)
        routes.append(Destination(name="telegram", telegram=telegram, key=key, line=tln))
    if "slack" in m:
        key, sln = "destinations.slack", c.key_line(m, "slack", line)
        slack = _slack(c, m["slack"], key, sln)
        line = c.key_line(m["slack"], "channel", sln) if slack.channel else sln
        routes.append(Destination(name="slack", slack=slack, key=key, line=line))
    return Destinations(routes=tuple(routes))


def _listed(c: Checker, seq: list[Any], line: int | None, known: Known) -> Destinations:
    routes: list[Destination] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(seq):
        key, ln = f"destinations[{i}]", c.item_line(seq, i, line)
        m = c.mapping(raw, key, ln, _ITEM_KEYS)
        if "name" not in m:
            raise c.fail("missing required key 'name'", key, ln)
        nln = c.key_line(m, "name", ln)
        name = c.value(values.destination_name, m["name"], f"{key}.name", nln)
        if name in seen:
            raise c.fail(
                f"duplicate destination name {name!r} (also destinations[{seen[name]}])",
                f"{key}.name",
                nln,
            )
        seen[name] = i
        kinds = [k for k in m if k in DESTINATION_KINDS]  # as written: the second one is named
        if not kinds:
            raise c.fail("needs a kind: telegram: {chat_id: …}, slack: {…} or console: {}", key, ln)
        if len(kinds) > 1:
            raise c.fail(
                f"has two kinds ({' and '.join(kinds)}); give each its own destination",
                f"{key}.{kinds[1]}",
                c.key_line(m, kinds[1], ln),
            )
        kind = kinds[0]
        kkey, kln = f"{key}.{kind}", c.key_line(m, kind, ln)
        target: Any
        if kind == "telegram":
            target = _telegram(c, m[kind] if m[kind] is not None else {}, kkey, kln)
        elif kind == "slack":
            target = _slack(c, m[kind], kkey, kln)
            if target.channel:  # an app's token is asked for because of its channel
                kln = c.key_line(m[kind], "channel", kln)
        else:
            c.mapping(m[kind] if m[kind] is not None else {}, kkey, kln, set())
            target = ConsoleConfig()
        filters: dict[str, Any] = {f: _filter(c, m, f, key, ln, known) for f in FILTERS if f in m}
        if "digest" in m:
            filters["digest"] = parse_digest(
                c, m["digest"], f"{key}.digest", c.key_line(m, "digest", ln)
            )
        if "instant" in m:
            iln = c.key_line(m, "instant", ln)
            filters["instant"] = c.boolean(m["instant"], f"{key}.instant", iln)
            if not filters["instant"] and "digest" not in m:
                raise c.fail(
                    "instant: false needs a digest: (else this destination gets nothing)",
                    f"{key}.instant",
                    iln,
                )
        routes.append(Destination(name=name, key=key, line=kln, **{kind: target}, **filters))
    return Destinations(routes=tuple(routes))


def _filter(
    c: Checker, m: dict, f: str, key: str, line: int | None, known: Known
) -> tuple[str, ...]:
    """A filter's names, each one the config defines."""
    fkey, fln = f"{key}.{f}", c.key_line(m, f, line)
    given = c.strings(m[f], fkey, fln)
    if not given:
        raise c.fail(f"must name at least one {_WHAT[f]} (or leave the key out)", fkey, fln)
    defined: frozenset[str] = getattr(known, f)
    for i, name in enumerate(given):
        if name not in defined:
            raise c.fail(
                f"refers to unknown {_WHAT[f]} {name!r} "
                f"(defined: {', '.join(sorted(defined)) or 'none'})",
                f"{fkey}[{i}]",
                c.item_line(m[f], i, fln) if isinstance(m[f], list) else fln,
            )
    return given


def _telegram(c: Checker, node: Any, key: str, line: int | None) -> TelegramConfig:
    """A Telegram destination's settings."""
    t = c.mapping(node, key, line, keys(TelegramConfig))
    if "chat_id" not in t:
        # Without a chat there is nothing to send to: say so, rather than drop the section
        # (and its admins) silently.
        raise c.fail(
            "missing required key 'chat_id' (the channel: \"@name\" or -100…); without it "
            "Telegram is off and admins cannot use commands",
            key,
            line,
        )

    def kl(k: str) -> int | None:
        return c.key_line(t, k, line)

    chat_id = c.value(values.telegram_chat_id, t["chat_id"], f"{key}.chat_id", kl("chat_id"))
    opts = _read(c, t, key, line, token_env=values.env_name, api_base_url=values.http_url)
    if "admins" in t:
        admins = c.seq(t["admins"], f"{key}.admins", kl("admins"))
        ids = []
        for i, a in enumerate(admins):
            if isinstance(a, bool) or not isinstance(a, int):
                raise c.fail(
                    f"must be a numeric Telegram user id, got {a!r}",
                    f"{key}.admins[{i}]",
                    c.item_line(admins, i, kl("admins")),
                )
            ids.append(a)
        opts["admins"] = tuple(ids)
    if "link_preview" in t:
        opts["link_preview"] = c.boolean(
            t["link_preview"], f"{key}.link_preview", kl("link_preview")
        )
    return TelegramConfig(chat_id=chat_id, **opts)


def _slack(c: Checker, node: Any, key: str, line: int | None) -> SlackConfig:
    """``{}``: a webhook (``webhook_env``); with ``channel``: an app (``token_env``;
    ``api_base_url`` only means something then)."""
    s = c.mapping(node if node is not None else {}, key, line, keys(SlackConfig))

    def kl(k: str) -> int | None:
        return c.key_line(s, k, line)

    app = "channel" in s
    for k, needs in (
        ("api_base_url", True),
        ("token_env", True),
        ("webhook_env", False),
        ("webhook_host", False),
    ):
        if k in s and needs != app:
            raise c.fail(
                "only means something with 'channel' (a Slack app; a webhook has no API)"
                if needs
                else "only means something without 'channel' (an incoming webhook)",
                f"{key}.{k}",
                kl(k),
            )
    opts = _read(
        c,
        s,
        key,
        line,
        token_env=values.env_name,
        webhook_env=values.env_name,
        channel=values.slack_channel,
        api_base_url=values.http_url,
        webhook_host=values.host,
    )
    return SlackConfig(**opts)


def _read(
    c: Checker, m: dict, key: str, line: int | None, **parsers: Callable[[str], Any]
) -> dict[str, Any]:
    """Each of these keys that ``m`` gives, read by its parser (one of ``values``)."""
    return {
        k: c.value(parse, m[k], f"{key}.{k}", c.key_line(m, k, line))
        for k, parse in parsers.items()
        if k in m
    }


def parse_digest(c: Checker, node: Any, key: str, line: int | None) -> DigestConfig:
    """``{every: day|week, at: "08:00", timezone: Europe/Berlin, weekday: mon, empty: skip}``."""
    d = c.mapping(node if node is not None else {}, key, line, keys(DigestConfig))

    def kl(k: str) -> int | None:
        return c.key_line(d, k, line)

    opts: dict[str, Any] = {}
    for k, allowed in (("every", DIGEST_EVERY), ("empty", DIGEST_EMPTY)):
        if k in d:
            value = c.string(d[k], f"{key}.{k}", kl(k)).lower()
            if value not in allowed:
                raise c.fail(f"must be {' or '.join(allowed)}, got {d[k]!r}", f"{key}.{k}", kl(k))
            opts[k] = value
    if "at" in d:
        opts["at"] = c.value(values.clock_time, d["at"], f"{key}.at", kl("at"))
    if "timezone" in d:
        opts["timezone"] = c.value(
            values.time_zone, d["timezone"], f"{key}.timezone", kl("timezone")
        )
    if "weekday" in d:
        if opts.get("every", "day") != "week":
            raise c.fail("only means something with every: week", f"{key}.weekday", kl("weekday"))
        opts["weekday"] = c.value(values.weekday, d["weekday"], f"{key}.weekday", kl("weekday"))
    return DigestConfig(**opts)
