"""Loopback stand-ins for the services chipwatch talks to: the Telegram Bot API and Slack."""

from tests.fakes.slack_webhook import FakeSlack, unescaped_specials
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram, parse_html, utf16_len

__all__ = [
    "DEFAULT_TOKEN",
    "FakeSlack",
    "FakeTelegram",
    "parse_html",
    "unescaped_specials",
    "utf16_len",
]
