"""The python-telegram-bot adapter for the command handlers: ``Application`` polls
``getUpdates`` (on a connection of its own), each message becomes a ``Request``, the handler's
reply goes back through the bot's one client (its pace per chat and its 30-a-second budget).

If Telegram cannot be reached when ``run`` starts, the poller is retried with backoff (5 s,
doubling to 5 min) until it starts; meanwhile ``/healthz`` shows ``"commands": "starting"``
and ``chipwatch_commands_up`` is 0. Delivery never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from ..deliver.telegram import TelegramClient
from ..logs import event, redact
from ..runtime import Runtime
from ..types import utcnow
from .handlers import Request, Services, fit, handle

log = logging.getLogger("chipwatch.commands")

RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0


class TelegramCommands:
    """Bot commands over Telegram, bound to the running bot's ``Runtime``."""

    def __init__(
        self,
        services: Services,
        *,
        client: TelegramClient,
        clock: Callable[[], datetime] = utcnow,
        retry_first: float = RETRY_FIRST_SECONDS,
        retry_max: float = RETRY_MAX_SECONDS,
    ):
        self.services = services
        self.runtime: Runtime = services.runtime
        # The bot's one client: replies draw from the same budget as delivery and go
        # through the same Bot (its getUpdates has a connection of its own).
        self._client = client
        self._clock = clock
        self._retry_first = retry_first
        self._retry_max = retry_max
        self.app = Application.builder().bot(client.bot).build()
        self.app.add_handler(MessageHandler(filters.COMMAND, self._on_message))
        self.app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self._on_message))
        self.app.add_error_handler(self._on_error)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """One attempt to start polling (raises when Telegram cannot be reached). Each step
        is done once: a retry goes on from the step that failed."""
        await self.app.initialize()  # getMe; a no-op once it succeeded
        if not self.app.running:
            await self.app.start()
        updater = self.app.updater
        assert updater is not None  # the builder makes one unless told not to
        if not updater.running:
            await updater.start_polling(
                timeout=10, drop_pending_updates=False, allowed_updates=["message"]
            )
        self.runtime.commands = "up"
        event(log, "commands_started", bot=self.app.bot.username)

    async def run(self, stop: asyncio.Event) -> None:
        """Start, retrying with backoff until it works or ``stop`` is set."""
        self.runtime.commands = "starting"
        delay = self._retry_first
        while not stop.is_set():
            try:
                await self.start()
                return
            except Exception as exc:  # noqa: BLE001 - delivery goes on; the next try may work
                event(
                    log,
                    "commands_unavailable",
                    logging.ERROR if delay == self._retry_first else logging.WARNING,
                    error=redact(f"{type(exc).__name__}: {exc}", [self._client.token]),
                    retry_in=f"{delay:g}s",
                )
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, self._retry_max)

    async def stop(self) -> None:
        try:
            if self.app.updater and self.app.updater.running:
                await self.app.updater.stop()
            if self.app.running:
                await self.app.stop()
            await self.app.shutdown()
        except Exception:  # shutting down must not fail the bot's exit
            log.warning("commands_stop_failed", exc_info=True)

    # --- one message ----------------------------------------------------------------------

    def request(self, update: Update) -> Request | None:
        """The request a message makes; None for one not meant for this bot (a command
        addressed to another bot in a group)."""
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        if message is None or chat is None:
            return None
        text = message.text or ""
        command, args = "", text
        if text.startswith("/"):
            head, _, args = text.partition(" ")
            name, _, bot = head[1:].partition("@")
            if bot and bot.casefold() != (self.app.bot.username or "").casefold():
                return None
            command = name.casefold()[:40]
        admins = self.runtime.config.destinations.admins
        return Request(
            user_id=user.id if user else None,
            chat_id=chat.id,
            private=chat.type == ChatType.PRIVATE,
            is_admin=bool(user and user.id in admins),
            command=command,
            args=args,
            now=self._clock(),
        )

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        request = self.request(update)
        if request is None:
            return
        reply = handle(request, self.services)
        if reply is not None:
            await self._client.send_html(request.chat_id, fit(reply))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        # The traceback goes to the log too; the redacting filter cleans it of the token.
        log.error(
            "command_failed error=%s",
            redact(f"{type(error).__name__}: {error}", [self._client.token]),
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )
