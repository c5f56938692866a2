"""Story clustering on busy days, through the real pipeline (loopback feeds, SQLite): distinct
events about the same subject stay apart, and an aggregator's outlets count one by one."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.eval_events import DEV, evaluate
from tests.support import ROOT, ago, cli, rss, shipped_watchlists, write_config

BUSY = ROOT / "tests" / "data" / "busy_days.tsv"


@pytest.mark.parametrize("aggregator", [False, True], ids=["feed_per_outlet", "aggregator"])
def test_busy_day_swallows_no_event(aggregator):
    r = evaluate(BUSY, aggregator=aggregator)
    assert r["swallowed"] == [], "every event that matched has an alert of its own"
    assert len(r["wrong_joins"]) <= 1, [w.headline for w in r["wrong_joins"]]
    assert r["non_events_alerted"] == []


@pytest.mark.slow
def test_busy_subjects_dev_set_joins_under_one_percent_wrongly():
    r = evaluate(DEV, any_subject=True)  # clustering alone: every named subject alerts
    assert r["swallowed"] == []
    assert len(r["wrong_joins"]) < 0.01 * r["rows"], [w.headline for w in r["wrong_joins"]]


def _aggregator_config(tmp_path: Path, serve, items) -> Path:
    url = serve(rss(items, title="Google News - nvidia china"))
    return write_config(
        tmp_path,
        [("Google News", url)],
        watchlists=shipped_watchlists(),
    )


def test_aggregator_items_are_their_outlets(tmp_path, serve):
    """One Google News feed: its items' <source> outlets make one story, named in the alert;
    the same outlet twice is two events."""
    items = [
        {
            "title": "China approves first imports of Nvidia H200 AI chips - Reuters",
            "link": "https://news.google.com/rss/articles/a",
            "guid": "a",
            "source": "Reuters",
            "date": ago(minutes=30),
        },
        {
            "title": "Beijing approves Nvidia H200 imports for Chinese tech giants - Bloomberg",
            "link": "https://news.google.com/rss/articles/b",
            "guid": "b",
            "source": "Bloomberg",
            "date": ago(minutes=20),
        },
        {
            "title": "China clears first batch of Nvidia H200 chip imports - Reuters",
            "link": "https://news.google.com/rss/articles/c",
            "guid": "c",
            "source": "Reuters",
            "date": ago(minutes=10),
        },
    ]
    config = _aggregator_config(tmp_path, serve, items)
    out = cli("once", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert "alerts=2" in out.stdout, out.stdout
    # Bloomberg joined the first Reuters story; Reuters' second headline is its own alert.
    assert "also reported by Bloomberg" in out.stdout
    assert "• Bloomberg: Beijing approves Nvidia H200 imports for Chinese tech giants" in out.stdout
