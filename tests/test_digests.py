"""Scheduled digests: the schedule (cron trigger, zoneinfo) across a DST change driven by an
injected clock, what goes in (the destination's filters), the split at Telegram's and Slack's
limits against the strict fakes, once per period, and a subscriber's daily digest."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from alerts.config import DigestConfig, load_config
from alerts.deliver import Deliverer, personal_destination
from alerts.deliver.digest import Heading, slack_messages, telegram_parts
from alerts.deliver.slack import SlackAppSink
from alerts.deliver.telegram import TelegramSink
from alerts.digest import last_due, next_due, period, queue_due
from alerts.store import open_store
from alerts.types import Match
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.telegram_api import FakeTelegram, parse_html, utf16_len
from tests.support import CHANNEL, CHANNEL_ID, Clock, alerting_item, cli, write_config

BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _digest_config(tmp_path, telegram: FakeTelegram, *, empty: str = "send", extra: str = ""):
    return load_config(
        write_config(
            tmp_path,
            [("Wire", "http://127.0.0.1:9/wire.xml")],
            extra=(
                "destinations:\n"
                "  - name: exec\n"
                f'    telegram: {{chat_id: "{CHANNEL}", api_base_url: "{telegram.base_url}"}}\n'
                f'    digest: {{every: day, at: "08:00", timezone: Europe/Berlin, empty: {empty}}}\n'
                "    instant: false\n" + extra
            ),
        )
    )


# Pacing is tested in test_delivery; here a digest's parts and days follow one another at a
# tenth of Telegram's pace (the fake still refuses anything faster than its own interval).
PACE = 0.1


@pytest.fixture
def telegram():
    with FakeTelegram(
        chats={CHANNEL: {"id": CHANNEL_ID, "type": "channel", "title": "chipwatch test"}},
        per_chat_interval=PACE / 2,
    ) as fake:
        yield fake


def _sink(telegram: FakeTelegram, name: str = "exec", chat=CHANNEL) -> TelegramSink:
    return TelegramSink(
        token=telegram.token,
        chat_id=chat,
        name=name,
        base_url=telegram.base_url,
        per_chat=(1, PACE),
    )


def _deliverer(store, sink: TelegramSink, clock: Clock) -> Deliverer:
    """A deliverer on ``clock``, which moves as the deliverer sleeps: a wait it is told (a
    429's retry_after) comes due at once, where a frozen clock would wait for ever."""
    return Deliverer(store, [sink], now=clock, sleep=clock.sleep)


def _record(store, title: str, *, at: datetime, guid: str, feed: str = "Wire", **kw) -> int:
    [alert_id] = store.record_poll(
        feed,
        f"http://127.0.0.1:9/{feed}",
        [alerting_item(guid, title, feed=feed, destinations=kw.pop("destinations", ()), **kw)],
        now=at,
    )
    return alert_id


# --- the schedule ---------------------------------------------------------------------------


def test_a_daily_digest_falls_due_at_8_berlin_time_on_both_sides_of_the_dst_change():
    daily = DigestConfig(every="day", at="08:00", timezone="Europe/Berlin")
    # Summer time began on Sunday 29 March 2026 at 02:00 (CET, UTC+1 -> CEST, UTC+2).
    assert next_due(daily, _utc(2026, 3, 28, 12)) == _utc(2026, 3, 29, 6)
    assert last_due(daily, _utc(2026, 3, 29, 6, 30)) == _utc(2026, 3, 29, 6)
    assert last_due(daily, _utc(2026, 3, 29, 5, 59)) == _utc(2026, 3, 28, 7)
    # The period across the change is 23 hours long, as the wall clock says a day is.
    assert period(daily, _utc(2026, 3, 29, 12)) == (_utc(2026, 3, 28, 7), _utc(2026, 3, 29, 6))
    weekly = DigestConfig(every="week", at="07:30", timezone="UTC", weekday="mon")
    assert next_due(weekly, _utc(2026, 3, 29, 12)) == _utc(2026, 3, 30, 7, 30)
    assert period(weekly, _utc(2026, 3, 31)) == (_utc(2026, 3, 23, 7, 30), _utc(2026, 3, 30, 7, 30))


async def test_a_daily_digest_driven_by_a_clock_across_dst_is_sent_once_a_day(tmp_path, telegram):
    config = _digest_config(tmp_path, telegram)
    store = open_store(tmp_path / "cw.db")
    clock = [_utc(2026, 3, 27, 12)]
    sink = _sink(telegram)
    deliverer = Deliverer(store, [sink], now=lambda: clock[0])
    # 07:30 CEST on the short day: in that day's digest; 08:30 CEST: in the next one.
    _record(store, "Nvidia H20 export curbs widen", at=_utc(2026, 3, 29, 5, 30), guid="a")
    _record(store, "Nvidia H200 licence granted", at=_utc(2026, 3, 29, 6, 30), guid="b")
    try:
        while clock[0] < _utc(2026, 4, 1, 12):
            queue_due(config, store, now=clock[0])
            await deliverer.deliver_due()
            clock[0] += timedelta(minutes=10)
    finally:
        await sink.aclose()
    rows = store.db.execute(
        "SELECT period_end, status, sent_parts FROM digests WHERE destination = 'exec' "
        "ORDER BY period_end"
    ).fetchall()
    ends = [datetime.fromisoformat(r[0]) for r in rows]
    # The one that fell due before the first tick (27 March), then one a day.
    assert ends == [
        _utc(2026, 3, 27, 7),
        _utc(2026, 3, 28, 7),
        _utc(2026, 3, 29, 6),
        _utc(2026, 3, 30, 6),
        _utc(2026, 3, 31, 6),
        _utc(2026, 4, 1, 6),
    ]
    assert all(e.astimezone(BERLIN).strftime("%H:%M") == "08:00" for e in ends)
    assert all(r[1] == "sent" and r[2] == 1 for r in rows)
    shown = [m["shown_text"] for m in telegram.sent if m["chat_id"] == CHANNEL_ID]
    assert len(shown) == 6, "one message a day, none twice"
    by_day = dict(zip([e.date().isoformat() for e in ends], shown, strict=True))
    assert "Nvidia H20 export curbs widen" in by_day["2026-03-29"]
    assert "Nvidia H200 licence granted" not in by_day["2026-03-29"]
    assert "Nvidia H200 licence granted" in by_day["2026-03-30"]
    assert "Nothing new" in by_day["2026-03-31"]
    assert all(("Daily digest · exec" in text) for text in shown)


async def test_an_empty_period_is_skipped_with_empty_skip(tmp_path, telegram):
    config = _digest_config(tmp_path, telegram, empty="skip")
    store = open_store(tmp_path / "cw.db")
    assert queue_due(config, store, now=_utc(2026, 3, 30, 12)) == ["exec"]
    assert queue_due(config, store, now=_utc(2026, 3, 30, 13)) == [], "once a period"
    row = store.db.execute("SELECT status, parts FROM digests").fetchone()
    assert row == ("skipped", "[]")
    sink = _sink(telegram)
    try:
        await Deliverer(store, [sink], now=lambda: _utc(2026, 3, 30, 13)).deliver_due()
    finally:
        await sink.aclose()
    assert not telegram.sent


# --- what goes in ---------------------------------------------------------------------------


async def test_a_digest_only_destination_gets_no_instant_alert_but_its_filtered_digest(
    tmp_path, telegram
):
    config = _digest_config(
        tmp_path,
        telegram,
        extra="    feeds: [Wire]\n  - name: everything\n    console: {}\n",
    )
    assert config.destinations.route(
        rules=("chip-trade",), categories={"companies"}, feed="Wire", feed_tags=()
    ) == ("everything",)
    store = open_store(tmp_path / "cw.db")
    at = _utc(2026, 3, 30, 4)
    _record(store, "Nvidia from the wire", at=at, guid="w")
    _record(store, "Nvidia from elsewhere", at=at, guid="o", feed="Other")
    queue_due(config, store, now=_utc(2026, 3, 30, 6, 1))
    [parts] = store.db.execute("SELECT parts FROM digests WHERE destination = 'exec'").fetchone()
    text = "".join(json.loads(parts))
    assert "Nvidia from the wire" in text
    assert "Nvidia from elsewhere" not in text, "its feeds filter holds in the digest too"


def _sixty_queued(tmp_path, telegram):
    """A store with 60 long-headlined stories recorded at 06:00 Berlin on 30 March and exec's
    08:00 digest of them queued; the store and the titles."""
    config = _digest_config(tmp_path, telegram)
    store = open_store(tmp_path / "cw.db")
    titles = _sixty(store, _utc(2026, 3, 30, 4))
    queue_due(config, store, now=_utc(2026, 3, 30, 6, 1))
    return store, titles


def _sixty(store, at: datetime) -> list[str]:
    titles = []
    for n in range(60):
        title = f"Nvidia H20 buyers number {n} added to the entity list, says a long headline " + (
            "with more words " * 6
        )
        _record(store, title.strip(), at=at, guid=f"s{n}", story_id=1000 + n)
        titles.append(title.strip())
    return titles


async def test_a_digest_of_60_stories_is_split_within_telegrams_limit_and_loses_none(
    tmp_path, telegram
):
    store, titles = _sixty_queued(tmp_path, telegram)
    sink = _sink(telegram)
    try:
        await _deliverer(store, sink, Clock(_utc(2026, 3, 30, 6, 2))).drain(max_wait=60)
    finally:
        await sink.aclose()
    shown = [m["shown_text"] for m in telegram.sent if m["chat_id"] == CHANNEL_ID]
    assert len(shown) > 1, "60 long headlines do not fit one message"
    assert all(utf16_len(m) <= 4096 for m in shown)
    assert [t for t in titles if not any(t in m for m in shown)] == [], "none lost"
    assert sum(m.count("Nvidia H20 buyers number") for m in shown) == 60, "none twice"
    assert all(f"({k}/{len(shown)})" in m for k, m in enumerate(shown, start=1))
    links = [e for m in telegram.sent for e in m["entities"] if e["type"] == "text_link"]
    assert len(links) == 60, "each headline is a link"
    assert store.db.execute("SELECT status, sent_parts FROM digests").fetchone() == (
        "sent",
        len(shown),
    )


async def test_a_digest_of_60_stories_goes_to_slack_as_one_message_of_sections(tmp_path):
    with FakeSlackApi(channels={"#exec": "C0EXEC"}, post_interval=0) as slack:
        config = load_config(
            write_config(
                tmp_path,
                [("Wire", "http://127.0.0.1:9/wire.xml")],
                extra=(
                    "destinations:\n  - name: exec\n"
                    f'    slack: {{channel: "#exec", api_base_url: "{slack.base_url}"}}\n'
                    '    digest: {at: "08:00", timezone: Europe/Berlin}\n'
                ),
            )
        )
        store = open_store(tmp_path / "cw.db")
        titles = _sixty(store, _utc(2026, 3, 30, 4))
        queue_due(config, store, now=_utc(2026, 3, 30, 6, 1))
        sink = SlackAppSink(
            token=slack.token, channel="#exec", base_url=slack.base_url, name="exec"
        )
        try:
            await _deliverer(store, sink, Clock(_utc(2026, 3, 30, 6, 2))).drain(max_wait=60)
        finally:
            await sink.aclose()
        [post] = slack.posts
        body = "\n".join(b["text"]["text"] for b in post["blocks"])
        assert len(post["blocks"]) > 1
        assert all(len(b["text"]["text"]) <= 3000 for b in post["blocks"])
        assert all(t in body for t in titles)


def test_stories_are_ranked_by_sources_and_momentum_and_grouped_by_subject():
    from alerts.types import Alert

    def alert(i: int, title: str, company: str, *, sources: int, major=False, followups=0):
        return Alert(
            id=i,
            feed="Wire",
            title=title,
            link=f"https://w.example/{i}",
            summary="",
            published=None,
            created_at=_utc(2026, 3, 30),
            matches=(Match("companies", company, company, "exact", 100.0),),
            rules=("chip-trade",),
            sources=tuple(["Wire", *(f"O{k}" for k in range(sources - 1))]),
            major=major,
            followups=followups,
        )

    alerts = [
        alert(1, "AMD small", "AMD", sources=1),
        alert(2, "Nvidia big", "Nvidia", sources=5, major=True, followups=2),
        alert(3, "Nvidia small", "Nvidia", sources=1),
        alert(4, "AMD medium", "AMD", sources=3),
    ]
    head = Heading(title="Daily digest", destination="exec", period="Mon 30 Mar 2026")
    [text] = telegram_parts(head, alerts)
    order = [t for t in ("Nvidia big", "Nvidia small", "AMD medium", "AMD small") if t in text]
    assert [text.index(t) for t in order] == sorted(text.index(t) for t in order)
    assert text.index("<b>Nvidia</b>") < text.index("Nvidia big") < text.index("<b>AMD</b>")
    assert "Wire, O0, O1, O2, +1" in text and "2 follow-ups" in text
    [message] = slack_messages(head, alerts)
    assert "Nvidia big" in message["blocks"][0]["text"]["text"]


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digest, key, message",
    [
        ('{at: "25:00"}', "digest.at", "HH:MM"),
        ("{timezone: Europe/Berlln}", "digest.timezone", "unknown time zone 'Europe/Berlln'"),
        ("{every: week, weekday: funday}", "digest.weekday", "day of the week"),
        ("{weekday: mon}", "digest.weekday", "only means something with every: week"),
        ("{every: hour}", "digest.every", "must be day or week"),
        ("{empty: maybe}", "digest.empty", "must be skip or send"),
        ("{at: '08:00', when: now}", "digest.when", "unknown key"),
    ],
)
def test_a_bad_digest_is_a_config_error_at_its_line(tmp_path, digest, key, message):
    path = write_config(
        tmp_path,
        [],
        extra=f"destinations:\n  - name: exec\n    console: {{}}\n    digest: {digest}\n",
    )
    ran = cli("check-config", "--config", str(path))
    assert ran.returncode == 2
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, start=1) if "digest:" in text)
    assert f"{path}:{line}: destinations[0].{key}: " in ran.stderr
    assert message in ran.stderr


