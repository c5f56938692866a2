"""Regex watchlist terms: compiled by RE2 (linear time), checked at load, explained by ``match``."""

from __future__ import annotations

import json
import threading

import pytest

from alerts.config import load_config
from alerts.errors import ConfigError
from alerts.match import compile_matcher
from tests.support import cli

CONFIG = """\
feeds:
  - name: Example
    url: https://example.com/feed.xml
watchlists:
  models:
    - regex: '\\bH[12]\\d{{2}}[A-Z]?\\b'
      term: H-series GPU
{extra}
  export_terms: [export controls, export ban]
rules:
  - name: model-export
    all_of: [models, export_terms]
"""


def _config(tmp_path, extra: str = ""):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    return path


def _matcher(tmp_path, extra: str = ""):
    config = load_config(_config(tmp_path, extra))
    return compile_matcher(config.watchlists, config.rules, config.learned)


def _found(result, category="models"):
    return [(m.term, m.text, m.kind, m.field) for m in result.matches if m.category == category]


def test_a_regex_term_matches_what_the_pattern_finds_and_makes_its_rule_hold(tmp_path):
    matcher = _matcher(tmp_path)
    result = matcher.match("US widens export controls to cover the h100 and H800")
    assert result.rules == ("model-export",)
    # The best match of each term is kept, as for any term; the text is what was written.
    assert _found(result) == [("H-series GPU", "h100", "regex", "title")]
    # Word boundaries hold: no match inside a longer token, nor the wrong shape.
    for title in ("US export ban on XH100Z", "Export controls on H20 chips", "Hyundai H1 van"):
        assert not _found(matcher.match(title)), title


def test_the_summary_is_searched_too_and_non_ascii_text_keeps_its_offsets(tmp_path):
    matcher = _matcher(tmp_path)
    result = matcher.match("美国扩大出口管制", "Export controls now cover the H200 — 英伟达")
    assert _found(result) == [("H-series GPU", "H200", "regex", "summary")]
    result = matcher.match("出口管制：H100 禁运 export ban")
    assert _found(result) == [("H-series GPU", "H100", "regex", "title")]


def test_case_and_guards_apply_to_a_regex_term(tmp_path):
    extra = (
        "    - regex: 'B[23]00'\n"
        "      term: Blackwell B-series\n"
        "      case_sensitive: true\n"
        "      context: [Nvidia]\n"
        "      exclude: [vitamin]\n"
    )
    matcher = _matcher(tmp_path, extra)
    names = [m.term for m in matcher.match("Nvidia B300 export ban").matches]
    assert "Blackwell B-series" in names
    for title in (
        "Nvidia b300 export ban",  # case-sensitive: the pattern's case
        "B300 export ban",  # no context word
        "Nvidia B300 vitamin export ban",  # an excluded word
    ):
        names = [m.term for m in matcher.match(title).matches]
        assert "Blackwell B-series" not in names, title


def test_a_catastrophic_pattern_over_a_long_headline_finishes(tmp_path):
    """``(a+)+$`` over "aaa…!" takes Python's backtracking engine exponential time (2^n steps:
    n = 64 here would outlast any test run); RE2 answers in linear time. The thread only guards
    the test run against a hang; no timing is asserted."""
    matcher = _matcher(tmp_path, "    - regex: '(a+)+$'\n      term: catastrophic\n")
    headline = "a" * 64 + "!" + " export ban " + "a" * 20_000 + "!"
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(matcher.match(headline)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert outcome, "the match did not finish"
    assert not _found(outcome[0])
    # A string the pattern does match, to show it is live.
    assert [m.text for m in matcher.match("export ban aaaa").matches if m.term == "catastrophic"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    - regex: '(unclosed'\n", "invalid regular expression (RE2 syntax): missing )"),
        ("    - regex: '(?<=H)200'\n", "invalid regular expression (RE2 syntax): invalid perl"),
        ("    - regex: 'x*'\n", "matches an empty text, so it would match every headline"),
        ("    - regex: 'H20'\n      aliases: [H20E]\n", "a regex term takes no 'aliases'"),
        ("    - regex: 'H20'\n      fuzzy: true\n", "a regex term takes no 'fuzzy'"),
    ],
)
def test_a_bad_regex_is_a_config_error_with_file_line_and_key(tmp_path, extra, message):
    path = _config(tmp_path, extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    err = caught.value
    assert err.file == str(path) or str(err.file).endswith("config.yaml")
    assert err.key.startswith("watchlists.models[1].")
    # The regex sits at line 8; an extra key under it at line 9.
    assert err.line == (8 if err.key.endswith(".regex") else 9)
    assert message in str(err)
    ran = cli("check-config", "--config", str(path))
    assert ran.returncode == 2
    assert f"config.yaml:{err.line}: {err.key}: " in ran.stderr + ran.stdout


def test_match_shows_the_text_a_regex_term_matched(tmp_path):
    path = _config(tmp_path)
    ran = cli("match", "--config", str(path), "Export controls to cover H100 parts")
    assert ran.returncode == 0, ran.stderr
    assert "models: H-series GPU ← 'H100' (regex, title, score 100)" in ran.stdout
    lines = '{"title": "export ban on the h200"}\n{"title": "export ban on the h20"}\n'
    ran = cli("match", "--config", str(path), "--jsonl", stdin=lines)
    first, second = (json.loads(line) for line in ran.stdout.splitlines())
    assert (
        first["alert"]
        and {
            "category": "models",
            "term": "H-series GPU",
            "text": "h200",
            "kind": "regex",
            "score": 100.0,
        }
        in first["matches"]
    )
    assert not second["alert"]
