"""Named, routed destinations and feed tags (issue #21, its routing half), end to end: each
destination takes the alerts its filters (rules, categories, feeds, feed tags) let through; two
Telegram chats with two bots and a Slack app each get exactly theirs over a day of mixed
headlines, and a story's edit and follow-up go to its message in each; health, status, metrics
and /pause name each destination. The config side is in ``test_routing_config.py``."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from alerts.bot.handlers import Request, Services, handle
from alerts.config import load_config
from alerts.deliver import Deliverer
from alerts.deliver.pacing import RateLimiter
from alerts.deliver.sinks import build_sinks
from alerts.ops import HealthCheck, StateCollector, healthz_json
from alerts.runtime import Runtime
from alerts.scheduler import Scheduler
from alerts.status import read_status
from alerts.store import open_store
from alerts.stories import Clusterer
from alerts.types import utcnow
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.telegram_api import FakeTelegram
from tests.support import deliveries, poll_cycle, rss

COMPLIANCE, COMPLIANCE_ID = "@chip_compliance", -1002000000001
SALES_ID = -1002000000002
MAIN_TOKEN = "1234567890:AAFakeTokenForChipwatchTests_0123456"
SALES_TOKEN = "2222222222:BBFakeSalesTokenForChipwatchTests_99"
EXEC_CHANNEL = "C0EXEC00001"

WATCH = """\
watchlists:
  chips: [H20, H200, Ascend 910C, MI308, Blackwell]
  companies: [Nvidia, AMD, Huawei, SMIC, TSMC]
  export_terms: [export controls, entity list, export licence]
  china_parties: [China, Beijing, Chinese, Alibaba, ByteDance, Tencent]
  trade_actions: [sell, sales, ship, shipments, buy, orders, imports]
rules:
  - {name: chip-trade, all_of: [export_terms], any_of: [chips, companies]}
  - {name: chip-sale, all_of: [trade_actions, china_parties], any_of: [chips, companies]}
  # A regulator's own feed alerts on any watched chip or company, no export term needed.
  - {name: primary-any, any_of: [chips, companies], tags: [primary]}
learned: {enabled: false}
"""
FEEDS = (("Wire", "news"), ("Regulator", "primary"), ("Asia Desk", "china"))


def _config_text(urls: dict[str, str], telegram: str, slack: str) -> str:
    feeds = "".join(
        f'  - {{name: "{name}", url: "{urls[name]}", tags: [{tag}]}}\n' for name, tag in FEEDS
    )
    return f"""\
database: cw.db
ops: {{listen: ""}}
poll: {{timeout_seconds: 5, max_age_hours: 24}}
feeds:
{feeds}{WATCH}destinations:
  - name: compliance
    telegram: {{chat_id: "{COMPLIANCE}", api_base_url: {telegram}}}
    rules: [chip-trade, primary-any]
  - name: china-sales
    telegram:
      chat_id: "{SALES_ID}"
      token_env: TELEGRAM_BOT_TOKEN_SALES
      api_base_url: {telegram}
    categories: [china_parties]
    feeds: [Wire, Asia Desk]
  - name: exec
    slack: {{channel: "#exec", api_base_url: {slack}}}
    tags: [primary, china]
