"""Named, routed destinations and feed tags (issue #21, its routing half): each destination
takes the alerts its filters (rules, categories, feeds, feed tags) let through; two Telegram
chats with two bots and a Slack app each get exactly theirs over a day of mixed headlines, and
a story's edit and follow-up go to its message in each; a rule limited to a feed tag alerts only
on that feed's items; bad routes are refused with file:line: key."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alerts.cli import main
from alerts.config import load_config, parse_config
from alerts.deliver import Deliverer
from alerts.deliver.pacing import RateLimiter
from alerts.deliver.sinks import build_sinks
from alerts.errors import ConfigError
from alerts.match import compile_matcher
from alerts.ops import HealthCheck, StateCollector, healthz_json
from alerts.runtime import Runtime
from alerts.scheduler import Scheduler
from alerts.status import read_status
from alerts.store import open_store
from alerts.stories import Clusterer
from alerts.types import utcnow
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.telegram_api import FakeTelegram
from tests.support import ROOT, poll_cycle, rss

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


def _item(title: str, at: datetime, guid: str) -> dict:
    slug = re.sub(r"\W+", "-", title.lower())
    return {"title": title, "link": f"https://news.example/{slug}", "guid": guid, "date": at}


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


def _one_item_feed(serve, title: str, at: datetime, guid: str) -> str:
    return serve(rss([_item(title, at, guid)]))


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
    await poll("Wire", [_item(join, clock.now - timedelta(minutes=1), "j")])
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
        assert edit["message_id"] == first["message_id"] and "Wire" in edit["shown_text"]
    # The two chats are two bots: each message went out with its destination's token.
    assert {m["token"] for m in tg.sent if m["chat_id"] == SALES_ID} == {SALES_TOKEN}
    assert {m["token"] for m in tg.sent if m["chat_id"] == COMPLIANCE_ID} == {MAIN_TOKEN}
    top, reply = slack.posts
    assert story in top["text"] and top["thread_ts"] is None
    assert followup in reply["text"] and reply["thread_ts"] == top["ts"]
    [update] = slack.updates
    assert update["ts"] == top["ts"] and "Wire" in update["blocks"][0]["text"]["text"]
    store.close()


# --- feed tags in rules ---------------------------------------------------------------------


def _parsed(tmp_path, text: str):
    return parse_config(text, path=tmp_path / "config.yaml")


FEEDS_TEXT = """\
feeds:
  - {name: Wire, url: "https://wire.example/rss", tags: [news]}
  - {name: Regulator, url: "https://bis.example/rss", tags: [primary]}
"""


def test_a_rule_limited_to_a_tag_holds_only_for_that_feeds_items(tmp_path):
    config = _parsed(tmp_path, FEEDS_TEXT + WATCH)
    matcher = compile_matcher(config.watchlists, config.rules, config.learned)
    title = "Nvidia H200 added to the list of controlled items"
    tags = {f.name: f.tags for f in config.feeds}
    assert matcher.match(title, tags=tags["Regulator"]).rules == ("primary-any",)
    assert not matcher.match(title, tags=tags["Wire"]).alert, "no export term, not primary"
    assert not matcher.match(title).alert, "an item of no feed has no tags"
    # A muted term is re-judged with the feed's tags too.
    result = matcher.match("Nvidia and Huawei shares fall", tags=tags["Regulator"])
    assert matcher.without(result, {"nvidia"}, tags["Regulator"]).rules == ("primary-any",)
    assert not matcher.without(result, {"nvidia", "huawei"}, tags["Regulator"]).alert


def test_match_command_takes_a_feed_and_shows_the_routes(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text(
        FEEDS_TEXT
        + WATCH
        + "destinations:\n"
        + '  - {name: compliance, telegram: {chat_id: "@c"}, rules: [chip-trade, primary-any]}\n'
        + "  - {name: everything, console: {}}\n"
    )
    config = str(tmp_path / "config.yaml")
    title = "Nvidia H200 added to the list of controlled items"
    assert main(["match", "--config", config, "--feed", "Regulator", title]) == 0
    out = capsys.readouterr().out
    assert "primary-any" in out and "goes to: compliance, everything" in out
    assert main(["match", "--config", config, "--feed", "Wire", title]) == 0
    assert "goes to" not in capsys.readouterr().out, "no alert, no route"
    assert main(["match", "--config", config, "--feed", "Nowhere", title]) == 2
    assert "no feed 'Nowhere'" in capsys.readouterr().err


# --- config: the two forms, check-config, secrets -------------------------------------------


def test_the_mapping_form_means_one_destination_each_named_as_before(tmp_path):
    config = _parsed(
        tmp_path,
        FEEDS_TEXT
        + WATCH
        + 'destinations:\n  telegram: {chat_id: "@c", admins: [1]}\n  slack: {}\n',
    )
    d = config.destinations
    assert d.names() == ("telegram", "slack")
    assert [r.kind for r in d.all] == ["telegram", "slack"]
    assert d.telegram is not None and d.telegram.token_env == "TELEGRAM_BOT_TOKEN"
    assert d.slack is not None and d.slack.secret_env == "SLACK_WEBHOOK_URL"
    assert d.admins == (1,) and not any(r.filtered for r in d.all)
    assert _parsed(tmp_path, FEEDS_TEXT + WATCH).destinations.names() == ("console",)


def test_the_list_form_with_filters_and_secrets_named_per_destination(tmp_path):
    config = _parsed(
        tmp_path,
        FEEDS_TEXT
        + WATCH
        + """\
