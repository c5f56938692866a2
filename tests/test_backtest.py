"""``python bot.py backtest``: stored items replayed through a candidate config, read-only."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from alerts.backtest import term_preview
from alerts.config import load_config
from alerts.errors import ConfigError
from tests.support import ago, cli, rss, write_config

WATCH = """watchlists:
  chips: [H200, H20]
  companies: [Nvidia]
  export_terms: [export controls]
"""
ITEMS = [
    {
        "title": "US widens export controls on H20 accelerators",
        "guid": "a",
        "link": "https://w.example/a",
        "date": ago(hours=2),
    },
    {
        "title": "Supplier ships B300 racks",
        "guid": "b",
        "link": "https://w.example/b",
        "date": ago(hours=1),
        "summary": "The B300 racks fall under new export controls, the company said.",
    },
    {
        "title": "Weather is fine today",
        "guid": "c",
        "link": "https://w.example/c",
        "date": ago(minutes=30),
    },
]


@pytest.fixture
def stored(tmp_path, serve):
    """A real database after one `once` on a live config: the H20 story alerted."""
    url = serve(rss(ITEMS))
    config = write_config(tmp_path, [("Wire", url)], watchlists=WATCH)
    first = cli("once", "--config", str(config))
    assert first.returncode == 0 and "alerts=1" in first.stdout, first.stdout + first.stderr
    return tmp_path, url


def test_backtest_shows_what_a_candidate_config_changes(stored):
    tmp_path, url = stored
    db = tmp_path / "cw.db"
    before = db.read_bytes()
    # The candidate watches B300 (found in a stored summary) and drops H20.
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    cfg = write_config(
        candidate,
        [("Wire", url)],
        watchlists=WATCH.replace("chips: [H200, H20]", "chips: [H200, B300]"),
    )
    cfg.write_text(cfg.read_text().replace("database: cw.db", f"database: {db}"))
    out = cli("backtest", "--since", "1d", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    new_part, stop_part = out.stdout.split("--- WOULD STOP ALERTING (1) ---")
    assert "--- WOULD NEWLY ALERT (1) ---" in new_part and "Supplier ships B300 racks" in new_part
    assert "B300 ← 'B300'" in new_part and "summary" in new_part, "explained, summary included"
    assert "US widens export controls on H20 accelerators" in stop_part
    assert "backtest: 3 items since" in out.stdout
    assert "1 would newly alert, 1 would stop alerting, 0 alert either way" in out.stdout
    assert db.read_bytes() == before, "a backtest writes nothing"
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    assert rows == 1


def test_backtest_window_and_bad_arguments(stored, tmp_path):
    config = tmp_path / "config.yaml"
    with sqlite3.connect(tmp_path / "cw.db") as db:  # one item was seen three days ago
        db.execute("UPDATE items SET seen_at = '2000-01-01T00:00:00.000+00:00' WHERE guid = 'a'")
    out = cli("backtest", "--since", "2d", "--config", str(config))
    assert out.returncode == 0 and "backtest: 2 items since" in out.stdout, out.stdout
    bad = cli("backtest", "--since", "yesterday", "--config", str(config))
    assert bad.returncode == 2 and "30m, 48h, 7d or 2w" in bad.stderr


def test_backtest_without_a_database_says_so(tmp_path):
    config = write_config(tmp_path, [], watchlists=WATCH)
    out = cli("backtest", "--config", str(config))
    assert out.returncode == 1 and "no database yet" in out.stderr


def test_term_preview_of_a_term_not_on_the_watchlist_is_a_config_error(tmp_path):
    path = write_config(tmp_path, [("Wire", "http://127.0.0.1:9/feed")], watchlists=WATCH)
    with pytest.raises(ConfigError, match="no term 'B300' in watchlist 'chips'") as err:
        term_preview(load_config(path), "chips", "B300", since=datetime.now(timezone.utc))
    assert err.value.file == str(path)


def test_backtest_marks_what_the_learned_opinion_alone_would_add(tmp_path, serve):
    title = "Washington turns the screws on Beijing's access to Nvidia chips"
    url = serve(rss([{"title": title, "guid": "l", "link": "https://w.example/l", "date": ago()}]))
    live = write_config(
        tmp_path, [("Wire", url)], watchlists=WATCH, extra="learned:\n  enabled: false\n"
    )
    first = cli("once", "--config", str(live))
    assert first.returncode == 0 and "alerts=0" in first.stdout, first.stdout + first.stderr
    # The candidate turns the learned opinion on, with a threshold this small watchlist meets.
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    cfg = write_config(
        candidate, [("Wire", url)], watchlists=WATCH, extra="learned:\n  threshold: 0.5\n"
    )
    cfg.write_text(cfg.read_text().replace("database: cw.db", f"database: {tmp_path / 'cw.db'}"))
    out = cli("backtest", "--since", "1d", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "--- WOULD NEWLY ALERT (1) ---" in out.stdout
    assert f"[Wire] [learned only] {title}" in out.stdout
    assert "learned opinion" in out.stdout and "to silence it" in out.stdout
    assert "1 would newly alert, 0 would stop alerting" in out.stdout
    assert "1 of the new by the learned opinion alone" in out.stdout
