"""Bot commands as plain functions: ``handle(request, services)`` takes what was asked (a frozen
``Request``: who, where, which command, its arguments, and the time) and returns the reply, in
Telegram's HTML. Nothing here knows Telegram; ``alerts.bot.telegram`` turns updates into
requests and replies into messages.

Anyone may ask; admins (the ``admins`` of the Telegram destinations) may change. Every argument is
untrusted: it is length-limited, refused when it carries control characters, and escaped in
replies; config edits go through ``alerts.config.edit``. Every command gets an answer: a
refusal, a failed config write or a bug is replied to (and the bug logged), never dropped.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ..backtest import term_preview
from ..config import Term, load_config, parse_duration
from ..config.edit import EditRefused, add_term, remove_term
from ..deliver import SUBSCRIBERS
from ..deliver.format import (
    TELEGRAM_LIMIT,
    cut_text,
    follow_up_to,
    thread_groups,
    visible_len,
    when_text,
)
from ..errors import ConfigError, StoreError
from ..health import Health, listed
from ..logs import event
from ..runtime import Runtime
from ..types import Alert

log = logging.getLogger("chipwatch.commands")

MAX_ARG_CHARS = 300
MAX_SUBSCRIPTIONS = 50
MAX_RECENT = 20
PREVIEW_DAYS = 7  # /watch shows what the new term would have matched in this many days
MAX_MUTE = timedelta(days=30)

HELP = """<b>chipwatch</b> watches news feeds for AI-chip trade stories (chips, companies and
export/trade-policy terms) and posts one alert per story to the channel.

<b>Anyone</b>
/watchlist (or /list): what is watched, and the rules
/status: feeds, last poll, alerts today, pending deliveries
/recent [n]: the last n alerts, follow-ups under their story
/why &lt;text&gt;: how a headline matches; for an alert's headline, where it went and why
/subscribe &lt;term or rule&gt;: matching alerts in this private chat too
/unsubscribe &lt;term or rule&gt;, /subscriptions

<b>Admins</b>
/watch &lt;category&gt; &lt;term&gt;, /unwatch &lt;category&gt; &lt;term&gt;: edit the watchlists
/mute &lt;term&gt; &lt;duration&gt; (30m, 2h, 1d), /unmute &lt;term&gt;
/pause [destination], /resume [destination]: hold and release delivery to the channel, or to
the named destination (alerts queue meanwhile)"""

NOT_A_COMMAND = "I answer commands only. Send /help for the list."


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One message to the bot, as the handlers need it."""

    user_id: int | None
    chat_id: int
    private: bool  # a private chat with the bot (not a group)
    is_admin: bool
    command: str  # without the slash, lower case ("watch"); "" for a message that is no command
    args: str  # the text after the command, as sent
    now: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What the handlers work with: the running bot's state, and its health."""

    runtime: Runtime  # config, store, matcher, deliverer, pause, subscribers' chats
    health: Callable[[datetime], Health]  # the assessment /healthz answers, as of a time


class Refused(Exception):
    """A command argument we will not take; the message is shown to the user."""


def clean_arg(text: str, *, limit: int = MAX_ARG_CHARS) -> str:
    if len(text) > limit:
        raise Refused(f"that is too long: at most {limit} characters, please")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") and c not in " " for c in text):
        raise Refused("control characters are not allowed")
    return " ".join(text.split())


def mute_duration(text: str) -> timedelta:
    try:
        duration = parse_duration(text)
    except ValueError:
        raise Refused("give a duration like 30m, 2h, 1d or 1w") from None
    if not timedelta(minutes=1) <= duration <= MAX_MUTE:
        raise Refused("a mute lasts between 1 minute and 30 days")
    return duration


def fit(text: str) -> str:
    """Keep a reply under Telegram's limit by dropping whole lines from the end."""
    lines = text.split("\n")
    while visible_len("\n".join(lines)) > TELEGRAM_LIMIT - 20 and len(lines) > 1:
        lines.pop()
    return "\n".join(lines) if len(lines) == len(text.split("\n")) else "\n".join(lines) + "\n…"


