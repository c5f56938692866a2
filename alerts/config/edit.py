"""Edit ``config.yaml`` from bot commands without losing its comments, order or formatting.

Changes go through ruamel.yaml's round-trip objects (never string templating, so an argument
can never inject keys), are validated as a whole config before anything is written, and are
written atomically (temp file, then rename), which the hot reload then picks up.
"""

from __future__ import annotations

import io
import os
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..errors import ConfigError
from . import values
from .load import parse_config


class EditRefused(ValueError):
    """The edit cannot be made; the message says why, for the person who asked."""


def clean_term(raw: str) -> str:
    """A watchlist term from untrusted input, or EditRefused with a clear reason."""
    term = " ".join(raw.split())
    if not term:
        raise EditRefused("give a term, e.g. /watch chips B300")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in raw):
        raise EditRefused("control characters are not allowed in a term")
    try:
        return values.term(term)  # the rule config.yaml's terms follow
    except ValueError as exc:
        raise EditRefused(str(exc)) from None


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _term_name(entry: object) -> str:
    if isinstance(entry, dict):
        return str(entry.get("term", ""))
    return str(entry)


def _load(path: Path):  # noqa: ANN202 - ruamel's CommentedMap
    return _yaml().load(path.read_text(encoding="utf-8"))


def _save(path: Path, doc: object) -> str:
    buffer = io.StringIO()
    _yaml().dump(doc, buffer)
    text = buffer.getvalue()
    parse_config(text, path=path)  # the whole result must be valid before it replaces the file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.chmod(tmp, path.stat().st_mode & 0o777)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return text


def _category(doc: dict, category: str):  # noqa: ANN202
    lists = doc.get("watchlists") or {}
    if category not in lists:
        known = ", ".join(lists) or "none"
        raise EditRefused(f"there is no watchlist '{category}' (there are: {known})")
    return lists[category]


def add_term(path: Path, category: str, raw_term: str) -> str:
    """Append a term to a watchlist; returns the canonical term added."""
    term = clean_term(raw_term)
    doc = _load(path)
    entries = _category(doc, category)
    if any(_term_name(e).casefold() == term.casefold() for e in entries):
        raise EditRefused(f"'{term}' is already on the {category} watchlist")
    entries.append(term)
    try:
        _save(path, doc)
    except ConfigError as exc:
        raise EditRefused(f"the config would not be valid: {exc.message}") from None
    return term


def remove_term(path: Path, category: str, raw_term: str) -> str:
    """Remove a term from a watchlist; returns the term as it was written."""
    term = clean_term(raw_term)
    doc = _load(path)
    entries = _category(doc, category)
    for i, entry in enumerate(entries):
        if _term_name(entry).casefold() == term.casefold():
            name = _term_name(entry)
            del entries[i]
            try:
                _save(path, doc)
            except ConfigError as exc:
                raise EditRefused(f"the config would not be valid: {exc.message}") from None
            return name
    raise EditRefused(f"'{term}' is not on the {category} watchlist")


@dataclass(frozen=True, slots=True)
class FeedsAdded:
    """What adding feeds did: the names added, and the feeds left out with the reason."""

    added: tuple[str, ...]
    skipped: tuple[tuple[str, str, str], ...]  # (name, url, why)


def add_feeds(path: Path, feeds: Sequence[tuple[str, str]], *, write: bool = True) -> FeedsAdded:
    """Append feeds (name, URL) to the config, keeping its comments; a feed whose URL is there
    already (or earlier in ``feeds``) is skipped, and a name taken by another feed gets its
    host added. Nothing is written when nothing is added, or when ``write`` is false."""
    doc = _load(path)
    if doc.get("feeds") is None:
        doc["feeds"] = CommentedSeq()
    entries = doc["feeds"]
    urls = {values.same_url(str(e.get("url", ""))) for e in entries if isinstance(e, dict)}
    names = {str(e.get("name", "")).casefold() for e in entries if isinstance(e, dict)}
    added: list[str] = []
    skipped: list[tuple[str, str, str]] = []
    for raw_name, url in feeds:
        url = url.strip()
        try:
            values.http_url(url)  # a scheme, a host, a port in range, no spaces
        except ValueError as exc:
            skipped.append((raw_name, url, str(exc)))
            continue
        if values.same_url(url) in urls:
            skipped.append((raw_name, url, "already present"))
            continue
        name = _free_name(" ".join(raw_name.split()) or urlsplit(url).netloc, url, names)
        entries.append(CommentedMap([("name", name), ("url", url)]))
        urls.add(values.same_url(url))
        names.add(name.casefold())
        added.append(name)
    if added and write:
        try:
            _save(path, doc)
        except ConfigError as exc:
            raise EditRefused(f"the config would not be valid: {exc}") from None
    return FeedsAdded(added=tuple(added), skipped=tuple(skipped))


def _free_name(name: str, url: str, taken: set[str]) -> str:
    """``name``, or, when another feed has it, ``name (host)``, then ``name (host) 2``…"""
    if name.casefold() not in taken:
        return name
    base = f"{name} ({urlsplit(url).netloc})"
    candidate, n = base, 2
    while candidate.casefold() in taken:
        candidate, n = f"{base} {n}", n + 1
    return candidate
