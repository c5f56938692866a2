"""Structured log events (``feed_polled status=ok feed="Reuters"``) and secret redaction.

Secrets reach log lines in ways we do not control: httpx logs every request URL, and the
Telegram token is part of each Bot API URL. ``RedactingFilter`` sits on the handler, so it sees
every record from every library, and replaces secret values and anything shaped like a token.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from urllib.parse import unquote

SECRET_ENV_VARS = ("TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "PGPASSWORD")
# What each secret looks like: redacted wherever it appears, and what the config checks a
# secret against (``alerts.config.environment``).
TELEGRAM_TOKEN_SHAPE = re.compile(r"\d{6,12}:[A-Za-z0-9_-]{30,}")
SLACK_WEBHOOK_SHAPE = re.compile(r"https://hooks\.slack\.com/\S+")
SLACK_TOKEN_SHAPE = re.compile(r"\bxox[abepors]-[A-Za-z0-9-]{10,}")  # bot, user, app…
_SHAPES = (TELEGRAM_TOKEN_SHAPE, SLACK_WEBHOOK_SHAPE, SLACK_TOKEN_SHAPE)
REDACTED = "[REDACTED]"
# The password of any URL (postgresql://user:PASSWORD@host/db, socks5://user:PASSWORD@proxy:1080),
# wherever it appears, and of a libpq keyword string (password=PASSWORD).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]*@", re.IGNORECASE)
_DB_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# Secrets only known at run time (a proxy's password): libraries log them in other shapes than
# a URL (httpcore's debug trace shows a SOCKS proxy's ``auth=(b'user', b'password')``).
_RUNTIME_SECRETS: set[str] = set()


def add_secret(value: str) -> None:
    """Redact ``value`` (and its percent-decoded form) from every log line from now on."""
    for form in (value, unquote(value)):
        if len(form) >= 3:
            _RUNTIME_SECRETS.add(form)


def redact_credentials(text: str) -> str:
    """``text`` with the password of any URL, or of a libpq keyword string, in it replaced."""
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    return _DB_KEYWORD_PASSWORD.sub(rf"\1{REDACTED}", text)


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def event(
    logger: logging.Logger, name: str, level: int = logging.INFO, /, **fields: object
) -> None:
    """Log one event as ``name key=value …``; None values are left out."""
    if logger.isEnabledFor(level):
        kept = {k: v for k, v in fields.items() if v is not None}
        parts = [name, *(f"{k}={_quote(v)}" for k, v in kept.items())]
        # The fields ride along as they are, so JSON lines keep numbers and booleans typed.
        logger.log(level, " ".join(parts), extra={_FIELDS: (name, kept)})


_FIELDS = "chipwatch_event"  # the LogRecord attribute that carries an event's typed fields


def _json_value(value: object, secrets: Iterable[str]) -> object:
    """A field as JSON keeps it: a number or boolean as it is, anything else as redacted text."""
    if isinstance(value, bool) or (
        isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
    ):
        return value
    return redact(str(value), secrets)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for shape in _SHAPES:
        text = shape.sub(REDACTED, text)
    return redact_credentials(text)


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
        return (*(v for v in values if len(v) >= 8), *_RUNTIME_SECRETS)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets()
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = redact(message, secrets), ()
        typed = getattr(record, _FIELDS, None)
        if typed is not None:
            name, fields = typed
            setattr(
                record, _FIELDS, (name, {k: _json_value(v, secrets) for k, v in fields.items()})
            )
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


class _Formatter(logging.Formatter):
    converter = __import__("time").gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)sZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")


_PAIR = re.compile(r'([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_event(message: str) -> dict[str, str] | None:
    """``name k=v k2="a b"`` back into its fields, or None when it is no event line."""
    name, _, rest = message.partition(" ")
    if not name or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        return None
    fields: dict[str, str] = {"event": name}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PAIR.match(rest, pos)
        if m is None:
            return None
        key, value = m.groups()
        if value.startswith('"'):
            value = value[1:-1].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        fields[key] = value
        pos = m.end()
        while pos < len(rest) and rest[pos] == " ":
            pos += 1
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, then the event and its fields (or the
    plain message of a library's line), and the traceback when there is one. The record has
    been redacted by then, message and traceback alike."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
        }
        typed = getattr(record, _FIELDS, None)
        fields = (
            {"event": typed[0], **{k: _json_value(v, ()) for k, v in typed[1].items()}}
            if typed
            else parse_event(message)
        )
        if fields is None:
            out["message"] = message
        else:
            out.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["traceback"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def json_logging() -> bool:
    """Whether chipwatch's log handler writes JSON lines (then nothing else goes to stderr)."""
    return any(
        getattr(h, "_chipwatch", False) and isinstance(h.formatter, JsonFormatter)
        for h in logging.getLogger().handlers
    )


def setup_logging(
    level: int = logging.INFO,
    stream=None,  # noqa: ANN001 - any text stream (default: stderr)
    *,
    json_lines: bool = False,
) -> logging.Handler:
    """Log to stderr with redaction (as text, or one JSON object a line); quiet the HTTP
    libraries unless debugging."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else _Formatter())
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
