"""The console sink: alerts as readable text on a stream (stdout by default)."""

from __future__ import annotations

import sys
from typing import TextIO

from ..store import Alert
from .format import SUMMARY_MAX, _cut, matched_line, when_text


def format_text(alert: Alert) -> str:
    """The alert for a person reading plain text: the same content as the chat messages."""
    lines = [f"🔔 {alert.title}", f"   {alert.feed} · {when_text(alert)}"]
    if alert.link:
        lines.append(f"   {alert.link}")
    lines.append(f"   matched: {matched_line(alert)}")
    if alert.summary:
        lines.append(f"   {_cut(alert.summary, SUMMARY_MAX // 2)}")
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
        return None

    async def send_digest(self, alerts: list[Alert]) -> tuple[str | None, list[Alert]]:
        for alert in alerts:
            await self.send(alert)
        return None, list(alerts)

    async def aclose(self) -> None:
        return None
