"""Feed bodies → ``ParsedFeed``: ``parse_feed`` (``feed``) reads the tree ``tree`` builds from
the text ``decode`` finds; ``text`` turns markup into plain text, ``dates`` reads dates.
``opml`` reads and writes OPML, the feed readers' format for lists of feeds."""

from ..types import FeedItem, ParsedFeed
from .feed import SUMMARY_MAX_CHARS, TITLE_MAX_CHARS, parse_feed, stable_guid
from .text import html_to_text

__all__ = [
    "SUMMARY_MAX_CHARS",
    "TITLE_MAX_CHARS",
    "FeedItem",
    "ParsedFeed",
    "html_to_text",
    "parse_feed",
    "stable_guid",
]
