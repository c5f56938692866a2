"""One writer per SQLite file: an OS lock held for the life of the process.

``run`` and ``once`` take it before opening the database; a second writer on the same file
refuses to start and names the holder. The lock is ``flock`` on ``<database>.lock``, which the
kernel releases when the process dies, however it dies: nothing is left behind to clean up.
Read-only commands (``backtest``, ``match``, ``check-config``) never take it.

On PostgreSQL the same rule holds through a session advisory lock instead of a file: the
server drops it when the holder's connection ends, however the process died. (Several
instances on one PostgreSQL database need leases and claims, which are not built yet.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from .errors import StoreError
from .logs import redact_database_url
from .store.engine import WRITER_LOCK, connect_postgres, is_postgres_url


class DatabaseBusy(StoreError):
    """Another chipwatch process writes this database."""


class DatabaseLock:
    """``with DatabaseLock(path, command="run"):`` holds the writer lock, or raises
    ``DatabaseBusy`` naming the process that holds it."""

    def __init__(self, database: Path | str | None, *, command: str):
        self.url = database if isinstance(database, str) and is_postgres_url(database) else None
        self.path = Path(f"{database}.lock") if database is not None and not self.url else None
        self.command = command
        self._fd: int | None = None
        self._conn = None  # the PostgreSQL session holding the advisory lock

    def acquire(self) -> None:
        if self.url is not None:
            self._acquire_postgres(self.url)
            return
        if self.path is None:  # an in-memory database has one user by construction
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise DatabaseBusy(
                f"{self.path.with_suffix('')}: in use by another chipwatch ({holder}); one "
                f"process writes a database at a time. Stop it first, or use `status`, "
                f"`backtest`, `match` or `check-config`, which only read."
            ) from None
        os.ftruncate(fd, 0)
        os.write(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "command": self.command,
                    "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            ).encode(),
        )
        self._fd = fd

    def _acquire_postgres(self, url: str) -> None:
        # application_name is how the holder names itself to a refused newcomer.
        me = f"chipwatch {self.command} {os.getpid()}@{socket.gethostname()}"[:63]
        conn = connect_postgres(url, application_name=me)
        try:
            if conn.execute("SELECT pg_try_advisory_lock(%s)", [WRITER_LOCK]).fetchone()[0]:
                self._conn = conn
                return
            row = conn.execute(
                "SELECT a.application_name, a.client_addr::text, a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND (l.classid::bigint << 32 | l.objid::bigint) = %s",
                [WRITER_LOCK],
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        conn.close()
        holder = _describe_session(*row) if row else "a process that has just let go"
        raise DatabaseBusy(
            f"{redact_database_url(url)}: in use by another chipwatch ({holder}); one process "
            f"writes a database at a time (several instances are not supported yet). Stop it "
            f"first, or use `status`, `backtest`, `match` or `check-config`, which only read."
        )

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ending the session drops the advisory lock
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> DatabaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe_session(name: str | None, addr: str | None, since: datetime | None) -> str:
    _, command, where = ((name or "").split(" ", 2) + ["", ""])[:3]
    pid, _, host = where.partition("@")
    who = f"`{command}` as pid {pid} on host {host}" if pid else f"session {name!r}"
    when = f", since {since.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%S}" if since else ""
    return f"{who}, connected from {addr or 'a local socket'}{when}"


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "a process that has not said who it is yet"
    return (
        f"`{info.get('command', '?')}` as pid {info.get('pid', '?')} on host "
        f"{info.get('host', '?')}, since {info.get('since', '?')}"
    )
