"""HTML fragments → plain text: what titles and summaries hold once their markup is gone."""

from __future__ import annotations

import html
import re

_ATTRS = r"""(?:[^>"']+|"[^"]*"|'[^']*'|["'])*+"""  # possessive: no backtracking blow-up
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_SKIPPED = re.compile(
    r"<(script|style|noscript)(?=[\s/>])" + _ATTRS + r">.*?(?:</\1\s*>|\Z)", re.S | re.I
)
_BLOCK_TAG = re.compile(r"</?(?:p|br|div|li|tr|h[1-6]|blockquote)(?=[\s/>])" + _ATTRS + ">", re.I)
_TAG = re.compile(r"</?[a-zA-Z][^\s/>]*" + _ATTRS + r">|<![^>]*>|<\?[^>]*>|</>")
# In titles only tags HTML knows are markup: "Nvidia <H200> approved by <Commerce>" (escaped in
# the feed) is text, as feedparser keeps it.
_HTML_TAGS = (
    "a|abbr|acronym|address|article|aside|audio|b|bdi|bdo|big|blink|blockquote|body|br|"
    "button|center|cite|code|col|colgroup|dd|del|details|dfn|div|dl|dt|em|embed|"
    "figcaption|figure|font|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|"
    "ins|kbd|label|li|link|main|mark|meta|nav|nobr|noscript|object|ol|p|param|picture|"
    "pre|q|rp|rt|ruby|s|samp|script|section|small|source|span|strike|strong|style|sub|"
    "summary|sup|svg|table|tbody|td|tfoot|th|thead|time|title|tr|tt|u|ul|var|video|wbr"
)
_KNOWN_TAG = re.compile(
    rf"</?(?:{_HTML_TAGS})(?=[\s/>])" + _ATTRS + r">|<!--.*?-->|</>", re.I | re.S
)


def _markup_to_text(value: str) -> str:
    """Text of an HTML fragment: comments, scripts, styles and tags dropped (block-level tags
    leave a space), character references decoded. A ``<`` that starts no tag is text."""
    if "<" in value:
        if "<!--" in value:
            value = _COMMENT.sub("", value)
        if "<s" in value or "<n" in value or "<S" in value or "<N" in value:
            value = _SKIPPED.sub("", value)
        value = _BLOCK_TAG.sub(" ", value)
        value = _TAG.sub("", value)
    if "&" in value:
        value = html.unescape(value)
    return value


def _collapse(value: str) -> str:
    return " ".join(value.split())


def html_to_text(value: str, *, limit: int | None = None, title: bool = False) -> str:
    """Plain text from an HTML fragment, with whitespace collapsed and an optional length cap.
    ``title``: only tags HTML knows are markup; anything else in angle brackets is text."""
    if not value:
        return ""
    if title and "<" in value:
        value = _collapse(
            html.unescape(_KNOWN_TAG.sub(" ", value))
            if "&" in value
            else _KNOWN_TAG.sub(" ", value)
        )
        return value if limit is None or len(value) <= limit else value[: limit - 1].rstrip() + "…"
    if "<" in value or "&" in value:
        if limit is not None and len(value) > 4 * limit:
            # Long content (full articles): convert a prefix that ends before a tag, and only
            # go on if that prefix did not already yield more text than the cap keeps (with a
            # margin, in case the cut fell inside an odd attribute value).
            size = 3 * limit
            while size < len(value):
                cut = value.rfind("<", 0, size)
                if cut > 0:
                    text = _collapse(_markup_to_text(value[:cut]))
                    if len(text) > limit + 200:
                        return text[: limit - 1].rstrip() + "…"
                size *= 4
        value = _markup_to_text(value)
    text = _collapse(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


_C1 = re.compile("[\x80-\x9f]")


def fix_c1(value: str) -> str:
    """C1 control characters never belong in text: they are UTF-8 read as Latin-1 (undo it) or
    windows-1252 read as Latin-1 (map them)."""
    if value.isascii() or not _C1.search(value):
        return value
    if max(value) <= "\xff":
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            pass
    return _C1.sub(lambda m: m.group().encode("latin-1").decode("cp1252", "replace"), value)
