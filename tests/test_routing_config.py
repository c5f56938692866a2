"""Routing config (issue #21): the list form of named destinations and its filters, today's
mapping form, feed tags in rules, per-destination secrets, check-config's routes and match
--feed, bad routes refused with file:line: key, and the documented examples loading."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from alerts.cli import main
from alerts.config import load_config, parse_config
from alerts.deliver.sinks import build_sinks
from alerts.errors import ConfigError
from alerts.logs import RedactingFilter
from alerts.match import compile_matcher
from tests.support import ROOT
from tests.test_routing import MAIN_TOKEN, SALES_TOKEN, WATCH

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
    b = '  - {name: b, telegram: {chat_id: "@d", token_env: B_TOKEN}}'
    text = FEEDS_TEXT + WATCH + "destinations:\n" + '  - {name: a, telegram: {chat_id: "@c"}}\n'
    config = _parsed(tmp_path, text + b + "\n")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", MAIN_TOKEN)
    monkeypatch.delenv("B_TOKEN", raising=False)
    with pytest.raises(ConfigError) as err:
        build_sinks(config)
    assert err.value.key == "destinations[1]"
    assert err.value.line == 1 + (text + b).splitlines().index(b)
    assert "B_TOKEN is not set in the environment" in str(err.value)


async def test_chats_of_one_bot_share_its_budget_and_another_bot_has_its_own(tmp_path, monkeypatch):
    config = _parsed(
        tmp_path,
        FEEDS_TEXT
        + WATCH
        + "destinations:\n"
        + '  - {name: a, telegram: {chat_id: "@a"}}\n'
        + '  - {name: b, telegram: {chat_id: "@b", token_env: B_TOKEN}}\n'
        + '  - {name: c, telegram: {chat_id: "@c"}}\n',
    )
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", MAIN_TOKEN)
    monkeypatch.setenv("B_TOKEN", SALES_TOKEN)
    a, b, c = sinks = build_sinks(config)
    try:
        assert [s.name for s in sinks] == ["a", "b", "c"]
        assert c.bot is a.bot and c.overall is a.overall, "one bot: one 30-a-second budget"
        assert b.bot is not a.bot and b.overall is not a.overall
        assert c.limiter is not a.limiter, "each chat keeps its own pace"
    finally:
        for sink in sinks:
            await sink.aclose()


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
    (
        "  - name: a\n    console: {}\n    digest: {every: fortnight}\n",
        4,
        "destinations[0].digest.every: must be day or week",
    ),
    (
        "  - {name: a, console: {}, instant: false}\n",
        2,
        "destinations[0].instant: instant: false needs a digest",
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
    # exec takes the regulator's own news in its 08:00 Berlin digest only (instant: false)
    assert goes_to(controlled, "BIS documents") == ("compliance",)
    [exec_] = config.destinations.digests
    assert exec_.name == "exec" and exec_.digest is not None
    assert (exec_.digest.at, exec_.digest.timezone, exec_.instant) == (
        "08:00",
        "Europe/Berlin",
        False,
    )
    result = matcher.match(controlled, tags=tags["BIS documents"])
    assert exec_.takes(
        rules=result.rules,
        categories=result.categories(),
        feed="BIS documents",
        feed_tags=tags["BIS documents"],
    )
    assert goes_to(controlled, "Reuters Technology") == ()
    sale = "Beijing approves imports of AMD MI308 for Tencent"
    assert goes_to(sale, "SCMP China tech") == ("china-sales",)
    assert goes_to("US widens export controls on Nvidia H20 to China", "Reuters Technology") == (
        "compliance",
        "china-sales",
    )


def test_the_config_reference_keeps_its_destination_names(tmp_path):
    """The config reference's block (docs/configuration.md), in the mapping form: one
    destination each, named as before."""
    block = next(
        b for b in _yaml_blocks(ROOT / "docs" / "configuration.md") if "\ndestinations:" in b
    )
    section = "destinations:" + block.split("\ndestinations:", 1)[1].split("\nstories:", 1)[0]
    config = _parsed(tmp_path, FEEDS_TEXT + WATCH + section + "\n")
    assert config.destinations.names() == ("telegram", "slack")
    assert not any(d.filtered for d in config.destinations.all)


def test_a_secret_read_from_a_variable_of_its_own_never_reaches_a_log_line(tmp_path, monkeypatch):
    """A webhook on a host of its own, read from a webhook_env the admin named, has neither a
    known variable name nor a known shape: it is redacted because a destination read it."""
    hook = "http://hooks.internal:8080/services/T0/B0/s3cretHookPart"
    text = (
        FEEDS_TEXT
        + WATCH
        + "destinations:\n"
        + "  - name: ops\n"
        + "    slack: {webhook_env: OPS_HOOK, webhook_host: 'hooks.internal:8080'}\n"
    )
    config = _parsed(tmp_path, text)
    monkeypatch.setenv("OPS_HOOK", hook)
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "POST %s", (hook,), None)
    assert RedactingFilter().filter(record) and hook in record.getMessage()  # not yet read
    build_sinks(config)
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "POST %s", (hook,), None)
    RedactingFilter().filter(record)
    assert "s3cretHookPart" not in record.getMessage() and "[REDACTED]" in record.getMessage()
