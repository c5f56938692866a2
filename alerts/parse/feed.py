"""Turn a fetched feed body into normalised ``FeedItem``s.

``parse_feed`` accepts RSS 0.9x/1.0/2.0, RDF and Atom (0.3 and 1.0), in any encoding, well-formed
or not. Titles and summaries come out as plain text: entities decoded, tags removed, whitespace
collapsed; links are resolved against xml:base and the feed's URL; dates are UTC.

The body is decoded (``decode``), its prolog tidied (junk before the XML declaration, control
characters) and read into an ``lxml`` tree (``tree``): strictly when it is well-formed, else by
libxml2's XML recover mode, else by its HTML parser when that finds more entries. One extraction
routine reads every tree; a recovered one sets ``salvaged`` and a ``warning``.

An entry is kept when it has a title, a link or a summary (an RSS 0.92 item may have only a
description: its title is then taken from the summary). Entities a document declares itself are
never expanded (``&name;`` stays, HTML's named entities are decoded); a document whose entities
would blow up (billion laughs, quadratic blow-up) raises ``ParseError("refused: ...")``, as does
a body with no RSS/RDF/Atom root at all (``"not a feed: ..."``). A gzip body is inflated first.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from datetime import datetime
from urllib.parse import urljoin

from lxml import etree

from ..errors import ParseError
from ..types import FeedItem, ParsedFeed
from . import tree
from .dates import parse_date
from .decode import decode_body
from .text import fix_c1, html_to_text
from .tree import XML_NS

SUMMARY_MAX_CHARS = 2000
TITLE_MAX_CHARS = 1000  # a "title" longer than this is broken markup; keep its start
MAX_GUNZIPPED_BYTES = 64 * 1024 * 1024  # a gzip body that inflates past this is refused


def stable_guid(*, link: str, title: str) -> str:
    """An identity for items without a guid: a hash of the link, else of the title."""
    basis = link.strip() or title.strip().casefold()
    return "sha1:" + hashlib.sha1(basis.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Namespaces

ATOM10 = "http://www.w3.org/2005/Atom"
ATOM03 = "http://purl.org/atom/ns#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XHTML = "http://www.w3.org/1999/xhtml"
_EXTENSIONS = {  # namespace → the key prefix its children are filed under
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/dc/terms/": "dcterms",
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://search.yahoo.com/mrss/": "media",
    "http://search.yahoo.com/mrss": "media",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "http://www.itunes.com/DTDs/Podcast-1.0.dtd": "itunes",
    "http://rssnamespace.org/feedburner/ext/1.0": "feedburner",
    RDF: "rdf",
    XHTML: "xhtml",
}
_XML_BASE = f"{{{XML_NS}}}base"
_FEED_ROOTS = {"rss", "rdf", "feed"}
_FEED_HINT = re.compile(rb"<(?:[\w.-]+:)?(?:rss|rdf|feed|channel|item|entry)[\s>/]", re.I)
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))
_PROLOG = re.compile(rb"<\?xml(?=[\s?])[^>]*>")
_ELEMENT_START = re.compile(rb"<[A-Za-z_]")
_ENTITY_REFUSALS = ("amplification", "entity loop", "detected an entity reference loop")
_ENTRY_TAG = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s>]", re.I)


def _split(tag: str) -> tuple[str | None, str]:
    if tag[0] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def _local_name(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2].rpartition(":")[2].lower()


def _fields(
    el: etree._Element, core: frozenset[str | None], keys: dict[str, str]
) -> dict[str, list[etree._Element]]:
    """An item's children filed by key: ``title`` for the core namespace(s), ``dc:date`` for a
    known extension, ``?title`` for an unknown namespace. ``keys`` caches tag → key."""
    out: dict[str, list[etree._Element]] = {}
    for child in el:
        tag = child.tag
        key = keys.get(tag)
        if key is None:
            if not isinstance(tag, str):
                continue
            ns, local = _split(tag)
            local = local.lower()
            if ns in core:
                key = local
            else:
                prefix = "atom" if ns in (ATOM10, ATOM03) else _EXTENSIONS.get(ns) if ns else None
                key = f"{prefix}:{local}" if prefix else "?" + local
            keys[tag] = key
        if key in out:
            out[key].append(child)
        else:
            out[key] = [child]
    return out


def _first(f: dict[str, list[etree._Element]], *keys: str) -> etree._Element | None:
    for key in keys:
        els = f.get(key)
        if els:
            return els[0]
    return None


def _raw(el: etree._Element | None) -> str:
    """The content of ``el`` as markup: its text, with child elements serialised."""
    if el is None:
        return ""
    if not len(el):
        return el.text or ""
    parts = [el.text or ""]
    for child in el:
        parts.append(etree.tostring(child, encoding="unicode", with_tail=True))
    return "".join(parts)


def _text(el: etree._Element | None, *, limit: int | None = None, title: bool = False) -> str:
    return html_to_text(fix_c1(_raw(el)), limit=limit, title=title) if el is not None else ""


def _base(el: etree._Element, url: str) -> str:
    bases = []
    node = el
    while node is not None:
        b = node.get(_XML_BASE)
        if b:
            bases.append(b.strip())
        node = node.getparent()
    base = url
    for b in reversed(bases):
        base = urljoin(base, b) if base else b
    return base


def _resolve(value: str, el: etree._Element, url: str) -> str:
    value = "".join(value.split()) if value else ""
    if not value or value.startswith(("http://", "https://")):
        return value
    base = _base(el, url)
    if not base:
        return value
    try:
        return urljoin(base, value)
    except ValueError:
        return value


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _date(f: dict[str, list[etree._Element]], keys: tuple[str, ...]) -> datetime | None:
    for key in keys:
        for el in f.get(key, ()):
            dt = parse_date(el.text if not len(el) else "".join(el.itertext()))
            if dt is not None:
                return dt
    return None


_RSS_DATES = (
    "pubdate",
    "published",
    "dcterms:issued",
    "atom:published",
    "dc:date",
    "updated",
    "dcterms:modified",
    "atom:updated",
    "dcterms:created",
    "created",
    "?pubdate",
    "?date",
)
_ATOM_DATES = (
    "published",
    "issued",
    "updated",
    "modified",
    "created",
    "dc:date",
    "dcterms:issued",
    "dcterms:modified",
)


def _rss_entry(item, core, keys, url):  # noqa: ANN001, ANN202
    f = _fields(item, core, keys)
    title = _text(_first(f, "title", "dc:title", "?title"), limit=TITLE_MAX_CHARS, title=True)
    link_el = _first(f, "link", "?link")
    link = ""
    if link_el is not None:
        link = "".join(link_el.itertext()) if len(link_el) else (link_el.text or "")
        link = link.strip() or (link_el.get("href") or "").strip()
        link = _resolve(link, link_el, url) if link else ""
    if not link:
        for el in f.get("atom:link", ()):
            if (el.get("rel") or "alternate").strip().lower() == "alternate" and el.get("href"):
                link = _resolve(el.get("href").strip(), el, url)
                break
    guid_el = _first(f, "guid", "?guid")
    guid = (guid_el.text or "").strip() if guid_el is not None else ""
    if not guid:
        guid = (item.get(f"{{{RDF}}}about") or item.get("about") or "").strip()
    if (
        not link
        and guid_el is not None
        and guid
        and _is_url(guid)
        and (
            guid_el.get("isPermaLink")
            or guid_el.get("ispermalink")  # HTML lower-cases
            or "true"
        )
        .strip()
        .lower()
        != "false"
    ):
        link = guid
    summary_el = _first(
        f,
        "description",
        "dc:description",
        "itunes:summary",
        "atom:summary",
        "summary",
        "content:encoded",
        "encoded",
        "atom:content",
        "media:description",
        "?description",
    )
    summary = _text(summary_el, limit=SUMMARY_MAX_CHARS)
    source = _text(_first(f, "source"), limit=200)
    return title, link, guid, summary, _date(f, _RSS_DATES), source


def _atom_entry(entry, core, keys, url):  # noqa: ANN001, ANN202
    f = _fields(entry, core, keys)
    title = _text(_first(f, "title", "dc:title"), limit=TITLE_MAX_CHARS, title=True)
    link = ""
    first_href = None
    for el in f.get("link", ()):
        href = (el.get("href") or "").strip() or (el.text or "").strip()
        if not href:
            continue
        rel = (el.get("rel") or "alternate").strip().lower()
        if rel == "alternate":
            link = _resolve(href, el, url)
            break
        if first_href is None and rel not in ("self", "edit", "replies", "enclosure", "hub"):
            first_href = (href, el)
    if not link and first_href is not None:
        link = _resolve(*first_href, url)
    id_el = _first(f, "id", "guid")
    guid = (id_el.text or "").strip() if id_el is not None else ""
    if not link and _is_url(guid):
        link = guid
    summary_el = _first(f, "summary", "dc:description")
    if summary_el is None or not _raw(summary_el).strip():
        for el in f.get("content", ()):
            kind = (el.get("type") or "text").strip().lower()
            if el.get("src") is None and (
                kind in ("text", "html", "xhtml") or "xml" in kind or kind.startswith("text/")
            ):
                summary_el = el
                break
    if summary_el is None:
        summary_el = _first(f, "media:description")
        if summary_el is None:
            group = _first(f, "media:group")
            if group is not None:
                summary_el = next(
                    (
                        c
                        for c in group
                        if isinstance(c.tag, str) and _local_name(c) == "description"
                    ),
                    None,
                )
    summary = _text(summary_el, limit=SUMMARY_MAX_CHARS)
    source_el = _first(f, "source")
    source = ""
    if source_el is not None:  # Atom's <source> is the original feed: its title names it
        name = next((c for c in source_el if _local_name(c) == "title"), None)
        source = _text(name, limit=200)
    return title, link, guid, summary, _date(f, _ATOM_DATES), source


def _find_feed_root(root: etree._Element, *, salvaged: bool) -> tuple[etree._Element, str] | None:
    """The feed element and its kind ("rss", "rdf" or "atom"); None when there is none."""
    kinds = {"rss": "rss", "rdf": "rdf", "feed": "atom", "channel": "rss"}
    name = _local_name(root)
    if name in _FEED_ROOTS:
        return root, kinds[name]
    channel = None
    for el in root.iter(etree.Element):
        name = _local_name(el)
        if name in _FEED_ROOTS:
            return el, kinds[name]
        if name == "channel" and channel is None:
            channel = el
    if channel is not None:
        return channel, "rss"
    if salvaged:  # the root's start tag was lost (truncated, mangled): go by the entries
        for el in root.iter("{*}item", "{*}entry"):
            return root, "atom" if _local_name(el) == "entry" else "rss"
    return None


def _ttl(root: etree._Element) -> int | None:
    for el in root.iter("{*}ttl", "ttl"):
        text = (el.text or "").strip()
        if text.isdigit() and 0 < int(text) <= 525_600:
            return int(text)
        return None
    return None


def _extract(
    root: etree._Element, kind: str, *, feed: str, url: str
) -> tuple[list[FeedItem], int | None]:
    ns, _ = _split(root.tag)
    if kind == "atom":
        core = frozenset({None, ATOM10, ATOM03, ns})
        entries = root.iter("{*}entry")
        read = _atom_entry
        ttl = None
    else:
        # the root's own namespace (RSS 1.0, 0.90, userland) is core; so are unknown ones that
        # items use as their default namespace
        core = frozenset(
            {
                None,
                ns,
                "http://purl.org/rss/1.0/",
                "http://my.netscape.com/rdf/simple/0.9/",
                "http://channel.netscape.com/rdf/simple/0.9/",
                "http://backend.userland.com/rss2",
                "http://backend.userland.com/rss",
            }
        )
        entries = root.iter("{*}item")
        read = _rss_entry
        ttl = _ttl(root)
    items: list[FeedItem] = []
    keys: dict[str, str] = {}
    for entry in entries:
        if kind == "rss" or kind == "rdf":
            ens, _ = _split(entry.tag)
            if ens is not None and ens not in core and ens in _EXTENSIONS:
                continue  # e.g. a <media:item>, not a feed item
            if ens is not None and ens not in core:
                core = core | {ens}
                keys.clear()
        title, link, guid, summary, published, source = read(entry, core, keys, url)
        if not title and not link:
            if not summary:
                continue  # nothing to show or match: an empty or broken entry
            title = summary if len(summary) <= 120 else summary[:119].rstrip() + "…"
            guid = guid or stable_guid(link="", title=title)
        guid = guid or stable_guid(link=link, title=title)
        items.append(
            FeedItem(
                feed=feed,
                guid=guid,
                link=link,
                title=title or link,
                summary=summary,
                published=published,
                source=source,
            )
        )
    return items, ttl


def _gunzip(body: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, MAX_GUNZIPPED_BYTES)
    except zlib.error as exc:
        raise ParseError(f"not a feed: broken gzip body: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ParseError(f"not a feed: gzip body inflates past {MAX_GUNZIPPED_BYTES} bytes")
    return out


def _tidy_prolog(data: bytes) -> bytes:
    """Drop what a strict parser rejects before the root: whitespace, comments or junk before
    the XML declaration, a malformed declaration, control characters anywhere."""
    m = _PROLOG.search(data, 0, 4096)
    if m is not None and _ELEMENT_START.search(data, 0, m.start()) is None:
        data = data[m.end() :]
    return data.translate(None, _CONTROL_BYTES)


_Links = tuple[tuple[str, ...], str | None]  # hubs, self
_Read = tuple[str, list[FeedItem], int | None, _Links]  # kind, items, ttl, links


def _read(root: etree._Element | None, *, salvaged: bool, feed: str, url: str) -> _Read | None:
    """(kind, items, ttl, WebSub links) from a tree; None when it holds no feed."""
    found = _find_feed_root(root, salvaged=salvaged) if root is not None else None
    if found is None:
        return None
    feed_root, kind = found
    items, ttl = _extract(feed_root, kind, feed=feed, url=url)
    return kind, items, ttl, _feed_links(feed_root, url)


def _feed_links(feed_root: etree._Element, url: str) -> _Links:
    """The feed-level ``<link rel="hub">`` and ``rel="self"`` (Atom's own, or RSS's
    ``<atom:link>`` in the channel): an entry's links are not the feed's."""
    container = next((c for c in feed_root if _local_name(c) == "channel"), feed_root)
    hubs: list[str] = []
    self_link = None
    for el in container:
        href = (el.get("href") or "").strip() if _local_name(el) == "link" else ""
        if not href:
            continue
        rels = (el.get("rel") or "").lower().split()
        if "hub" in rels:
            hubs.append(_resolve(href, el, url))
        if "self" in rels and self_link is None:
            self_link = _resolve(href, el, url)
    return tuple(hubs), self_link


def _recover(data: bytes, *, feed: str, url: str) -> tuple[tree.Reader, _Read | None]:
    """The better of libxml2's two recover modes: XML, unless the HTML parser finds more of
    the document's entries (it survives unquoted attributes and undeclared prefixes)."""
    read = _read(tree.recover_xml(data), salvaged=True, feed=feed, url=url)
    if read is not None and len(read[1]) >= len(_ENTRY_TAG.findall(data)):
        return "xml-recover", read
    html_read = _read(tree.recover_html(data), salvaged=True, feed=feed, url=url)
    if html_read is not None and (read is None or len(html_read[1]) > len(read[1])):
        return "html-recover", html_read
    return "xml-recover", read


