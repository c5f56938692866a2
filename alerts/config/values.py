"""The forms of single values a person types: a database, a listen address, a URL, a chat id,
a duration.

Each function takes the text and returns the value, or raises ValueError with the reason; the
loader turns that into an error at the key's file and line (or names the environment variable),
so a rule for a value is written once, whichever place the value comes from.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import re2

from ..logs import redact_credentials

# What libpq takes, exactly: it reads anything else (even ``PostgreSQL://``) as a keyword string.
POSTGRES_SCHEMES = ("postgresql", "postgres")
_POSTGRES_PREFIXES = tuple(f"{scheme}://" for scheme in POSTGRES_SCHEMES)


def is_postgres_url(value: object) -> bool:
    """Whether a ``database`` value names a PostgreSQL server (else it is a SQLite file)."""
    return isinstance(value, str) and value.startswith(_POSTGRES_PREFIXES)


def database(raw: str, *, base: Path | None = None) -> Path | str:
    """A SQLite path (relative to ``base``, the config's directory, when given) or a PostgreSQL
    URL, checked for shape only: whether the server answers is for the store to say."""
    scheme, sep, _ = raw.partition("://")
    if not sep:
        path = Path(raw).expanduser()
        return base / path if base is not None and not path.is_absolute() else path
    if not is_postgres_url(raw):
        raise ValueError(f"must be a SQLite file or a postgresql:// URL, got a {scheme}:// URL")
    try:
        port = urlsplit(raw).port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"bad port in {redact_credentials(raw)}")
    return raw


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"``, ``"[::1]:9108"`` or ``":9108"`` (every interface) into (host,
    port); ValueError with a reason when it is none of those."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f'must be host:port (e.g. 127.0.0.1:9108), or "" for off; got {value!r}')
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address goes in brackets ([::1]:9108), got {value!r}")
    if any(c.isspace() or c in "/[]" for c in host):
        raise ValueError(f"not a host name or address: {host!r}")
    return host or "0.0.0.0", int(port)


def listen(raw: str) -> str:
    """An ``ops.listen`` value: an address ``split_listen`` takes, or ``""`` (off)."""
    if raw:
        split_listen(raw)
    return raw


PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def proxy_url(raw: str) -> str:
    """A proxy: ``scheme://[user:password@]host:port`` with one of ``PROXY_SCHEMES``."""
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a proxy URL ({exc})") from None
    if parts.scheme.lower() not in PROXY_SCHEMES:
        raise ValueError(
            "a proxy URL starts with http://, https://, socks5:// or socks5h://, got "
            + repr(redact_credentials(raw))
        )
    if not parts.hostname or port is None:
        raise ValueError(f"a proxy URL names a host and a port, got {redact_credentials(raw)!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("a proxy URL is scheme://[user:password@]host:port, nothing after")
    return raw


# A host name or IPv4 address (letters of any script: an IDN), or an IPv6 address in brackets.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[\w-]+(\.[\w-]+)*\.?)$")


def http_url(raw: str) -> str:
    """An http(s) URL a request can be made to: a host, a port in range, no spaces."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {raw!r}")
    if any(c.isspace() for c in raw):
        raise ValueError(f"must not contain spaces (write %20 in a path), got {raw!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"bad port (must be 1 to 65535) in {raw!r}") from None
    host = parts.netloc.rpartition("@")[2]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not _HOST.match(host) or parts.port == 0:
        raise ValueError(f"not a valid host{' or port' if parts.port == 0 else ''} in {raw!r}")
    return raw


def host(raw: str) -> str:
    """A host, with a port if need be: ``hooks.slack.com``, ``127.0.0.1:8080``."""
    try:
        http_url(f"http://{raw}/")
    except ValueError:
        raise ValueError(
            f"must be a host name or address, with :port if need be, got {raw!r}"
        ) from None
    if any(c in raw for c in "/?#@"):
        raise ValueError(f"a host only, no path, got {raw!r}")
    return raw.lower()


def same_url(url: str) -> str:
    """A key under which two spellings of one URL are equal (scheme and host in any case, a
    default port, a trailing slash), to find a feed listed twice."""
    parts = urlsplit(url)
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = (parts.hostname or "") + (f":{port}" if port and port != default else "")
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{netloc}{path}?{parts.query}"


MAX_TERM_CHARS = 60
# Letters and digits of any script, spaces and the punctuation real names use.
_TERM_OK = re.compile(r"^[\w][\w .\-'’&+/()]*$")
# "H20 - H200": YAML folds an over-indented "- H200" line into the item above it.
_LIST_SHAPE = re.compile(r"(^|\s)-(\s|$)")


def term(raw: str) -> str:
    """A watchlist term, alias, context or exclude word: what ``config.yaml`` and ``/watch``
    accept alike."""
    if "\n" in raw or "\r" in raw:
        raise ValueError("a term is one line; this one has a line break")
    if _LIST_SHAPE.search(raw):
        raise ValueError(
            f"{raw!r} looks like two list items run together (a '- ' line indented deeper "
            "than the one above it continues it); give each term its own '- ' line at the "
            "same indent"
        )
    if not any(c.isalnum() for c in raw):
        raise ValueError(f"a term needs a letter or a digit (it would match nothing), got {raw!r}")
    if len(raw) > MAX_TERM_CHARS:
        raise ValueError(f"a term is at most {MAX_TERM_CHARS} characters")
    if not _TERM_OK.match(raw):
        raise ValueError(f"a term is letters, digits, spaces and . - ' & + / ( ) only, got {raw!r}")
    return raw


def callback_url(raw: str) -> str:
    """A WebSub callback: the public http(s) URL the hub calls, without a query or fragment
    (each subscription's own path goes below it)."""
    http_url(raw)
    parts = urlsplit(raw)
    if parts.query or parts.fragment:
        raise ValueError(f"a callback URL has no ?query or #fragment, got {raw!r}")
    return raw.rstrip("/")


# A channel's name ("#chip-news"; Slack allows letters of any script, lowercase) or its id.
_SLACK_CHANNEL = re.compile(r"^(#[^\s#,.A-Z]{1,80}|[CG][A-Z0-9]{6,})$")


def slack_channel(raw: str) -> str:
    return _shaped(
        _SLACK_CHANNEL,
        raw,
        'must be "#channel-name" (lowercase, no spaces or periods) or a channel id like '
        f"C0123456789, got {raw!r}",
    )


def telegram_chat_id(raw: str) -> str:
    if not (raw.startswith("@") or re.fullmatch(r"-?\d+", raw)):
        raise ValueError("must be @channelname or a numeric chat id")
    return raw


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(min|m|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(raw: str) -> timedelta:
    """``30m`` (or ``30min``), ``48h``, ``7d``, ``2w``, ``1.5h``: a number and a unit."""
    found = _DURATION.fullmatch(raw.strip())
    if not found:
        raise ValueError(f"expected a duration such as 30m, 48h, 7d or 2w, got {raw!r}")
    try:
        return timedelta(seconds=float(found[1]) * _UNIT_SECONDS[found[2].lower()])
    except OverflowError:
        raise ValueError(f"{raw.strip()!r} is longer than any duration can be") from None


def term_regex(pattern: str, *, case_sensitive: bool) -> re2._Regexp:
    """A regex term's pattern, compiled by RE2: linear time in the text, so no pattern and no
    headline can stall a cycle. ValueError names what is wrong with it."""
    options = re2.Options()
    options.log_errors = False  # RE2 would also print the error to stderr
    options.case_sensitive = case_sensitive
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"invalid regular expression (RE2 syntax): {detail}") from None
    if compiled.search("") is not None:
        raise ValueError("the pattern matches an empty text, so it would match every headline")
    return compiled


def _shaped(pattern: re.Pattern[str], raw: str, problem: str) -> str:
    """``raw`` when ``pattern`` matches it, else ValueError(``problem``)."""
    if not pattern.match(raw):
        raise ValueError(problem)
    return raw


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def destination_name(raw: str) -> str:
    """A destination's name: it labels the outbox, metrics and logs, so it stays plain."""
    problem = f"must be letters, digits, - and _ (at most 40, no spaces or colons), got {raw!r}"
    return _shaped(_NAME, raw, problem)


def tag(raw: str) -> str:
    return _shaped(_TAG, raw, f"a feed tag is lowercase letters, digits, - and _, got {raw!r}")


def env_name(raw: str) -> str:
    """The name of an environment variable (the secret itself never goes in the file)."""
    problem = "must name an environment variable (letters, digits and _), not hold the secret"
    return _shaped(_ENV, raw, problem)


_CLOCK = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def clock_time(raw: str) -> str:
    """A time of day, ``HH:MM`` (24-hour clock), as ``08:00``."""
    m = _CLOCK.match(raw.strip())
    if not m:
        raise ValueError(f"must be a time of day as HH:MM (24-hour clock), got {raw!r}")
    return f"{int(m[1]):02d}:{m[2]}"


def time_zone(raw: str) -> str:
    """An IANA time zone name (``Europe/Berlin``, ``UTC``) that zoneinfo knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {raw!r} (an IANA name such as Europe/Berlin or UTC)"
        ) from None
    return raw


def weekday(raw: str) -> str:
    """A day of the week, as its first three letters (``mon`` … ``sun``; ``Monday`` too)."""
    text = raw.strip().lower()
    day = text[:3]
    if day not in WEEKDAYS or text not in (day, _FULL_DAYS[WEEKDAYS.index(day)]):
        raise ValueError(f"must be a day of the week ({', '.join(WEEKDAYS)}), got {raw!r}")
    return day


_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
