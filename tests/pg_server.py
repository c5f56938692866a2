"""A throw-away PostgreSQL server for the tests: ``initdb`` in a temporary directory, started
with ``pg_ctl`` on a free loopback port, removed when stopped. No fake: the real server that
users run, minus durability (``fsync=off``), which no test can observe.

``initdb`` refuses to run as root, and CI runs as root: then the cluster belongs to the
``postgres`` user and the commands run through ``runuser``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _pg_bin() -> Path:
    """``CHIPWATCH_PG_BIN``, else PostgreSQL 15 where Debian puts it, else the newest there."""
    if os.environ.get("CHIPWATCH_PG_BIN"):
        return Path(os.environ["CHIPWATCH_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    preferred = Path("/usr/lib/postgresql/15/bin")
    return preferred if (preferred / "initdb").exists() or not found else found[-1].parent


PG_BIN = _pg_bin()
SECRET_USER = "cw_secret"  # the one role that must give a password (scram) over TCP
SECRET_PASSWORD = "s3cret-Pa55word"


def enabled() -> bool:
    return os.environ.get("CHIPWATCH_TEST_PG", "1") != "0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """``with PgServer() as pg: pg.new_database() -> URL``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chipwatch-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count()

    def _run(self, *args: str) -> None:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.dir / "server.log"
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}"
                f"{log.read_text() if log.exists() else ''}"
            )

    def start(self) -> PgServer:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(
                f"PostgreSQL binaries not found in {PG_BIN}: install Debian's "
                f"`postgresql` package (.ci/run does), or set CHIPWATCH_TEST_PG=0"
            )
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {SECRET_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "start",
        )
        self.admin(f"CREATE ROLE {SECRET_USER} LOGIN SUPERUSER PASSWORD '{SECRET_PASSWORD}'")
        return self

    def url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"cw_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgServer:
        try:
            return self.start()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
