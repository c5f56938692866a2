"""Build the sinks a config asks for, with secrets from the environment."""

from __future__ import annotations

import os

from ..config import Config, Destination
from ..errors import ConfigError
from . import Sink
from .console import ConsoleSink
from .telegram import TelegramClient


def _secret(name: str, config: Config, key: str) -> str:
    """The environment variable ``name``, which the destination at ``key`` needs."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"{key} is configured, but the environment variable {name} is not set",
            file=str(config.path),
            key=key,
        )
    return value


def build_sinks(config: Config, *, telegram: TelegramClient | None = None) -> list[Sink]:
    """One sink per destination in ``config.destinations``, named as it is; a Telegram one goes
    through ``telegram`` (the bot's one client) when it is the same bot, else through a client
    of its own."""
    return [_sink(d, config, telegram) for d in config.destinations.all]


def _sink(dest: Destination, config: Config, telegram: TelegramClient | None) -> Sink:
    if dest.telegram is not None:
        from .telegram import TelegramSink

        t = dest.telegram
        token = _secret(t.token_env, config, dest.key)
        same_bot = telegram is not None and (telegram.base_url, telegram.token) == (
            t.api_base_url,
            token,
        )
        return TelegramSink(
            token=token,
            chat_id=t.chat_id,
            name=dest.name,
            base_url=t.api_base_url,
            link_preview=t.link_preview,
            client=telegram if same_bot else None,
        )
    if dest.slack is not None:
        from .slack import SlackAppSink, SlackSink

        s = dest.slack
        if s.channel:  # a Slack app: posts, edits, threads
            token = _secret(s.token_env, config, f"{dest.key}.channel")
            return SlackAppSink(
                token=token, channel=s.channel, base_url=s.api_base_url, name=dest.name
            )
        # an incoming webhook: one post per alert
        return SlackSink(webhook_url=_secret(s.webhook_env, config, dest.key), name=dest.name)
    return ConsoleSink(name=dest.name)
