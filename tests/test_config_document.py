"""The config's YAML reader (alerts/config/document.py) against ruamel's round-trip reader, which
it replaced for speed: the same values and the same line for every key and item, on the shipped
config, every YAML example in the docs and the scalars YAML 1.1 and 1.2 read differently."""

from __future__ import annotations

import re
from typing import Any

import _ruamel_yaml
import pytest
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from alerts.config import load, load_config
from alerts.config.document import LinedMap, read_document
from alerts.errors import ConfigError
from tests.support import ROOT, shipped_watchlists, write_config

BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
EXAMPLES = {
    "config.yaml": (ROOT / "config.yaml").read_text(encoding="utf-8"),
    **{
        f"{page.name} #{i}": text
        for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for i, text in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")), start=1)
    },
}


def _round_trip(text: str) -> Any:
    return YAML(typ="rt", pure=True).load(text)


def _same(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal values, plain types, and each key's and item's (line, column) the same."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), where
        for key in theirs:
            assert ours.lc.key(key) == tuple(theirs.lc.key(key)), f"{where}.{key}"
            _same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), where
        for i, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            assert ours.lc.item(i) == tuple(theirs.lc.item(i)), f"{where}[{i}]"
            _same(mine, other, f"{where}[{i}]")
    else:
        assert ours == theirs, where
        assert type(ours).__module__ == "builtins" or type(ours).__module__ == "datetime", where


def test_libyaml_is_what_reads_the_config():
    """The pinned ruamel.yaml.clib is installed, so the fast path is the one the tests take."""
    assert YAML(typ="safe").Parser is _ruamel_yaml.CParser


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_shipped_and_documented_config_reads_the_same_values_at_the_same_lines(name):
    text = EXAMPLES[name]
    ours = read_document(text)
    assert isinstance(ours, LinedMap), "read by libyaml, not by the fallback"
    _same(ours, _round_trip(text), name)


@pytest.mark.parametrize(
    "text",
    [
        "a: yes\nb: on\nc: No\nd: off",  # strings in YAML 1.2, booleans in 1.1
        "a: 010\nb: 0o10\nc: 0x1F\nd: 1_000\ne: 1e3\nf: .inf\ng: -0",
        "a: ~\nb: null\nc:\nd: ''\ne: true",
        "a: 2026-12-06\nb: 12:30\nc: 08:00",
        "a: &x [1, {b: 2}]\nc: *x",
        "a: |\n  two\n  lines\nb: >-\n  folded\n  line",
        "- name: one\n  url: 'http://a/x'\n-   name: two\n    url: http://b/y  # comment\n",
        "a: !!str 5\nb: 'quoted # not a comment'",
    ],
    ids=lambda text: text.split("\n")[0],
)
def test_the_scalars_that_differ_between_yaml_versions_read_as_before(text):
    ours, theirs = read_document(text), _round_trip(text)
    if "!!str" in text:  # the round-trip reader keeps an explicit tag as a TaggedScalar
        assert ours == {"a": "5", "b": "quoted # not a comment"}
        return
    _same(ours, theirs)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("poll:\n  interval_seconds: 60\n  interval_seconds: 90\n", 3, "duplicate key"),
        ("feeds:\n  - name: a\n   url: x\n", 3, "invalid YAML"),
        ("watchlists: {chips: [H20\n", 2, "invalid YAML"),
        ("a: b\n\tc: d\n", 2, "invalid YAML"),
    ],
)
def test_what_libyaml_refuses_is_explained_by_the_pure_reader(tmp_path, text, line, message):
    """The pure-Python reader's words and line, as config errors have always given them."""
    with pytest.raises(YAMLError) as pure:
        _round_trip(text)
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert error.value.line == line and message in str(error.value)
    assert str(pure.value.problem) in str(error.value)


def test_merge_keys_are_merged():
    doc = read_document("base: &b {x: 1, y: 1}\nmerged:\n  <<: *b\n  y: 2\n")
    assert doc["merged"] == {"x": 1, "y": 2}
    assert doc["merged"].lc.key("y") == (3, 2)


def test_a_config_read_either_way_is_the_same_config(tmp_path, monkeypatch):
    """End to end: the shipped watchlists and a routed destination, loaded through libyaml and
    through the pure reader, make equal configs with the same key lines."""
    routes = (
        "destinations:\n  - name: exec\n    telegram: {chat_id: '@exec'}\n    rules: [chip-trade]\n"
    )
    path = write_config(
        tmp_path, [("Wire", "http://127.0.0.1:9/w.xml")], watchlists=shipped_watchlists(),
        extra=routes,
    )  # fmt: skip
    fast = load_config(path, environ={})
    monkeypatch.setattr(load, "read_document", _round_trip)
    load._parse.cache_clear()
    try:
        slow = load_config(path, environ={})
    finally:
        load._parse.cache_clear()
    assert fast == slow and fast.lines == slow.lines


def test_a_values_line_is_where_its_text_starts():
    """What the story vocabulary's reader needs to name a word's line: a block scalar's text
    starts on the line after its indicator."""
    doc = read_document("plain: a b\nblock: |\n  c d\n  e\nfolded: >-\n\n  f\n")
    assert doc.lc.value("plain") == (0, 7)
    assert doc.lc.value("block") == (2, 0) and doc["block"] == "c d\ne\n"
    assert doc.lc.value("folded")[0] == 5 and doc["folded"] == "\nf"