# --- dispatch ---------------------------------------------------------------------------------


def handle(request: Request, services: Services) -> str | None:
    """The reply to a request (HTML), or None when there is nothing to say (a message that is
    no command, outside a private chat)."""
    try:
        return _dispatch(request, services)
    except Exception as exc:  # a bug must not leave the user without an answer
        log.exception("command_failed command=/%s", request.command)
        return f"⚠️ that failed ({html.escape(type(exc).__name__)}); it is in the log."


def _dispatch(request: Request, services: Services) -> str | None:
    greeting = _welcome_back(request, services)
    if not request.command:
        return greeting + NOT_A_COMMAND if request.private else None
    public, admin = _PUBLIC.get(request.command), _ADMIN.get(request.command)
    if admin is not None and not request.is_admin:
        event(
            log,
            "command_refused",
            logging.WARNING,
            command=f"/{request.command}",
            user=request.user_id,
            reason="not an admin",
        )
        return greeting + "Sorry, only the bot's admins can do that."
    event(log, "command", command=f"/{request.command}", user=request.user_id)
    try:
        return greeting + (public or admin or _unknown)(request, services)
    except (Refused, EditRefused) as exc:
        return f"{greeting}⚠️ {html.escape(str(exc))}"


def _welcome_back(request: Request, services: Services) -> str:
    """A subscriber whose subscriptions were suspended (they had blocked the bot) writes
    again: they are active again, and said so once."""
    if not request.private:
        return ""
    runtime = services.runtime
    resumed = runtime.store.resume_subscriber(request.chat_id)
    if not resumed:
        return ""
    runtime.ensure_private_sink(request.chat_id)
    event(log, "subscription_resumed", chat=request.chat_id, subscriptions=resumed)
    are = "subscription is" if resumed == 1 else "subscriptions are"
    return f"👋 Welcome back: your {resumed} {are} active again.\n\n"


def _args(request: Request) -> str:
    return clean_arg(request.args) if request.args.strip() else ""


def _find_term(runtime: Runtime, name: str) -> Term | None:
    """The watchlist term a user means: canonical name or alias, any case."""
    folded = name.casefold()
    for terms in runtime.config.watchlists.values():
        for term in terms:
            if term.name.casefold() == folded or any(a.casefold() == folded for a in term.aliases):
                return term
    return None


# --- anyone -------------------------------------------------------------------------------------


def _help(request: Request, services: Services) -> str:
    return HELP


def _unknown(request: Request, services: Services) -> str:
    return "I don't know that command. Send /help for the list."


def _watchlist(request: Request, services: Services) -> str:
    runtime = services.runtime
    config = runtime.config
    lines = []
    for category, terms in config.watchlists.items():
        names = ", ".join(t.name for t in terms)
        lines.append(
            f"<b>{html.escape(category)}</b> ({len(terms)}): {html.escape(cut_text(names, 900))}"
        )
    lines.append("")
    lines.append("<b>Rules</b> (an alert needs one to hold)")
    for rule in config.rules:
        lines.append(f"• {html.escape(rule.name)}: {html.escape(rule.describe())}")
    muted = runtime.store.active_mutes(now=request.now)
    if muted:
        lines.append("")
        lines.append(
            "<b>Muted</b>: "
            + html.escape(
                ", ".join(f"{t} until {u:%d %b %H:%M} UTC" for t, u in sorted(muted.items()))
            )
        )
    return "\n".join(lines)


def _status(request: Request, services: Services) -> str:
    return status_text(services.health(request.now))


_CHANNEL = {
    "ok": "delivering",
    "held": "paused (alerts are queued)",
    "elsewhere": "delivering (from another instance)",
}