def test_check_config_shows_the_digest(tmp_path):
    path = write_config(
        tmp_path,
        [],
        extra=(
            "destinations:\n  - name: exec\n    console: {}\n"
            '    digest: {every: week, weekday: Friday, at: "7:30", timezone: Asia/Shanghai}\n'
            "    instant: false\n"
        ),
    )
    ran = cli("check-config", "--config", str(path))
    assert ran.returncode == 0, ran.stderr
    assert "exec (console): every alert [digest weekly on fri at 07:30 Asia/Shanghai]" in ran.stdout


def test_instant_false_without_a_digest_is_refused(tmp_path):
    path = write_config(
        tmp_path, [], extra="destinations:\n  - name: exec\n    console: {}\n    instant: false\n"
    )
    ran = cli("check-config", "--config", str(path))
    assert ran.returncode == 2
    assert "destinations[0].instant: instant: false needs a digest" in ran.stderr


# --- a subscriber's digest ------------------------------------------------------------------


async def test_a_subscriber_on_a_daily_digest_gets_their_alerts_once_a_day(tmp_path, telegram):
    config = _digest_config(tmp_path, telegram)
    store = open_store(tmp_path / "cw.db")
    chat = 4242
    telegram.add_chat(id=chat, type="private", first_name="Sub")
    mine = personal_destination(chat)
    store.set_digest_mode(mine, json.dumps({"at": "07:00", "timezone": "UTC"}))
    held = _record(
        store, "Nvidia H20 for you", at=_utc(2026, 3, 30, 5), guid="p", destinations=(mine,)
    )
    assert store.pending(mine, now=_utc(2026, 3, 30, 5)) == [], "held for the digest"
    sink = _sink(telegram, mine, chat)
    deliverer = Deliverer(store, [sink], now=lambda: _utc(2026, 3, 30, 7, 1))
    try:
        assert mine in queue_due(config, store, now=_utc(2026, 3, 30, 7, 1))
        await deliverer.deliver_due()
        assert queue_due(config, store, now=_utc(2026, 3, 30, 8)) == []
        await deliverer.deliver_due()
    finally:
        await sink.aclose()
    [message] = [m for m in telegram.sent if m["chat_id"] == chat]
    assert "Nvidia H20 for you" in message["shown_text"]
    assert "your subscriptions" in message["shown_text"]
    row = store.db.execute(
        "SELECT status, via_digest FROM deliveries WHERE alert_id = ? AND destination = ?",
        [held, mine],
    ).fetchone()
    assert row == ("sent", 1)