"""


# A day of headlines, one an hour, each with the destinations it must reach, worked out by
# hand from the filters above: compliance takes chip-trade and primary-any; china-sales takes a
# China party from Wire or Asia Desk; exec takes everything from Regulator and Asia Desk.
C, S, E = "compliance", "china-sales", "exec"
DAY = [
    ("Wire", "US tightens export controls on Nvidia Blackwell chips", {C}),
    ("Asia Desk", "Alibaba places large orders for Huawei Ascend 910C", {S, E}),
    ("Regulator", "Commerce publishes guidance for TSMC wafer customers", {C, E}),
    ("Wire", "Apple unveils new iPhone colours", set()),
    ("Wire", "ByteDance to buy domestic accelerators instead of Nvidia H20", {S}),
    ("Regulator", "BIS adds SMIC subsidiaries to the entity list", {C, E}),
    ("Asia Desk", "Typhoon expected to reach Shanghai on Tuesday", set()),
    ("Wire", "AMD wins export licence to ship MI308 to China", {C, S}),
    ("Regulator", "Agency statement on the quarterly budget review", set()),
    ("Asia Desk", "Tencent doubles cloud spending on new data centres", set()),
    ("Wire", "Nvidia reports record data-centre revenue", set()),
    ("Regulator", "Nvidia H200 added to the list of controlled items", {C, E}),
    ("Wire", "Huawei phone shipments to Chinese carriers rise", {S}),
    ("Asia Desk", "SMIC faces new export controls on chipmaking tools", {C, E}),
    ("Wire", "Stock markets close higher on Friday", set()),
    ("Regulator", "Notice on export controls for advanced computing items", set()),
    ("Wire", "TSMC to sell Blackwell wafers to Alibaba", {S}),
    ("Asia Desk", "Huawei Ascend 910C yields improve at new fab", set()),
    ("Regulator", "Entity list update names Huawei cloud units", {C, E}),
    ("Asia Desk", "Beijing approves imports of AMD MI308 for Tencent", {S, E}),
]


@pytest.fixture
def fakes():
    """Both bots on one strict fake Bot API (flood windows scaled down, as the sinks' own
    pacing is below), and a Slack app in #exec."""
    chats = {
        COMPLIANCE: {"id": COMPLIANCE_ID, "type": "channel", "title": "compliance"},
        SALES_ID: {"id": SALES_ID, "type": "supergroup", "title": "china sales"},
    }
    with (
        FakeTelegram(tokens=[MAIN_TOKEN, SALES_TOKEN], chats=chats, time_scale=0.01) as tg,
        FakeSlackApi(channels={"#exec": EXEC_CHANNEL}, post_interval=0) as slack,
    ):
        yield tg, slack


@pytest.fixture
def secrets(monkeypatch, fakes):
    tg, slack = fakes
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", MAIN_TOKEN)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN_SALES", SALES_TOKEN)
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)


def _sinks(config):
    """The sinks the bot builds for the config, their client-side pacing scaled down like the
    fake's flood windows (the sends themselves are real)."""
    sinks = build_sinks(config)
    for sink in sinks:
        sink.limiter = RateLimiter([(1, 0.01), (20, 0.6)])
    return sinks


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _item(title: str, at: datetime, guid: str, *, site: str = "news.example") -> dict:
    # An outlet is named by its site: two outlets' articles are on two sites.
    slug = re.sub(r"\W+", "-", title.lower())
    return {"title": title, "link": f"https://{site}/{slug}", "guid": guid, "date": at}


def _published(feed_server, url: str, items: list[dict]) -> None:
    feed_server.routes[url.split(str(feed_server.port))[1]].body = rss(items).encode()


def _telegram_titles(tg: FakeTelegram, chat_id: int) -> list[str]:
    return [m["text"] for m in tg.sent if m["chat_id"] == chat_id]


def _received(tg: FakeTelegram, slack: FakeSlackApi) -> dict[str, list[str]]:
    """Each destination's messages, as text."""
    return {
        C: _telegram_titles(tg, COMPLIANCE_ID),
        S: _telegram_titles(tg, SALES_ID),
        E: [p["text"] for p in slack.posts if p["channel"] == EXEC_CHANNEL],
    }


async def test_three_destinations_each_get_exactly_their_alerts_over_a_day(
    tmp_path, serve, feed_server, fakes, secrets
):
    tg, slack = fakes
    urls = {name: serve(rss([])) for name, _ in FEEDS}
    path = tmp_path / "config.yaml"
    path.write_text(_config_text(urls, tg.base_url, slack.base_url))
    config = load_config(path)
    store = open_store(config.database)
    start = datetime.now(timezone.utc) - timedelta(hours=len(DAY))
    clock = Clock(start)
    sinks = _sinks(config)
    deliverer = Deliverer(store, sinks, now=clock, sleep=clock.sleep)
    clusterer = Clusterer(store, config.stories, now=start, watchlists=config.watchlists)
    published: dict[str, list[dict]] = {name: [] for name, _ in FEEDS}
    for hour, (feed, title, _) in enumerate(DAY):
        clock.now = start + timedelta(hours=hour, minutes=10)
        published[feed].append(_item(title, clock.now - timedelta(minutes=5), f"h{hour}"))
        _published(feed_server, urls[feed], published[feed])
        await poll_cycle(config, store, now=clock.now, clusterer=clusterer)
        await deliverer.drain(max_wait=5)
    for sink in sinks:
        await sink.aclose()

    received = _received(tg, slack)
    for name in (C, S, E):
        want = [title for _, title, where in DAY if name in where]
        got = [next((t for _, t, _ in DAY if t in text), text) for text in received[name]]
        assert got == want, f"{name}: exactly its alerts, each once, in order"
    alerted = {title for _, title, where in DAY if where}
    assert len(store.recent_alerts(100)) == len(alerted), "no story joined another"
    assert store.count_pending() == 0
    store.close()


