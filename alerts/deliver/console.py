"""The console sink: alerts as readable text on a stream (stdout by default)."""

from __future__ import annotations

import sys
from typing import TextIO

from ..types import Alert
from .format import (
    SUMMARY_MAX,
    cut_text,
    major_line,
    matched_line,
    outlet_name,
    report_lines,
    story_line,
    when_text,
)


def format_text(alert: Alert) -> str:
    """The alert for a person reading plain text: the same content as the chat messages."""
    lines = [f"🔔 {alert.title}", f"   {outlet_name(alert)} · {when_text(alert)}"]
    if alert.major:
        lines.insert(0, major_line(alert))
    if alert.link:
        lines.append(f"   {alert.link}")
    lines.append(f"   matched: {matched_line(alert)}")
    if story_line(alert):
        lines.append(f"   {story_line(alert, names=4)}")
        lines.extend(f"     {line}" for line in report_lines(alert))
    if alert.summary:
        lines.append(f"   {cut_text(alert.summary, SUMMARY_MAX // 2)}")
    return "\n".join(lines)


class ConsoleSink:
    """Prints each alert; never fails and never needs a digest."""

    name = "console"

    def __init__(self, *, stream: TextIO | None = None):
        self._stream = stream

    def allowance(self, within: float) -> int:
        return 1_000_000

    async def send(self, alert: Alert) -> str | None:
        stream = self._stream or sys.stdout
        stream.write(format_text(alert) + "\n\n")
        stream.flush()
        return f"console-{alert.id}"  # an id, so that story updates are printed too

    async def send_digest(self, alerts: list[Alert]) -> tuple[str | None, list[Alert]]:
        for alert in alerts:
            await self.send(alert)
        return None, list(alerts)

    async def edit(self, message_id: str, alert: Alert) -> None:
        """A console cannot edit what it printed: it prints the update instead."""
        stream = self._stream or sys.stdout
        update = story_line(alert, names=4) or "updated"
        marker = f"{major_line(alert)} · " if alert.major else ""
        stream.write(f"↻ {marker}{alert.title}: {update}\n\n")
        stream.flush()

    async def aclose(self) -> None:
        return None