def test_back_to_instant_releases_what_was_held(tmp_path):
    store = open_store(tmp_path / "cw.db")
    mine = personal_destination(4242)
    store.set_digest_mode(mine, json.dumps({}))
    _record(store, "Nvidia H20 for you", at=_utc(2026, 3, 30, 5), guid="p", destinations=(mine,))
    assert store.set_digest_mode(mine, None) == 1
    assert [a.title for a in store.pending(mine, now=_utc(2026, 3, 30, 6))] == [
        "Nvidia H20 for you"
    ]


# --- /digest ----------------------------------------------------------------------------------

TEAM = """database: cw.db
feeds:
  - name: Wire
    url: "http://127.0.0.1:9/wire.xml"
watchlists:
  chips: [H20]
  companies: [Nvidia]
  export_terms: [export controls]
destinations:
  - name: channel
    telegram: {chat_id: "@chipwatch_test", api_base_url: "http://127.0.0.1:9/bot", admins: [111]}
  - name: exec
    console: {}
    digest: {at: "08:00", timezone: Europe/Berlin}
    instant: false
ops:
  listen: ""
"""


@pytest.fixture
async def team_bot(tmp_path, monkeypatch):
    from tests.test_handlers import bot_on

    async for bot in bot_on(TEAM, tmp_path, monkeypatch):
        yield bot


