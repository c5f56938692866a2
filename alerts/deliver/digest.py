"""How a scheduled digest reads: the period's stories ranked by sources and momentum, grouped
by subject, each its headline as a link, its outlets and its follow-ups count. One message,
split only where a destination's length limit says so (Telegram 4096, as Telegram counts; Slack
50 blocks of 3000 characters), between stories, never inside one.

Rendered once, when the digest is queued: the parts stored are the parts sent, so a digest cut
short by a crash goes on where it stopped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..types import Alert
from .format import (
    TELEGRAM_LIMIT,
    _link_html,
    _slack_link,
    cut_text,
    follow_up_to,
    outlet_name,
    slack_escape,
    utf16_len,
)

HEADLINE_MAX = 300
OUTLETS_SHOWN = 4
SLACK_SECTION = 3000
SLACK_BLOCKS = 50
SLACK_TEXT = 39_000  # Slack refuses a message over 40,000 characters
SUBJECTS = ("companies", "chips")  # a story's subject: the first company it names, else chip
OTHER = "Other"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heading:
    """The digest's first line: "📰 Daily digest · exec · Mon 30 Mar 2026"."""

    title: str  # "Daily digest", "Weekly digest", "Digest so far"
    destination: str
    period: str  # the period, as a person reads it

    def text(self) -> str:
        return f"📰 {self.title} · {self.destination} · {self.period}"


def subject(alert: Alert) -> str:
    """What a story is about, for grouping: the first company it names, else its first chip,
    else its first matched term."""
    for category in SUBJECTS:
        term = next((m.term for m in alert.matches if m.category == category), None)
        if term:
            return term
    return alert.matches[0].term if alert.matches else OTHER


def _rank_key(alert: Alert) -> tuple:
    # More outlets first, then momentum (a major story; follow-ups), then the earlier one.
    return (-len(set(alert.sources) or {alert.feed}), not alert.major, -alert.followups, alert.id)


def ranked(alerts: Sequence[Alert]) -> list[tuple[str, list[Alert]]]:
    """(subject, its stories) with the stories ranked, and the subjects in the order of their
    best story. A follow-up whose story is in the digest too is counted there, not listed."""
    ids = {a.id for a in alerts}
    stories = [a for a in alerts if a.thread_of is None or a.thread_of not in ids]
    groups: dict[str, list[Alert]] = {}
    for alert in sorted(stories, key=_rank_key):
        groups.setdefault(subject(alert), []).append(alert)
    return list(groups.items())


def story_count(alerts: Sequence[Alert]) -> int:
    return sum(len(g) for _, g in ranked(alerts))


def outlets(alert: Alert) -> str:
    """ "Reuters, Bloomberg, FT, +2": who reported the story."""
    names = list(dict.fromkeys([outlet_name(alert), *(s for s in alert.sources[1:])]))
    more = f", +{len(names) - OUTLETS_SHOWN}" if len(names) > OUTLETS_SHOWN else ""
    return ", ".join(names[:OUTLETS_SHOWN]) + more


def _tail(alert: Alert) -> str:
    """What follows the headline: outlets, follow-ups, or the story a follow-up follows."""
    parts = [outlets(alert)]
    if alert.followups:
        parts.append(f"{alert.followups} follow-up{'' if alert.followups == 1 else 's'}")
    if alert.thread_of is not None:
        parts.append(follow_up_to(alert))
    return " — " + " · ".join(parts)


def _lead(n: int, alert: Alert) -> str:
    return f"{n}. {'🔥 ' if alert.major else ''}"


def _count_line(n: int) -> str:
    return f"{n} {'story' if n == 1 else 'stories'}"


NOTHING = "Nothing new in this period."


# --- Telegram ------------------------------------------------------------------------------


