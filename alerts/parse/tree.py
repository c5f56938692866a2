"""Feed bytes (UTF-8) → an ``lxml`` tree, by one of libxml2's three readers.

1. strict XML: loads no DTD, fetches nothing, substitutes no entity (libxml2 also refuses entity
   amplification). A strict parse that succeeds is trusted.
2. XML recover mode, for a document that is not well-formed: the same parser with
   ``recover=True`` (missing end tags, truncation, a stray ``</b>``).
3. HTML recover mode, when the XML one finds fewer entries than the document has: libxml2's HTML
   parser survives what stops the XML one (unquoted attributes, undeclared prefixes:
   ``dylanharris_malformed_rss.xml``). Its tree is brought to the shape the XML readers give:
   ``dc:date`` becomes ``{dc's namespace}date``, an unknown prefix (``rss:item``) is dropped, and
   a ``<link>`` the HTML parser closed at once (HTML's void element) gets its URL back.

What is left of the old hand-written tokenizer are three small repairs around the recover modes:
a tag cut off at the very end is dropped (else it stays as text:
``feedparser_illformed_incomplete_cdata.xml``); a bare ``&`` is escaped (XML recover drops it and
the word after it, so ``?a=1&b=2`` became ``?a=1=2``); and a text element that lost its end tag
gives back the elements recover mode nested in it (``<title>A<link>u</link>``).

No reader loads a DTD, resolves an external entity or touches the network; entities a document
declares are never expanded.
"""

from __future__ import annotations

import re
import threading
from typing import Literal

from lxml import etree

XML_NS = "http://www.w3.org/XML/1998/namespace"
# Prefixes feeds use without declaring them (or that the HTML parser keeps as plain names).
WELL_KNOWN_PREFIXES = {
    "atom": "http://www.w3.org/2005/Atom",
    "atom10": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "media": "http://search.yahoo.com/mrss/",
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "feedburner": "http://rssnamespace.org/feedburner/ext/1.0",
    "xml": XML_NS,
}

Reader = Literal["xml-recover", "html-recover"]  # which recover mode read a document

_BARE_AMP = re.compile(rb"&(?!#[0-9]{1,8};|#[xX][0-9a-fA-F]{1,8};|[A-Za-z][A-Za-z0-9._-]{0,40};)")
_CDATA = re.compile(rb"<!\[CDATA\[(.*?)(?:\]\]>|\Z)", re.S)
# A document cut off inside a tag ("...<item><title><![CD"): both recover modes would keep the
# fragment as text. An open CDATA section is content, not a fragment.
_CUT_TAG = re.compile(rb"<(?!!\[CDATA\[)[^<>]*\Z")
_NAME_OK = re.compile(r"[A-Za-z_][\w.-]*\Z")
# Elements that hold text only: one that holds a feed element lost its end tag.
_LEAVES = frozenset(
    {
        "title",
        "link",
        "description",
        "guid",
        "pubdate",
        "id",
        "summary",
        "published",
        "updated",
        "encoded",
        "date",
        "comments",
        "ttl",
    }
)
_FEED_ELEMENTS = _LEAVES | {"item", "entry"}


class _Local(threading.local):
    strict: etree.XMLParser | None = None
    recover: etree.XMLParser | None = None
    html: etree.HTMLParser | None = None


_local = _Local()


