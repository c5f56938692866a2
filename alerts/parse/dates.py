"""Feed dates → aware UTC datetimes.

RFC 822 (RSS) and ISO 8601 / W3C-DTF (Atom, dc:date, down to a bare year) are parsed leniently:
any case for month names, localised month names, a wrong weekday ignored, two-digit years, common
zone names, a missing zone read as UTC. ``email.utils`` reads the rest of RFC 822's forms and
asctime; ``2020/1/10 14:16:00`` (year/month/day, seen in a Chinese feed) is read too. A date
that cannot be read is None, never an exception.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_tz

_ISO_START = re.compile(r"\d{4}(?:-?\d\d|\Z)")
_W3C_REDUCED = re.compile(r"(\d{4})(?:-(\d\d))?\Z")  # W3C-DTF's "2026" and "2026-01"
_SLASHED = re.compile(
    r"(\d{4})/(\d{1,2})/(\d{1,2})(?:[\sT]+(\d{1,2}):(\d\d)(?::(\d\d))?)?"
    r"\s*(Z|[+-]\d\d:?\d\d)?\Z"
)
# The usual RSS form, "Wed, 17 Jan 2018 15:50:00 +0100" (weekday optional and unchecked, month
# in any case, seconds optional, zone numeric or named); anything else goes to email.utils.
_RFC822 = re.compile(
    r"(?:[^\W\d_]{2,12}\.?,?\s*)?(\d{1,2})\.?[\s-]+([^\W\d_]{3,10})\.?[\s-]+(\d{4}|\d\d)\s+"
    r"(\d{1,2}):(\d\d)(?::(\d\d)(?:\.\d+)?)?\s*(?:([+-])(\d\d):?(\d\d)|([A-Za-z]{1,5}))?\s*\Z"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# Feeds in other languages localise RFC 822 month names ("Seg, 24 Set 2018"): Portuguese,
# Spanish, French, German, Italian and Dutch forms, by their first three letters (or four).
_MONTHS.update(
    {
        "fev": 2,
        "abr": 4,
        "mai": 5,
        "ago": 8,
        "set": 9,
        "out": 10,
        "dez": 12,  # pt (and de, it)
        "ene": 1,
        "dic": 12,  # es
        "janv": 1,
        "fév": 2,
        "févr": 2,
        "avr": 4,
        "juin": 6,
        "juil": 7,
        "aoû": 8,
        "aout": 8,
        "août": 8,
        "déc": 12,  # fr
        "mär": 3,
        "mae": 3,
        "okt": 10,  # de
        "gen": 1,
        "mag": 5,
        "giu": 6,
        "lug": 7,
        "ott": 10,  # it
        "mrt": 3,
        "mei": 5,  # nl
    }
)


def _month(name: str) -> int | None:
    name = name.lower()
    return _MONTHS.get(name[:4]) or _MONTHS.get(name[:3])


_ZONES = {
    "gmt": 0,
    "ut": 0,
    "utc": 0,
    "z": 0,
    "est": -5,
    "edt": -4,
    "cst": -6,
    "cdt": -5,
    "mst": -7,
    "mdt": -6,
    "pst": -8,
    "pdt": -7,
    "bst": 1,
    "cet": 1,
    "cest": 2,
    "eet": 2,
    "eest": 3,
    "jst": 9,
    "ist": 5.5,
    "aest": 10,
    "aedt": 11,
    "msk": 3,
}
_MIN_YEAR, _MAX_YEAR = 1900, 2200


def _checked(dt: datetime) -> datetime | None:
    if not _MIN_YEAR <= dt.year <= _MAX_YEAR:
        return None
    return dt.replace(microsecond=0) if dt.microsecond else dt  # whole seconds, as feeds mean


def _iso(value: str) -> datetime | None:
    text = value.replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if " " in text and "T" not in text:
        text = text.replace(" ", "T", 1)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        m = _W3C_REDUCED.match(text)
        if m is None:
            return None
        try:
            dt = datetime(int(m.group(1)), int(m.group(2) or 1), 1)
        except ValueError:
            return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _rfc822_fast(value: str) -> datetime | None:
    m = _RFC822.match(value)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, zh, zm, zname = m.groups()
    month = _month(mon)
    if month is None:
        return None
    y = int(year)
    if len(year) == 2:
        y += 2000 if y < 50 else 1900
    if sign:
        offset = (int(zh) * 60 + int(zm)) * (-1 if sign == "-" else 1)
    elif zname:
        hours = _ZONES.get(zname.lower())
        if hours is None:
            return None  # an unknown zone name: let email.utils decide
        offset = int(hours * 60)
    else:
        offset = 0
    try:
        dt = datetime(y, month, int(day), int(hh), int(mm), int(ss or 0), tzinfo=timezone.utc)
    except ValueError:
        return None
    return dt - timedelta(minutes=offset) if offset else dt


def _slashed(value: str) -> datetime | None:
    """``2020/1/10 14:16:00`` (zone optional): rewritten as ISO 8601 and read as such."""
    m = _SLASHED.match(value)
    if m is None:
        return None
    year, month, day, hh, mm, ss, zone = m.groups()
    return _iso(
        f"{year}-{int(month):02d}-{int(day):02d}T{int(hh or 0):02d}:{mm or '00'}:"
        f"{ss or '00'}{zone or ''}"
    )


def parse_date(value: str | None) -> datetime | None:
    """The instant ``value`` names, in UTC; None if it names none we can read."""
    if not value:
        return None
    text = " ".join(value.split())
    if not text:
        return None
    dt = None
    if text[0].isdigit() and _ISO_START.match(text):
        dt = _iso(text)
    if dt is None:
        dt = _rfc822_fast(text)
    if dt is None and any(c.isalpha() for c in text[:12]):
        try:
            parts = parsedate_tz(text)
        except Exception:  # email.utils is lenient but not exception-free on junk  # noqa: BLE001
            parts = None
        if parts is not None:
            try:
                dt = datetime(*parts[:6], tzinfo=timezone.utc) - timedelta(seconds=parts[9] or 0)
            except (ValueError, OverflowError):
                dt = None
    if dt is None and text[0].isdigit():
        dt = _slashed(text)
    return _checked(dt) if dt is not None else None