NOON = _utc(2026, 3, 30, 10)


def test_a_subscriber_chooses_a_daily_digest_and_goes_back_to_instant(team_bot):
    reply = team_bot.ask(222, "/digest daily 07:30 Europe/Berlin", now=NOON)
    assert "one digest a day at 07:30 Europe/Berlin (next: Tue 31 Mar 07:30)" in reply
    mine = personal_destination(222)
    assert json.loads(team_bot.store.digest_modes()[mine])["at"] == "07:30"
    assert "one digest a day, at 07:30 Europe/Berlin" in team_bot.ask(222, "/digest", now=NOON)
    _record(team_bot.store, "Nvidia H20 held", at=NOON, guid="h", destinations=(mine,))
    assert team_bot.store.pending(mine, now=NOON) == []
    assert "The 1 held alert(s) go out now" in team_bot.ask(222, "/digest instant", now=NOON)
    assert [a.title for a in team_bot.store.pending(mine, now=NOON)] == ["Nvidia H20 held"]
    assert "each alert as it comes" in team_bot.ask(222, "/digest", now=NOON)


@pytest.mark.parametrize(
    "text, refusal",
    [
        ("/digest daily 8am", "must be a time of day as HH:MM"),
        ("/digest daily 08:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_a_bad_digest_choice_is_refused_and_changes_nothing(team_bot, text, refusal):
    assert refusal in team_bot.ask(222, text, now=NOON)
    assert team_bot.store.digest_modes() == {}


def test_the_choice_is_made_in_a_private_chat(team_bot):
    reply = team_bot.ask(222, "/digest daily", now=NOON, private=False, chat=-100123)
    assert "choose in a private chat with me" in reply


def test_an_admin_gets_the_digest_so_far_through_the_outbox(team_bot):
    _record(team_bot.store, "Nvidia H20 export controls", at=_utc(2026, 3, 30, 7), guid="x")
    _record(team_bot.store, "Before the period", at=_utc(2026, 3, 30, 5), guid="y")
    reply = team_bot.ask(111, "/digest", now=NOON, private=False, chat=-100123)
    assert "The exec digest so far is on its way in our private chat" in reply
    [queued] = team_bot.store.digests_due(personal_destination(111), now=NOON)
    text = "".join(queued.parts)
    assert "Digest so far · exec · since Mon 30 Mar 08:00 Europe/Berlin" in text
    assert "Nvidia H20 export controls" in text
    assert "Before the period" not in text
    assert any(s.name == personal_destination(111) for s in team_bot.runtime.deliverer.sinks)
    # Not an admin: their own choice is shown instead; a name that has no digest is refused.
    assert "Your subscriptions come as" in team_bot.ask(222, "/digest exec", now=NOON)
    assert "no such destination with a digest (exec)" in team_bot.ask(111, "/digest channel")


async def test_a_digest_that_failed_or_stopped_midway_goes_on_from_the_part_it_reached(
    tmp_path, telegram
):
    store, titles = _sixty_queued(tmp_path, telegram)
    [queued] = store.digests_due("exec", now=_utc(2026, 3, 30, 6, 1))
    assert len(queued.parts) >= 3
    # A process that sent the first part and died: the row says one part went out.
    store.db.execute("UPDATE digests SET sent_parts = 1")
    telegram.fail_next(status=500, method="sendMessage")  # and the next try fails
    clock = Clock(_utc(2026, 3, 30, 6, 2))
    sink = _sink(telegram)
    deliverer = _deliverer(store, sink, clock)
    try:
        await deliverer.deliver_due()
        assert not [m for m in telegram.sent if m["chat_id"] == CHANNEL_ID], "it failed"
        assert store.db.execute("SELECT status, sent_parts FROM digests").fetchone() == (
            "pending",
            1,
        )
        clock.now += timedelta(minutes=1)  # past the backoff
        await deliverer.drain(max_wait=60)
    finally:
        await sink.aclose()
    shown = [m["shown_text"] for m in telegram.sent if m["chat_id"] == CHANNEL_ID]
    assert len(shown) == len(queued.parts) - 1, "the parts after the first, once each"
    first = parse_html(queued.parts[0])[0]
    assert [t for t in titles if not any(t in m for m in [first, *shown])] == []
    assert shown[0].startswith(f"📰 Daily digest · exec · Mon 30 Mar 2026 (2/{len(queued.parts)})")


async def test_health_shows_each_digest_and_a_bad_reload_keeps_the_old_schedule(team_bot):
    from alerts.ops import healthz_json
    from alerts.status import format_status, read_status

    runtime, store = team_bot.runtime, team_bot.store
    now = _utc(2026, 3, 30, 6, 30)
    _record(store, "Nvidia H20 export controls", at=_utc(2026, 3, 30, 5), guid="x")
    assert queue_due(runtime.config, store, now=now) == ["exec"]
    health = team_bot.services.health(now, probe=False)
    digest = healthz_json(health)["destinations"]["exec"]["digest"]
    assert digest["schedule"] == "daily at 08:00 Europe/Berlin"
    assert digest["next_due"] == "2026-03-31T06:00:00+00:00"
    assert (digest["last_period"], digest["last_status"]) == (
        "2026-03-30T06:00:00+00:00",
        "pending",
    )
    from alerts.ops import StateCollector

    gauges = {
        (m.name, s.labels.get("destination")): s.value
        for m in StateCollector(team_bot.services.health).collect()
        for s in m.samples
    }
    # /metrics reads as of the wall clock: the next 08:00 in Berlin, within a day.
    due = datetime.fromtimestamp(
        gauges[("chipwatch_digest_next_due_timestamp_seconds", "exec")], UTC
    )
    wall = datetime.now(UTC)
    assert due.astimezone(BERLIN).strftime("%H:%M") == "08:00"
    assert wall < due.astimezone(UTC) <= wall + timedelta(days=1)
    assert gauges[("chipwatch_digest_last_sent_timestamp_seconds", "exec")] == 0.0, "not yet"
    status = read_status(runtime.config, now=now)
    assert status.to_json()["digests"]["exec"]["last_status"] == "pending"
    assert (
        "digest: exec daily at 08:00 Europe/Berlin; last pending 2026-03-30 06:00 UTC; "
        "next 2026-03-31 06:00 UTC" in format_status(status)
    )
    # A bad time zone on reload: refused at its line, the old schedule stays.
    path = runtime.config.path
    path.write_text(path.read_text().replace("Europe/Berlin", "Europe/Berlln"))
    reload = await runtime.reload_if_changed()
    assert reload.status == "invalid" and reload.error is not None
    line = 1 + TEAM.splitlines().index('    digest: {at: "08:00", timezone: Europe/Berlin}')
    assert f"{path}:{line}: destinations[1].digest.timezone: unknown time zone" in reload.error
    [exec_] = runtime.config.destinations.digests
    assert exec_.digest is not None and exec_.digest.timezone == "Europe/Berlin"


def test_once_sends_a_digest_that_fell_due_and_only_once(tmp_path):
    now = datetime.now(UTC)
    at = (now - timedelta(hours=1)).astimezone(BERLIN).strftime("%H:%M")
    path = write_config(
        tmp_path,
        [],
        extra=(
            "destinations:\n  - name: exec\n    console: {}\n"
            f'    digest: {{at: "{at}", timezone: Europe/Berlin}}\n    instant: false\n'
        ),
    )
    store = open_store(tmp_path / "cw.db")
    _record(store, "Nvidia H20 export controls tightened", at=now - timedelta(hours=3), guid="a")
    store.close()
    first = cli("once", "--config", str(path))
    assert first.returncode == 0, first.stderr
    assert "Daily digest · exec" in first.stdout
    assert "1. Nvidia H20 export controls tightened — Wire" in first.stdout
    again = cli("once", "--config", str(path))
    assert again.returncode == 0 and "Daily digest" not in again.stdout