async def test_a_story_edit_and_a_follow_up_go_to_its_message_in_each_destination(
    tmp_path, serve, feed_server, fakes, secrets
):
    tg, slack = fakes
    # Story from Asia Desk (every destination takes it: chip-trade, a China party, tag china),
    # then Wire reports it too (the sent alerts are edited) and Asia Desk follows it up.
    story = "US tightens export controls on Nvidia H20 sales to China"
    join = "US tightens export controls on Nvidia H20 chip sales to China"
    followup = "Nvidia halts H20 shipments to China after new export controls"
    urls = {name: serve(rss([])) for name, _ in FEEDS}
    path = tmp_path / "config.yaml"
    path.write_text(_config_text(urls, tg.base_url, slack.base_url))
    config = load_config(path)
    store = open_store(config.database)
    clock = Clock(datetime.now(timezone.utc) - timedelta(hours=2))
    sinks = _sinks(config)
    deliverer = Deliverer(store, sinks, now=clock, sleep=clock.sleep)
    clusterer = Clusterer(store, config.stories, now=clock.now, watchlists=config.watchlists)

    async def poll(feed: str, items: list[dict]) -> None:
        _published(feed_server, urls[feed], items)
        await poll_cycle(config, store, now=clock.now, clusterer=clusterer)
        await deliverer.drain(max_wait=120)

    asia = [_item(story, clock.now - timedelta(minutes=1), "s")]
    await poll("Asia Desk", asia)
    clock.now += timedelta(minutes=10)
    await poll("Wire", [_item(join, clock.now - timedelta(minutes=1), "j", site="wire.example")])
    clock.now += timedelta(minutes=10)
    await poll("Asia Desk", [*asia, _item(followup, clock.now - timedelta(minutes=1), "f")])
    for sink in sinks:
        await sink.aclose()

    for chat in (COMPLIANCE_ID, SALES_ID):
        first, second = (m for m in tg.sent if m["chat_id"] == chat)
        assert story in first["text"] and first["reply_to_message_id"] is None
        assert followup in second["text"] and second["disable_notification"]
        assert second["reply_to_message_id"] == first["message_id"], "the story's message here"
        [edit] = [e for e in tg.edits if e["chat_id"] == chat]
        assert edit["message_id"] == first["message_id"] and "wire.example" in edit["shown_text"]
    # The two chats are two bots: each message went out with its destination's token.
    assert {m["token"] for m in tg.sent if m["chat_id"] == SALES_ID} == {SALES_TOKEN}
    assert {m["token"] for m in tg.sent if m["chat_id"] == COMPLIANCE_ID} == {MAIN_TOKEN}
    top, reply = slack.posts
    assert story in top["text"] and top["thread_ts"] is None
    assert followup in reply["text"] and reply["thread_ts"] == top["ts"]
    [update] = slack.updates
    assert update["ts"] == top["ts"] and "wire.example" in update["blocks"][0]["text"]["text"]
    store.close()


# --- everything that reads destinations: health, status, metrics, /pause, hot reload ----------

CONSOLES = """\
destinations:
  - {name: compliance, console: {}, rules: [chip-trade]}
  - {name: exec, console: {}, tags: [primary]}
"""