def xml_parser(*, recover: bool) -> etree.XMLParser:
    parser = _local.recover if recover else _local.strict
    if parser is None:
        parser = etree.XMLParser(
            encoding="utf-8",
            recover=recover,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        if recover:
            _local.recover = parser
        else:
            _local.strict = parser
    return parser


def _html_parser() -> etree.HTMLParser:
    parser = _local.html
    if parser is None:
        parser = _local.html = etree.HTMLParser(
            encoding="utf-8",
            recover=True,
            no_network=True,
            remove_comments=True,
            remove_pis=True,
            huge_tree=False,
            default_doctype=False,
            collect_ids=False,
        )
    return parser


def strict_parse(data: bytes) -> tuple[etree._Element | None, str | None]:
    """(root, None) for a well-formed document, else (None, the parser's complaint)."""
    try:
        return etree.fromstring(data, xml_parser(recover=False)), None
    except etree.XMLSyntaxError as exc:
        return None, str(exc) or type(exc).__name__
    except (ValueError, MemoryError) as exc:  # lxml refuses some inputs outright
        return None, f"{type(exc).__name__}: {exc}"


def recover_xml(data: bytes) -> etree._Element | None:
    """What libxml2's XML recover mode makes of ``data``; None when it makes nothing."""
    try:
        root = etree.fromstring(
            _BARE_AMP.sub(b"&amp;", _CUT_TAG.sub(b"", data)), xml_parser(recover=True)
        )
    except (etree.XMLSyntaxError, ValueError, MemoryError):
        return None
    if root is not None:
        _close_leaves(root)
    return root


def recover_html(data: bytes) -> etree._Element | None:
    """What libxml2's HTML parser makes of ``data``, in the shape the XML readers give."""
    # The HTML parser drops CDATA sections (or keeps their markers as title text): unwrap them.
    data = _CDATA.sub(
        lambda m: m.group(1).replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;"),
        _CUT_TAG.sub(b"", data),
    )
    try:
        root = etree.fromstring(data, _html_parser())
    except (etree.XMLSyntaxError, ValueError, MemoryError):
        return None
    if root is None:
        return None
    _as_feed_tree(root)
    _close_leaves(root)
    return root


def _local_name(el: etree._Element) -> str:
    tag = el.tag
    return tag.rpartition("}")[2].rpartition(":")[2].lower() if isinstance(tag, str) else ""


def _close_leaves(root: etree._Element) -> None:
    """Where a text element lost its end tag (``<title>A<link>u</link>``), recover mode nests
    what follows inside it: move those elements back out, after it."""
    for leaf in list(root.iter(etree.Element)):
        if _local_name(leaf) not in _LEAVES or not len(leaf):
            continue
        parent = leaf.getparent()
        if parent is None:
            continue
        for i, child in enumerate(leaf):
            if _local_name(child) in _FEED_ELEMENTS:
                at = parent.index(leaf) + 1
                tail, leaf.tail = leaf.tail, None
                moved = leaf[i:]
                for offset, el in enumerate(moved):
                    parent.insert(at + offset, el)  # lxml moves an element with its tail
                if tail:
                    moved[-1].tail = (moved[-1].tail or "") + tail
                break


def _as_feed_tree(root: etree._Element) -> None:
    """Qualify ``prefix:name`` tags and attributes of an HTML-parsed tree in place."""
    declared: dict[str, str] = {}  # one scope for the document: feeds declare on the root
    for el in root.iter(etree.Element):
        for key, value in el.attrib.items():
            if key.startswith("xmlns:") and value:
                declared.setdefault(key[6:], value)
    prefixes = {**WELL_KNOWN_PREFIXES, **declared}
    for el in root.iter(etree.Element):
        tag = el.tag
        if ":" in tag:
            qualified = _qualify(tag, prefixes)
            if qualified is not None and qualified != tag:
                try:
                    el.tag = qualified
                except ValueError:
                    pass
            tag = el.tag
        if el.attrib:
            for key, value in list(el.attrib.items()):
                if key == "xmlns" or key.startswith("xmlns:"):
                    del el.attrib[key]
                elif ":" in key:
                    del el.attrib[key]
                    qualified = _qualify(key, prefixes)
                    if qualified is not None:
                        try:
                            el.set(qualified, value)
                        except ValueError:
                            pass
        if (
            (tag == "link" or tag.endswith("}link"))
            and not el.text
            and not len(el)
            and el.tail
            and el.tail.strip()
            and el.get("href") is None
        ):
            el.text, el.tail = el.tail, None  # HTML's <link> is void: its URL became the tail


def _qualify(name: str, prefixes: dict[str, str]) -> str | None:
    prefix, _, local = name.rpartition(":")
    if not _NAME_OK.match(local):
        return None
    ns = prefixes.get(prefix.lower())
    return f"{{{ns}}}{local}" if ns else local
