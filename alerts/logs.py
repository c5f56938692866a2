"""Structured log events (``feed_polled status=ok feed="Reuters"``) and secret redaction.

Secrets reach log lines in ways we do not control: httpx logs every request URL, and the
Telegram token is part of each Bot API URL. ``RedactingFilter`` sits on the handler, so it sees
every record from every library, and replaces secret values and anything shaped like a token.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable

SECRET_ENV_VARS = ("TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL")
_SHAPES = (
    re.compile(r"\d{6,12}:[A-Za-z0-9_-]{30,}"),  # Telegram bot token
    re.compile(r"https://hooks\.slack\.com/\S+"),  # Slack incoming webhook
)
REDACTED = "[REDACTED]"


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def event(logger: logging.Logger, name: str, level: int = logging.INFO, /, **fields: object) -> None:
    """Log one event as ``name key=value …``; None values are left out."""
    if logger.isEnabledFor(level):
        parts = [name, *(f"{k}={_quote(v)}" for k, v in fields.items() if v is not None)]
        logger.log(level, " ".join(parts))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for shape in _SHAPES:
        text = shape.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, arguments and traceback with secrets removed."""

    def __init__(self, secrets: Iterable[str] | None = None):
        super().__init__()
        self._explicit = tuple(secrets) if secrets is not None else None

    def secrets(self) -> tuple[str, ...]:
        if self._explicit is not None:
            return self._explicit
        # Read at log time, so a secret set after logging was configured is still covered.
        values = (os.environ.get(name, "") for name in SECRET_ENV_VARS)
        return tuple(v for v in values if len(v) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = redact(message, secrets), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


class _Formatter(logging.Formatter):
    converter = __import__("time").gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)sZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")


def setup_logging(level: int = logging.INFO, stream=None) -> logging.Handler:  # noqa: ANN001
    """Log to stderr with redaction; quiet the HTTP libraries unless debugging."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_chipwatch", False):
            root.removeHandler(old)
    handler._chipwatch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    noisy_level = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    for name in ("httpx", "httpcore", "telegram", "apscheduler"):
        logging.getLogger(name).setLevel(max(noisy_level, level))
    return handler
