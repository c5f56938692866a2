"""The console sink: alerts as readable text on a stream (stdout by default)."""

from __future__ import annotations

import sys
from typing import TextIO

from ..store import Alert

SUMMARY_CHARS = 280


def matched_line(alert: Alert) -> str:
    """``H200 (chips, exact "H200") · Nvidia (companies, exact) · rule chip-trade``."""
    parts = []
    for m in alert.matches:
        shown = "" if m.text.casefold() == m.term.casefold() else f' "{m.text}"'
        parts.append(f"{m.term} ({m.category}, {m.kind}{shown})")
    rules = f"rule {', '.join(alert.rules)}" if alert.rules else "no rule"
    return " · ".join([*parts, rules])


def format_text(alert: Alert) -> str:
    """The alert for a person reading plain text."""
    when = alert.published.strftime("%Y-%m-%d %H:%M UTC") if alert.published else "undated"
    lines = [f"🔔 {alert.title}", f"   {alert.feed} · {when}"]
    if alert.link:
        lines.append(f"   {alert.link}")
    lines.append(f"   matched: {matched_line(alert)}")
    if alert.summary:
        summary = alert.summary
        if len(summary) > SUMMARY_CHARS:
            summary = summary[: SUMMARY_CHARS - 1].rstrip() + "…"
        lines.append(f"   {summary}")
    return "\n".join(lines)


class ConsoleSink:
    """Prints each alert; never fails, so nothing stays pending for the console."""

    name = "console"

    def __init__(self, *, stream: TextIO | None = None):
        self._stream = stream

    async def send(self, alert: Alert) -> str | None:
        stream = self._stream or sys.stdout
        stream.write(format_text(alert) + "\n\n")
        stream.flush()
        return None

    async def aclose(self) -> None:
        return None
