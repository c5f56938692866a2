"""Config validation: every error names file, line and key, and the CLI exits with status 2."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from alerts.config import SlackConfig, load_config, model, parse_duration
from alerts.errors import ConfigError
from tests.support import MINIMAL_WATCHLISTS, ROOT, cli

GOOD_HEAD = "database: x.db\nfeeds:\n  - name: A\n    url: http://127.0.0.1:9/a.xml\n"

BAD_CONFIGS = [
    # (id, text, line, key fragment, message fragment)
    (
        "invalid_yaml",
        GOOD_HEAD + "watchlists:\n  chips: [H200\n",
        7,
        None,
        "flow sequence started on line 6",
    ),
    (
        "invalid_yaml_indent",
        GOOD_HEAD + "watchlists:\n  chips:\n    - H200\n   bad: 1\n",
        8,
        None,
        "invalid YAML",
    ),
    (
        "unknown_top_key",
        GOOD_HEAD + "colour: red\n" + MINIMAL_WATCHLISTS,
        5,
        "colour",
        "unknown key",
    ),
    (
        "unknown_feed_key",
        "feeds:\n  - name: A\n    url: http://x.example/\n    urll: y\n" + MINIMAL_WATCHLISTS,
        4,
        "feeds[0].urll",
        "unknown key",
    ),
    (
        "wrong_type_interval",
        "poll:\n  interval_seconds: soon\n" + MINIMAL_WATCHLISTS,
        2,
        "poll.interval_seconds",
        "must be a number",
    ),
    ("wrong_type_feeds", "feeds: {name: A}\n" + MINIMAL_WATCHLISTS, 1, "feeds", "must be a list"),
    (
        "bad_url",
        "feeds:\n  - name: A\n    url: ftp://x.example/feed\n" + MINIMAL_WATCHLISTS,
        3,
        "feeds[0].url",
        "http",
    ),
    (
        "missing_url",
        "feeds:\n  - name: A\n" + MINIMAL_WATCHLISTS,
        2,
        "feeds[0]",
        "missing required key 'url'",
    ),
    ("missing_watchlists", GOOD_HEAD, None, "watchlists", "missing required section"),
    (
        "missing_default_category",
        GOOD_HEAD + "watchlists:\n  chips: [H200]\n",
        5,
        "watchlists",
        "export_terms",
    ),
    (
        "rule_names_missing_watchlist",
        GOOD_HEAD + MINIMAL_WATCHLISTS + "rules:\n  - name: r\n    any_of: [gadgets]\n",
        None,
        "rules[0].any_of",
        "missing watchlist 'gadgets'",
    ),
    (
        "bad_term_option",
        GOOD_HEAD + "watchlists:\n  chips:\n    - term: H200\n      fuzzy: maybe\n",
        8,
        "watchlists.chips[0].fuzzy",
        "true or false",
    ),
    (
        "bad_chat_id",
        GOOD_HEAD + MINIMAL_WATCHLISTS + "destinations:\n  telegram:\n    chat_id: my channel\n",
        None,
        "destinations.telegram.chat_id",
        "@channelname",
    ),
    (
        "learned_enabled_not_a_boolean",
        GOOD_HEAD + MINIMAL_WATCHLISTS + "learned:\n  enabled: sometimes\n",
        None,
        "learned.enabled",
        "true or false",
    ),
    (
        "learned_unknown_key",
        GOOD_HEAD + MINIMAL_WATCHLISTS + "learned:\n  cutoff: 0.9\n",
        None,
        "learned.cutoff",
        "unknown key",
    ),
    (
        "rule_named_like_the_learned_opinion",
        GOOD_HEAD + MINIMAL_WATCHLISTS + "rules:\n  - name: learned\n    any_of: [chips]\n",
        None,
        "rules[0].name",
        "names the learned opinion",
    ),
    (
        "bad_slack_channel",
        GOOD_HEAD + MINIMAL_WATCHLISTS + "destinations:\n  slack:\n    channel: chip news\n",
        None,
        "destinations.slack.channel",
        '"#channel-name"',
    ),
    (
        "slack_api_base_url_without_channel",
        GOOD_HEAD
        + MINIMAL_WATCHLISTS
        + "destinations:\n  slack:\n    api_base_url: http://127.0.0.1:9/api/\n",
        None,
        "destinations.slack.api_base_url",
        "only means something with 'channel'",
    ),
    ("empty_file", "", 1, None, "empty"),
]


@pytest.mark.parametrize(
    "text,line,key,message", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_config_errors_name_file_line_and_key(tmp_path, text, line, key, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    err = caught.value
    assert err.file == str(path)
    assert message in err.message
    if key is not None:
        assert err.key == key
    if line is not None:
        assert err.line == line
    else:
        assert err.line is not None and err.line >= 1


@pytest.mark.parametrize("command", ["check-config", "once", "match"])
def test_cli_exits_2_with_file_line_key_on_config_error(tmp_path, command):
    path = tmp_path / "config.yaml"
    path.write_text(
        "feeds:\n  - name: A\n    url: http://x.example/\n    urll: y\n" + MINIMAL_WATCHLISTS,
        encoding="utf-8",
    )
    args = [command, "--config", str(path)] + (["H200"] if command == "match" else [])
    result = cli(*args)
    assert result.returncode == 2
    assert f"{path}:4: feeds[0].urll: unknown key" in result.stderr


def test_missing_config_file_exits_2(tmp_path):
    result = cli("check-config", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml: file not found" in result.stderr


def test_shipped_config_is_valid_and_summarised():
    result = cli("check-config", "--config", str(ROOT / "config.yaml"))
    assert result.returncode == 0, result.stderr
    config = load_config(ROOT / "config.yaml")
    assert f"feeds: {len(config.feeds)}" in result.stdout
    for category in ("chips", "companies", "export_terms"):
        assert f"{category}={len(config.watchlists[category])}" in result.stdout
    assert "rules: chip-trade" in result.stdout
    assert "destinations: console" in result.stdout


def test_a_file_changed_back_and_forth_loads_as_written_each_time(tmp_path):
    """Parses are remembered by text: an edit is never answered from memory, and an invalid
    text fails each time it is loaded, not only the first."""
    path = tmp_path / "c.yaml"
    one, two = (MINIMAL_WATCHLISTS + f"database: {name}.db\n" for name in ("one", "two"))
    seen = []
    for text in (one, two, one, "poll: [\n", two):
        path.write_text(text, encoding="utf-8")
        try:
            seen.append(load_config(path, environ={}).database.name)
        except ConfigError as exc:
            seen.append(f"line {exc.line}")
    assert seen == ["one.db", "two.db", "one.db", "line 2", "two.db"]
    path.write_text("poll: [\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ConfigError, match="invalid YAML"):
            load_config(path, environ={})


def test_default_rule_applies_when_rules_are_omitted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL_WATCHLISTS, encoding="utf-8")
    config = load_config(path)
    assert [r.name for r in config.rules] == ["chip-trade"]
    assert config.rules[0].all_of == ("export_terms",)
    assert config.database == tmp_path / "chipwatch.db"  # relative to the config file


def test_destinations_enable_by_presence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        MINIMAL_WATCHLISTS + "destinations:\n  telegram:\n    chat_id: '-1001234'\n"
        "    admins: [42]\n  slack: {}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.destinations.names() == ("telegram", "slack")
    assert config.destinations.telegram.admins == (42,)


# Every number the config takes, with its range: (section text with {v} for the value, key,
# lowest, highest, whole numbers only).
FEED = "feeds:\n  - name: A\n    url: http://x.example/a\n"
RELATION = "rules:\n  - name: r\n    relation: [chips, companies]\n"
LIMITS = [
    ("poll:\n  interval_seconds: {v}\n", "poll.interval_seconds", 10, 604800, True),
    (
        "poll:\n  interval_seconds: 10\n  max_interval_seconds: {v}\n",
        "poll.max_interval_seconds",
        10,
        604800,
        True,
    ),
    ("poll:\n  timeout_seconds: {v}\n", "poll.timeout_seconds", 1, 600, False),
    ("poll:\n  max_age_hours: {v}\n", "poll.max_age_hours", 0.1, 8760, False),
    ("poll:\n  concurrency: {v}\n", "poll.concurrency", 1, 1000, True),
    ("poll:\n  per_host_concurrency: {v}\n", "poll.per_host_concurrency", 1, 100, True),
    ("poll:\n  max_bytes: {v}\n", "poll.max_bytes", 10000, 200000000, True),
    ("poll:\n  max_backoff_seconds: {v}\n", "poll.max_backoff_seconds", 60, 604800, True),
    ("poll:\n  failing_after_hours: {v}\n", "poll.failing_after_hours", 0.1, 8760, False),
    (FEED + "    interval_seconds: {v}\n", "feeds[0].interval_seconds", 10, 604800, True),
    (
        FEED + "    interval_seconds: 10\n    max_interval_seconds: {v}\n",
        "feeds[0].max_interval_seconds",
        10,
        604800,
        True,
    ),
    (RELATION + "    within: {v}\n", "rules[0].within", 1, 100, True),
    ("stories:\n  window_hours: {v}\n", "stories.window_hours", 1, 720, False),
    ("stories:\n  threshold: {v}\n", "stories.threshold", 0.05, 1, False),
    ("stories:\n  momentum_sources: {v}\n", "stories.momentum_sources", 2, 1000, True),
    ("stories:\n  momentum_minutes: {v}\n", "stories.momentum_minutes", 1, 1440, False),
    ("stories:\n  edit_delay_seconds: {v}\n", "stories.edit_delay_seconds", 0, 3600, False),
    ("stories:\n  retention_days: {v}\n", "stories.retention_days", 1, 3650, False),
    ("ops:\n  paused_after_minutes: {v}\n", "ops.paused_after_minutes", 0, 10080, False),
    ("learned:\n  threshold: {v}\n", "learned.threshold", 0.5, 1, False),
]


def _value(config, key: str):
    """The loaded value at a dotted key such as ``feeds[0].interval_seconds``."""
    for part in key.split("."):
        name, _, index = part.partition("[")
        config = getattr(config, name)
        if index:
            config = config[int(index.rstrip("]"))]
    return config


@pytest.mark.parametrize("section,key,lo,hi,whole", LIMITS, ids=[c[1] for c in LIMITS])
def test_each_number_is_held_to_its_range_with_file_line_and_key(
    tmp_path, section, key, lo, hi, whole
):
    path = tmp_path / "c.yaml"
    line = section.count("\n")  # the value is on the section's last line
    step = 1 if whole else lo / 10 or 0.5
    for bad in (lo - step, hi + step):
        path.write_text(MINIMAL_WATCHLISTS + section.format(v=bad), encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path, environ={})
        expected = f"{path}:{line + MINIMAL_WATCHLISTS.count(chr(10))}: {key}: "
        assert str(caught.value) == expected + f"must be between {lo:g} and {hi:g}, got {bad!r}"
    if whole:
        path.write_text(MINIMAL_WATCHLISTS + section.format(v=lo + 0.5), encoding="utf-8")
        with pytest.raises(ConfigError, match=f"must be a whole number, got {lo + 0.5!r}"):
            load_config(path, environ={})
    for good in (lo, hi):
        path.write_text(MINIMAL_WATCHLISTS + section.format(v=good), encoding="utf-8")
        value = _value(load_config(path, environ={}), key)
        assert value == good and type(value) is (int if whole else float)


@pytest.mark.parametrize(
    "section,key,line",
    [
        ("poll:\n  interval_seconds: 600\n  max_interval_seconds: 300\n", "poll", 3),
        (FEED + "    interval_seconds: 600\n    max_interval_seconds: 300\n", "feeds[0]", 5),
    ],
)
def test_a_ceiling_below_the_interval_is_an_error(tmp_path, section, key, line):
    path = tmp_path / "c.yaml"
    path.write_text(section + MINIMAL_WATCHLISTS, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (
        f"{path}:{line}: {key}.max_interval_seconds: must be at least interval_seconds (600)"
    )


def test_a_ceiling_not_given_rises_to_the_interval(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "poll:\n  interval_seconds: 4000\n"
        "feeds:\n  - name: A\n    url: http://x.example/a\n"
        "  - name: B\n    url: http://x.example/b\n    interval_seconds: 60\n"
        "  - name: C\n    url: http://x.example/c\n    interval_seconds: 9000\n"
        + MINIMAL_WATCHLISTS,
        encoding="utf-8",
    )
    config = load_config(path, environ={})
    assert (config.poll.interval_seconds, config.poll.max_interval_seconds) == (4000, 4000)
    assert [(f.interval_seconds, f.max_interval_seconds) for f in config.feeds] == [
        (4000, 4000),
        (60, 4000),
        (9000, 9000),
    ]


def test_every_number_field_declares_its_limit():
    """The loader reads a number by the limit beside its field: a number field without one
    could not be read from config.yaml."""
    unlimited = [
        f"{cls.__name__}.{name}"
        for cls in vars(model).values()
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls is not model.Limit
        for name, hint in typing.get_type_hints(cls).items()
        if hint in (int, float) and name not in model.limits(cls)
    ]
    assert not unlimited
    assert set(model.limits(model.PollConfig)) == model.keys(model.PollConfig) - {
        "adaptive",
        "proxy",
    }


@pytest.mark.parametrize(
    "text,minutes",
    [
        ("30m", 30),
        ("30min", 30),
        (" 30 MIN ", 30),
        ("48h", 48 * 60),
        ("1.5h", 90),
        ("7d", 7 * 24 * 60),
        ("7D", 7 * 24 * 60),
        ("2w", 14 * 24 * 60),
    ],
)
def test_one_duration_form_for_backtest_and_mute(text, minutes):
    assert parse_duration(text).total_seconds() == minutes * 60


@pytest.mark.parametrize(
    "text", ["", "yesterday", "7", "d", "-1h", "1e3h", "7 days", "1.h", "2 h 30m", "9" * 40 + "w"]
)
def test_a_duration_that_is_none_says_what_one_looks_like(text):
    with pytest.raises(ValueError, match=r"30m, 48h, 7d or 2w|longer than any duration"):
        parse_duration(text)


def test_slack_is_a_webhook_or_an_app_posting_to_a_channel(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL_WATCHLISTS + "destinations:\n  slack: {}\n", encoding="utf-8")
    assert load_config(path).destinations.slack == SlackConfig()  # the webhook
    path.write_text(
        MINIMAL_WATCHLISTS + "destinations:\n  slack:\n    channel: '#chip-news'\n"
        "    api_base_url: http://127.0.0.1:9/api/\n",
        encoding="utf-8",
    )
    slack = load_config(path).destinations.slack
    assert slack == SlackConfig(channel="#chip-news", api_base_url="http://127.0.0.1:9/api/")
    path.write_text(
        MINIMAL_WATCHLISTS + "destinations:\n  slack: {channel: C0123ABCDEF}\n", encoding="utf-8"
    )
    slack = load_config(path).destinations.slack
    assert (slack.channel, slack.api_base_url) == ("C0123ABCDEF", "https://slack.com/api/")


def test_the_shipped_primary_source_alerts_on_a_watched_chip_with_no_export_term():
    """A regulator's own document naming a watched chip is news; the same words from an outlet
    need an export term (issue #22: primary sources, tagged)."""
    shipped = load_config(ROOT / "config.yaml")
    primary = [f.name for f in shipped.feeds if "primary" in f.tags]
    assert primary and all(f.url.startswith("https://") for f in shipped.feeds if f.tags)
    headline = "Request for Comments on Nvidia H20 Accelerators"
    ran = cli("match", "--config", str(ROOT / "config.yaml"), "--feed", primary[0], headline)
    assert ran.stdout.startswith("ALERT: rule(s) primary-source held"), ran.stdout
    outlet = next(f.name for f in shipped.feeds if not f.tags)
    ran = cli("match", "--config", str(ROOT / "config.yaml"), "--feed", outlet, headline)
    assert ran.stdout.startswith("no alert"), ran.stdout
