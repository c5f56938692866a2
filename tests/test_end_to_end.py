"""End to end, as a user runs it: ``python bot.py once`` in a fresh process against feeds served
on loopback, with a temp config and a temp SQLite database."""

from __future__ import annotations

import sqlite3

import pytest

from alerts.loopback import Route
from tests.support import ago, atom, rss, run_bot, write_config

pytestmark = pytest.mark.system  # every test here runs bot.py as its own process

H200 = "China approves first imports of Nvidia H200 AI chips"
ENTITY = "US adds SMIC units to entity list"
HUAWEI = "Huawei hit by new export controls on Blackwell-class parts"


def _alert_titles(stdout: str) -> list[str]:
    return [line[2:].strip() for line in stdout.splitlines() if line.startswith("🔔")]


def test_once_delivers_expected_alerts_then_nothing_twice_across_restarts(
    tmp_path, feed_server, serve
):
    rss_items = [
        {
            "title": H200,
            "link": "https://news.example/h200?utm_source=rss",
            "guid": "a1",
            "date": ago(minutes=30),
            "summary": "Beijing grants import approval.",
        },
        {
            "title": "Farm exports surge",
            "link": "https://news.example/farm",
            "guid": "a2",
            "date": ago(minutes=20),
        },
        {
            "title": "Hyundai H200 minivan recalled",
            "link": "https://news.example/van",
            "guid": "a3",
            "date": ago(minutes=10),
        },
    ]
    atom_entries = [
        {
            "title": ENTITY,
            "link": "https://policy.example/smic",
            "guid": "urn:p:1",
            "date": ago(minutes=15),
        },
        {
            "title": "Seismic survey finds gas",
            "link": "https://policy.example/gas",
            "guid": "urn:p:2",
            "date": ago(minutes=5),
        },
    ]
    rss_url = serve(rss(rss_items))
    atom_path_url = serve(atom(atom_entries), suffix=".atom")
    config = write_config(tmp_path, [("Wire", rss_url), ("Policy", atom_path_url)])

    first = run_bot("once", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert sorted(_alert_titles(first.stdout)) == sorted([H200, ENTITY])
    assert "summary: feeds ok=2 failed=0 new_items=5 alerts=2 sent=2 pending=0" in first.stdout

    # Same process image, same database: nothing is new, so nothing alerts.
    second = run_bot("once", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert _alert_titles(second.stdout) == []
    assert "new_items=0 alerts=0" in second.stdout

    # New items then alert, including one that only changed its tracking parameters: that one
    # is the same article and must not.
    rss_items.append(
        {
            "title": HUAWEI,
            "link": "https://news.example/huawei",
            "guid": "a4",
            "date": ago(minutes=1),
        }
    )
    rss_items.append(
        {
            "title": H200,
            "link": "https://news.example/h200?utm_source=twitter",
            "guid": "a1-republished",
            "date": ago(minutes=1),
        }
    )
    feed_server.route(rss_url.split(str(feed_server.port))[1], Route(body=rss(rss_items).encode()))
    third = run_bot("once", "--config", str(config))
    assert third.returncode == 0, third.stderr
    assert _alert_titles(third.stdout) == [HUAWEI]

    with sqlite3.connect(tmp_path / "cw.db") as db:
        sent = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'").fetchone()[0]
        items = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    assert sent == 3
    assert items == 6  # the republished H200 item is not stored as a new item


def test_broken_feeds_are_reported_and_good_ones_still_alert(tmp_path, serve):
    good = serve(
        rss([{"title": H200, "link": "https://n.example/1", "guid": "g1", "date": ago(minutes=5)}])
    )
    missing = serve(Route(body=b"gone", status=404))
    slow = serve(Route(body=rss([]).encode(), delay=4))
    garbage = serve(
        Route(
            body=b"<html><body>Not a feed <<<</body></html>", headers={"Content-Type": "text/html"}
        )
    )
    config = write_config(
        tmp_path,
        [("Missing", missing), ("Good", good), ("Slow", slow), ("Garbage", garbage)],
        timeout=1,
    )

    result = run_bot("once", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert _alert_titles(result.stdout) == [H200]
    summary = result.stdout.strip().splitlines()[-1]
    assert "feeds ok=1 failed=3" in summary
    assert "Missing (http_404)" in summary
    assert "Slow (timeout" in summary
    assert "Garbage (parse: not a feed" in summary
    # Each failure is logged against its feed.
    assert "feed_polled status=error feed=Missing error=http_404" in result.stderr


def test_dry_run_prints_alerts_but_records_and_sends_nothing(tmp_path, serve):
    url = serve(
        rss([{"title": H200, "link": "https://n.example/d", "guid": "d1", "date": ago(minutes=5)}])
    )
    config = write_config(tmp_path, [("Wire", url)])

    dry = run_bot("once", "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _alert_titles(dry.stdout) == [H200]
    assert "dry_run=yes" in dry.stdout

    real = run_bot("once", "--config", str(config))
    assert _alert_titles(real.stdout) == [H200], "dry run must not mark the item as seen"


def test_demo_runs_offline_and_prints_alerts(tmp_path):
    result = run_bot("demo", cwd=tmp_path)  # no ./config.yaml there: the shipped one is used

    assert result.returncode == 0, result.stderr
    titles = _alert_titles(result.stdout)
    assert "China approves first imports of Nvidia H200 AI chips" in titles
    assert titles.count("China approves first imports of Nvidia H200 AI chips") == 1
    assert not any("Hyundai" in t or "Farm" in t or "Seismic" in t for t in titles)
    assert list(tmp_path.iterdir()) == [], "demo must leave nothing behind"
