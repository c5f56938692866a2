"""Build the sinks a config asks for, with secrets from the environment."""

from __future__ import annotations

from ..config import Config
from ..config.environment import SLACK_BOT_TOKEN, SLACK_WEBHOOK, TELEGRAM_TOKEN, secret
from . import Sink
from .console import ConsoleSink
from .telegram import TelegramClient


def build_sinks(config: Config, *, telegram: TelegramClient | None = None) -> list[Sink]:
    """One sink per destination in ``config.destinations.names()``; Telegram's goes through
    ``telegram`` when given (the bot's one client), else through a client of its own."""
    sinks: list[Sink] = []
    dest = config.destinations
    for name in dest.names():
        if name == "console":
            sinks.append(ConsoleSink())
        elif name == "telegram":
            from .telegram import TelegramSink

            assert dest.telegram is not None
            sinks.append(
                TelegramSink(
                    token=secret(config, TELEGRAM_TOKEN),
                    chat_id=dest.telegram.chat_id,
                    base_url=dest.telegram.api_base_url,
                    link_preview=dest.telegram.link_preview,
                    client=telegram
                    if telegram and telegram.base_url == dest.telegram.api_base_url
                    else None,
                )
            )
        elif name == "slack":
            from .slack import SlackAppSink, SlackSink

            assert dest.slack is not None
            if dest.slack.channel:  # a Slack app: posts, edits, threads
                token = secret(config, SLACK_BOT_TOKEN)
                sinks.append(
                    SlackAppSink(
                        token=token, channel=dest.slack.channel, base_url=dest.slack.api_base_url
                    )
                )
            else:  # an incoming webhook: one post per alert
                webhook_url = secret(config, SLACK_WEBHOOK)
                sinks.append(SlackSink(webhook_url=webhook_url))
    return sinks
