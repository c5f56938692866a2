"""The console sink: alerts as readable text on a stream (stdout by default)."""

from __future__ import annotations

import sys
from typing import TextIO

from ..types import Alert
from .format import (
    SUMMARY_MAX,
    cut_text,
    follow_up_to,
    followup_byline,
    followup_summary,
    major_line,
    outlet_name,
    report_lines,
    story_line,
    when_text,
    why_line,
)


def format_text(alert: Alert, *, under_story: bool = False) -> str:
    """The alert for a person reading plain text: the same content as the chat messages. A
    follow-up is indented; ``under_story``: printed right below its thread, else it names its
    story."""
    if alert.thread_of is not None:
        return _followup_text(alert, under_story=under_story)
    lines = [f"🔔 {alert.title}", f"   {outlet_name(alert)} · {when_text(alert)}"]
    if alert.major:
        lines.insert(0, major_line(alert))
    if alert.link:
        lines.append(f"   {alert.link}")
    lines.append(f"   why: {why_line(alert)}")
    if story_line(alert):
        lines.append(f"   {story_line(alert, names=4)}")
        lines.extend(f"     {line}" for line in report_lines(alert))
    if alert.summary:
        lines.append(f"   {cut_text(alert.summary, SUMMARY_MAX // 2)}")
    return "\n".join(lines)


def _followup_text(alert: Alert, *, under_story: bool) -> str:
    label = "follow-up" if under_story else follow_up_to(alert)
    marker = "🔥 " if alert.major else ""
    lines = [
        f"   ↳ {marker}{label} · {followup_byline(alert)} · {when_text(alert)}",
        f"     {alert.title}",
    ]
    if alert.link:
        lines.append(f"     {alert.link}")
    if followup_summary(alert):
        lines.append(f"     {followup_summary(alert)}")
    lines.extend(f"       {line}" for line in report_lines(alert))
    return "\n".join(lines)


class ConsoleSink:
    """Prints each alert; never fails and never needs a digest."""

    def __init__(self, *, stream: TextIO | None = None, name: str = "console"):
        self.name = name
        self._stream = stream
        self._thread: set[int] = set()  # the alerts of the thread printed last

    def allowance(self, within: float) -> int:
        return 1_000_000

    async def send(self, alert: Alert, *, reply_to: str | None = None) -> str | None:
        stream = self._stream or sys.stdout
        # A follow-up printed right after its story (or the story's other follow-ups) reads as
        # part of it; anywhere else it names the story.
        under = alert.thread_of is not None and alert.thread_of in self._thread
        stream.write(format_text(alert, under_story=under) + "\n\n")
        stream.flush()
        self._thread = self._thread | {alert.id} if under else {alert.id}
        return f"console-{alert.id}"  # an id, so that story updates are printed too

    async def send_digest(self, alerts: list[Alert]) -> tuple[str | None, list[Alert]]:
        for alert in alerts:
            await self.send(alert)
        return None, list(alerts)

    async def edit(self, message_id: str, alert: Alert, *, reply_to: str | None = None) -> None:
        """A console cannot edit what it printed: it prints the update instead."""
        stream = self._stream or sys.stdout
        update = story_line(alert, names=4) or "updated"
        marker = f"{major_line(alert)} · " if alert.major else ""
        arrow = "↳ " if alert.thread_of is not None else ""
        stream.write(f"↻ {marker}{arrow}{alert.title}: {update}\n\n")
        stream.flush()
        self._thread = set()  # whatever prints next is no longer right below a thread

    async def aclose(self) -> None:
        return None
