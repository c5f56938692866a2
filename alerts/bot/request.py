"""What a bot command handler takes: the request, the services it works with, and the refusal
it may raise (``alerts.bot.handlers`` dispatches; ``alerts.bot.digests`` has /digest)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..health import Health
from ..runtime import Runtime

MAX_ARG_CHARS = 300


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


def args_of(request: Request) -> str:
    """The command's argument, cleaned ("" for none)."""
    return clean_arg(request.args) if request.args.strip() else ""
