"""The learned second opinion (alerts/relevance.py, asked by alerts/match.py): the shipped model
loads and agrees with the config's default, a learned alert explains itself everywhere it is
shown, admins can turn it off or raise its threshold, and the training script reproduces the
committed model byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from alerts.config import LEARNED_RULE, LearnedConfig, load_config
from alerts.deliver.format import why_line
from alerts.match import compile_matcher, normalise
from alerts.relevance import MODEL_PATH, features, read_model, shipped_model
from alerts.types import Alert
from tests.support import (
    ROOT,
    cli,
    learned_oracle,
    shipped_config,
    shipped_matcher,
    write_config,
)

CONFIG = shipped_config()
ON = shipped_matcher()
OFF = shipped_matcher(LearnedConfig(enabled=False))
# No rule holds for it (it names no chip or company), yet it is chip-trade news.
AFFILIATES = "US 50% Rule Widens Export Curbs to Affiliates of Blacklisted Companies"


def test_the_shipped_model_loads_and_its_threshold_is_the_configs_default():
    model = shipped_model()
    assert len(model.weights) > 1000 and model.bias < 0
    assert model.threshold == LearnedConfig().threshold == CONFIG.learned.threshold
    doc = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert list(doc["weights"]) == sorted(doc["weights"]), "sorted, so a retrained model diffs"
    assert read_model(MODEL_PATH.read_text(encoding="utf-8")) == model


def test_a_learned_alert_says_so_with_its_score_and_words():
    assert not OFF.match(AFFILIATES).alert, "the rules alone miss it"
    result = ON.match(AFFILIATES)
    assert result.rules == (LEARNED_RULE,)
    opinion = result.opinion
    assert opinion is not None and opinion.score >= CONFIG.learned.threshold
    # What weighed most comes from the headline's own words, heaviest first.
    words = normalise(AFFILIATES)
    assert opinion.weighed and all(f" {text} " in words for text, _ in opinion.weighed)
    assert [w for _, w in opinion.weighed] == sorted((w for _, w in opinion.weighed), reverse=True)
    assert opinion.explain().startswith(f"learned {opinion.score:.2f}: ")
    text = ON.explain(result)
    assert "ALERT: rule(s) learned held" in text
    assert f"learned opinion {opinion.score:.2f} (threshold {CONFIG.learned.threshold:g}" in text
    assert "to silence it" in text and "learned: {enabled: false}" in text
    out = result.to_json()
    assert out["rules"] == ["learned"] and out["learned"]["alert"] is True
    assert out["learned"]["features"] == [t for t, _ in opinion.weighed]


def test_the_alerts_why_line_carries_the_learned_explanation():
    result = ON.match(AFFILIATES)
    alert = Alert(
        id=1,
        feed="Wire",
        title=AFFILIATES,
        link="https://w.example/a",
        summary="",
        published=None,
        created_at=datetime.now(timezone.utc),
        matches=result.matches,
        rules=result.rules,
    )
    score, heaviest = learned_oracle(AFFILIATES)  # from the model file, not the Opinion
    why = why_line(alert)
    assert why.endswith('"') and f'learned {score:.2f}: "' in why, why
    phrase = why.split('"')[-2]
    assert f" {heaviest} " in f" {phrase} " and f" {phrase} " in normalise(AFFILIATES), why


def test_the_opinion_is_asked_only_when_no_rule_holds_and_something_matched():
    ruled = ON.match("US tightens export controls on Nvidia H20 chips bound for China")
    assert ruled.alert and ruled.opinion is None and LEARNED_RULE not in ruled.rules
    nothing = ON.match("Local bakery wins award for sourdough bread")
    assert nothing.matches == () and nothing.opinion is None
    # A primary source's items are asked even when nothing on the watchlists matched.
    primary = ON.match("Local bakery wins award for sourdough bread", primary=True)
    assert primary.opinion is not None and not primary.alert


@pytest.mark.parametrize(
    "title",
    [
        "Nvidia revenue beats estimates as Blackwell sales ramp",
        "AMD Radeon RX 9070 XT review: a real rival to Nvidia's midrange",
        "US raises tariffs on Chinese electric vehicles to 100%",
        "US adds Russian firms to entity list over Ukraine war",
    ],
)
def test_negatives_naming_the_same_companies_and_words_stay_quiet(title):
    result = ON.match(title)
    assert not result.alert, ON.explain(result)


def test_a_muted_term_that_was_the_only_match_silences_a_learned_alert():
    result = ON.match(AFFILIATES)
    every = {m.term.casefold() for m in result.matches}
    assert ON.without(result, every).rules == ()
    one = next(iter(every))
    kept = ON.without(result, {one})
    assert kept.rules == (LEARNED_RULE,) and kept.opinion == result.opinion


def test_admins_turn_it_off_or_raise_its_threshold(tmp_path):
    base = (ROOT / "config.yaml").read_text(encoding="utf-8")
    off = tmp_path / "off.yaml"
    off.write_text(base.replace("  enabled: true\n", "  enabled: false\n"), encoding="utf-8")
    assert not load_config(off).learned.enabled
    out = cli("match", "--config", str(off), AFFILIATES)
    assert out.returncode == 0 and out.stdout.startswith("no alert"), out.stdout
    assert "learned" not in out.stdout
    score = ON.match(AFFILIATES).opinion.score  # type: ignore[union-attr]
    high = tmp_path / "high.yaml"
    high.write_text(
        base.replace("  threshold: 0.89\n", f"  threshold: {min(1.0, score + 0.005):.3f}\n"),
        encoding="utf-8",
    )
    out = cli("match", "--config", str(high), AFFILIATES)
    assert out.stdout.startswith("no alert") and "learned opinion" in out.stdout, out.stdout


def test_match_jsonl_adds_the_learned_field_and_keeps_the_contracts(tmp_path):
    lines = [{"title": AFFILIATES}, {"title": "Local bakery wins award for sourdough bread"}]
    out = cli(
        "match",
        "--jsonl",
        "--config",
        str(ROOT / "config.yaml"),
        stdin="\n".join(json.dumps(x) for x in lines) + "\n",
    )
    first, second = (json.loads(x) for x in out.stdout.splitlines())
    assert {"alert", "rules", "matches", "learned"} == set(first) and first["alert"] is True
    assert second == {"alert": False, "rules": [], "matches": []}, "not asked: no extra field"


def test_a_bad_threshold_is_a_config_error_with_file_line_and_key(tmp_path):
    path = write_config(tmp_path, [], extra="learned:\n  enabled: true\n  threshold: 1.5\n")
    out = cli("check-config", "--config", str(path))
    lines = path.read_text(encoding="utf-8").splitlines()
    line = lines.index("  threshold: 1.5") + 1
    assert out.returncode == 2
    assert f"{path}:{line}: learned.threshold: must be between 0.5 and 1, got 1.5" in out.stderr


def test_features_are_words_pairs_and_categories():
    found = features(["us", "bans", "h20"], ["sales"], ["chips", "governments"])
    assert found == {
        "w:us": 1.0,
        "w:bans": 1.0,
        "w:h20": 1.0,
        "b:us bans": 1.0,
        "b:bans h20": 1.0,
        "w:sales": 0.5,
        "cat:chips": 1.0,
        "cat:governments": 1.0,
        "cat:chip_side": 1.0,
    }


@pytest.mark.system  # the training script, run as its users run it
def test_training_reproduces_the_committed_model_byte_for_byte():
    """One training run on the real data (numpy, a dev dependency), compared with the file."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_relevance.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "up to date" in out.stdout


def test_the_silencing_advice_works():
    """Adding the word the explanation names to the exclude: of the terms it matched leaves
    no watchlist match, so the opinion is not asked."""
    result = ON.match(AFFILIATES)
    assert result.opinion is not None
    words = result.opinion.weighed[0][0]
    assert f"add {words!r} to the exclude: of the terms it matched" in ON.explain(result)
    matched = {m.term for m in result.matches}
    watchlists = {
        cat: tuple(
            replace(t, exclude=(*t.exclude, words)) if t.name in matched else t for t in terms
        )
        for cat, terms in CONFIG.watchlists.items()
    }
    quiet = compile_matcher(watchlists, CONFIG.rules, CONFIG.learned).match(AFFILIATES)
    assert not quiet.alert and quiet.opinion is None
