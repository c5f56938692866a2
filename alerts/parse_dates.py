"""Feed dates → aware UTC datetimes.

RFC 822 (RSS) and ISO 8601 / W3C-DTF (Atom, dc:date) are parsed here directly, leniently: any
case for month names, a wrong weekday ignored, two-digit years, US zone names, a missing zone read
as UTC. Anything else goes to feedparser's collection of date parsers (asctime, Korean, Greek,
Hungarian, Perforce, ...). A date that cannot be read is None, never an exception.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_tz

try:  # feedparser stays installed for its date zoo; without it only RFC 822 and ISO 8601 work
    from feedparser.datetimes import _parse_date as _feedparser_date
except ImportError:  # pragma: no cover
    _feedparser_date = None

_ISO_START = re.compile(r"\d{4}-?\d\d")
_SPACES = re.compile(r"\s+")
_MIN_YEAR, _MAX_YEAR = 1900, 2200


def _checked(dt: datetime) -> datetime | None:
    return dt if _MIN_YEAR <= dt.year <= _MAX_YEAR else None


def _iso(value: str) -> datetime | None:
    text = value.replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if " " in text and "T" not in text:
        text = text.replace(" ", "T", 1)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _rfc822(value: str) -> datetime | None:
    parts = parsedate_tz(value)
    if parts is None:
        return None
    try:
        dt = datetime(*parts[:6], tzinfo=timezone.utc)
    except (ValueError, OverflowError):
        return None
    return dt - timedelta(seconds=parts[9] or 0)


def parse_date(value: str | None) -> datetime | None:
    """The instant ``value`` names, in UTC; None if it names none we can read."""
    if not value:
        return None
    text = _SPACES.sub(" ", value).strip()
    if not text:
        return None
    dt = None
    if _ISO_START.match(text):
        dt = _iso(text)
    if dt is None and any(c.isalpha() for c in text[:12]):
        try:
            dt = _rfc822(text)
        except Exception:  # email.utils is lenient but not exception-free on junk  # noqa: BLE001
            dt = None
    if dt is None and _feedparser_date is not None:
        try:
            parsed = _feedparser_date(text)
        except Exception:  # noqa: BLE001 (a third-party parser must not break the feed)
            parsed = None
        if parsed:
            try:
                dt = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
            except (OverflowError, ValueError, OSError):
                dt = None
    return _checked(dt) if dt is not None else None
