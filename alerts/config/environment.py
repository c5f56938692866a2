"""The secrets a config's destinations need from the environment: each present and of the
right shape, and none set for a destination the config does not have.

``run`` and ``once`` read their secrets through ``secret``, and ``check-config`` checks them all
with ``check_environment``, so the two can never disagree on what runs. An error names the file,
the line of the destination and its key, and the variable, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..logs import SLACK_TOKEN_SHAPE, TELEGRAM_TOKEN_SHAPE
from .model import SLACK_WEBHOOK_HOST, Config

TELEGRAM_TOKEN = "TELEGRAM_BOT_TOKEN"
SLACK_WEBHOOK = "SLACK_WEBHOOK_URL"
SLACK_BOT_TOKEN = "SLACK_BOT_TOKEN"


def needed(config: Config) -> dict[str, str]:
    """The variables the config's destinations need: name -> the key that needs it."""
    dest = config.destinations
    found = {}
    if dest.telegram is not None:
        found[TELEGRAM_TOKEN] = "destinations.telegram"
    if dest.slack is not None:
        if dest.slack.channel:
            found[SLACK_BOT_TOKEN] = "destinations.slack.channel"
        else:
            found[SLACK_WEBHOOK] = "destinations.slack"
    return found


def _shape_error(name: str, value: str, config: Config) -> str | None:
    """Why ``value`` cannot be the secret ``name`` (without repeating it), or None."""
    if name == TELEGRAM_TOKEN and not TELEGRAM_TOKEN_SHAPE.fullmatch(value):
        return (
            f"{name} does not look like a bot token (digits, a colon, then 30 or more letters, "
            "digits, - or _, as @BotFather gives it: 123456789:AA…)"
        )
    if name == SLACK_BOT_TOKEN and not (
        SLACK_TOKEN_SHAPE.fullmatch(value) and value.startswith("xoxb-")
    ):
        return f"{name} does not look like a Slack bot token (xoxb-…, the Bot User OAuth Token)"
    if name == SLACK_WEBHOOK:
        host = config.destinations.slack.webhook_host if config.destinations.slack else ""
        try:
            parts = urlsplit(value)
            netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        except ValueError:
            return f"{name} is not a URL"
        # Slack's own host takes https only; a stand-in (a test server, a proxy) may be http.
        schemes = ("https",) if host == SLACK_WEBHOOK_HOST else ("http", "https")
        if parts.scheme in schemes and netloc == host and len(parts.path) > 1:
            return None
        problem = f"{name} is not an incoming webhook URL ({schemes[0]}://{host}/services/…)"
        if parts.scheme in ("http", "https") and netloc and netloc != host:
            problem += f"; its host is {netloc} (destinations.slack.webhook_host names another)"
        return problem
    return None


def secret(config: Config, name: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret ``name`` a destination of ``config`` needs, or ConfigError saying why not."""
    environ = os.environ if environ is None else environ
    key = needed(config).get(name, "destinations")
    value = environ.get(name, "").strip()
    problem = (
        _shape_error(name, value, config)
        if value
        else f"{name} is not set in the environment (secrets never go in the file)"
    )
    if problem:
        raise ConfigError(problem, file=str(config.path), line=config.line(key), key=key)
    return value


def unused_secrets(config: Config, environ: Mapping[str, str] | None = None) -> list[ConfigError]:
    """A secret set for a destination the config does not have: its alerts would go elsewhere
    (to the console when there is no destination at all) without a word."""
    environ = os.environ if environ is None else environ
    wanted = needed(config)
    where = ", ".join(config.destinations.names())
    errors = []
    for name, key, what in (
        (TELEGRAM_TOKEN, "destinations.telegram", "a telegram: {chat_id: …} destination"),
        (SLACK_WEBHOOK, "destinations.slack", "slack: {} (an incoming webhook)"),
        (SLACK_BOT_TOKEN, "destinations.slack.channel", "slack: {channel: …} (a Slack app)"),
    ):
        if environ.get(name, "").strip() and name not in wanted:
            errors.append(
                ConfigError(
                    f"{name} is set, but the config has no {what}: alerts go to {where} only; "
                    "add the destination, or unset the variable",
                    file=str(config.path),
                    line=config.line(key),
                    key=key,
                )
            )
    return errors


def check_environment(config: Config, environ: Mapping[str, str] | None = None) -> None:
    """Every secret the destinations need, present and well formed, and none set in vain;
    raises the first problem as a ConfigError."""
    for name in needed(config):
        secret(config, name, environ)
    for problem in unused_secrets(config, environ):
        raise problem
