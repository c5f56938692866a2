"""``python bot.py status``: the bot's health from its database alone, read-only, so it works
whether or not a ``run`` is up (and never disturbs one). The verdict is ``alerts.health``'s,
the same as ``/healthz`` and ``/status`` reach, without what only a running process knows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .config import Config
from .deliver import SUBSCRIBERS
from .health import Health, assess, when
from .store import read_health_facts


@dataclass(frozen=True, slots=True)
class Status:
    """The assessment from the database alone. ``healthy`` here means nothing to look at:
    ``status`` exits 1 on a warning too (for cron), while /healthz turns 503 on reasons."""

    health: Health

    @property
    def healthy(self) -> bool:
        return not self.health.problems

    @property
    def problems(self) -> tuple[str, ...]:
        return self.health.problems

    @property
    def instances(self) -> list[dict]:
        return status_json(self.health)["instances"]

    def to_json(self) -> dict:
        return status_json(self.health)


def read_status(config: Config, *, now: datetime) -> Status:
    """Assess what the database says about feeds, the outbox and holds."""
    return Status(assess(config, read_health_facts(config.database, now=now), now=now))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value else None


def status_json(health: Health) -> dict:
    """``status --json``: one object."""
    last = health.last_alert
    return {
        "database": health.database,
        "database_bytes": health.database_bytes,
        "feeds": [
            {
                "name": f.name,
                "state": f.state,
                "last_ok_at": _iso(f.last_ok_at),
                "failing_since": _iso(f.failing_since),
                "error": f.error,
                "next_poll_at": _iso(f.next_poll_at),
            }
            for f in health.feeds
        ],
        "pending": {n: d.pending for n, d in health.destinations.items() if d.pending},
        "oldest_pending": {
            n: _iso(d.oldest) for n, d in health.destinations.items() if d.oldest is not None
        },
        "paused": [n for n, d in health.destinations.items() if d.state == "held"],
        "digests": {
            n: d.digest.to_json() for n, d in health.destinations.items() if d.digest is not None
        },
        "subscribers": _subscribers(health),
        "last_alert": {"title": last.title, "feed": last.feed, "created_at": _iso(last.created_at)}
        if last
        else None,
        "reasons": list(health.reasons),
        "warnings": list(health.warnings),
        "problems": list(health.problems),
        "instances": [
            {
                "id": i.id,
                "command": i.command,
                "roles": i.roles,
                "seen_at": i.seen_at,
                "config_hash": i.config_hash,
            }
            for i in health.instances
        ],
        "healthy": not health.problems,
    }


def _subscribers(health: Health) -> dict[str, int]:
    d = health.destinations.get(SUBSCRIBERS)
    return {"chats": d.chats or 0, "suspended": d.suspended or 0} if d else {}


def format_status(status: Status) -> str:
    """The status for a person."""
    health = status.health
    counts = {s: health.count(s) for s in ("ok", "failing", "disabled", "never polled")}
    lines = ["feeds: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)]
    for f in health.feeds:
        detail = {
            "ok": f"last ok {when(f.last_ok_at)}",
            "failing": f"since {when(f.failing_since)} ({f.error}), "
            f"next try {when(f.next_poll_at)}",
            "disabled": f"{f.error}",
            "never polled": "",
        }[f.state]
        lines.append(f"  {f.state.upper():13} {f.name}  {detail}".rstrip())
    waiting = [(n, d) for n, d in health.destinations.items() if d.pending]
    lines.append(
        "pending: "
        + (
            ", ".join(f"{n} {d.pending} (oldest {when(d.oldest)})" for n, d in waiting)
            if waiting
            else "none"
        )
    )
    last = health.last_alert
    lines.append(
        f"last alert: {when(last.created_at)} [{last.feed}] {last.title}"
        if last
        else "last alert: none yet"
    )
    held = [n for n, d in health.destinations.items() if d.state == "held"]
    lines.append("paused: " + (", ".join(held) if held else "no"))
    for n, d in health.destinations.items():
        if d.digest is not None:
            dg = d.digest
            done = (
                f"last {dg.last_status} {when(dg.last_sent or dg.last_period)}"
                if dg.last_status
                else "none yet"
            )
            lines.append(f"digest: {n} {dg.schedule}; {done}; next {when(dg.next_due)}")
    subscribers = _subscribers(health)
    if subscribers:
        lines.append(
            f"subscribers: {subscribers['chats']} chat(s)"
            + (
                f", {subscribers['suspended']} suspended (blocked the bot)"
                if subscribers["suspended"]
                else ""
            )
        )
    lines.append(f"database: {health.database} ({health.database_bytes / 2**20:.1f} MiB)")
    for i in health.instances:
        lines.append(
            f"instance: {i.id} ({i.command}; {i.roles or 'polling only'}; "
            f"seen {when(datetime.fromisoformat(i.seen_at))}, watchlists {i.config_hash})"
        )
    if health.reasons:
        lines.append("status: UNHEALTHY: " + "; ".join(health.problems))
    elif health.warnings:
        lines.append("status: needs attention: " + "; ".join(health.warnings))
    else:
        lines.append("status: healthy")
    return "\n".join(lines)
