"""A forgiving tree builder for feed documents that are not well-formed XML.

It reads the text with a tolerant tokenizer and builds an ``lxml`` tree of the same shape a
strict parse would give, so one extraction routine serves both. What it forgives: junk or a
broken XML declaration before the root, unquoted or malformed attributes, undeclared namespace
prefixes (well-known ones such as ``dc:`` or ``content:`` get their usual namespace, unknown ones
are dropped), bare ``&``, HTML entities, unterminated CDATA or comments, missing end tags, stray
end tags, control characters, a truncated document. What it never does: load a DTD, fetch
anything, or expand an entity that the document declares (``&name;`` stays as written), so entity
bombs cost nothing here.
"""

from __future__ import annotations

import html
import re
import time
from itertools import islice

from lxml import etree

XML_NS = "http://www.w3.org/XML/1998/namespace"
WELL_KNOWN_PREFIXES = {
    "atom": "http://www.w3.org/2005/Atom",
    "atom10": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "media": "http://search.yahoo.com/mrss/",
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "slash": "http://purl.org/rss/1.0/modules/slash/",
    "wfw": "http://wellformedweb.org/CommentAPI/",
    "feedburner": "http://rssnamespace.org/feedburner/ext/1.0",
    "sy": "http://purl.org/rss/1.0/modules/syndication/",
    "georss": "http://www.georss.org/georss",
    "xml": XML_NS,
}
MAX_DEPTH = 256  # deeper elements are dropped (their text is kept)
MAX_ATTRIBUTES = 64  # per element; the rest are dropped
SALVAGE_SECONDS = 2.0  # time budget for one document; what was read by then is kept

# Elements whose content is text: a start tag of one of these (or of an item) closes an open one,
# so a missing </title> does not swallow the rest of the item.
_LEAVES = frozenset({"title", "link", "description", "guid", "pubdate", "id", "summary",
                     "published", "updated", "encoded", "date", "comments", "ttl"})
_ITEMS = frozenset({"item", "entry"})
_CONTAINERS = frozenset({"item", "entry", "channel", "feed", "rss", "rdf"})

