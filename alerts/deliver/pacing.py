"""Client-side rate limits, so that destinations never have to tell us to slow down."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence


class RateLimiter:
    """Sliding-window limits, e.g. ``[(1, 1.0), (20, 60.0)]``: one per second and 20 a minute."""

    def __init__(
        self, windows: Sequence[tuple[int, float]], *, clock: Callable[[], float] = time.monotonic
    ):
        self.windows = tuple(windows)
        self._clock = clock
        self._sent: deque[float] = deque()
        self._horizon = max((w for _, w in self.windows), default=0.0)

    def _trim(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self._horizon:
            self._sent.popleft()

    def delay(self) -> float:
        """Seconds to wait before one more message is allowed (0 when it is allowed now)."""
        now = self._clock()
        self._trim(now)
        wait = 0.0
        for limit, window in self.windows:
            recent = [t for t in self._sent if t > now - window]
            if len(recent) >= limit:
                wait = max(wait, recent[-limit] + window - now)
        return wait

    def allowance(self, within: float) -> int:
        """Roughly how many messages could go out in the next ``within`` seconds."""
        now = self._clock()
        self._trim(now)
        rooms = []
        for limit, window in self.windows:
            if window >= within:
                # Messages sent recently still count against this window ``within`` from now.
                still = sum(1 for t in self._sent if t > now + within - window)
                rooms.append(max(0, limit - still))
            else:
                rooms.append(limit * int(within / window))
        return min(rooms, default=1_000_000)

    def record(self) -> None:
        self._sent.append(self._clock())

    async def acquire(self, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """Wait until a message is allowed, then count it."""
        while (wait := self.delay()) > 0:
            await sleep(wait)
        self.record()
