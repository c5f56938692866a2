"""Issue #23, item 6: "also reported by" names outlets, and another outlet joining a story
through the same feed (an aggregator) edits the story's message."""

from __future__ import annotations

import os
from datetime import timedelta

from alerts.config import load_config
from alerts.deliver import Deliverer
from alerts.deliver.telegram import TelegramSink
from alerts.outlets import outlet_name
from alerts.store import open_store
from alerts.stories import Clusterer
from tests.support import (
    CHANNEL,
    CHANNEL_ID,
    Clock,
    ago,
    cli,
    poll_cycle,
    rss,
    shipped_watchlists,
    write_config,
)

FIRST = "China approves first imports of Nvidia H200 AI chips"
SECOND = "Beijing approves Nvidia H200 imports for Chinese tech giants"


def _env(**extra):
    drop = ("TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "CHIPWATCH_DATABASE")
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


def _entry(title: str, link: str, guid: str, *, minutes: int, **extra: str) -> dict:
    """A feed entry published ``minutes`` ago."""
    return {"title": title, "link": link, "guid": guid, "date": ago(minutes=minutes), **extra}


def _aggregated(tmp_path, serve, telegram, feed_server, first: dict, second: dict):
    """One aggregator feed: ``first`` at the first poll, both at the second."""
    url = serve(rss([first], title="News aggregator"))
    config = write_config(
        tmp_path,
        [("Aggregator", url)],
        watchlists=shipped_watchlists() + f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
        f"    api_base_url: {telegram.base_url}\n",
    )
    env = _env(TELEGRAM_BOT_TOKEN=telegram.token)
    result = cli("once", "--config", str(config), env=env)
    assert result.returncode == 0 and len(telegram.sent) == 1, result.stderr
    feed_server.routes[url.split(str(feed_server.port))[1]].body = rss(
        [first, second], title="News aggregator"
    ).encode()
    result = cli("once", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "story_joined" in result.stderr, result.stderr
    return telegram.messages[(CHANNEL_ID, telegram.sent[0]["message_id"])], result


def test_item6_an_aggregators_other_outlet_joins_with_an_edit_naming_it(
    tmp_path, serve, telegram, feed_server
):
    first = _entry(FIRST, "https://www.reuters.com/a", "1", minutes=9)
    second = _entry(SECOND, "https://www.bloomberg.com/b", "2", minutes=5)
    final, _ = _aggregated(tmp_path, serve, telegram, feed_server, first, second)
    assert len(telegram.edits) == 1, "the join edits the story's message"
    assert final.split("\n")[1].startswith("Reuters via Aggregator · ")
    assert "📣 also reported by Bloomberg" in final


def test_item6_a_join_saying_nothing_new_still_edits_to_name_its_outlet(
    tmp_path, serve, telegram, feed_server
):
    """The case that produced no edit: the joining headline says nothing the story's does not,
    so only the outlet is new, and the outlet used to be named by the feed (the same one)."""
    first = _entry(FIRST, "https://www.reuters.com/a", "1", minutes=9)
    second = _entry(
        "Nvidia H200 imports approved by China, sources say",
        "https://www.scmp.com/b",
        "2",
        minutes=5,
    )
    final, _ = _aggregated(tmp_path, serve, telegram, feed_server, first, second)
    assert len(telegram.edits) == 1
    assert "📣 also reported by SCMP" in final and "•" not in final


async def test_item6_the_join_edit_arrives_after_edit_delay_seconds(
    tmp_path, serve, telegram, feed_server
):
    """``run``'s path with an injected clock: the aggregator's second outlet joins at t, and the
    edit goes out at the first delivery after t + edit_delay_seconds, not later."""
    first = _entry(FIRST, "https://www.reuters.com/a", "1", minutes=9)
    second = _entry(
        FIRST + " - Bloomberg",
        "https://news.google.com/rss/articles/b",
        "2",
        minutes=5,
        source="Bloomberg",
    )
    url = serve(rss([first]))
    config = load_config(
        write_config(
            tmp_path,
            [("Google News - Nvidia China", url)],
            watchlists=shipped_watchlists()
            + "stories:\n  edit_delay_seconds: 20\n"
            + f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n',
        )
    )
    store = open_store(config.database)
    clock = Clock()
    sink = TelegramSink(token=telegram.token, chat_id=CHANNEL, base_url=telegram.base_url)
    deliverer = Deliverer(store, [sink], now=clock, sleep=clock.sleep)
    clusterer = Clusterer(store, config.stories, now=clock(), watchlists=config.watchlists)
    try:
        await poll_cycle(config, store, now=clock(), clusterer=clusterer)
        assert (await deliverer.deliver_due()).sent == 1
        feed_server.routes[url.split(str(feed_server.port))[1]].body = rss([first, second]).encode()
        clock.now += timedelta(seconds=60)
        report = await poll_cycle(config, store, now=clock(), clusterer=clusterer)
        assert report.outcomes[0].story_joins == 1
        clock.now += timedelta(seconds=19)
        assert (await deliverer.deliver_due()).edits == 0, "merging updates for edit_delay"
        clock.now += timedelta(seconds=2)
        assert (await deliverer.deliver_due()).edits == 1
        [edit] = telegram.edits
        assert "📣 also reported by Bloomberg" in edit["shown_text"]
        assert edit["shown_text"].split("\n")[1].startswith("Reuters via Google News - Nvidia")
    finally:
        await sink.aclose()
        store.close()


def test_item6_outlets_are_named_as_readers_know_them():
    feed = {"feed": "Ars Technica", "feed_url": "https://feeds.arstechnica.com/arstechnica/index"}
    assert outlet_name("Reuters", source="Reuters", **feed) == "Reuters"  # <source>
    assert outlet_name("reuters.com", source="", **feed) == "Reuters"  # a known host
    assert outlet_name("asia.nikkei.com", source="", **feed) == "Nikkei Asia"
    assert outlet_name("arstechnica.com", source="", **feed) == "Ars Technica"  # its own feed
    assert outlet_name("semianalysis.com", source="", **feed) == "semianalysis.com"
    assert outlet_name("Ars Technica", source="", **feed) == "Ars Technica"  # no link: the feed