_MARKUP = re.compile(r"""
    <!--(?P<comment>.*?)(?:-->|\Z)
  | <!\[CDATA\[(?P<cdata>.*?)(?:\]\]>|\Z)
  | <!DOCTYPE(?:[^\[>]*)(?:\[.*?\]\s*)?(?:>|\Z)
  | <!(?!--|\[CDATA\[)[^>]*(?:>|\Z)
  | <\?[^>]*(?:>|\Z)
  | </(?P<end>[^\s<>/!?]+)\s*(?:>|(?=<)|\Z)
  | <(?P<start>[A-Za-z_][^\s<>/"'=]*)(?P<attrs>(?:[^<>"']|"[^"<>]*"|'[^'<>]*'|["'])*+)(?:>|(?=<)|\Z)
""", re.S | re.X | re.I)
_MARKUP_START = re.compile(r"<[A-Za-z_/!?]")
_ATTR = re.compile(r"""([^\s=/"'<>]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_NAME_OK = re.compile(r"[A-Za-z_][\w.-]*\Z")


def clean_text(value: str) -> str:
    """``value`` without the characters XML cannot hold."""
    return _BAD_CHARS.sub("", value) if _BAD_CHARS.search(value) else value


_C1_REF = re.compile(r"&#(?:[xX]0*([89][0-9a-fA-F])|0*(1[2-5][0-9]));")


def _c1_ref(m: re.Match) -> str:
    n = int(m.group(1), 16) if m.group(1) else int(m.group(2))
    return chr(n) if 0x80 <= n <= 0x9F else m.group()


def _unescape(value: str) -> str:
    """Character references decoded as XML would, plus HTML's named entities; a reference to a
    C1 control stays that character (as in XML) so the caller can spot double-encoded text."""
    if "&" in value:
        if "&#" in value:
            value = _C1_REF.sub(_c1_ref, value)
        value = html.unescape(value)
    return clean_text(value)


class _Builder:
    def __init__(self) -> None:
        self.root = etree.Element("salvaged-document")
        # stack of (element, local name lowercased, raw qname lowercased, prefix map)
        self.stack: list[tuple[etree._Element, str, str, dict[str, str]]] = [
            (self.root, "", "", {})]
        self.pending: list[str] = []

    # -- text -------------------------------------------------------------------------------
    def text(self, value: str) -> None:
        if value:
            self.pending.append(value)

    def flush(self) -> None:
        if not self.pending:
            return
        value = "".join(self.pending)
        self.pending.clear()
        el = self.stack[-1][0]
        if len(el):
            last = el[-1]
            last.tail = (last.tail or "") + value
        else:
            el.text = (el.text or "") + value

    # -- tags -------------------------------------------------------------------------------
    def start(self, raw: str, attr_text: str, self_closing: bool) -> None:
        name = raw.lower()
        local = name.rpartition(":")[2]
        if local in _ITEMS:
            self._close_open(_ITEMS, stop=frozenset({"channel", "feed", "rss", "rdf"}))
        if local in _LEAVES or local in _ITEMS:
            self._close_open(_LEAVES, stop=_CONTAINERS)
        if len(self.stack) > MAX_DEPTH:
            return  # ignored: its text stays with the enclosing element
        scope = self.stack[-1][3]
        attrs: list[tuple[str, str]] = []
        for m in islice(_ATTR.finditer(attr_text), MAX_ATTRIBUTES):
            key, value = m.group(1), m.group(2) or ""
            if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
                value = value[1:-1]
            value = _unescape(value)
            low = key.lower()
            if low == "xmlns":
                scope = {**scope, "": value}
            elif low.startswith("xmlns:"):
                scope = {**scope, key[6:]: value}
            else:
                attrs.append((key, value))
        tag = self._qualify(raw, scope, element=True)
        if tag is None:
            return
        parent = self.stack[-1][0]
        try:
            el = etree.Element(tag)
        except ValueError:
            return
        for key, value in attrs:
            qkey = self._qualify(key, scope, element=False)
            if qkey is None:
                continue
            try:
                el.set(qkey, value)
            except ValueError:
                continue
        self.flush()
        parent.append(el)
        if not self_closing:
            self.stack.append((el, local, name, scope))

    def end(self, raw: str) -> None:
        name = raw.lower()
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i][2] == name:
                self._pop_to(i)
                return
        local = name.rpartition(":")[2]  # </rss:item> closing <item>, or the other way round
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i][1] == local:
                self._pop_to(i)
                return

    def _pop_to(self, i: int) -> None:
        self.flush()
        del self.stack[i:]

    def _close_open(self, kinds: frozenset[str], *, stop: frozenset[str]) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            local = self.stack[i][1]
            if local in kinds:
                self._pop_to(i)
                return
            if local in stop:
                return

    @staticmethod
    def _qualify(raw: str, scope: dict[str, str], *, element: bool) -> str | None:
        prefix, _, local = raw.rpartition(":")
        if not _NAME_OK.match(local):
            return None
        if prefix:
            ns = scope.get(prefix) or WELL_KNOWN_PREFIXES.get(prefix.lower())
        else:
            ns = scope.get("") if element else None
        return f"{{{ns}}}{local}" if ns else local


def salvage_tree(text: str, *,
                 budget_seconds: float = SALVAGE_SECONDS) -> tuple[etree._Element, bool]:
    """A tree from anything: a synthetic ``salvaged-document`` element holding whatever elements
    could be read, in document order, and whether the whole text was read (False when the time
    budget ran out first: pathological input keeps what was read until then)."""
    builder = _Builder()
    pos, n = 0, len(text)
    search, match = _MARKUP_START.search, _MARKUP.match
    deadline = time.monotonic() + budget_seconds
    steps = 0
    while pos < n:
        steps += 1
        if not steps & 1023 and time.monotonic() > deadline:
            builder.flush()
            return builder.root, False
        found = search(text, pos)
        if found is None:
            builder.text(_unescape(text[pos:]))
            break
        lt = found.start()
        m = match(text, lt)
        if m is None:  # "</" that starts no end tag: text, up to the next candidate
            nxt = search(text, lt + 1)
            end = nxt.start() if nxt else n
            builder.text(_unescape(text[pos:end]))
            pos = end
            continue
        if lt > pos:
            builder.text(_unescape(text[pos:lt]))
        pos = m.end()
        if m.group("start"):
            attrs = m.group("attrs") or ""
            closing = attrs.rstrip().endswith("/")
            builder.start(m.group("start"), attrs.rstrip().rstrip("/") if closing else attrs,
                          closing)
        elif m.group("end"):
            builder.end(m.group("end"))
        elif m.group("cdata") is not None:
            builder.text(clean_text(m.group("cdata")))
        # comments, declarations, DOCTYPE and processing instructions are dropped
    builder.flush()
    return builder.root, True
