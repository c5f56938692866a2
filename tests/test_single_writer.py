"""One writer per SQLite file: a second `run`, or a `once` beside a running `run`, refuses and
names the holder; nothing is sent twice or lost; migrations cannot race; readers still work."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from alerts.lock import DatabaseBusy, DatabaseLock
from tests.support import ROOT, RunningBot, ago, rss, run_bot, write_config

pytestmark = pytest.mark.system  # every test here starts processes: bot.py, a lock holder, openers

WATCH = """watchlists:
  chips: [H20]
  companies: [Nvidia]
  export_terms: [entity list]
"""
N = 30


def _items():
    # Distinct numbers keep the thirty events apart (they never join one story).
    return [
        {
            "title": f"US adds {n + 2} Nvidia H20 buyers to entity list",
            "guid": f"g{n}",
            "link": f"https://w.example/{n}",
            "date": ago(minutes=40 - n),
        }
        for n in range(N)
    ]


def _wait(predicate, what, timeout=40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _holder(lock_path):
    try:
        return json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def test_once_beside_run_refuses_and_nothing_is_lost_or_repeated(tmp_path, serve):
    config = write_config(tmp_path, [("Wire", serve(rss(_items())))], watchlists=WATCH)
    log = tmp_path / "run.log"
    bot = RunningBot(config, log)
    proc = bot.proc
    try:
        _wait(lambda: _holder(tmp_path / "cw.db.lock").get("pid") == proc.pid, "run's lock")
        once = run_bot("once", "--config", str(config))
        assert once.returncode == 1
        assert f"pid {proc.pid} on host {socket.gethostname()}" in once.stderr
        assert "`run`" in once.stderr and "in use by another chipwatch" in once.stderr
        again = run_bot("run", "--config", str(config), timeout=30)
        assert again.returncode == 1 and f"pid {proc.pid}" in again.stderr
        # Readers are never refused.
        assert run_bot("backtest", "--config", str(config)).returncode == 0
        assert (
            run_bot("match", "--config", str(config), "US adds Nvidia to entity list").returncode
            == 0
        )
        _wait(lambda: log.read_text().count("🔔 ") >= N, f"{N} alerts from run")
        # Nothing more can be printed once nothing is pending.
        _wait(lambda: _pending(tmp_path / "cw.db") == 0, "an empty outbox")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    text = log.read_text()
    for n in range(N):
        assert text.count(f"🔔 US adds {n + 2} Nvidia H20 buyers to entity list\n") == 1, n
    assert _lock_is_free(tmp_path / "cw.db"), "released when run stopped"


def _pending(database) -> int:
    with sqlite3.connect(database) as db:  # a reader: never refused, never blocks the writer
        return db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'").fetchone()[0]


def _lock_is_free(database):
    try:
        with DatabaseLock(database, command="test"):
            return True
    except DatabaseBusy:
        return False


def test_the_lock_dies_with_its_process(tmp_path):
    database = tmp_path / "cw.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; sys.path.insert(0, sys.argv[1]);"
                "from alerts.lock import DatabaseLock;"
                "l = DatabaseLock(sys.argv[2], command='run'); l.acquire(); print('held', flush=True);"
                "time.sleep(60)"
            ),
            str(ROOT),
            str(database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not _lock_is_free(database)
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs
        holder.wait()
    assert _lock_is_free(database), "the kernel released it; no stale lock is left"


def test_concurrent_openers_migrate_once(tmp_path):
    database = tmp_path / "new.db"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from alerts.store import open_store, "
        "SCHEMA_VERSION; s = open_store(sys.argv[2]);"
        "assert s.db.execute('PRAGMA user_version').fetchone()[0] == SCHEMA_VERSION; s.close()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(ROOT), str(database)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
