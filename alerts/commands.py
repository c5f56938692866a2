"""Telegram bot commands, in the same process as ``run`` (python-telegram-bot's Application,
polling ``getUpdates``). Anyone may ask; admins (``destinations.telegram.admins``) may change.

Every argument is untrusted: it is length-limited, refused when it carries control characters,
and escaped in replies; config edits go through ``alerts.config.edit``.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from telegram import LinkPreviewOptions, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import RetryAfter, TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from .backtest import term_preview
from .config import load_config, parse_duration
from .config.edit import EditRefused, add_term, remove_term
from .deliver.format import (
    TELEGRAM_LIMIT,
    cut_text,
    follow_up_to,
    thread_groups,
    visible_len,
    when_text,
)
from .deliver.telegram import TelegramClient, retry_seconds
from .errors import ConfigError, StoreError
from .logs import event, redact
from .runtime import Runtime
from .types import Alert, utcnow

log = logging.getLogger("chipwatch.commands")

MAX_ARG_CHARS = 300
MAX_SUBSCRIPTIONS = 50
MAX_RECENT = 20
PREVIEW_DAYS = 7  # /watch shows what the new term would have matched in this many days
MAX_MUTE = timedelta(days=30)

HELP = """<b>chipwatch</b> watches news feeds for AI-chip trade stories (chips, companies and
export/trade-policy terms) and posts one alert per story to the channel.

<b>Anyone</b>
/watchlist: what is watched, and the rules
/status: feeds, last poll, alerts today, pending deliveries
/recent [n]: the last n alerts, follow-ups under their story
/why &lt;text&gt;: how a headline matches; for an alert's headline, where it went and why
/subscribe &lt;term or rule&gt;: matching alerts in this private chat too
/unsubscribe &lt;term or rule&gt;, /subscriptions

<b>Admins</b>
/watch &lt;category&gt; &lt;term&gt;, /unwatch &lt;category&gt; &lt;term&gt;: edit the watchlists
/mute &lt;term&gt; &lt;duration&gt; (30m, 2h, 1d), /unmute &lt;term&gt;
/pause, /resume: hold and release channel delivery (alerts queue meanwhile)"""


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


def _fit(text: str) -> str:
    """Keep a reply under Telegram's limit by dropping whole lines from the end."""
    lines = text.split("\n")
    while visible_len("\n".join(lines)) > TELEGRAM_LIMIT - 20 and len(lines) > 1:
        lines.pop()
    return "\n".join(lines) if len(lines) == len(text.split("\n")) else "\n".join(lines) + "\n…"


# Handlers run only for messages (``Commands._guarded``), which have a chat; the handlers that
# name the user are admin commands, which run only for a known user.
def _message(update: Update) -> Message:
    assert update.effective_message is not None
    return update.effective_message


def _chat_id(update: Update) -> int:
    assert update.effective_chat is not None
    return update.effective_chat.id


def _user_id(update: Update) -> int:
    assert update.effective_user is not None
    return update.effective_user.id


