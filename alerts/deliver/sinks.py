"""Build the sinks a config asks for, with secrets from the environment."""

from __future__ import annotations

from ..config import Config, Destination
from ..config.environment import secret
from . import Sink
from .console import ConsoleSink
from .telegram import TelegramClient


def build_sinks(config: Config, *, telegram: TelegramClient | None = None) -> list[Sink]:
    """One sink per destination in ``config.destinations``, named as it is; a Telegram one goes
    through ``telegram`` (the bot's one client) when it is the same bot, else through a client
    of its own."""
    bots: dict[tuple[str, str], Sink] = {}  # (token, API) -> the first sink of that bot
    return [_sink(d, config, telegram, bots) for d in config.destinations.all]


def _sink(
    dest: Destination,
    config: Config,
    telegram: TelegramClient | None,
    bots: dict[tuple[str, str], Sink],
) -> Sink:
    if dest.telegram is not None:
        from .telegram import TelegramSink

        t = dest.telegram
        token = secret(config, dest)
        bot = (token, t.api_base_url)
        same_client = telegram is not None and (telegram.token, telegram.base_url) == bot
        # Chats of one bot share its Bot and its 30-a-second budget (the first sink owns them).
        first = bots.get(bot)
        shared = first if isinstance(first, TelegramSink) and not same_client else None
        sink = TelegramSink(
            token=token,
            chat_id=t.chat_id,
            name=dest.name,
            base_url=t.api_base_url,
            link_preview=t.link_preview,
            client=telegram if same_client else None,
            bot=shared.bot if shared else None,
            overall_limiter=shared.overall if shared else None,
        )
        bots.setdefault(bot, sink)
        return sink
    if dest.slack is not None:
        from .slack import SlackAppSink, SlackSink

        s = dest.slack
        if s.channel:  # a Slack app: posts, edits, threads
            token = secret(config, dest)
            return SlackAppSink(
                token=token, channel=s.channel, base_url=s.api_base_url, name=dest.name
            )
        # an incoming webhook: one post per alert
        return SlackSink(webhook_url=secret(config, dest), name=dest.name)
    return ConsoleSink(name=dest.name)
