"""Telegram delivery through python-telegram-bot, in HTML parse mode.

Pacing follows Telegram's limits before the server has to enforce them: about one message a
second per chat, 20 a minute per group or channel, 30 a second overall. Errors map onto the
delivery error tree; their text is redacted, because PTB puts the token into some messages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import warnings
from typing import Any

from telegram import Bot, LinkPreviewOptions, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from .. import tls
from ..errors import RecipientGone, Rejected, RetryLater, Unavailable
from ..logs import redact
from ..types import Alert
from . import log_not_threaded, personal_destination
from .format import TELEGRAM_LIMIT, telegram_digest, telegram_html
from .pacing import RateLimiter

log = logging.getLogger("chipwatch.telegram")

# Telegram's limits, each with a little slack so that network jitter cannot push two messages
# closer together on the server's clock than they were on ours.
PER_CHAT = (1, 1.05)
PER_GROUP_MINUTE = (20, 61.0)
GLOBAL = (30, 1.05)
# Errors that say the chat itself is unusable, not this message.
_CHAT_GONE = (
    "chat not found",
    "bot was kicked",
    "not enough rights",
    "have no rights",
    "need administrator rights",
    "bot is not a member",
    "chat_write_forbidden",
    "user is deactivated",
    "bot was blocked",
)
# What Telegram answers about a private chat whose user blocked the bot, deleted their account
# or never started a chat with it (403s), or that no longer exists (400 "chat not found").
_PERSON_GONE = ("chat not found", "user is deactivated", "bot was blocked")
# A reply whose message is gone (deleted, or too old): Telegram's 400 descriptions, as worded
# now and before.
_REPLY_GONE = (
    "message to be replied not found",
    "replied message not found",
    "reply message not found",
)


class _ReplyGone(Exception):
    """The message a follow-up was to reply to is gone."""


def _send_request(timeout: float) -> HTTPXRequest:
    """The connection pool for sending (every API call but ``getUpdates``)."""
    return HTTPXRequest(
        connection_pool_size=8,
        read_timeout=timeout,
        write_timeout=timeout,
        connect_timeout=timeout,
        pool_timeout=timeout,
        httpx_kwargs={"verify": tls.context()},
    )


class TelegramClient:
    """The one ``Bot`` and the one 30-a-second budget for everything sent with a token: the
    channel, personal chats, command replies and admin notices. Long polling for commands has
    its own connection, so a pending ``getUpdates`` never holds up a send."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        timeout: float = 15.0,
        overall: tuple[int, float] = GLOBAL,
    ):
        self.token = token
        self.base_url = base_url
        request = _send_request(timeout)
        updates = HTTPXRequest(
            connection_pool_size=1,
            read_timeout=timeout + 30,
            write_timeout=timeout,
            connect_timeout=timeout,
            pool_timeout=timeout,
            httpx_kwargs={"verify": tls.context()},
        )
        self.bot = Bot(token, base_url=base_url, request=request, get_updates_request=updates)
        self.budget = RateLimiter([overall])
        self._chats: dict[str, RateLimiter] = {}

    async def send_html(self, chat_id: int, text: str) -> None:
        """A message from the bot itself (a command's reply, a notice to an admin), in the
        chat's pace and the bot's budget; a 429 waits as told, twice."""
        limiter = self.chat_pace(chat_id)
        for attempt in range(3):
            await limiter.acquire()
            await self.budget.acquire()
            try:
                await self.bot.send_message(
                    chat_id,
                    text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                return
            except RetryAfter as exc:
                if attempt == 2:
                    raise
                await asyncio.sleep(retry_seconds(exc))

    def chat_pace(self, chat_id: str | int) -> RateLimiter:
        """The one pace of a chat, whoever writes to it (a sink, a reply, a notice)."""
        key = str(chat_id)
        limiter = self._chats.get(key)
        if limiter is None:
            limiter = self._chats[key] = RateLimiter(chat_windows(chat_id))
        return limiter

    async def aclose(self) -> None:
        try:
            await self.bot.shutdown()
        except Exception:  # closing must never fail a shutdown
            log.debug("telegram_close_failed", exc_info=True)


def chat_windows(chat_id: str | int) -> list[tuple[int, float]]:
    """One message a second per chat; channels and groups also 20 a minute."""
    return [PER_CHAT, PER_GROUP_MINUTE] if is_group_chat(chat_id) else [PER_CHAT]


def is_group_chat(chat_id: str | int) -> bool:
    """Channels and groups (``@name`` or ids below zero) have the 20-a-minute limit."""
    text = str(chat_id)
    return text.startswith("@") or text.startswith("-")


def _seconds(value: int | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def retry_seconds(exc: RetryAfter) -> float:
    """How long a 429 asks to wait."""
    with warnings.catch_warnings():  # PTB 22 warns that the int will become a timedelta
        warnings.simplefilter("ignore")
        return _seconds(exc.retry_after)


class TelegramSink:
    """Sends alerts to one chat (the channel)."""

    def __init__(
        self,
        *,
        token: str,
        chat_id: str | int,
        name: str = "telegram",
        base_url: str = "https://api.telegram.org/bot",
        link_preview: bool = False,
        per_chat: tuple[int, float] = PER_CHAT,
        per_group_minute: tuple[int, float] = PER_GROUP_MINUTE,
        overall: tuple[int, float] = GLOBAL,
        timeout: float = 15.0,
        bot: Bot | None = None,
        overall_limiter: RateLimiter | None = None,
        client: TelegramClient | None = None,
        personal: bool = False,
    ):
        self.name = name
        self.chat_id = chat_id
        # A subscriber's private chat (``for_chat``): a 403 there is that person's choice, not
        # a broken destination.
        self.personal = personal
        self._token = token
        self._base_url = base_url
        self._link_preview = link_preview
        self._preview = LinkPreviewOptions(is_disabled=not link_preview)
        if client is not None:  # the bot's one client: it owns the bot and the budgets
            bot, overall_limiter = client.bot, client.budget
        self._owns_bot = bot is None
        if bot is None:
            bot = Bot(token, base_url=base_url, request=_send_request(timeout))
        self.bot = bot
        # The 30-a-second limit is for the whole bot: chats of one bot share one limiter.
        self.overall = overall_limiter or RateLimiter([overall])
        windows = [per_chat]
        if is_group_chat(chat_id):
            windows.append(per_group_minute)
        self.limiter = client.chat_pace(chat_id) if client is not None else RateLimiter(windows)
        self._client = client
        # Edits count against flood limits too; keep them to one every few seconds per chat.
        self.edit_limiter = RateLimiter([(1, 3.0), (20, 61.0)])

    def for_chat(self, chat_id: int) -> TelegramSink:
        """A sink for a personal chat sharing this bot and its overall rate limit (and, with the
        bot's one client, that client's pace for the chat)."""
        return TelegramSink(
            token=self._token,
            chat_id=chat_id,
            name=personal_destination(chat_id),
            base_url=self._base_url,
            link_preview=self._link_preview,
            bot=self.bot,
            overall_limiter=self.overall,
            client=self._client,
            personal=True,
        )

    def allowance(self, within: float) -> int:
        return min(self.limiter.allowance(within), self.overall.allowance(within))

    def _error(self, exc: TelegramError) -> Exception:
        """Map a PTB error onto RetryLater / Rejected / Unavailable (specific ones first)."""
        text = redact(f"{type(exc).__name__}: {exc.message}", [self._token])
        if isinstance(exc, RetryAfter):
            return RetryLater(text, retry_after=retry_seconds(exc))
        if self.personal and (
            isinstance(exc, Forbidden)
            or (isinstance(exc, BadRequest) and any(m in exc.message.lower() for m in _PERSON_GONE))
        ):
            return RecipientGone(redact(exc.message, [self._token]))  # Telegram's words
        if isinstance(exc, (InvalidToken, Forbidden)):
            return Unavailable(text)
        if isinstance(exc, ChatMigrated):
            return Unavailable(
                f"{text}: the group moved to chat id {exc.new_chat_id}; "
                f"update destinations.telegram.chat_id"
            )
        if isinstance(exc, BadRequest):
            lowered = exc.message.lower()
            if any(marker in lowered for marker in _CHAT_GONE):
                return Unavailable(text)
            return Rejected(text)
        if isinstance(exc, (TimedOut, NetworkError)):
            return RetryLater(text)
        return RetryLater(text)

    async def _send_html(
        self, html_text: str, *, reply_to: str | None = None, quiet: bool = False
    ) -> str:
        """Send one message (``quiet``: without a notification; ``reply_to``: as a reply to
        that message of this chat, which raises ``_ReplyGone`` when it no longer exists)."""
        await self.limiter.acquire()
        await self.overall.acquire()
        options: dict = {}
        if quiet:
            options["disable_notification"] = True
        if reply_to is not None:
            options["reply_parameters"] = ReplyParameters(message_id=int(reply_to))
        try:
            message = await self.bot.send_message(
                chat_id=self.chat_id,
                text=html_text,
                parse_mode=ParseMode.HTML,
                link_preview_options=self._preview,
                **options,
            )
        except BadRequest as exc:
            if reply_to is not None and any(m in exc.message.lower() for m in _REPLY_GONE):
                raise _ReplyGone(exc.message) from None
            raise self._error(exc) from None
        except TelegramError as exc:
            raise self._error(exc) from None
        return str(message.message_id)

    async def send(self, alert: Alert, *, reply_to: str | None = None) -> str | None:
        if alert.thread_of is None:
            return await self._send_html(telegram_html(alert, limit=TELEGRAM_LIMIT))
        # A follow-up: a quiet reply to its story's message, or, when there is none here (or it
        # was deleted), a quiet message that names the story.
        if reply_to is not None and reply_to.isdigit():
            try:
                return await self._send_html(
                    telegram_html(alert, replying=True), reply_to=reply_to, quiet=True
                )
            except _ReplyGone as exc:
                log_not_threaded(self.name, alert, reply_to, str(exc))
        return await self._send_html(telegram_html(alert), quiet=True)

    async def send_digest(self, alerts: list[Alert]) -> tuple[str | None, list[Alert]]:
        text, included = telegram_digest(alerts, limit=TELEGRAM_LIMIT)
        # A digest of follow-ups only is as quiet as they would have been one by one.
        quiet = all(a.thread_of is not None for a in included)
        return await self._send_html(text, quiet=quiet), included

    async def send_prepared(self, message: Any) -> str | None:
        return await self._send_html(str(message))

    async def edit(self, message_id: str, alert: Alert, *, reply_to: str | None = None) -> None:
        """Re-render a sent alert (a follow-up in the form it was sent in: a reply when its
        story has a message here); "message is not modified" counts as done."""
        await self.edit_limiter.acquire()
        try:
            await self.bot.edit_message_text(
                chat_id=self.chat_id,
                message_id=int(message_id),
                text=telegram_html(alert, replying=reply_to is not None),
                parse_mode=ParseMode.HTML,
                link_preview_options=self._preview,
            )
        except BadRequest as exc:
            if "message is not modified" in exc.message.lower():
                return
            raise self._error(exc) from None
        except TelegramError as exc:
            raise self._error(exc) from None

    async def aclose(self) -> None:
        if not self._owns_bot:
            return
        try:
            await self.bot.shutdown()
        except Exception:  # closing must never fail a shutdown
            log.debug("telegram_close_failed", exc_info=True)
