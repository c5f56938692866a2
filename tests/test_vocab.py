"""The clustering vocabulary (alerts/stories/vocab.yaml): what the loader reads, and the files it
refuses, each with a message that names the file, the line and both places a word is listed."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alerts.config import load_config
from alerts.match import compile_matcher
from alerts.stories import cluster_offline, headline_features
from alerts.stories.vocab import VOCAB, VocabularyError, load
from tests.support import ROOT

SHIPPED = (ROOT / "alerts" / "stories" / "vocab.yaml").read_text(encoding="utf-8")


def _line(text: str, pattern: str) -> int:
    """The 1-based number of the one line of ``text`` that matches ``pattern``."""
    (n,) = [i for i, line in enumerate(text.splitlines(), start=1) if re.search(pattern, line)]
    return n


def _edited(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    """The shipped file with one line changed, written to a temp file."""
    assert SHIPPED.count(old) == 1, old
    text = SHIPPED.replace(old, new)
    path = tmp_path / "vocab.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def _refused(path: Path) -> str:
    with pytest.raises(VocabularyError) as caught:
        load(path)
    return str(caught.value)


def test_the_shipped_vocabulary_is_what_the_features_read():
    assert load() == VOCAB
    assert VOCAB.actions["bans"] == "restrict" and VOCAB.actions["approves"] == "allow"
    assert VOCAB.countries["tokyo"] == "japan" and VOCAB.agencies["doj"] == "justice"
    assert VOCAB.leaders["bis"] == "us" and VOCAB.leaders["beijing"] == "china"
    assert VOCAB.synonyms["chipmakers"] == "chip"
    assert VOCAB.priority[0] == "product", "the first kind listed wins a tie"
    h = headline_features("Japan bans exports of chipmaking tools")
    assert h.primary == "restrict" and h.actors == {"japan"}


def test_a_word_added_to_the_file_changes_what_a_headline_says(tmp_path):
    """The lists are the data the loader turns into lookups: a word added under a kind is read
    as that kind."""
    path, _ = _edited(
        tmp_path,
        "  tariff: tariff tariffs duty duties levy levies",
        "  tariff: tariff levy embargo",
    )
    vocab = load(path)
    assert vocab.actions["embargo"] == "tariff"
    assert "tariffs" not in vocab.actions and "embargo" not in VOCAB.actions


@pytest.mark.parametrize(
    ("old", "new", "word", "first", "second"),
    [
        (
            "  tariff: tariff tariffs duty duties levy levies",
            "  tariff: tariff tariffs duty duties levy levies bans",
            "bans",
            ("actions.tariff", r"^  tariff: tariff"),
            ("actions.restrict", r"^\s+ban bans banned"),
        ),
        (  # cluster.py listed "seize(s/d)" under both legal and control, and kept the last
            "  control: takeover nationalise nationalize",
            "  control: takeover seized nationalise nationalize",
            "seized",
            ("actions.legal", r"^    settlement .* seized "),
            ("actions.control", r"^  control:"),
        ),
    ],
)
def test_a_word_under_two_kinds_is_refused_with_both_named(tmp_path, old, new, word, first, second):
    path, text = _edited(tmp_path, old, new)
    (first_kind, first_at), (second_kind, second_at) = first, second
    a, b = _line(text, first_at), _line(text, second_at)
    # At the second listing's line, the first listing first.
    assert _refused(path) == (
        f"{path}:{b}: {word!r} is listed under two kinds: {first_kind} (line {a}) and "
        f"{second_kind} (line {b})"
    )


def test_a_name_under_a_country_and_an_agency_is_refused(tmp_path):
    """Countries and agencies are one list: a name says one of them."""
    path, text = _edited(tmp_path, "  japan: [japan, japanese, tokyo, meti]", "  japan: [japan]")
    path.write_text(text.replace("  miit: [miit]", "  miit: [miit, japan]"), encoding="utf-8")
    message = _refused(path)
    assert "'japan' is listed under two kinds: countries.japan" in message
    assert "agencies.miit" in message


def test_a_word_listed_twice_under_one_kind_is_refused(tmp_path):
    path, text = _edited(tmp_path, "  deal: agree agrees agreed", "  deal: agree agrees agree")
    line = _line(text, r"^  deal:")
    assert _refused(path) == (
        f"{path}:{line}: 'agree' is listed twice under actions.deal (lines {line} and {line})"
    )


def test_a_leading_agency_must_be_an_agency(tmp_path):
    path, text = _edited(tmp_path, "  china: [cac, cyberspace,", "  china: [cac, politburo,")
    line = _line(text, r"^  china: \[cac, politburo")
    assert _refused(path) == f"{path}:{line}: leading_agencies: 'politburo' is not under agencies"


def test_an_announcing_word_must_be_a_product_word(tmp_path):
    path, text = _edited(tmp_path, "  debut debuts\n", "  debut debuts unveiling\n")
    assert "announcing: 'unveiling' is not under actions.product" in _refused(path)


@pytest.mark.parametrize(
    ("old", "new", "expected", "at"),
    [
        ("connectives: as on", "connective: as on", "unknown section 'connective'", "^connective:"),
        ("skip_lead: exclusive", "# skip_lead: exclusive", "missing section 'skip_lead'", None),
        (
            "  mexico: [mexico]",
            "  mexico: mexico",
            "countries.mexico: expected a list of names",
            "^  mexico:",
        ),
        (
            "  firm: firms",
            "  firm: [firms]",
            "synonyms.firm: expected words separated by spaces",
            "^  firm:",
        ),
        ("  firm: firms", "  firm: firms\n  firm: firmly", 'duplicate key "firm"', "firmly"),
    ],
)
def test_a_malformed_file_is_refused_at_its_line(tmp_path, old, new, expected, at):
    path, text = _edited(tmp_path, old, new)
    line = _line(text, at) if at else 1
    message = _refused(path)
    assert message.startswith(f"{path}:{line}: ") and expected in message, message


@pytest.mark.parametrize(
    ("title", "kind"),
    [
        ("US widens export control rules for AI chips", "restrict"),
        ("US widens export controls on AI chips", "restrict"),
        ("Japan adds 11 chip-related items to export control list", "restrict"),
        ("Customs seize Nvidia GPUs bound for China", "legal"),
        ("Nvidia servers seized in Taiwan", "legal"),
        ("Netherlands seizes control of Nexperia citing national security", "control"),
        ("Dutch government takes control of chipmaker Nexperia", "control"),
    ],
)
def test_each_word_once_listed_under_two_kinds_has_one(title, kind):
    """ "control" was control and "controls" restrict; "seize(d)" was under legal and control
    and always meant control. Export control is a restriction, a seizure of goods a legal
    action, and seizing control of a company a takeover."""
    assert headline_features(title).primary == kind


def test_two_reports_of_one_export_control_list_join():
    """Before the fix "export control list" read as a takeover and "export curbs" as a
    restriction, so these two reports of one event could not join (events_dev.tsv)."""
    config = load_config(ROOT / "config.yaml")
    matcher = compile_matcher(config.watchlists, config.rules)
    at = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    items = [
        (title, at + timedelta(minutes=n * 7), outlet, matcher.match(title).matches)
        for n, (outlet, title) in enumerate(
            [
                ("Reuters", "Japan adds 11 chip-related items to export control list"),
                ("Nikkei Asia", "Tokyo widens chip export curbs to cover 11 more technologies"),
            ]
        )
    ]
    first, second = cluster_offline(items, window=timedelta(hours=48), threshold=0.4)
    assert first == second