class Commands:
    """The command handlers, bound to the running bot's ``Runtime``."""

    def __init__(self, runtime: Runtime, *, client: TelegramClient):
        self.runtime = runtime
        self._token = client.token
        # The bot's one client: replies and notices draw from the same 30-a-second budget as
        # delivery, and go through the same Bot (its getUpdates has a connection of its own).
        self._client = client
        self._budget = client.budget
        self.app = Application.builder().bot(client.bot).build()
        public = {
            "start": self.help,
            "help": self.help,
            "watchlist": self.watchlist,
            "status": self.status,
            "recent": self.recent,
            "why": self.why,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "subscriptions": self.subscriptions,
        }
        admin = {
            "watch": self.watch,
            "unwatch": self.unwatch,
            "mute": self.mute,
            "unmute": self.unmute,
            "pause": self.pause,
            "resume": self.resume,
        }
        for name, handler in public.items():
            self.app.add_handler(CommandHandler(name, self._guarded(handler)))
        for name, handler in admin.items():
            self.app.add_handler(CommandHandler(name, self._guarded(handler, admin=True)))
        self.app.add_handler(MessageHandler(filters.COMMAND, self._guarded(self.unknown)))
        self.app.add_error_handler(self._on_error)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.app.initialize()
        await self.app.start()
        updater = self.app.updater
        assert updater is not None  # the builder makes one unless told not to
        await updater.start_polling(
            timeout=10, drop_pending_updates=False, allowed_updates=["message"]
        )
        event(log, "commands_started", bot=self.app.bot.username)

    async def stop(self) -> None:
        try:
            if self.app.updater and self.app.updater.running:
                await self.app.updater.stop()
            if self.app.running:
                await self.app.stop()
            await self.app.shutdown()
        except Exception:  # shutting down must not fail the bot's exit
            log.warning("commands_stop_failed", exc_info=True)

    async def notify_admins(self, text: str) -> None:
        telegram = self.runtime.config.destinations.telegram
        for admin in telegram.admins if telegram else ():
            try:
                await self._paced(
                    admin,
                    functools.partial(
                        self.app.bot.send_message,
                        admin,
                        html.escape(text),
                        parse_mode=ParseMode.HTML,
                    ),
                )
            except TelegramError as exc:
                event(
                    log,
                    "admin_notify_failed",
                    logging.WARNING,
                    admin=admin,
                    error=redact(str(exc), [self._token]),
                )

    # --- plumbing ---------------------------------------------------------------------------

    def _is_admin(self, update: Update) -> bool:
        telegram = self.runtime.config.destinations.telegram
        user = update.effective_user
        return bool(telegram and user and user.id in telegram.admins)

    def _guarded(self, handler, *, admin: bool = False):  # noqa: ANN001, ANN202
        async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            if update.effective_message is None:
                return
            user = update.effective_user
            command = (update.effective_message.text or "").split(maxsplit=1)[0][:40]
            if admin and not self._is_admin(update):
                event(
                    log,
                    "command_refused",
                    logging.WARNING,
                    command=command,
                    user=user.id if user else None,
                    reason="not an admin",
                )
                await self._reply(update, "Sorry, only the bot's admins can do that.")
                return
            event(log, "command", command=command, user=user.id if user else None)
            try:
                await handler(update, context)
            except Refused as exc:
                await self._reply(update, f"⚠️ {html.escape(str(exc))}")
            except EditRefused as exc:
                await self._reply(update, f"⚠️ {html.escape(str(exc))}")

        return run

    async def _reply(self, update: Update, text: str) -> None:
        await self._paced(
            _chat_id(update),
            lambda: _message(update).reply_text(
                _fit(text),
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            ),
        )

    async def _paced(self, chat_id: int, send: Callable[[], Awaitable[object]]) -> None:
        """Send within the chat's pace and the bot's budget; a 429 waits as told, twice."""
        limiter = self._client.chat_pace(chat_id)
        for attempt in range(3):
            await limiter.acquire()
            await self._budget.acquire()
            try:
                await send()
                return
            except RetryAfter as exc:
                if attempt == 2:
                    raise
                await asyncio.sleep(retry_seconds(exc))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        # The traceback goes to the log too; the redacting filter cleans it of the token.
        log.error(
            "command_failed error=%s",
            redact(f"{type(error).__name__}: {error}", [self._token]),
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )

    @staticmethod
    def _args(context: ContextTypes.DEFAULT_TYPE, update: Update) -> str:
        text = _message(update).text or ""
        parts = text.split(maxsplit=1)
        return clean_arg(parts[1]) if len(parts) > 1 else ""

    def _find_term(self, name: str):  # noqa: ANN202
        """The watchlist term a user means: canonical name or alias, any case."""
        folded = name.casefold()
        for terms in self.runtime.config.watchlists.values():
            for term in terms:
                if term.name.casefold() == folded or any(
                    a.casefold() == folded for a in term.aliases
                ):
                    return term
        return None

    # --- anyone -----------------------------------------------------------------------------

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, HELP)

    async def unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, "I don't know that command. Send /help for the list.")

    async def watchlist(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        config = self.runtime.config
        lines = []
        for category, terms in config.watchlists.items():
            names = ", ".join(t.name for t in terms)
            lines.append(
                f"<b>{html.escape(category)}</b> ({len(terms)}): "
                f"{html.escape(cut_text(names, 900))}"
            )
        lines.append("")
        lines.append("<b>Rules</b> (an alert needs one to hold)")
        for rule in config.rules:
            lines.append(f"• {html.escape(rule.name)}: {html.escape(rule.describe())}")
        muted = self.runtime.store.active_mutes(now=utcnow())
        if muted:
            lines.append("")
            lines.append(
                "<b>Muted</b>: "
                + html.escape(
                    ", ".join(f"{t} until {u:%d %b %H:%M} UTC" for t, u in sorted(muted.items()))
                )
            )
        await self._reply(update, "\n".join(lines))

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        store, config = self.runtime.store, self.runtime.config
        configured = {f.name for f in config.feeds}
        states = [s for s in store.feed_states() if s.name in configured]
        failing = [s for s in states if s.last_status in ("error", "gone") or s.disabled_reason]
        never = configured - {s.name for s in states}
        polls = [s.last_polled_at for s in states if s.last_polled_at]
        midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        lines = [
            f"<b>Feeds</b>: {len(states) - len(failing)} OK, {len(failing)} failing"
            + (f", {len(never)} not polled yet" if never else "")
        ]
        for s in failing:
            since = f" since {s.failing_since:%d %b %H:%M}" if s.failing_since else ""
            reason = s.disabled_reason or s.last_error or s.last_status
            lines.append(f"• {html.escape(s.name)}: {html.escape(str(reason))}{since}")
        lines.append(
            f"<b>Last poll</b>: {max(polls):%d %b %H:%M:%S} UTC"
            if polls
            else "<b>Last poll</b>: none yet"
        )
        lines.append(f"<b>Alerts today</b>: {store.alerts_since(midnight)}")
        lines.append(f"<b>Pending deliveries</b>: {store.count_pending()}")
        held = self.runtime.deliverer.held_back
        lines.append(
            "<b>Channel</b>: "
            + ("paused (alerts are queued)" if "telegram" in held else "delivering")
        )
        await self._reply(update, "\n".join(lines))

    async def recent(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        arg = self._args(context, update)
        if arg and not (arg.isdigit() and 1 <= int(arg) <= MAX_RECENT):
            raise Refused(f"give a number from 1 to {MAX_RECENT}, e.g. /recent 5")
        alerts = self.runtime.store.recent_alerts(int(arg) if arg else 5)
        if not alerts:
            await self._reply(update, "No alerts yet.")
            return
        lines = []
        # Newest story first; its follow-ups among them under it, oldest first.
        for story, followups in reversed(thread_groups(alerts[::-1])):
            lines.append(f"• {_recent_line(story)}")
            lines.extend(f"   ↳ {_recent_line(f, under_story=True)}" for f in followups)
        await self._reply(update, "\n".join(lines))

    async def why(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        text = self._args(context, update)
        if not text:
            raise Refused("give a headline, e.g. /why China approves Nvidia H200 imports")
        result = self.runtime.matcher.match(text)
        muted = self.runtime.store.active_mutes(now=utcnow())
        reply = html.escape(f"“{text}”\n{self.runtime.matcher.explain(result)}")
        if muted and any(m.term.casefold() in muted for m in result.matches):
            after = self.runtime.matcher.without(result, muted)
            reply += "\n\n" + html.escape(
                f"muted terms drop out: {'ALERT' if after.alert else 'no alert'}"
            )
        stored = self.runtime.store.alert_by_title(text)
        if stored is not None:
            reply += "\n\n" + html.escape(_placement(stored))
        await self._reply(update, f"<pre>{reply}</pre>")

    # --- personal subscriptions -------------------------------------------------------------

    def _subscription_target(self, value: str) -> tuple[str, str]:
        rule = next(
            (r.name for r in self.runtime.config.rules if r.name.casefold() == value.casefold()),
            None,
        )
        if rule:
            return "rule", rule
        term = self._find_term(value)
        if term is None:
            raise Refused("that is neither a watched term nor a rule; see /watchlist")
        return "term", term.name

    async def subscribe(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None or chat.type != ChatType.PRIVATE:
            raise Refused("subscribe in a private chat with me")
        value = self._args(context, update)
        if not value:
            raise Refused("give a term or rule, e.g. /subscribe H200")
        kind, name = self._subscription_target(value)
        store = self.runtime.store
        if len(store.subscriptions(chat.id)) >= MAX_SUBSCRIPTIONS:
            raise Refused(f"at most {MAX_SUBSCRIPTIONS} subscriptions per chat")
        added = store.subscribe(chat.id, kind, name, now=utcnow())
        self.runtime.ensure_private_sink(chat.id)
        await self._reply(
            update,
            f"✅ subscribed to {kind} <b>{html.escape(name)}</b>"
            if added
            else f"You were already subscribed to {html.escape(name)}.",
        )

    async def unsubscribe(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        value = self._args(context, update)
        if not value:
            raise Refused("give the term or rule to drop, see /subscriptions")
        removed = self.runtime.store.unsubscribe(_chat_id(update), value)
        await self._reply(
            update,
            f"Unsubscribed from {html.escape(value)}."
            if removed
            else f"You were not subscribed to {html.escape(value)}.",
        )

    async def subscriptions(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        subs = self.runtime.store.subscriptions(_chat_id(update))
        if not subs:
            await self._reply(update, "No subscriptions. Try /subscribe H200.")
            return
        await self._reply(
            update,
            "Your subscriptions:\n"
            + "\n".join(f"• {kind} {html.escape(value)}" for _, kind, value in subs),
        )

    # --- admins -----------------------------------------------------------------------------

    def _category_and_term(
        self, update: Update, context: ContextTypes.DEFAULT_TYPE
    ) -> tuple[str, str]:
        parts = self._args(context, update).split(maxsplit=1)
        if len(parts) != 2:
            raise Refused("give a category and a term, e.g. /watch chips B300")
        category, term = parts
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", category):
            raise Refused("a category is lowercase letters, digits and _; see /watchlist")
        return category, term

    async def watch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._edit_watchlist(update, context, add_term, "watch", "added", "to")

    async def unwatch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._edit_watchlist(update, context, remove_term, "unwatch", "removed", "from")

    async def _edit_watchlist(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        edit,  # noqa: ANN001 - add_term or remove_term
        action: str,
        done: str,
        preposition: str,
    ) -> None:
        category, term = self._category_and_term(update, context)
        changed = edit(self.runtime.config.path, category, term)
        event(
            log,
            "watchlist_edited",
            action=action,
            category=category,
            term=changed,
            user=_user_id(update),
        )
        reply = (
            f"✅ {done} <b>{html.escape(changed)}</b> {preposition} "
            f"{html.escape(category)}. It applies within seconds."
        )
        if action == "watch":
            reply += "\n" + self._preview(category, changed)
        await self._reply(update, reply)

    def _preview(self, category: str, term: str) -> str:
        """What the new term would have matched among the last 7 days' items."""
        try:
            config = load_config(self.runtime.config.path)  # the file as just edited
            count, first = term_preview(
                config, category, term, since=utcnow() - timedelta(days=PREVIEW_DAYS)
            )
        except (ConfigError, StoreError) as exc:
            return html.escape(f"(no preview: {exc})")
        lines = [
            f"In the last {PREVIEW_DAYS} days it would have matched {count} item"
            f"{'' if count == 1 else 's'}" + (":" if first else ".")
        ]
        lines += [f"• {html.escape(cut_text(i.title, 200))} — {html.escape(i.feed)}" for i in first]
        return "\n".join(lines)

    async def mute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        parts = self._args(context, update).rsplit(maxsplit=1)
        if len(parts) != 2:
            raise Refused("give a term and a duration, e.g. /mute Huawei 2h")
        term = self._find_term(parts[0])
        if term is None:
            raise Refused("that term is not on a watchlist; see /watchlist")
        until = utcnow() + mute_duration(parts[1])
        self.runtime.store.mute(term.name, until=until, by_user=_user_id(update))
        event(log, "term_muted", term=term.name, until=until.isoformat(timespec="minutes"))
        await self._reply(
            update, f"🔇 <b>{html.escape(term.name)}</b> muted until {until:%d %b %H:%M} UTC."
        )

    async def unmute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        value = self._args(context, update)
        term = self._find_term(value) if value else None
        name = term.name if term else value
        if not name or not self.runtime.store.unmute(name):
            raise Refused("that term is not muted; see /watchlist")
        await self._reply(update, f"🔈 <b>{html.escape(name)}</b> unmuted.")

    async def pause(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.runtime.set_paused("telegram", True)
        event(log, "channel_paused", logging.WARNING, user=_user_id(update))
        await self._reply(update, "⏸ Channel delivery paused. Alerts queue until /resume.")

    async def resume(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.runtime.set_paused("telegram", False)
        event(log, "channel_resumed", user=_user_id(update))
        await self._reply(
            update,
            f"▶️ Channel delivery resumed; "
            f"{self.runtime.store.count_pending('telegram')} queued alerts go out now.",
        )
