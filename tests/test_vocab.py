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
from alerts.stories.features import numbers_agree
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
    line = _line(text, r"^  deal: agree")
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
    assert first.story == second.story


def test_an_idiom_is_under_a_kind_of_action_and_not_also_a_plain_word(tmp_path):
    path, text = _edited(tmp_path, "  deal: pay pays paying", "  deals: pay pays paying")
    line = _line(text, r"^  deals: pay")
    assert _refused(path) == f"{path}:{line}: idioms: 'deals' is not a kind under actions"
    path, text = _edited(tmp_path, "  deal: pay pays paying", "  deal: pay pays paying agree")
    assert "'agree' is listed under two kinds: actions.deal" in _refused(path)
    assert "idioms.deal" in _refused(path)


def test_a_hedge_must_be_a_plan_word(tmp_path):
    path, _ = _edited(tmp_path, "hedges: could may might", "hedges: could may might reportedly")
    assert "hedges: 'reportedly' is not under actions.plan" in _refused(path)


# --- what a headline says: outlets' wording of one kind of action ------------------------------


@pytest.mark.parametrize(
    ("worded", "plain"),
    [
        # approval
        ("China gives nod to Nvidia's H200 imports", "China approves Nvidia's H200 imports"),
        ("US green-lights Nvidia H20 sales to China", "US approves Nvidia H20 sales to China"),
        ("Beijing signs off on H200 imports", "Beijing approves H200 imports"),
        ("Trump opens door to Nvidia H200 sales in China", "Trump allows Nvidia H200 sales"),
        ("China lets Nvidia's H200 chips in", "China allows Nvidia's H200 chips"),
        # avoidance, and permissions lost or required
        ("Beijing tells tech firms to avoid Nvidia H20", "Beijing bans Nvidia H20 for tech firms"),
        ("Regulators steer big tech away from Nvidia's H20", "Regulators ban Nvidia's H20"),
        ("US warns companies against using Huawei chips", "US bans use of Huawei chips"),
        ("Samsung loses US waiver for China fab", "US revokes Samsung waiver for China fab"),
        ("US pulls Huawei's export licences", "US revokes Huawei's export licences"),
        ("AMD's MI308 now needs an export licence", "US restricts AMD's MI308 exports"),
        # findings, allegations, deals, purchases
        ("Regulator finds Nvidia violated antitrust law", "Nvidia breached antitrust law"),
        ("DoJ alleges pair shipped Nvidia GPUs to China", "DoJ charges pair over Nvidia GPUs"),
        ("Nvidia and AMD strike deal to share China revenue", "Nvidia and AMD agree to pay US"),
        ("ByteDance places big H20 orders", "ByteDance buys H20 chips"),
    ],
)
def test_an_idiom_says_the_kind_of_action_its_plain_wording_says(worded, plain):
    assert headline_features(worded).primary == headline_features(plain).primary != ""


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [
        ("Nvidia to take five billion charge", "Nvidia takes $5bn charge", True),
        ("Nvidia to take five billion charge", "Nvidia takes $5.5bn charge", True),  # rounded
        ("Naura and 138 other firms added", "US adds 140 firms", True),
        ("Japan curbs 23 types of tools", "Japan curbs 25 types of tools", False),
        ("Two men charged", "2 men charged", True),
        ("US takes 15% cut", "US takes 15 percent cut", True),
        ("US takes 15% cut", "US takes 16% cut", False),
    ],
)
def test_amounts_written_differently_agree(a, b, agree):
    x, y = headline_features(a), headline_features(b)
    assert x.numbers and y.numbers
    assert numbers_agree(x.numbers, y.numbers) is agree


@pytest.mark.parametrize(
    ("title", "plan"),
    [
        ("Singapore may charge three men over Nvidia servers", True),
        ("Singapore charges three men over servers that may contain Nvidia chips", False),
        ("Nvidia falls on possible US curbs on H20 sales", True),
        ("AMD says new US export curbs on MI308 could cost $800 million", False),
    ],
)
def test_a_hedge_makes_a_plan_of_the_action_after_it_only(title, plan):
    assert ("plan" in headline_features(title).actions) is plan


def test_the_kind_of_action_is_the_main_clauses():
    """Said in a clause of context ("after", "amid", "despite"…), a kind of action is
    background: a headline whose main clause says none has none of its own."""
    visit = headline_features("Nvidia CEO visits Beijing days after US restricts H20 sales")
    assert visit.primary == "" and "restrict" in visit.actions
    launch = headline_features("Nvidia to launch cheaper Blackwell chip for China after US curbs")
    assert launch.primary == "product"
    meeting = headline_features("Nvidia's Huang meets Chinese vice premier after new US curbs")
    assert meeting.primary == "", "meeting a minister is not a product made to meet rules"
    assert headline_features("Nvidia offers chip to meet US export rules").primary == "product"


@pytest.mark.parametrize(
    ("title", "same_as"),
    [
        ("Nvidia H200 imports approved by China", "China approves Nvidia H200 imports"),
        ("TSMC ordered by Washington to halt shipments", "US orders TSMC to halt shipments"),
        ("China slows its processors, Nvidia unveils weaker chip", "Nvidia unveils weaker chip"),
    ],
)
def test_who_acts_is_read_from_a_passive_and_from_the_clause_that_acts(title, same_as):
    assert headline_features(title).lead == headline_features(same_as).lead


@pytest.mark.parametrize(
    ("title", "kind"),
    [
        ("US revokes status letting Samsung ship tools to China", "restrict"),
        ("US lifts ban on Nvidia H20 sales", "allow"),
        ("US ban on Nvidia H20 sales lifted", "allow"),
        ("Trump scraps Biden's AI chip export controls", "allow"),
    ],
)
def test_of_both_directions_the_one_said_first_is_the_event(title, kind):
    assert headline_features(title).primary == kind
