"""The ops endpoint of ``run``: ``GET /healthz`` and ``GET /metrics`` on ``ops.listen``.

It is served by a small HTTP/1.1 handler inside the bot's own event loop, so every answer
reflects live state: when the scheduler last ticked, whether the database file accepts a write
now, each destination's delivery state, and the feeds' state in the database. A port that is
taken is logged and the bot goes on without the endpoint: alerts matter more.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import sqlite_utils
from prometheus_client.core import GaugeMetricFamily, Metric

from . import __version__
from .logs import event, redact_database_url
from .runtime import Runtime
from .scheduler import Scheduler
from .store import Store
from .store.schema import _dt, _iso
from .types import utcnow

log = logging.getLogger("chipwatch.ops")

PROBE_KEY = "ops:write_probe"  # a settings row; the probe rewrites it
READ_TIMEOUT_SECONDS = 10.0


# --- health -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationHealth:
    # ok | failing (retrying after errors) | paused (refused) | held (/pause) | elsewhere
    # (another instance on the same database sends to it)
    state: str
    since: str | None = None  # when it stopped delivering (failing, paused)


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """What ``/healthz`` answers; ``reasons`` is empty exactly when healthy."""

    reasons: tuple[str, ...]
    last_tick_seconds_ago: float | None
    tick_every_seconds: float
    database: str
    database_error: str | None
    feeds_configured: int
    feeds_failing: int
    destinations: dict[str, DestinationHealth] = field(default_factory=dict)
    instance: dict[str, object] | None = None  # several instances: this one's id and roles

    @property
    def healthy(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict:
        return {
            "status": "ok" if self.healthy else "unhealthy",
            "reasons": list(self.reasons),
            "version": __version__,
            "scheduler": {
                "last_tick_seconds_ago": self.last_tick_seconds_ago,
                "tick_every_seconds": self.tick_every_seconds,
            },
            "database": {
                "path": self.database,
                "writable": self.database_error is None,
                "error": self.database_error,
            },
            "feeds": {"configured": self.feeds_configured, "failing": self.feeds_failing},
            "destinations": {
                k: {n: v for n, v in asdict(d).items() if v is not None}
                for k, d in self.destinations.items()
            },
            **({"instance": self.instance} if self.instance is not None else {}),
        }


def probe_write(store: Store) -> str | None:
    """Why the database does not accept a write now, or None when it does.

    Two checks: may this process open the file for writing now (what a restart needs; the
    bot's own connection keeps a writable handle after the file became read-only, and SQLite
    hands that same handle to new connections of this process), and does a committed write
    go through (a full disk, an I/O error). The write uses the bot's own connection, which
    is never inside a transaction between awaits: every store call is synchronous."""
    path = store.path
    if path is not None and not os.access(
        path, os.W_OK, effective_ids=os.access in os.supports_effective_ids
    ):
        return f"{path} is read-only for this process"
    if not isinstance(store.db, sqlite_utils.Database):  # PostgreSQL: one committed write
        try:
            store.set_setting(PROBE_KEY, _iso(utcnow()))
        except Exception as exc:  # noqa: BLE001 - whatever the failure, it is not writable
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None
    conn = store.db.conn
    if conn.in_transaction:
        return None  # cannot happen between awaits; never commit someone else's work
    try:
        with conn:  # commits, or rolls back on error
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                [PROBE_KEY, _iso(utcnow())],
            )
    except sqlite3.Error as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedRow:
    name: str
    state: str  # ok | failing | disabled
    failing_since: datetime | None = None


def feed_rows(runtime: Runtime) -> list[FeedRow]:
    """The configured feeds that have been polled, with their state from the database."""
    rows = {
        r[0]: r
        for r in runtime.store.db.execute(
            "SELECT name, url, last_status, failing_since, disabled_reason FROM feeds"
        )
    }
    out = []
    for feed in runtime.config.feeds:
        r = rows.get(feed.name)
        if r is None or r[1] != feed.url:
            continue  # never polled
        state = "disabled" if r[4] else "failing" if r[2] == "error" else "ok"
        out.append(FeedRow(name=feed.name, state=state, failing_since=_dt(r[3])))
    return out


def destination_states(runtime: Runtime) -> dict[str, DestinationHealth]:
    deliverer = runtime.deliverer
    out = {}
    for sink in deliverer.sinks:
        down = deliverer.down_since(sink.name)
        if sink.name in deliverer.held_back:
            out[sink.name] = DestinationHealth(state="held")
        elif sink.name in deliverer.elsewhere:
            out[sink.name] = DestinationHealth(state="elsewhere")
        elif down is not None:
            out[sink.name] = DestinationHealth(
                state="paused" if deliverer.is_paused(sink.name) else "failing", since=_iso(down)
            )
        else:
            out[sink.name] = DestinationHealth(state="ok")
    return out


def assess(
    *,
    tick_age: float | None,
    tick_every: float,
    database: str,
    database_error: str | None,
    feeds: Iterable[FeedRow],
    configured_feeds: int,
    failing_after: timedelta,
    destinations: dict[str, DestinationHealth],
    paused_after: timedelta,
    now: datetime,
) -> Health:
    """The verdict. Unhealthy when the scheduler has not ticked for two intervals, the
    database refuses a write, every feed has been failing for longer than ``failing_after``,
    or a destination has not delivered for longer than ``paused_after``. A destination an
    operator paused (/pause) is reported, not a reason: it is deliberate, and a restart would
    not change it (``status`` still names it)."""
    reasons = []
    if tick_age is None or tick_age > 2 * tick_every:
        reasons.append(
            "scheduler stalled: "
            + (
                "it never ticked"
                if tick_age is None
                else f"last tick {tick_age:.0f}s ago (it ticks every {tick_every:g}s)"
            )
        )
    if database_error is not None:
        reasons.append(f"database not writable: {database_error}")
    feeds = list(feeds)
    if feeds and all(
        f.state == "disabled"
        or (
            f.state == "failing"
            and f.failing_since is not None
            and now - f.failing_since >= failing_after
        )
        for f in feeds
    ):
        reasons.append(f"every feed is failing, for over {_span(failing_after)}")
    for name, d in destinations.items():
        since = _dt(d.since) if d.since else None
        if d.state in ("paused", "failing") and since is not None and now - since > paused_after:
            reasons.append(
                f"destination {name} is {d.state} since "
                f"{since:%Y-%m-%d %H:%M:%S} UTC (over {_span(paused_after)})"
            )
    return Health(
        reasons=tuple(reasons),
        last_tick_seconds_ago=None if tick_age is None else round(tick_age, 1),
        tick_every_seconds=tick_every,
        database=database,
        database_error=database_error,
        feeds_configured=configured_feeds,
        feeds_failing=sum(f.state == "failing" for f in feeds),
        destinations=destinations,
    )


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g}s"


class HealthCheck:
    """Gathers live state from the runtime and the scheduler and assesses it."""

    def __init__(self, runtime: Runtime, scheduler: Scheduler):
        self.runtime = runtime
        self.scheduler = scheduler

    async def __call__(self) -> Health:
        runtime, config = self.runtime, self.runtime.config
        error = probe_write(runtime.store)
        last = self.scheduler.last_tick
        health = assess(
            tick_age=None if last is None else time.monotonic() - last,
            tick_every=self.scheduler.tick_every,
            database=redact_database_url(str(config.database)),
            database_error=error,
            feeds=feed_rows(runtime),
            configured_feeds=len(config.feeds),
            failing_after=timedelta(hours=config.poll.failing_after_hours),
            destinations=destination_states(runtime),
            paused_after=timedelta(minutes=config.ops.paused_after_minutes),
            now=utcnow(),
        )
        coordinator = runtime.coordinator
        if coordinator is None:
            return health
        return replace(health, instance={"id": coordinator.id, "roles": coordinator.roles()})


# --- metrics read at scrape time ----------------------------------------------------------------


class StateCollector:
    """Gauges of stored and live state: the outbox, feeds, destinations, the scheduler."""

    def __init__(self, runtime: Runtime, scheduler: Scheduler):
        self.runtime = runtime
        self.scheduler = scheduler

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration; collect() needs a live store

    def collect(self) -> Iterator[Metric]:
        runtime, now = self.runtime, utcnow()
        pending = GaugeMetricFamily(
            "chipwatch_outbox_pending",
            "Alerts waiting for delivery, by destination.",
            labels=["destination"],
        )
        oldest = GaugeMetricFamily(
            "chipwatch_outbox_oldest_pending_age_seconds",
            "Age of the oldest alert waiting, by destination (0: none).",
            labels=["destination"],
        )
        counts: dict[str, tuple[int, datetime | None]] = {
            s.name: (0, None) for s in runtime.deliverer.sinks
        }
        for destination, n, first in runtime.store.db.execute(
            "SELECT d.destination, COUNT(*), MIN(a.created_at) FROM deliveries d "
            "JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending' "
            "GROUP BY d.destination"
        ):
            counts[destination] = (n, _dt(first))
        for destination, (n, first) in sorted(counts.items()):
            pending.add_metric([destination], n)
            oldest.add_metric([destination], (now - first).total_seconds() if first else 0.0)
        yield pending
        yield oldest

        feeds = feed_rows(runtime)
        yield GaugeMetricFamily(
            "chipwatch_feeds_configured", "Feeds in the config.", value=len(runtime.config.feeds)
        )
        yield GaugeMetricFamily(
            "chipwatch_feeds_failing",
            "Feeds whose last poll failed.",
            value=sum(f.state == "failing" for f in feeds),
        )
        yield GaugeMetricFamily(
            "chipwatch_feeds_disabled",
            "Feeds disabled (410 Gone) until the config changes.",
            value=sum(f.state == "disabled" for f in feeds),
        )

        down = GaugeMetricFamily(
            "chipwatch_destination_down_seconds",
            "Seconds since a destination stopped accepting alerts (0: delivering).",
            labels=["destination"],
        )
        held = GaugeMetricFamily(
            "chipwatch_destination_held",
            "1 while an operator has paused the destination (/pause).",
            labels=["destination"],
        )
        for name, d in sorted(destination_states(runtime).items()):
            since = _dt(d.since) if d.since else None
            down.add_metric([name], (now - since).total_seconds() if since else 0.0)
            held.add_metric([name], 1.0 if d.state == "held" else 0.0)
        yield down
        yield held
        if runtime.coordinator is not None:
            roles = GaugeMetricFamily(
                "chipwatch_instance_role",
                "1 for each shared role this instance holds (several instances on one "
                "database): commands, deliver:<destination>.",
                labels=["role"],
            )
            for role in runtime.coordinator.roles():
                roles.add_metric([role], 1.0)
            yield roles

        last = self.scheduler.last_tick
        yield GaugeMetricFamily(
            "chipwatch_scheduler_last_tick_age_seconds",
            "Seconds since the scheduler last ticked.",
            value=time.monotonic() - last if last is not None else -1.0,
        )


# --- the HTTP endpoint -----------------------------------------------------------------------


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class OpsServer:
    """A minimal HTTP/1.1 server (one request per connection) for /healthz and /metrics."""

    def __init__(
        self,
        *,
        health: Callable[[], Awaitable[Health]],
        metrics: Callable[[str], tuple[bytes, str]],
    ):
        self._health = health
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str | None:
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self, host: str, port: int) -> None:
        """Listen; raises OSError when the address is taken or unusable."""
        self._server = await asyncio.start_server(self._serve, host, port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_SECONDS)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            status, ctype, body, extra = await self._answer(head)
            request_method = head.split(b" ", 1)[0]
            headers = [
                f"HTTP/1.1 {status} {_REASONS[status]}",
                f"Content-Type: {ctype}",
                f"Content-Length: {len(body)}",
                "Cache-Control: no-store",
                "Connection: close",
                *extra,
            ]
            writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
            if request_method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except ConnectionError:
            pass  # the client went away; nothing to answer
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def _answer(self, head: bytes) -> tuple[int, str, bytes, list[str]]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _text(400, "bad request line\n")
        method, target = parts[0], parts[1]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        path = urlsplit(target).path
        if path not in ("/healthz", "/metrics"):
            return _text(404, "not found: try /healthz or /metrics\n")
        if method not in ("GET", "HEAD"):
            status, ctype, body, _ = _text(405, "only GET and HEAD\n")
            return status, ctype, body, ["Allow: GET, HEAD"]
        try:
            if path == "/healthz":
                health = await self._health()
                body = json.dumps(health.to_json(), ensure_ascii=False).encode() + b"\n"
                return 200 if health.healthy else 503, "application/json", body, []
            body, ctype = self._metrics(headers.get("accept", ""))
            return 200, ctype, body, []
        except Exception as exc:  # a bug here must not end the endpoint
            log.exception("ops_request_failed path=%s", path)
            return _text(500, f"internal error: {type(exc).__name__}\n")


def _text(status: int, text: str) -> tuple[int, str, bytes, list[str]]:
    return status, "text/plain; charset=utf-8", text.encode(), []


async def start_ops(runtime: Runtime, scheduler: Scheduler) -> OpsServer | None:
    """Serve /healthz and /metrics on ``ops.listen``; None when it is off or the address
    cannot be used (logged as ``ops_listen_failed``; the bot goes on without it)."""
    address = runtime.config.ops.address
    if address is None:
        return None
    runtime.metrics.add_collector(StateCollector(runtime, scheduler))
    server = OpsServer(health=HealthCheck(runtime, scheduler), metrics=runtime.metrics.render)
    try:
        await server.start(*address)
    except OSError as exc:
        event(
            log,
            "ops_listen_failed",
            logging.WARNING,
            listen=runtime.config.ops.listen,
            error=exc.strerror or str(exc),
            effect="running without /healthz and /metrics",
        )
        return None
    event(log, "ops_listening", address=server.address, paths="/healthz,/metrics")
    return server
