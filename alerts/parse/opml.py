"""OPML, the format every feed reader imports and exports: ``read_opml`` lists the feeds in a
file (outlines nested in folders, as readers write them), ``write_opml`` writes OPML 2.0."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from ..errors import OpmlError
from .decode import decode_body
from .tree import xml_parser

MAX_BYTES = 10_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class OpmlFeed:
    """One feed outline: its name, feed URL, site URL and the folders it sits in."""

    name: str
    url: str
    html_url: str = ""
    folders: tuple[str, ...] = ()


def read_opml(data: bytes) -> tuple[OpmlFeed, ...]:
    """The feeds of an OPML document, in document order; an outline with an ``xmlUrl`` is a
    feed, one without is a folder. Raises OpmlError for what is not OPML."""
    if len(data) > MAX_BYTES:
        raise OpmlError(f"larger than {MAX_BYTES} bytes")
    try:
        # The feed reader's strict parser: no DTD, no entity expanded, no network.
        root = etree.fromstring(decode_body(data).data, xml_parser(recover=False))
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"not well-formed XML: {exc}") from None
    if root is None or etree.QName(root).localname.lower() != "opml":
        found = etree.QName(root).localname if root is not None else "nothing"
        raise OpmlError(f"the root element is <{found}>, not <opml>")
    body = next((c for c in root if _local(c) == "body"), None)
    if body is None:
        raise OpmlError("no <body>")
    feeds: list[OpmlFeed] = []

    def walk(node: etree._Element, folders: tuple[str, ...]) -> None:
        for child in node:
            if _local(child) != "outline":
                continue
            attrs = {k.lower(): (v or "").strip() for k, v in child.attrib.items()}
            name = attrs.get("title") or attrs.get("text") or ""
            url = attrs.get("xmlurl", "")
            if url:
                feeds.append(
                    OpmlFeed(name=name, url=url, html_url=attrs.get("htmlurl", ""), folders=folders)
                )
            else:
                walk(child, (*folders, name) if name else folders)

    walk(body, ())
    return tuple(feeds)


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def write_opml(
    feeds: Sequence[OpmlFeed], *, title: str = "chipwatch feeds", now: datetime
) -> bytes:
    """An OPML 2.0 document: one ``rss`` outline a feed, in folders where the feed has them."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now)
    body = etree.SubElement(root, "body")
    folders: dict[tuple[str, ...], etree._Element] = {(): body}

    def folder(path: tuple[str, ...]) -> etree._Element:
        if path not in folders:
            folders[path] = etree.SubElement(folder(path[:-1]), "outline", text=path[-1])
        return folders[path]

    for feed in feeds:
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if feed.html_url:
            attrs["htmlUrl"] = feed.html_url
        etree.SubElement(folder(feed.folders), "outline", attrs)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
