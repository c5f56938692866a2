"""Loopback stand-ins for the services chipwatch talks to: the Telegram Bot API and Slack (an
incoming webhook, and the Web API an app posts through)."""

from tests.fakes.slack_api import DEFAULT_BOT_TOKEN, FakeSlackApi
from tests.fakes.slack_webhook import FakeSlack, unescaped_specials
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram, parse_html, utf16_len

__all__ = [
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_TOKEN",
    "FakeSlack",
    "FakeSlackApi",
    "FakeTelegram",
    "parse_html",
    "unescaped_specials",
    "utf16_len",
]
