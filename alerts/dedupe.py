"""Decide which parsed items are new: not seen before by guid (in their feed) or by canonical link
(from any feed), across restarts, since the record lives in SQLite."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rapidfuzz import fuzz, process

from .match import normalise
from .store import Store
from .stories import headline_features
from .types import FeedItem

# A title this similar to one the same feed published recently is that item, edited.
EDIT_SIMILARITY = 92.0
_EDIT_MARKERS_RE = re.compile(
    r"^\s*(?:\W*\s*)?(?:update[sd]?|breaking|exclusive|corrected|correction|live|watch|"
    r"developing|just in)\b\s*[:\-–—|]*\s*|\s*[\(\[](?:update[sd]?|corrected|correction)"
    r"[^\)\]]*[\)\]]\s*$",
    re.IGNORECASE,
)

# Query parameters that identify a campaign or a click, never the article.
_TRACKING_EXACT = {
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "yclid",
    "twclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "ref",
    "ref_src",
    "ref_url",
    "referrer",
    "src",
    "cmpid",
    "cmp",
    "ncid",
    "ocid",
    "sr_share",
    "smid",
    "partner",
    "taid",
    "mbid",
    "spm",
    "share",
    "guccounter",
    "_ga",
    "_gl",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "oly_anon_id",
    "oly_enc_id",
    "rss",
    "feed",
    "outputtype",
    "amp",
}
_TRACKING_PREFIX = ("utm_", "pk_", "piwik_", "mtm_", "hsa_", "at_", "__twitter")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_AMP_PATH_RE = re.compile(r"(?:/amp|\.amp|/amp\.html)$", re.IGNORECASE)


def _is_tracking(key: str) -> bool:
    k = key.lower()
    return k in _TRACKING_EXACT or k.startswith(_TRACKING_PREFIX)


def canonical_url(url: str) -> str:
    """The article's identity: https, lowercase host without www./amp./m., no default port, no
    fragment, no tracking parameters, no trailing slash or AMP suffix; other params sorted."""
    url = url.strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return url
    host = (parts.hostname or "").lower().rstrip(".")
    for prefix in ("www.", "amp.", "m."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
    netloc = host if port is None or str(port) == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    path = _AMP_PATH_RE.sub("", path)
    if len(path) > 1:
        path = path.rstrip("/")
    query = urlencode(
        sorted(
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
        )
    )
    # Both schemes name the same article; https is what nearly every site serves today.
    return urlunsplit(("https", netloc, path, query, ""))


def find_new(store: Store, items: Sequence[FeedItem]) -> list[tuple[FeedItem, str]]:
    """Items of one feed that were never seen, with their canonical link; repeats within the
    batch (same guid or canonical link) keep only the first occurrence."""
    if not items:
        return []
    keyed = [(item, canonical_url(item.link)) for item in items]
    known = store.known_items(items[0].feed, [(item.guid, link) for item, link in keyed])
    fresh, guids, links = [], set(), set()
    for i, (item, link) in enumerate(keyed):
        if i in known or item.guid in guids or (link and link in links):
            continue
        guids.add(item.guid)
        if link:
            links.add(link)
        fresh.append((item, link))
    return fresh


def title_key(title: str) -> str:
    """The title without edit markers ("UPDATE:", "(Updated)"…), normalised for comparison."""
    previous = None
    while previous != title:
        previous, title = title, _EDIT_MARKERS_RE.sub("", title)
    return normalise(title).strip()


def edited_titles(keys: list[str], recent: list[str]) -> set[int]:
    """Indexes of ``keys`` that are light edits of one of the feed's ``recent`` title keys: a
    typo fixed, an "UPDATE:" added. A change of action ("bans" → "allows") or of a number or
    model ("H200" → "B200") is never an edit."""
    if not recent:
        return set()
    edited = set()
    for i, key in enumerate(keys):
        hit = process.extractOne(key, recent, scorer=fuzz.ratio, score_cutoff=EDIT_SIMILARITY)
        if hit is None:
            continue
        mine, theirs = headline_features(key).actions, headline_features(hit[0]).actions
        if mine and theirs and not mine & theirs:
            continue  # "bans" became "allows": news, not an edit
        if _numbers(key) != _numbers(hit[0]):
            continue  # "H200" became "B200", "10%" became "25%": news, not an edit
        edited.add(i)
    return edited


def _numbers(key: str) -> set[str]:
    return {w for w in key.split() if any(c.isdigit() for c in w)}