def status_text(health: Health) -> str:
    """/status: the same assessment as /healthz, for a person in a chat."""
    verdict = "ok" if health.healthy else "UNHEALTHY: " + "; ".join(health.reasons)
    failing = [f for f in health.feeds if f.state in ("failing", "disabled")]
    never = health.count("never polled")
    lines = [
        f"<b>Health</b>: {html.escape(verdict)}",
        f"<b>Feeds</b>: {health.count('ok')} OK, {len(failing)} failing"
        + (f", {never} not polled yet" if never else ""),
    ]
    for f in failing[:10]:
        since = f" since {f.failing_since:%d %b %H:%M}" if f.failing_since else ""
        lines.append(f"• {html.escape(f.name)}: {html.escape(str(f.error))}{since}")
    if len(failing) > 10:
        lines.append(f"• … and {len(failing) - 10} more")
    lines.append(
        f"<b>Last poll</b>: {health.last_poll:%d %b %H:%M:%S} UTC"
        if health.last_poll
        else "<b>Last poll</b>: none yet"
    )
    lines.append(f"<b>Alerts today</b>: {health.alerts_today}")
    lines.append(
        f"<b>Pending deliveries</b>: {sum(d.pending for d in health.destinations.values())}"
    )
    for name, d in health.destinations.items():
        if name == SUBSCRIBERS:  # their own line below
            continue
        state = _CHANNEL.get(d.state) or (
            f"{d.state} since {d.since:%d %b %H:%M} UTC" if d.since else d.state
        )
        label = "Channel" if name == "telegram" else html.escape(name)
        lines.append(f"<b>{label}</b>: {html.escape(state)}")
    subscribers = health.destinations.get(SUBSCRIBERS)
    if subscribers is not None:
        lines.append(
            f"<b>Subscribers</b>: {subscribers.chats}"
            + (f" ({subscribers.suspended} suspended)" if subscribers.suspended else "")
        )
    if health.warnings:
        lines.append("<b>Attention</b>:")
        lines += [f"• {html.escape(w)}" for w in listed(health.warnings)]
    return "\n".join(lines)


def _recent_line(alert: Alert, *, under_story: bool = False) -> str:
    """One alert in /recent: its headline as a link, where and when; a story's follow-up count;
    for a follow-up listed apart from its story, the story it follows."""
    title = html.escape(cut_text(alert.title, 200))
    link = (
        html.escape(alert.link, quote=True)
        if alert.link.startswith(("http://", "https://"))
        else ""
    )
    head = f'<a href="{link}">{title}</a>' if link else title
    line = f"{head} — {html.escape(alert.feed)} · {when_text(alert)}"
    if alert.followups:
        line += f" · +{alert.followups} follow-up{'' if alert.followups == 1 else 's'}"
    if alert.thread_of is not None and not under_story:
        line = f"↳ {line} · {html.escape(follow_up_to(alert))}"
    return line


def _recent(request: Request, services: Services) -> str:
    arg = _args(request)
    if arg and not (arg.isdigit() and 1 <= int(arg) <= MAX_RECENT):
        raise Refused(f"give a number from 1 to {MAX_RECENT}, e.g. /recent 5")
    alerts = services.runtime.store.recent_alerts(int(arg) if arg else 5)
    if not alerts:
        return "No alerts yet."
    lines = []
    # Newest story first; its follow-ups among them under it, oldest first.
    for story, followups in reversed(thread_groups(alerts[::-1])):
        lines.append(f"• {_recent_line(story)}")
        lines.extend(f"   ↳ {_recent_line(f, under_story=True)}" for f in followups)
    return "\n".join(lines)


def _placement(alert: Alert) -> str:
    """Where a stored alert went, and the clusterer's reason, for /why."""
    where = f"stored alert #{alert.id} ({alert.feed}, {when_text(alert)}): "
    if alert.thread_of is not None:
        where += f"a quiet {follow_up_to(alert)}"
    else:
        count = alert.followups
        where += "a new story" + (
            f" ({count} follow-up{'' if count == 1 else 's'} under it)" if count else ""
        )
    return f"{where}\ndecision: {alert.decision or 'not recorded'}"