def telegram_parts(
    heading: Heading, alerts: Sequence[Alert], *, limit: int = TELEGRAM_LIMIT
) -> list[str]:
    """The digest as Telegram HTML messages, each within ``limit`` as Telegram counts it."""
    groups = ranked(alerts)
    total = sum(len(g) for _, g in groups)
    if not total:
        return [f"<b>{html.escape(heading.text(), quote=False)}</b>\n{NOTHING}"]
    # (plain, html) lines; a subject's header is repeated atop a part that goes on with it
    parts: list[list[tuple[str, str]]] = []
    room = limit - 16  # the " (12/12)" a part's heading may get
    current: list[tuple[str, str]] = []
    used = 0

    def start() -> None:
        nonlocal current, used
        current = []
        parts.append(current)
        used = 0

    def add(line: tuple[str, str]) -> None:
        nonlocal used
        current.append(line)
        used += utf16_len(line[0]) + 1

    head_plain = heading.text()
    count = _count_line(total)
    n = 0
    start()
    add((head_plain, f"<b>{html.escape(head_plain, quote=False)}</b>"))
    add((count, count))
    for name, stories in groups:
        header = (f"\n{name}", f"\n<b>{html.escape(name, quote=False)}</b>")
        for i, alert in enumerate(stories):
            n += 1
            title = cut_text(alert.title, HEADLINE_MAX)
            lead, tail = _lead(n, alert), _tail(alert)
            line = (
                f"{lead}{title}{tail}",
                html.escape(lead, quote=False)
                + _link_html(alert, title)
                + html.escape(tail, quote=False),
            )
            needs = utf16_len(line[0]) + 1 + (utf16_len(header[0]) + 1 if i == 0 else 0)
            if used + needs > room:
                start()
                add((head_plain, f"<b>{html.escape(head_plain, quote=False)}</b>"))
                if i > 0:
                    add((f"\n{name} (cont.)", f"\n<b>{html.escape(name, quote=False)}</b> (cont.)"))
            if i == 0:
                add(header)
            add(line)
    texts = []
    for k, lines in enumerate(parts, start=1):
        if len(parts) > 1:
            first = lines[0]
            lines[0] = (f"{first[0]} ({k}/{len(parts)})", f"{first[1]} ({k}/{len(parts)})")
        texts.append("\n".join(h for _, h in lines))
    return texts


# --- Slack ---------------------------------------------------------------------------------


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_messages(heading: Heading, alerts: Sequence[Alert]) -> list[dict]:
    """The digest as Slack messages of mrkdwn sections: a new section at 3000 characters, a
    new message only at 50 sections (or Slack's 40,000 characters)."""
    groups = ranked(alerts)
    total = sum(len(g) for _, g in groups)
    head = f"*{slack_escape(heading.text())}*"
    if not total:
        return [_slack_message(heading.text(), [_section(f"{head}\n{NOTHING}")])]
    lines = [f"{head}\n{_count_line(total)}"]
    n = 0
    for name, stories in groups:
        lines.append(f"\n*{slack_escape(name)}*")
        for alert in stories:
            n += 1
            title = cut_text(alert.title, HEADLINE_MAX)
            lines.append(
                slack_escape(_lead(n, alert))
                + _slack_link(alert, title)
                + slack_escape(_tail(alert))
            )
    messages: list[list[dict]] = [[]]
    section, size = "", 0
    for line in lines:
        if section and len(section) + 1 + len(line) > SLACK_SECTION:
            if len(messages[-1]) + 1 > SLACK_BLOCKS or size + len(section) > SLACK_TEXT:
                messages.append([])
                size = 0
            messages[-1].append(_section(section))
            size += len(section)
            section = ""
        section = f"{section}\n{line}" if section else line
    if len(messages[-1]) + 1 > SLACK_BLOCKS or size + len(section) > SLACK_TEXT:
        messages.append([])
    messages[-1].append(_section(section))
    return [_slack_message(heading.text(), blocks) for blocks in messages if blocks]


def _slack_message(fallback: str, blocks: list[dict]) -> dict:
    return {"text": slack_escape(fallback), "blocks": blocks, "unfurl_links": False}


# --- plain text (console) ------------------------------------------------------------------


def text_digest(heading: Heading, alerts: Sequence[Alert]) -> str:
    groups = ranked(alerts)
    total = sum(len(g) for _, g in groups)
    if not total:
        return f"{heading.text()}\n   {NOTHING}"
    lines = [heading.text(), f"   {_count_line(total)}"]
    n = 0
    for name, stories in groups:
        lines.append(f"   {name}")
        for alert in stories:
            n += 1
            lines.append(f"   {_lead(n, alert)}{cut_text(alert.title, HEADLINE_MAX)}{_tail(alert)}")
            if alert.link:
                lines.append(f"      {alert.link}")
    return "\n".join(lines)


def render(kind: str, heading: Heading, alerts: Sequence[Alert]) -> list[Any]:
    """The digest's messages for a sink of ``kind`` (telegram, slack, console)."""
    if kind == "telegram":
        return list(telegram_parts(heading, alerts))
    if kind == "slack":
        return list(slack_messages(heading, alerts))
    return [text_digest(heading, alerts)]