def parse_feed(body: bytes, *, feed: str, url: str = "", content_type: str = "") -> ParsedFeed:
    """Parse one feed document; ``url`` resolves relative links, ``content_type`` (the HTTP
    header) may name the charset. Raises ParseError if the body is no feed at all."""
    if body[:2] == b"\x1f\x8b":  # gzip without Content-Encoding (a .xml.gz served as is)
        body = _gunzip(body)
    if not body.strip():
        raise ParseError("not a feed: empty body")
    decoded = decode_body(body, content_type)
    notes = list(decoded.notes)
    data = _tidy_prolog(decoded.data)

    root, strict_error = tree.strict_parse(data)
    if strict_error is None:
        read = _read(root, salvaged=False, feed=feed, url=url)
        if read is None:
            raise ParseError(
                f"not a feed: no RSS/Atom/RDF root element (root: <{_local_name(root)}>)"
            )
    else:
        if any(word in strict_error.lower() for word in _ENTITY_REFUSALS):
            raise ParseError(f"refused: XML entity expansion ({strict_error})")
        if not _FEED_HINT.search(data):
            raise ParseError(f"not a feed: no RSS/Atom/RDF element ({strict_error})")
        reader, read = _recover(data, feed=feed, url=url)
        if read is None:
            raise ParseError("not a feed: no RSS/Atom/RDF root element (root: none)")
        notes.insert(
            0,
            f"not well-formed XML, salvaged {len(read[1])} item(s) by libxml2's "
            f"{reader.replace('-', ' ')}: {strict_error}",
        )
    kind, items, ttl, (hubs, self_link) = read
    warning = "; ".join(notes) or None
    return ParsedFeed(
        items=tuple(items),
        warning=warning,
        ttl_minutes=ttl,
        format=kind,
        salvaged=strict_error is not None,
        hubs=hubs,
        self_link=self_link,
    )
