"""Turn a fetched feed body into normalised ``FeedItem``s.

``parse_feed`` accepts RSS 0.9x/1.0/2.0 and Atom, in any encoding feedparser can detect. Titles and
summaries come out as plain text: entities decoded, tags removed, whitespace collapsed.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser

import feedparser

from .errors import ParseError

SUMMARY_MAX_CHARS = 2000
_WS_RE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedItem:
    """One entry of one feed, as plain text."""

    feed: str
    guid: str  # the feed's own id, or a stable one derived from link/title
    link: str
    title: str
    summary: str
    published: datetime | None  # UTC; None when the feed gave no usable date


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    items: tuple[FeedItem, ...]
    warning: str | None = None  # set when the document was not well-formed but still yielded items


class _TextExtractor(HTMLParser):
    """Collects text content, dropping tags, scripts and styles."""

    _SKIP = {"script", "style", "noscript"}
    _BREAK = {"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):  # noqa: ANN001 (HTMLParser's signature)
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.parts.append(" ")

    def handle_endtag(self, tag):  # noqa: ANN001
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.parts.append(" ")

    def handle_data(self, data):  # noqa: ANN001
        if not self._skipping:
            self.parts.append(data)


def html_to_text(value: str, *, limit: int | None = None) -> str:
    """Plain text from an HTML fragment, with whitespace collapsed and an optional length cap."""
    if not value:
        return ""
    if "<" in value or "&" in value:
        extractor = _TextExtractor()
        try:
            extractor.feed(value)
            extractor.close()
            value = "".join(extractor.parts)
        except Exception:  # HTMLParser can choke on pathological markup; fall back to a regex
            value = html.unescape(re.sub(r"<[^>]*>", " ", value))
    text = _WS_RE.sub(" ", value).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def stable_guid(*, link: str, title: str) -> str:
    """An identity for items without a guid: a hash of the link, else of the title."""
    basis = link.strip() or title.strip().casefold()
    return "sha1:" + hashlib.sha1(basis.encode("utf-8")).hexdigest()


def _published(entry: dict) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def parse_feed(body: bytes, *, feed: str, url: str = "", content_type: str = "") -> ParsedFeed:
    """Parse one feed document; ``url`` resolves relative links, ``content_type`` (the HTTP
    header) may name the charset. Raises ParseError if the body is no feed at all."""
    headers = {"content-location": url} if url else {}
    if content_type:
        headers["content-type"] = content_type
    try:
        doc = feedparser.parse(body, response_headers=headers, sanitize_html=False,
                               resolve_relative_uris=True)
    except Exception as exc:  # feedparser is defensive, but a parser bug must stay this feed's problem
        raise ParseError(f"parser failed: {type(exc).__name__}: {exc}") from exc
    if not doc.entries and not doc.get("version"):
        reason = doc.get("bozo_exception") or "no RSS/Atom/RDF feed found"
        raise ParseError(f"not a feed: {reason}")
    items = []
    for entry in doc.entries:
        title = html_to_text(entry.get("title", ""))
        link = (entry.get("link") or "").strip()
        summary = html_to_text(entry.get("summary", "") or entry.get("description", ""),
                               limit=SUMMARY_MAX_CHARS)
        if not title and not link:
            continue
        guid = (entry.get("id") or "").strip() or stable_guid(link=link, title=title)
        items.append(FeedItem(feed=feed, guid=guid, link=link, title=title or link,
                              summary=summary, published=_published(entry)))
    warning = None
    if doc.get("bozo") and doc.get("bozo_exception") is not None:
        warning = f"{type(doc.bozo_exception).__name__}: {doc.bozo_exception}"
    return ParsedFeed(items=tuple(items), warning=warning)
