"""The secrets a config's destinations need from the environment: each present and of the
right shape, and none set for a destination the config does not have.

``run`` and ``once`` read their secrets through ``secret``, and ``check-config`` checks them all
with ``check_environment``, so the two can never disagree on what runs. An error names the file,
the line of the destination and its key, and the variable, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..logs import SLACK_TOKEN_SHAPE, TELEGRAM_TOKEN_SHAPE, add_secret
from .model import (
    SLACK_TOKEN_ENV,
    SLACK_WEBHOOK_ENV,
    SLACK_WEBHOOK_HOST,
    TELEGRAM_TOKEN_ENV,
    Config,
    Destination,
)


@dataclass(frozen=True)
class Need:
    """A secret a destination reads from the environment: its variable and what it must be."""

    variable: str
    kind: str  # "telegram" (a bot token), "slack app" (a bot token), "slack webhook" (a URL)
    destination: Destination

    @property
    def key(self) -> str:
        # An app's token is needed because of its channel; a webhook or a bot by the section.
        return (
            f"{self.destination.key}.channel" if self.kind == "slack app" else self.destination.key
        )


def needs(config: Config) -> list[Need]:
    """The secrets the config's destinations need, one per destination (console: none)."""
    found = []
    for d in config.destinations.all:
        if d.telegram is not None:
            found.append(Need(d.telegram.token_env, "telegram", d))
        elif d.slack is not None:
            kind = "slack app" if d.slack.channel else "slack webhook"
            found.append(Need(d.slack.secret_env, kind, d))
    return found


def _shape_error(need: Need, value: str) -> str | None:
    """Why ``value`` cannot be the secret ``need`` asks for (without repeating it), or None."""
    name = need.variable
    if need.kind == "telegram" and not TELEGRAM_TOKEN_SHAPE.fullmatch(value):
        return (
            f"{name} does not look like a bot token (digits, a colon, then 30 or more letters, "
            "digits, - or _, as @BotFather gives it: 123456789:AA…)"
        )
    if need.kind == "slack app" and not (
        SLACK_TOKEN_SHAPE.fullmatch(value) and value.startswith("xoxb-")
    ):
        return f"{name} does not look like a Slack bot token (xoxb-…, the Bot User OAuth Token)"
    if need.kind == "slack webhook":
        slack = need.destination.slack
        host = slack.webhook_host if slack is not None else SLACK_WEBHOOK_HOST
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
            problem += f"; its host is {netloc} ({need.destination.key}.webhook_host names another)"
        return problem
    return None


def secret(
    config: Config, destination: Destination, environ: Mapping[str, str] | None = None
) -> str:
    """The secret ``destination`` needs, or ConfigError saying why not (naming the file, the
    destination's line and key, and the variable, never its value)."""
    environ = os.environ if environ is None else environ
    need = next(n for n in needs(config) if n.destination == destination)
    value = environ.get(need.variable, "").strip()
    problem = (
        _shape_error(need, value)
        if value
        else f"{need.variable} is not set in the environment (secrets never go in the file)"
    )
    if problem:
        line = destination.line or config.line(need.key)
        raise ConfigError(problem, file=str(config.path), line=line, key=need.key)
    # Redacted from every log line from now on, whatever its variable is called and whatever
    # its shape (a webhook on its own host, read from a webhook_env of the admin's choosing).
    add_secret(value)
    return value


def unused_secrets(config: Config, environ: Mapping[str, str] | None = None) -> list[ConfigError]:
    """A secret set under a default name no destination reads: its alerts would go elsewhere
    (to the console when there is no destination at all) without a word."""
    environ = os.environ if environ is None else environ
    wanted = {n.variable for n in needs(config)}
    where = ", ".join(config.destinations.names())
    errors = []
    for name, key, what in (
        (TELEGRAM_TOKEN_ENV, "destinations.telegram", "a telegram: {chat_id: …} destination"),
        (SLACK_WEBHOOK_ENV, "destinations.slack", "slack: {} (an incoming webhook)"),
        (SLACK_TOKEN_ENV, "destinations.slack.channel", "slack: {channel: …} (a Slack app)"),
    ):
        if environ.get(name, "").strip() and name not in wanted:
            errors.append(
                ConfigError(
                    f"{name} is set, but the config has no {what}: alerts go to {where} "
                    "only; add the destination, or unset the variable",
                    file=str(config.path),
                    line=config.line(key),
                    key=key,
                )
            )
    return errors


def check_environment(config: Config, environ: Mapping[str, str] | None = None) -> None:
    """Every secret the destinations need, present and well formed, and none set in vain;
    raises the first problem as a ConfigError."""
    for need in needs(config):
        secret(config, need.destination, environ)
    for problem in unused_secrets(config, environ):
        raise problem
