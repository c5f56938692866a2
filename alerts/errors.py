"""The one exception tree of chipwatch.

ChipwatchError
├── ConfigError        invalid config file: names file, line and key (exit status 2)
├── ParseError         one feed body could not be parsed (recorded against that feed)
├── StoreError         the database is unusable (wrong schema version, corrupt file)
├── OpmlError          an OPML file to import is not OPML (the message says why)
└── DeliveryError      a destination did not accept an alert
    ├── RetryLater     transient: rate limit, network, 5xx; ``retry_after`` seconds if known
    ├── Rejected       permanent for this message (malformed, 400): recorded, not retried
    └── Unavailable    the destination itself is unusable (401/403, chat gone): pause it
        └── RecipientGone  a subscriber's private chat cannot be written to (blocked the
                           bot, account deleted): suspend that subscription, never pause

A feed that cannot be fetched is not an exception: it is data (``FetchResult.status``),
recorded against that feed.
"""

from __future__ import annotations


class ChipwatchError(Exception):
    """Base of every error chipwatch raises on purpose."""


class ConfigError(ChipwatchError):
    """A config file is invalid; ``str()`` reads ``file:line: key: message``."""

    def __init__(self, message: str, *, file: str, line: int | None = None, key: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class OpmlError(ChipwatchError):
    """An OPML file to import is not OPML we can read; the message says why."""


class ParseError(ChipwatchError):
    """A feed body yielded no feed at all."""


class StoreError(ChipwatchError):
    """The database cannot be used."""


class DeliveryError(ChipwatchError):
    """A destination did not accept an alert."""


class RetryLater(DeliveryError):
    """Transient failure; try again after ``retry_after`` seconds (None: use backoff)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message)


class Rejected(DeliveryError):
    """The destination refused this message for good (e.g. HTTP 400)."""


class Unavailable(DeliveryError):
    """The destination cannot take any message now (401/403/chat not found): pause it."""


class RecipientGone(Unavailable):
    """A subscriber's private chat cannot take messages: they blocked the bot, deleted their
    account, or the chat is gone. Their subscriptions are suspended; nothing else is paused."""