async def test_health_status_and_metrics_are_per_named_destination(tmp_path, serve, capsys):
    title = "BIS adds SMIC subsidiaries to the entity list"
    url = serve(rss([_item(title, datetime.now(timezone.utc) - timedelta(minutes=5), "1")]))
    path = tmp_path / "config.yaml"
    path.write_text(
        f'database: cw.db\nops: {{listen: ""}}\nfeeds:\n'
        f'  - {{name: Regulator, url: "{url}", tags: [primary]}}\n' + WATCH + CONSOLES
    )
    config = load_config(path)
    store = open_store(config.database)
    runtime = Runtime(config, store)
    scheduler = Scheduler(poll=runtime.poll, deliver=runtime.deliver)
    scheduler.last_tick = time.monotonic()
    check = HealthCheck(runtime, scheduler)
    runtime.metrics.add_collector(StateCollector(check))
    try:

        def admin(command: str, args: str = "") -> str | None:
            request = Request(
                user_id=1,
                chat_id=1,
                private=True,
                is_admin=True,
                command=command,
                args=args,
                now=utcnow(),
            )
            return handle(request, Services(runtime=runtime, health=check))

        assert "no destination &#x27;nowhere&#x27;; the destinations: compliance, exec" in (
            admin("pause", "nowhere") or ""
        )
        assert "name a destination" in (admin("pause") or ""), "no Telegram channel here"
        assert "Destination exec delivery paused" in (admin("pause", "exec") or "")
        await runtime.poll(config.feeds[0])
        await runtime.deliver()
        assert capsys.readouterr().out.count(title) == 1, "compliance printed it; exec holds it"

        health = check()
        assert {n: (d.state, d.pending) for n, d in health.destinations.items()} == {
            "compliance": ("ok", 0),
            "exec": ("held", 1),
        }
        assert healthz_json(health)["destinations"] == {
            "compliance": {"state": "ok"},
            "exec": {"state": "held"},
        }
        status = read_status(config, now=utcnow()).to_json()
        assert status["pending"] == {"exec": 1} and status["paused"] == ["exec"]

        def sample(name: str, **labels: str) -> float | None:
            return runtime.metrics.registry.get_sample_value(name, labels)

        assert sample("chipwatch_outbox_pending", destination="exec") == 1
        assert sample("chipwatch_destination_held", destination="exec") == 1
        assert sample("chipwatch_outbox_pending", destination="compliance") == 0
        assert sample("chipwatch_deliveries_total", destination="compliance", result="sent") == 1

        # A route naming an unknown rule on reload: refused, the old config stays.
        path.write_text(path.read_text().replace("rules: [chip-trade]", "rules: [chip-trad]"))
        reload = await runtime.reload_if_changed()
        assert reload.status == "invalid" and reload.error is not None
        assert "destinations[0].rules[0]: refers to unknown rule 'chip-trad'" in reload.error
        assert "<b>exec</b>: paused (alerts are queued)" in (admin("status") or "")
        assert runtime.config is config and [s.name for s in runtime.deliverer.sinks] == [
            "compliance",
            "exec",
        ]
    finally:
        await runtime.aclose()
        store.close()


async def test_an_alert_no_destination_takes_is_recorded_and_sent_nowhere(tmp_path, serve, capsys):
    now = datetime.now(timezone.utc)
    sale = "TSMC to sell Blackwell wafers to Alibaba"  # chip-sale, from a feed with no tag
    url = serve(rss([_item(sale, now - timedelta(minutes=5), "1")]))
    path = tmp_path / "config.yaml"
    path.write_text(
        f'database: cw.db\nops: {{listen: ""}}\nfeeds:\n'
        f'  - {{name: Wire, url: "{url}"}}\n'
        '  - {name: Regulator, url: "http://127.0.0.1:9/r", tags: [primary]}\n' + WATCH + CONSOLES
    )
    config = load_config(path)
    store = open_store(config.database)
    clusterer = Clusterer(store, config.stories, now=now, watchlists=config.watchlists)
    report = await poll_cycle(
        replace(config, feeds=config.feeds[:1]), store, now=now, clusterer=clusterer
    )
    assert sum(o.alerts for o in report.outcomes) == 1
    [alert] = store.recent_alerts(5)
    assert (alert.title, alert.rules, alert.story_id is not None) == (sale, ("chip-sale",), True)
    assert deliveries(store, alert.id) == [], "compliance takes chip-trade, exec primary only"
    sinks = build_sinks(config)
    assert (await Deliverer(store, sinks).drain()).sent == 0
    assert sale not in capsys.readouterr().out
    store.close()
