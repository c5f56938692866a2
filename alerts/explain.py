"""The read-only explanations behind ``match --jsonl`` and ``cluster``: what a headline matches,
and how a list of headlines would group into stories. The CLI prints them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import Config, StoriesConfig, Term
from .errors import ConfigError
from .match import Matcher
from .stories import Decision, StoryIndex, categories_of, headline_features


@dataclass(frozen=True, slots=True, kw_only=True)
class PlacedHeadline:
    title: str
    alerts: bool  # a rule holds for it
    decision: Decision  # the story it started, joined or followed up, and why


def place_headlines(
    headlines: Iterable[str],
    *,
    matcher: Matcher,
    stories: StoriesConfig,
    at: datetime,
    apart: timedelta,
    watchlists: Mapping[str, Sequence[Term]] | None = None,
) -> Iterator[PlacedHeadline]:
    """Each headline in arrival order, ``apart`` after the previous one, from its own source,
    placed as the bot would (joined, followed up, or a new story)."""
    index = StoryIndex(
        window=timedelta(hours=stories.window_hours),
        threshold=stories.threshold,
        categories=categories_of(watchlists or {}),
    )
    for n, title in enumerate(headlines, start=1):
        result = matcher.match(title)
        features = headline_features(title, result.matches)
        decision, _ = index.assign(features, at=at, source=f"source {n}", title=title, new_id=n)
        yield PlacedHeadline(title=title, alerts=result.alert, decision=decision)
        at += apart


def explain_headline(
    config: Config, matcher: Matcher, title: str, summary: str = "", *, feed: str | None = None
) -> str:
    """``match``'s answer for a person: the matcher's explanation of a headline (as an item of
    ``feed``, whose tags the rules limited to tags need), and, when it alerts and the config
    routes alerts, the destinations that would take it."""
    feeds = {f.name: f for f in config.feeds}
    if feed is not None and feed not in feeds:
        known = ", ".join(feeds) or "none"
        raise ConfigError(f"no feed {feed!r} in the config (feeds: {known})", file=str(config.path))
    source = feeds.get(feed) if feed is not None else None
    tags = source.tags if source else ()
    result = matcher.match(title, summary, tags=tags)
    text = matcher.explain(result)
    routes = config.destinations
    if result.alert and (len(routes.all) > 1 or any(d.filtered for d in routes.all)):
        taken = routes.route(
            rules=result.rules,
            categories=result.categories(),
            feed=feed or "",
            feed_tags=tags,
        )
        text += f"\n  goes to: {', '.join(taken) or 'no destination (its filters take none)'}"
    return text


def match_json_line(matcher: Matcher, line: str) -> dict:
    """One ``match --jsonl`` answer; bad input gives ``{"error": ...}``, never an exception."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        return {"error": f"invalid JSON: {exc}"}
    if not isinstance(obj, dict):
        return {"error": "expected a JSON object"}
    title, summary = obj.get("title"), obj.get("summary", "")
    if not isinstance(title, str):
        return {"error": "'title' must be a string"}
    if summary is None:
        summary = ""
    if not isinstance(summary, str):
        return {"error": "'summary' must be a string when given"}
    return matcher.match(title, summary).to_json()
