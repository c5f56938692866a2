"""The ops endpoint of ``run``: ``GET /healthz`` and ``GET /metrics`` on ``ops.listen``.

It is served by a small HTTP/1.1 handler inside the bot's own event loop, so every answer
reflects live state: when the scheduler last ticked, whether the database file accepts a write
now, each destination's delivery state, and the feeds' state in the database. A port that is
taken is logged and the bot goes on without the endpoint: alerts matter more.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric

from . import __version__
from .deliver import SUBSCRIBERS
from .health import Health, Live, assess, listed
from .httpd import Handler, HttpServer, Request, Response, text
from .logs import event
from .runtime import Runtime
from .scheduler import Scheduler
from .types import utcnow

log = logging.getLogger("chipwatch.ops")


# --- health -----------------------------------------------------------------------------------


def healthz_json(health: Health) -> dict:
    """What ``/healthz`` answers (200 when ``health.healthy``, else 503)."""
    live = health.live
    assert live is not None  # /healthz is served by a running process
    destinations: dict[str, dict] = {}
    for name, d in health.destinations.items():
        entry: dict[str, object] = {"state": d.state}
        if d.since is not None:
            entry["since"] = d.since.isoformat(timespec="milliseconds")
        if name == SUBSCRIBERS:
            entry.update(chats=d.chats, suspended=d.suspended)
        if d.digest is not None:
            entry["digest"] = d.digest.to_json()
        destinations[name] = entry
    return {
        "status": "ok" if health.healthy else "unhealthy",
        "reasons": list(health.reasons),
        "warnings": listed(health.warnings),
        "version": __version__,
        "scheduler": {
            "last_tick_seconds_ago": None if live.tick_age is None else round(live.tick_age, 1),
            "tick_every_seconds": live.tick_every,
        },
        "database": {
            "path": health.database,
            "writable": live.database_error is None,
            "error": live.database_error,
        },
        "feeds": {
            "configured": len(health.feeds),
            "failing": health.count("failing"),
            "disabled": health.count("disabled"),
        },
        "destinations": destinations,
        "commands": live.commands,
        **({"instance": dict(live.instance)} if live.instance is not None else {}),
    }


class HealthCheck:
    """Assesses the running bot: what the store reports, and the live state of the scheduler,
    the database connection, the deliverer and the command poller. ``/healthz`` and
    ``/status`` both ask it."""

    def __init__(self, runtime: Runtime, scheduler: Scheduler):
        self.runtime = runtime
        self.scheduler = scheduler

    def __call__(self, now: datetime | None = None, *, probe: bool = True) -> Health:
        """The assessment as of ``now`` (default: the current time); ``probe``: try a write
        into the database (a metrics scrape, which shows no verdict, skips it)."""
        runtime, now = self.runtime, now or utcnow()
        last = self.scheduler.last_tick
        coordinator = runtime.coordinator
        live = Live(
            tick_age=None if last is None else time.monotonic() - last,
            tick_every=self.scheduler.tick_every,
            database_error=runtime.store.probe_write(now=now) if probe else None,
            destinations=runtime.live_destinations(),
            commands=runtime.commands,
            instance={"id": coordinator.id, "roles": coordinator.roles()}
            if coordinator is not None
            else None,
        )
        return assess(runtime.config, runtime.store.health_facts(now=now), now=now, live=live)


# --- metrics read at scrape time ----------------------------------------------------------------


class StateCollector:
    """Gauges of stored and live state: the outbox, feeds, destinations, the scheduler and the
    command poller. Every subscriber's chat is under one label, ``telegram:subscribers``."""

    def __init__(self, check: HealthCheck):
        self.check = check

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration; collect() needs a live store

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        health = self.check(now, probe=False)
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
        last_digest = GaugeMetricFamily(
            "chipwatch_digest_last_sent_timestamp_seconds",
            "When the destination's last scheduled digest went out (0: none yet).",
            labels=["destination"],
        )
        next_digest = GaugeMetricFamily(
            "chipwatch_digest_next_due_timestamp_seconds",
            "When the destination's next scheduled digest falls due.",
            labels=["destination"],
        )
        for name, d in sorted(health.destinations.items()):
            pending.add_metric([name], d.pending)
            oldest.add_metric([name], (now - d.oldest).total_seconds() if d.oldest else 0.0)
            down.add_metric([name], (now - d.since).total_seconds() if d.since else 0.0)
            held.add_metric([name], 1.0 if d.state == "held" else 0.0)
            if d.digest is not None:
                sent = d.digest.last_sent
                last_digest.add_metric([name], sent.timestamp() if sent else 0.0)
                next_digest.add_metric([name], d.digest.next_due.timestamp())
        yield from (pending, oldest, down, held, last_digest, next_digest)

        yield GaugeMetricFamily(
            "chipwatch_feeds_configured", "Feeds in the config.", value=len(health.feeds)
        )
        yield GaugeMetricFamily(
            "chipwatch_feeds_failing",
            "Feeds whose last poll failed.",
            value=health.count("failing"),
        )
        yield GaugeMetricFamily(
            "chipwatch_feeds_disabled",
            "Feeds disabled (410 Gone) until the config changes.",
            value=health.count("disabled"),
        )
        runtime = self.check.runtime
        if runtime.commands != "off":
            yield GaugeMetricFamily(
                "chipwatch_commands_up",
                "1 while this instance answers bot commands; 0 while it cannot reach Telegram "
                "yet (or, with several instances, another one answers them).",
                value=1.0 if runtime.commands == "up" else 0.0,
            )
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

        live = health.live
        assert live is not None
        yield GaugeMetricFamily(
            "chipwatch_scheduler_last_tick_age_seconds",
            "Seconds since the scheduler last ticked.",
            value=live.tick_age if live.tick_age is not None else -1.0,
        )


# --- the HTTP endpoint -----------------------------------------------------------------------


def ops_routes(check: HealthCheck) -> dict[str, Handler]:
    """/healthz and /metrics, for an ``HttpServer`` (their own, or shared with WebSub's)."""
    metrics = check.runtime.metrics.render

    async def healthz(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return text(405, "only GET and HEAD\n", "Allow: GET, HEAD")
        health = check()
        body = json.dumps(healthz_json(health), ensure_ascii=False).encode() + b"\n"
        return Response(
            status=200 if health.healthy else 503, body=body, content_type="application/json"
        )

    async def scrape(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return text(405, "only GET and HEAD\n", "Allow: GET, HEAD")
        body, ctype = metrics(request.headers.get("accept", ""))
        return Response(status=200, body=body, content_type=ctype)

    return {"/healthz": healthz, "/metrics": scrape}


async def start_ops(
    runtime: Runtime, check: HealthCheck, *, also: Mapping[str, Handler] | None = None
) -> HttpServer | None:
    """Serve /healthz and /metrics on ``ops.listen`` (with ``also``'s paths, when another
    endpoint shares the address); None when it is off or the address cannot be used (logged
    as ``ops_listen_failed``; the bot goes on without it)."""
    address = runtime.config.ops.address
    if address is None:
        return None
    runtime.metrics.add_collector(StateCollector(check))
    server = HttpServer(
        {**ops_routes(check), **(also or {})}, max_body=runtime.config.poll.max_bytes
    )
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
    event(log, "ops_listening", address=server.address, paths=server.paths)
    return server
