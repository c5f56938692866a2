"""``python bot.py status``: the bot's health from its database alone, read-only, so it works
whether or not a ``run`` is up (and never disturbs one)."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from .config import Config
from .logs import redact_database_url
from .store.schema import _dt, _iso, read_only, table_columns

PAUSED_PREFIX = "paused:"  # settings written by /pause (see alerts.runtime)
STALE_PENDING = timedelta(hours=1)  # an alert waiting longer than this is a problem
LIVE_INSTANCE = timedelta(seconds=60)  # instances heartbeat every 10 s


@dataclass(frozen=True, slots=True)
class FeedStatus:
    name: str
    state: str  # ok | failing | disabled | never polled
    last_ok_at: str | None = None
    failing_since: str | None = None
    error: str | None = None
    next_poll_at: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    database: str
    database_bytes: int
    feeds: list[FeedStatus]
    pending: dict[str, int]  # destination -> alerts waiting
    oldest_pending: dict[str, str]  # destination -> when the oldest was queued
    paused: list[str]
    last_alert: dict[str, str] | None
    problems: list[str] = field(default_factory=list)
    # several instances on one database: the live ones (id, command, roles, seen_at, config)
    instances: list[dict[str, str]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {**asdict(self), "healthy": self.healthy}


def _when(value: str | None) -> str:
    when = _dt(value)
    return f"{when:%Y-%m-%d %H:%M} UTC" if when else "-"


def read_status(config: Config, *, now: datetime) -> Status:
    """What the database says about feeds, the outbox and pauses, and what is wrong."""
    path = config.database  # a file, or a PostgreSQL URL
    with read_only(path) as db:
        db.row_factory = sqlite3.Row
        feeds = {r["name"]: r for r in db.execute("SELECT * FROM feeds")}
        pending, oldest = {}, {}
        for r in db.execute(
            "SELECT d.destination, COUNT(*) AS n, MIN(a.created_at) AS oldest "
            "FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.status = 'pending' GROUP BY d.destination"
        ):
            pending[r["destination"]], oldest[r["destination"]] = r["n"], r["oldest"]
        paused = [
            r[0][len(PAUSED_PREFIX) :]
            for r in db.execute("SELECT key FROM settings WHERE key LIKE 'paused:%'")
        ]
        last = db.execute(
            "SELECT title, feed, created_at FROM alerts ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if isinstance(path, str):
            size = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        instances = []
        if table_columns(db, "instances"):  # schema 7 and later
            instances = [
                {k: r[k] for k in ("id", "command", "roles", "seen_at", "config_hash")}
                for r in db.execute(
                    "SELECT * FROM instances WHERE seen_at >= ? ORDER BY started_at, id",
                    [_iso(now - LIVE_INSTANCE)],
                )
            ]

    problems: list[str] = []
    rows: list[FeedStatus] = []
    failing_after = timedelta(hours=config.poll.failing_after_hours)
    for feed in config.feeds:
        r = feeds.get(feed.name)
        if r is None or r["url"] != feed.url:
            rows.append(FeedStatus(feed.name, "never polled"))
            continue
        if r["disabled_reason"]:
            rows.append(FeedStatus(feed.name, "disabled", error=r["disabled_reason"]))
            problems.append(f"feed {feed.name} is disabled: {r['disabled_reason']}")
            continue
        if r["last_status"] == "error":
            since = _dt(r["failing_since"])
            rows.append(
                FeedStatus(
                    feed.name,
                    "failing",
                    last_ok_at=r["last_ok_at"],
                    failing_since=r["failing_since"],
                    error=r["last_error"],
                    next_poll_at=r["next_poll_at"],
                )
            )
            if since is not None and now - since >= failing_after:
                problems.append(
                    f"feed {feed.name} failing since {_when(r['failing_since'])} "
                    f"({r['last_error']})"
                )
            continue
        rows.append(
            FeedStatus(feed.name, "ok", last_ok_at=r["last_ok_at"], next_poll_at=r["next_poll_at"])
        )
    polled = [f for f in rows if f.state != "never polled"]
    if polled and all(f.state in ("failing", "disabled") for f in polled):
        problems.append("every feed is failing")
    for dest in paused:
        problems.append(f"destination {dest} is paused (/resume to release it)")
    for dest, when in oldest.items():
        queued = _dt(when)
        if queued is not None and now - queued > STALE_PENDING:
            problems.append(f"{pending[dest]} alert(s) for {dest} waiting since {_when(when)}")
    if len({i["config_hash"] for i in instances}) > 1:
        problems.append(
            "instances run different watchlists: "
            + ", ".join(f"{i['id']} ({i['config_hash']})" for i in instances)
        )
    if not isinstance(path, str):
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return Status(
        database=redact_database_url(str(path)),
        database_bytes=size,
        feeds=rows,
        pending=pending,
        oldest_pending=oldest,
        paused=paused,
        last_alert=dict(last) if last is not None else None,
        problems=problems,
        instances=instances,
    )


def format_status(status: Status) -> str:
    """The status for a person."""
    counts = {
        s: sum(f.state == s for f in status.feeds)
        for s in ("ok", "failing", "disabled", "never polled")
    }
    lines = ["feeds: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)]
    for f in status.feeds:
        detail = {
            "ok": f"last ok {_when(f.last_ok_at)}",
            "failing": f"since {_when(f.failing_since)} ({f.error}), "
            f"next try {_when(f.next_poll_at)}",
            "disabled": f"{f.error}",
            "never polled": "",
        }[f.state]
        lines.append(f"  {f.state.upper():13} {f.name}  {detail}".rstrip())
    if status.pending:
        lines.append(
            "pending: "
            + ", ".join(
                f"{d} {n} (oldest {_when(status.oldest_pending[d])})"
                for d, n in status.pending.items()
            )
        )
    else:
        lines.append("pending: none")
    last = status.last_alert
    lines.append(
        f"last alert: {_when(last['created_at'])} [{last['feed']}] {last['title']}"
        if last
        else "last alert: none yet"
    )
    lines.append("paused: " + (", ".join(status.paused) if status.paused else "no"))
    lines.append(f"database: {status.database} ({status.database_bytes / 2**20:.1f} MiB)")
    for i in status.instances:
        lines.append(
            f"instance: {i['id']} ({i['command']}; {i['roles'] or 'polling only'}; "
            f"seen {_when(i['seen_at'])}, watchlists {i['config_hash']})"
        )
    lines.append(
        "status: healthy" if status.healthy else "status: UNHEALTHY: " + "; ".join(status.problems)
    )
    return "\n".join(lines)
