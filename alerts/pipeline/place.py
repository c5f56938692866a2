"""Place each alerting item in a story, in order of publication across the cycle's feeds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from ..logs import event
from ..outlets import outlet_name
from ..stories import FOLLOW, JOIN, NEW, Clusterer, outlet_of
from ..types import NewItem
from .model import FeedPlan

log = logging.getLogger("chipwatch.pipeline")


def place_in_order(
    ready: Sequence[FeedPlan], clusterer: Clusterer | None, *, now: datetime
) -> dict[int, tuple[NewItem, ...]]:
    """Each prepared feed's items, placed in story order: by publication time across feeds
    (undated ones last). One article reached through two feeds in this cycle alerts once."""
    order = sorted(
        (
            (n.item.published or now, k, j)
            for k, p in enumerate(ready)
            for j, n in enumerate(p.items)
        ),
        key=lambda t: (t[0], t[1], t[2]),
    )
    done: dict[tuple[int, int], NewItem] = {}
    links: set[str] = set()
    for _, k, j in order:
        n = ready[k].items[j]
        if n.result is not None and n.canonical_link:
            if n.canonical_link in links:
                n = replace(n, result=None)  # the same article from another feed: seen, silent
            links.add(n.canonical_link)
        done[(k, j)] = _placed(n, clusterer, now=now, feed_url=ready[k].feed.url)
    return {id(p): tuple(done[(k, j)] for j in range(len(p.items))) for k, p in enumerate(ready)}


def _placed(new: NewItem, clusterer: Clusterer | None, *, now: datetime, feed_url: str) -> NewItem:
    """Cluster an alerting item: it starts a story, or joins one instead of alerting."""
    item = new.item
    outlet = outlet_of(source=item.source, link=item.link, feed=item.feed)
    name = outlet_name(outlet, source=item.source, feed=item.feed, feed_url=feed_url)
    new = replace(new, outlet=outlet, source_name=name)
    if clusterer is None:
        return new
    title = strip_source_suffix(item.title, item.source)
    if new.result is None or not new.result.alert:
        clusterer.observe(title)
        return new
    placed = clusterer.place(title, new.result.matches, source=outlet, at=now)
    event(
        log,
        _STORY_EVENTS[placed.decision.outcome],
        story=placed.story_id,
        feed=item.feed,
        outlet=outlet,
        title=item.title,
        decision=placed.decision.explain(),
    )
    return replace(
        new,
        story_id=placed.story_id,
        new_story=placed.new_story,
        thread=placed.thread,
        decision=placed.decision.explain(),
        member=tuple(placed.member) if placed.member is not None else None,
        entities=placed.entities,
        story_actions=placed.actions,
        report=placed.says_more,
    )


# One log event per story decision (scripts read them: see the interface contract).
_STORY_EVENTS = {NEW: "story_new", JOIN: "story_joined", FOLLOW: "story_followup"}


def strip_source_suffix(title: str, source: str) -> str:
    """ "Headline - Reuters" → "Headline", as aggregators such as Google News title items."""
    source = source.strip()
    for sep in (" - ", " | ", " — ", " – "):
        if source and title.endswith(sep + source):
            return title[: -len(sep + source)].rstrip()
    return title
