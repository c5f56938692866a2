"""One writer per SQLite file: an OS lock held for the life of the process.

``run`` and ``once`` take it before opening the database; a second writer on the same file
refuses to start and names the holder. The lock is ``flock`` on ``<database>.lock``, which the
kernel releases when the process dies, however it dies: nothing is left behind to clean up.
Read-only commands (``backtest``, ``match``, ``check-config``) never take it.

On PostgreSQL there is no such lock: several instances share one database and divide the
work through leases and advisory locks (see ``coordinate``).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from .config import is_postgres_url
from .errors import StoreError


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

    def acquire(self) -> None:
        if self.path is None:  # in memory (one user by construction), or PostgreSQL (shared)
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

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> DatabaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
