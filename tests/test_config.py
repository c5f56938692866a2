"""Config validation: every error names file, line and key, and the CLI exits with status 2."""

from __future__ import annotations

import pytest

from alerts.config import load_config
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