def _why(request: Request, services: Services) -> str:
    text = _args(request)
    if not text:
        raise Refused("give a headline, e.g. /why China approves Nvidia H200 imports")
    runtime = services.runtime
    result = runtime.matcher.match(text)
    muted = runtime.store.active_mutes(now=request.now)
    reply = html.escape(f"“{text}”\n{runtime.matcher.explain(result)}")
    if muted and any(m.term.casefold() in muted for m in result.matches):
        after = runtime.matcher.without(result, muted)
        reply += "\n\n" + html.escape(
            f"muted terms drop out: {'ALERT' if after.alert else 'no alert'}"
        )
    stored = runtime.store.alert_by_title(text)
    if stored is not None:
        reply += "\n\n" + html.escape(_placement(stored))
    return f"<pre>{reply}</pre>"


# --- personal subscriptions ---------------------------------------------------------------------


def _subscription_target(runtime: Runtime, value: str) -> tuple[str, str]:
    rule = next(
        (r.name for r in runtime.config.rules if r.name.casefold() == value.casefold()), None
    )
    if rule:
        return "rule", rule
    term = _find_term(runtime, value)
    if term is None:
        raise Refused("that is neither a watched term nor a rule; see /watchlist")
    return "term", term.name


def _subscribe(request: Request, services: Services) -> str:
    if not request.private:
        raise Refused("subscribe in a private chat with me")
    value = _args(request)
    if not value:
        raise Refused("give a term or rule, e.g. /subscribe H200")
    runtime = services.runtime
    kind, name = _subscription_target(runtime, value)
    store = runtime.store
    if len(store.subscriptions(request.chat_id)) >= MAX_SUBSCRIPTIONS:
        raise Refused(f"at most {MAX_SUBSCRIPTIONS} subscriptions per chat")
    added = store.subscribe(request.chat_id, kind, name, now=request.now)
    runtime.ensure_private_sink(request.chat_id)
    return (
        f"✅ subscribed to {kind} <b>{html.escape(name)}</b>"
        if added
        else f"You were already subscribed to {html.escape(name)}."
    )


def _unsubscribe(request: Request, services: Services) -> str:
    value = _args(request)
    if not value:
        raise Refused("give the term or rule to drop, see /subscriptions")
    removed = services.runtime.store.unsubscribe(request.chat_id, value)
    return (
        f"Unsubscribed from {html.escape(value)}."
        if removed
        else f"You were not subscribed to {html.escape(value)}."
    )


def _subscriptions(request: Request, services: Services) -> str:
    subs = services.runtime.store.subscriptions(request.chat_id)
    if not subs:
        return "No subscriptions. Try /subscribe H200."
    return "Your subscriptions:\n" + "\n".join(
        f"• {kind} {html.escape(value)}" for _, kind, value in subs
    )


# --- admins -------------------------------------------------------------------------------------


def _category_and_term(request: Request) -> tuple[str, str]:
    parts = _args(request).split(maxsplit=1)
    if len(parts) != 2:
        raise Refused(f"give a category and a term, e.g. /{request.command} chips B300")
    category, term = parts
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", category):
        raise Refused("a category is lowercase letters, digits and _; see /watchlist")
    return category, term


def _watch(request: Request, services: Services) -> str:
    return _edit_watchlist(request, services, add=True)


def _unwatch(request: Request, services: Services) -> str:
    return _edit_watchlist(request, services, add=False)


def _edit_watchlist(request: Request, services: Services, *, add: bool) -> str:
    category, term = _category_and_term(request)
    path = services.runtime.config.path
    try:
        changed = (add_term if add else remove_term)(path, category, term)
    except OSError as exc:  # a read-only file or directory, a full disk
        event(
            log,
            "config_write_failed",
            logging.ERROR,
            path=path,
            error=f"{type(exc).__name__}: {exc.strerror or exc}",
        )
        raise Refused(
            f"{path} could not be written ({exc.strerror or exc}); nothing changed. The bot "
            f"needs write access to the config file and its directory (README: Docker)."
        ) from None
    event(
        log,
        "watchlist_edited",
        action="watch" if add else "unwatch",
        category=category,
        term=changed,
        user=request.user_id,
    )
    reply = (
        f"✅ {'added' if add else 'removed'} <b>{html.escape(changed)}</b> "
        f"{'to' if add else 'from'} {html.escape(category)}. It applies within seconds."
    )
    if add:
        reply += "\n" + _preview(path, category, changed, now=request.now)
    return reply


