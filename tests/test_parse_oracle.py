"""feedparser as the oracle: on every well-formed corpus file, chipwatch's titles, links, guids
and dates agree with feedparser's, except where ``_EXCEPTIONS`` names the file and the field and
says why chipwatch is right (each exception is also checked: the disagreement must still exist,
and chipwatch's value must be the one the document means).

feedparser is a test-only dependency; nothing under ``alerts/`` imports it.
"""

from __future__ import annotations

import calendar
import html
import re
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import feedparser
import pytest

from alerts.parse import parse_feed
from tests.test_parse import CORPUS_TABLE, corpus_body

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc

# Not well-formed XML (chipwatch recovers them; feedparser's answers there are no oracle).
MALFORMED = {
    "dylanharris_malformed_rss.xml",
    "feedparser_bozo_invalid_bytes_with_bom.xml",
    "feedparser_illformed_corrupted_ampersands.xml",
    "feedparser_illformed_incomplete_cdata.xml",
    "feedparser_illformed_undeclared_namespace.xml",
    "reuters_mostread_invalid_rss.xml",
}
WELL_FORMED = [name for name, _, _ in CORPUS_TABLE if name not in MALFORMED]

# Entries feedparser reports that chipwatch rightly drops: no title, no link, no summary.
_EMPTY_ENTRIES = {
    "lecerclepsy_undeclared_iso88591_rss.xml": (
        "its 4th <item> has empty <title>, <link> and <description>: nothing to show or match"
    ),
    "pcmag_feedburner_illegally_nested_rss.xml": (
        "each real item holds an empty self-closing <item />; feedparser counts those as entries"
    ),
}
# (file, field) → why chipwatch's value is right where feedparser's differs.
_EXCEPTIONS = {
    (
        "feedparser_double_encoded_html.xml",
        "title",
    ): "its only item has just a <description>; chipwatch titles it with the description's text "
    "(RSS 0.92 allows such items), feedparser leaves the title empty",
    (
        "feedparser_illformed_chardet_gb2312.xml",
        "title",
    ): "GB2312 bytes with no encoding declared: chipwatch's guess reads Chinese, feedparser "
    "(without chardet) reads them as windows-1252 mojibake",
    (
        "kc0011_gb2312_rss.xml",
        "date",
    ): "'2020/1/10 14:33:00' is 10 January 2020 (no zone: UTC); feedparser's ISO 8601 reader "
    "fills the month in from today's date and returns the 1st of the current month",
    (
        "livemint_news_rss.xml",
        "guid",
    ): "<guid>1559104147038</guid> is an opaque id; feedparser resolves it against the feed's "
    "URL as if it were a relative link, inventing https://feeds.example.org/1559104147038",
    (
        "uol_noticias_rss.xml",
        "date",
    ): "'Seg, 24 Set 2018 19:42:40 -0300' has Portuguese day and month names; chipwatch reads "
    "them, feedparser gives no date at all",
}
# What chipwatch must yield for the first excepted entry of each exception.
_RIGHT = {
    ("feedparser_double_encoded_html.xml", "title"): "…",
    ("feedparser_illformed_chardet_gb2312.xml", "title"): "不归移民漫画系列：专业工作",
    ("kc0011_gb2312_rss.xml", "date"): datetime(2020, 1, 10, 14, 33, tzinfo=UTC),
    ("livemint_news_rss.xml", "guid"): "1559104147038",
    ("uol_noticias_rss.xml", "date"): datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC),
}
_TAG = re.compile(r"<[^>]+>")


def _text(value: str) -> str:
    """feedparser keeps markup in HTML titles; compare text (tags out, entities decoded)."""
    return " ".join(html.unescape(_TAG.sub(" ", value or "")).split())


def _date(entry) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None


def _fields(name: str) -> list[tuple[dict, dict]]:
    """(ours, feedparser's) title/link/guid/date for each entry, paired in document order."""
    url = f"https://feeds.example.org/{name}"
    body = corpus_body(name)
    ours = parse_feed(body, feed=name, url=url)
    assert not ours.salvaged, f"{name} is well-formed: the strict parse must read it"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Without cleaning HTML and resolving links inside it (half feedparser's time): no
        # compared field is HTML content, and a title's tags are taken out by _text anyway.
        entries = feedparser.parse(
            body,
            response_headers={"content-location": url},
            sanitize_html=False,
            resolve_relative_uris=False,
        ).entries
    if name in _EMPTY_ENTRIES:
        entries = [e for e in entries if e.get("title") or e.get("link") or e.get("summary")]
    assert len(entries) == len(ours.items), (name, len(entries), len(ours.items))
    return [
        (
            {"title": item.title, "link": item.link, "guid": item.guid, "date": item.published},
            {
                "title": _text(e.get("title", "")),
                "link": e.get("link", ""),
                "guid": e.get("id") or None,
                "date": _date(e),
            },
        )
        for item, e in zip(ours.items, entries, strict=True)
    ]


def test_the_malformed_list_is_exactly_the_recovered_files():
    recovered = {
        name for name, _, _ in CORPUS_TABLE if parse_feed(corpus_body(name), feed=name).salvaged
    }
    assert recovered == MALFORMED
    assert len(WELL_FORMED) == 73


@pytest.mark.parametrize("name", WELL_FORMED)
def test_well_formed_file_agrees_with_feedparser(name):
    pairs = _fields(name)
    disagree: dict[str, list[tuple[object, object]]] = {}
    for ours, theirs in pairs:
        for field in ("title", "link", "guid", "date"):
            if field == "guid" and theirs["guid"] is None:
                # no id, or an empty one (time_tech_rss.xml): ours is derived from the link
                same = ours["guid"].startswith("sha1:")
            else:
                same = ours[field] == theirs[field]
            if not same:
                disagree.setdefault(field, []).append((ours[field], theirs[field]))
    unexplained = {f: d[:3] for f, d in disagree.items() if (name, f) not in _EXCEPTIONS}
    assert not unexplained, f"{name} disagrees with feedparser: {unexplained}"
    for (file, field), why in _EXCEPTIONS.items():
        if file != name:
            continue
        assert field in disagree, f"stale exception, feedparser now agrees: {why}"
        assert disagree[field][0][0] == _RIGHT[(file, field)], (file, field, disagree[field][0])


def test_empty_entry_exceptions_still_apply():
    for name in _EMPTY_ENTRIES:
        url = f"https://feeds.example.org/{name}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = len(
                feedparser.parse(
                    corpus_body(name), response_headers={"content-location": url}
                ).entries
            )
        assert theirs > len(parse_feed(corpus_body(name), feed=name).items), name


@pytest.mark.system
def test_runtime_code_never_imports_feedparser():
    """feedparser is a dev dependency now: the bot must parse feeds, dates included, without it."""
    code = (
        "import sys\n"
        "sys.modules['feedparser'] = None  # importing it now raises ImportError\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import alerts.cli\n"
        "from alerts.parse import parse_feed\n"
        "doc = (b'<rss version=\"2.0\"><channel><item><title>t</title>'\n"
        "       b'<pubDate>2020/1/10 14:33:00</pubDate></item></channel></rss>')\n"
        "print(parse_feed(doc, feed='f').items[0].published.isoformat())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2020-01-10T14:33:00+00:00"