destinations:
  - name: compliance
    telegram: {chat_id: "@c", admins: [1]}
    rules: [chip-trade]
  - name: sales
    telegram: {chat_id: "-100123", token_env: SALES_TOKEN, admins: [2, 1]}
    categories: china_parties
  - name: exec
    slack: {webhook_env: EXEC_HOOK}
    feeds: [Regulator]
    tags: [news]
  - name: log
    console: {}
""",
    )
    d = config.destinations
    assert d.names() == ("compliance", "sales", "exec", "log")
    assert d.bot is not None and d.bot.name == "compliance", "the first Telegram one"
    assert d.admins == (1, 2)
    sales, exec_ = d.all[1], d.all[2]
    assert sales.telegram is not None and sales.telegram.token_env == "SALES_TOKEN"
    assert sales.categories == ("china_parties",)
    assert exec_.slack is not None and exec_.slack.secret_env == "EXEC_HOOK"

    def route(rules=(), cats=(), feed="Wire"):
        tags = {f.name: f.tags for f in config.feeds}[feed]
        return d.route(rules=rules, categories=cats, feed=feed, feed_tags=tags)

    assert route(["chip-trade"], ["export_terms"]) == ("compliance", "exec", "log")
    assert route(["chip-sale"], ["china_parties"], feed="Regulator") == ("sales", "exec", "log")
    summary = config.summary()
    assert "compliance (telegram @c): rules chip-trade" in summary
    assert "exec (slack webhook): from feeds Regulator or feeds tagged news" in summary
    assert "log (console): every alert" in summary
    assert "feed tags: Wire [news]; Regulator [primary]" in summary


def test_a_missing_secret_names_the_destination_and_its_variable(tmp_path, monkeypatch):
    config = _parsed(
        tmp_path,
        FEEDS_TEXT
        + WATCH
        + "destinations:\n"
        + '  - {name: a, telegram: {chat_id: "@c"}}\n'
        + '  - {name: b, telegram: {chat_id: "@d", token_env: B_TOKEN}}\n',
    )
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", MAIN_TOKEN)
    monkeypatch.delenv("B_TOKEN", raising=False)
    with pytest.raises(ConfigError) as err:
        build_sinks(config)
    assert "destinations[1] is configured" in str(err.value)
    assert "B_TOKEN is not set" in str(err.value)


BAD = [
    (
        "  - {name: a, console: {}, rules: [chip-trde]}\n",
        2,
        "destinations[0].rules[0]: refers to unknown rule 'chip-trde'",
    ),
    (
        "  - name: a\n    console: {}\n    categories: [chinaparties]\n",
        4,
        "destinations[0].categories[0]: refers to unknown watchlist 'chinaparties'",
    ),
    (
        "  - name: a\n    console: {}\n    feeds: [Wire, Regulatr]\n",
        4,
        "destinations[0].feeds[1]: refers to unknown feed 'Regulatr'",
    ),
    (
        "  - {name: a, console: {}, tags: [china]}\n",
        2,
        "destinations[0].tags[0]: refers to unknown feed tag 'china' (defined: news, primary)",
    ),
    (
        "  - {name: a, console: {}}\n  - {name: a, slack: {}}\n",
        3,
        "destinations[1].name: duplicate destination name 'a' (also destinations[0])",
    ),
    ("  - name: a\n    rules: [chip-trade]\n", 2, "destinations[0]: needs a kind"),
    (
        '  - name: a\n    console: {}\n    telegram: {chat_id: "@c"}\n',
        4,
        "destinations[0].telegram: has two kinds (console and telegram)",
    ),
    ("  - {console: {}}\n", 2, "destinations[0]: missing required key 'name'"),
    (
        "  - {name: a, telegram: {admins: [1]}}\n",
        2,
        "destinations[0].telegram: missing required key 'chat_id'",
    ),
    (
        '  - {name: "a:b", console: {}}\n',
        2,
        "destinations[0].name: must be letters, digits, - and _",
    ),
    (
        '  - {name: a, telegram: {chat_id: "@c", token_env: "123:AAsecret"}}\n',
        2,
        "destinations[0].telegram.token_env: must name an environment variable",
    ),
    (
        "  - {name: a, slack: {webhook_env: HOOK, channel: '#x'}}\n",
        2,
        "destinations[0].slack.webhook_env: only means something without 'channel'",
    ),
    # Digests come next: until then their keys are unknown, not half-understood.
    (
        "  - name: a\n    console: {}\n    digest: {every: day}\n",
        4,
        "destinations[0].digest: unknown key",
    ),
    (
        "  - {name: a, console: {}, instant: false}\n",
        2,
        "destinations[0].instant: unknown key",
    ),
    ("  - {name: a, console: {}, rules: []}\n", 2, "destinations[0].rules: must name at least"),
]


@pytest.mark.parametrize(("destinations", "line", "message"), BAD)
def test_a_bad_route_is_refused_with_its_line_and_key(tmp_path, destinations, line, message):
    head = FEEDS_TEXT + WATCH + "destinations:\n"
    with pytest.raises(ConfigError) as err:
        _parsed(tmp_path, head + destinations)
    assert f"config.yaml:{head.count(chr(10)) + line - 1}: {message}" in str(err.value)


def test_a_rule_naming_an_unknown_tag_is_refused(tmp_path):
    text = FEEDS_TEXT + WATCH.replace("tags: [primary]}", "tags: [primry]}")
    with pytest.raises(ConfigError) as err:
        _parsed(tmp_path, text)
    assert "rules[2].tags: refers to unknown feed tag 'primry'" in str(err.value)
    bad_tag = FEEDS_TEXT.replace("[news]", "[News Desk]") + WATCH
    with pytest.raises(ConfigError) as err:
        _parsed(tmp_path, bad_tag)
    assert "feeds[0].tags[0]: a feed tag is lowercase" in str(err.value)


def test_check_config_shows_the_routes_and_exits_2_on_a_bad_one(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(
        FEEDS_TEXT
        + WATCH
        + "destinations:\n  - {name: compliance, console: {}, rules: [chip-trade]}\n"
    )
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "routes:\n    compliance (console): rules chip-trade" in out
    path.write_text(path.read_text().replace("[chip-trade]}", "[chip-trad]}"))
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"config\.yaml:\d+: destinations\[0\]\.rules\[0\]: refers to unknown", err)


def test_the_shipped_config_still_sends_to_the_console():
    shipped = load_config(ROOT / "config.yaml", environ={})
    assert shipped.destinations.names() == ("console",)
    assert shipped.destinations.telegram is None and shipped.destinations.bot is None


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
        runtime.set_paused("exec", True)  # what /pause exec does
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
        assert runtime.config is config and [s.name for s in runtime.deliverer.sinks] == [
            "compliance",
            "exec",
        ]
    finally:
        await runtime.aclose()
        store.close()


def _yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def test_the_routing_docs_example_loads_and_routes_as_written(tmp_path):
    [example] = _yaml_blocks(ROOT / "docs" / "routing.md")
    config = _parsed(tmp_path, example)
    assert config.destinations.names() == ("compliance", "china-sales", "exec")
    matcher = compile_matcher(config.watchlists, config.rules, config.learned)
    tags = {f.name: f.tags for f in config.feeds}

    def goes_to(title: str, feed: str) -> tuple[str, ...]:
        result = matcher.match(title, tags=tags[feed])
        if not result.alert:
            return ()
        return config.destinations.route(
            rules=result.rules, categories=result.categories(), feed=feed, feed_tags=tags[feed]
        )

    controlled = "Nvidia H200 added to the list of controlled items"
    assert goes_to(controlled, "BIS press releases") == ("compliance", "exec")
    assert goes_to(controlled, "Reuters Technology") == ()
    sale = "Beijing approves imports of AMD MI308 for Tencent"
    assert goes_to(sale, "SCMP China tech") == ("china-sales",)
    assert goes_to("US widens export controls on Nvidia H20 to China", "Reuters Technology") == (
        "compliance",
        "china-sales",
    )


def test_the_readme_config_reference_keeps_its_destination_names(tmp_path):
    """The README's configuration block, in the mapping form: one destination each, named as
    before."""
    block = next(b for b in _yaml_blocks(ROOT / "README.md") if "\ndestinations:" in b)
    section = "destinations:" + block.split("\ndestinations:", 1)[1].split("\nstories:", 1)[0]
    config = _parsed(tmp_path, FEEDS_TEXT + WATCH + section + "\n")
    assert config.destinations.names() == ("telegram", "slack")
    assert not any(d.filtered for d in config.destinations.all)