def _preview(path: Path, category: str, term: str, *, now: datetime) -> str:
    """What the new term would have matched among the last 7 days' items."""
    try:
        config = load_config(path)  # the file as just edited
        since = now - timedelta(days=PREVIEW_DAYS)
        count, first = term_preview(config, category, term, since=since)
    except (ConfigError, StoreError) as exc:
        return html.escape(f"(no preview: {exc})")
    lines = [
        f"In the last {PREVIEW_DAYS} days it would have matched {count} item"
        f"{'' if count == 1 else 's'}" + (":" if first else ".")
    ]
    lines += [f"• {html.escape(cut_text(i.title, 200))} — {html.escape(i.feed)}" for i in first]
    return "\n".join(lines)


def _mute(request: Request, services: Services) -> str:
    parts = _args(request).rsplit(maxsplit=1)
    if len(parts) != 2:
        raise Refused("give a term and a duration, e.g. /mute Huawei 2h")
    runtime = services.runtime
    term = _find_term(runtime, parts[0])
    if term is None:
        raise Refused("that term is not on a watchlist; see /watchlist")
    until = request.now + mute_duration(parts[1])
    runtime.store.mute(term.name, until=until, by_user=request.user_id)
    event(log, "term_muted", term=term.name, until=until.isoformat(timespec="minutes"))
    return f"🔇 <b>{html.escape(term.name)}</b> muted until {until:%d %b %H:%M} UTC."


def _unmute(request: Request, services: Services) -> str:
    value = _args(request)
    runtime = services.runtime
    term = _find_term(runtime, value) if value else None
    name = term.name if term else value
    if not name or not runtime.store.unmute(name):
        raise Refused("that term is not muted; see /watchlist")
    return f"🔈 <b>{html.escape(name)}</b> unmuted."


def _paused(request: Request, services: Services) -> tuple[str, str]:
    """The destination /pause and /resume name: the one given, else the bot's own channel;
    and how to call it in the reply."""
    destinations = services.runtime.config.destinations
    name = clean_arg(request.args, limit=40)
    if not name:
        bot = destinations.bot
        if bot is None:
            raise Refused(f"name a destination: {', '.join(destinations.names())}")
        return bot.name, "Channel"
    if name not in destinations.names():
        raise Refused(
            f"no destination {name!r}; the destinations: {', '.join(destinations.names())}"
        )
    return name, f"Destination {name}"


def _pause(request: Request, services: Services) -> str:
    name, label = _paused(request, services)
    services.runtime.set_paused(name, True)
    event(log, "channel_paused", logging.WARNING, user=request.user_id, destination=name)
    return f"⏸ {html.escape(label)} delivery paused. Alerts queue until /resume."


def _resume(request: Request, services: Services) -> str:
    runtime = services.runtime
    name, label = _paused(request, services)
    runtime.set_paused(name, False)
    event(log, "channel_resumed", user=request.user_id, destination=name)
    return (
        f"▶️ {html.escape(label)} delivery resumed; "
        f"{runtime.store.count_pending(name)} queued alerts go out now."
    )


_Handler = Callable[[Request, Services], str]
_PUBLIC: dict[str, _Handler] = {
    "start": _help,
    "help": _help,
    "watchlist": _watchlist,
    "list": _watchlist,
    "status": _status,
    "recent": _recent,
    "why": _why,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "subscriptions": _subscriptions,
}
_ADMIN: dict[str, _Handler] = {
    "watch": _watch,
    "unwatch": _unwatch,
    "mute": _mute,
    "unmute": _unmute,
    "pause": _pause,
    "resume": _resume,
}
COMMANDS = (*_PUBLIC, *_ADMIN)
