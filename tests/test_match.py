"""The matcher: whole tokens, normalisation, guards, rules, and the ``match`` command."""

from __future__ import annotations

import json

import pytest

from alerts.match import compile_matcher, token_spans
from tests.support import cli, shipped_config, shipped_matcher

CONFIG = shipped_config()
MATCHER = shipped_matcher()

# (id, title, category, term) — the term must be found
FINDS = [
    ("possessive", "Nvidia's new chip", "companies", "Nvidia"),
    ("curly_possessive", "NVIDIA’s H20 plan for chips", "companies", "Nvidia"),
    ("plural_possessive_less", "Nvidias GPU sales", "companies", "Nvidia"),
    ("hyphen_model", "H-200 AI accelerator", "chips", "H200"),
    ("hyphen_mi308", "AMD MI-308 shipments", "chips", "MI308"),
    ("plural_model", "Nvidia H20s GPUs", "chips", "H20"),
    ("hyphen_phrase", "new entity-list additions", "export_terms", "entity list"),
    ("compound_phrase", "export-control rules tightened", "export_terms", "export controls"),
    ("typo_long_name", "Nvida chips to China", "companies", "Nvidia"),
    ("transposition", "Huwaei chips", "companies", "Huawei"),
    ("chinese_inside_text", "美国对英伟达芯片实施出口管制", "companies", "Nvidia"),
    ("chinese_policy", "美国对英伟达芯片实施出口管制", "export_terms", "export controls"),
    ("fullwidth", "ＮＶＩＤＩＡ chips", "companies", "Nvidia"),
]

# (id, title, category, term) — the term must NOT be found
TRAPS = [
    ("arm_in_farm", "Farm exports surge", "companies", "Arm"),
    ("arm_in_armenia", "Armenia signs AI chip pact", "companies", "Arm"),
    ("arm_in_armed", "Armed groups seize chip shipment", "companies", "Arm"),
    ("intel_in_intelligence", "Intelligence agencies warn of chip smuggling", "companies", "Intel"),
    ("smic_in_seismic", "Seismic export controls", "companies", "SMIC"),
    ("smic_in_endoplasmic", "Endoplasmic reticulum study", "companies", "SMIC"),
    ("micron_in_micronesia", "Micronesia tariffs on fish", "companies", "Micron"),
    ("ascend_in_ascendis", "Ascendis Pharma licence deal", "chips", "Ascend"),
    ("h20_is_not_h200", "Nvidia H200 chip export", "chips", "H20"),
    ("h200_is_not_h20", "Nvidia H20 chip export", "chips", "H200"),
    ("h2o_is_not_h20", "H2O water export ban on AI chip plant", "chips", "H20"),
    ("hyundai_h200", "Hyundai H200 minivan recalled", "chips", "H200"),
    ("short_token_no_typo", "AMB chips export", "companies", "AMD"),
]


@pytest.mark.parametrize("title,category,term", [c[1:] for c in FINDS], ids=[c[0] for c in FINDS])
def test_finds_term(title, category, term):
    found = {(m.category, m.term) for m in MATCHER.match(title).matches}
    assert (category, term) in found


@pytest.mark.parametrize("title,category,term", [c[1:] for c in TRAPS], ids=[c[0] for c in TRAPS])
def test_never_falls_for_trap(title, category, term):
    found = {(m.category, m.term) for m in MATCHER.match(title).matches}
    assert (category, term) not in found


def test_rule_needs_policy_and_chip_or_company():
    assert (
        "chip-trade" in MATCHER.match("China approves first imports of Nvidia H200 AI chips").rules
    )
    assert not MATCHER.match("Nvidia unveils Blackwell Ultra AI chip").alert
    assert not MATCHER.match("Steel tariffs rise again").alert


def test_match_explains_text_kind_and_score():
    result = MATCHER.match("NVIDIA’s H-200 hit by export-control rules")
    by_term = {m.term: m for m in result.matches}
    assert by_term["H200"].text == "H-200" and by_term["H200"].kind == "exact"
    assert by_term["Nvidia"].text == "NVIDIA’s"
    assert by_term["export controls"].text == "export-control"
    assert all(0 < m.score <= 100 for m in result.matches)
    assert "ALERT" in result.explain() and "'H-200'" in result.explain()


def test_title_outweighs_summary():
    result = MATCHER.match("Nvidia export controls", "Nvidia said")
    assert {m.term: m.field for m in result.matches}["Nvidia"] == "title"
    summary_only = MATCHER.match("New rules announced", "Nvidia faces export controls")
    assert summary_only.alert
    assert all(m.field == "summary" and m.score < 100 for m in summary_only.matches)


def test_tokens_keep_offsets_into_original_text():
    text = "Ｈ２００ and 华为 chips"
    assert [text[a:b] for a, b in token_spans(text)] == ["Ｈ２００", "and", "华为", "chips"]


def test_match_cli_human_and_jsonl():
    human = cli("match", "China approves first imports of Nvidia H200 AI chips")
    assert human.returncode == 0
    assert "ALERT" in human.stdout and "H200" in human.stdout

    lines = (
        "\n".join(
            [
                json.dumps({"title": "Huawei hit by export controls"}),
                "not json",
                json.dumps({"title": "Farm exports surge", "summary": None}),
                json.dumps({"summary": "no title"}),
                json.dumps(["a list"]),
            ]
        )
        + "\n"
    )
    result = cli("match", "--jsonl", stdin=lines)
    assert result.returncode == 0
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 5
    assert out[0]["alert"] is True and out[0]["rules"] == ["chip-trade"]
    assert {"category", "term", "text", "kind", "score"} <= set(out[0]["matches"][0])
    assert "error" in out[1] and "error" in out[3] and "error" in out[4]
    assert out[2] == {"alert": False, "rules": [], "matches": []}


# --- relation rules: business-news wording ---------------------------------------------------

RELATIONS = [
    ("Nvidia can sell H200 to China, Commerce says", "chip-sale"),
    ("ByteDance, Alibaba and Tencent place big H20 orders", "chip-sale"),
    ("Beijing urges tech firms to shun Nvidia's H20 chips", "buyer-pressure"),
    ("China's cyberspace watchdog summons Nvidia over H20 chips", "china-regulator"),
    ("Nvidia unveils RTX Pro 6000D for the Chinese market", "china-product"),
    ("AMD wins US nod to ship MI308 chips", "permission"),
    ("Nvidia agrees to revenue-share deal on H20 sales", "licence-money"),
    ("Cadence to plead guilty over exports to Chinese military university", "legal-case"),
    ("Nvidia asks suppliers to halt production of H20 chips after Beijing pushback", "consequence"),
]
NOT_RELATIONS = [
    "Nvidia sells record number of Blackwell chips to Oracle",  # no party of concern
    "Huawei smartphone shipments jump 40% in China",  # no chip
    "Ex-Intel engineer pleads guilty to stealing trade secrets",  # no trade angle
    "EU reimposes fine on Intel over anticompetitive rebates",  # competition, not trade
    "Micron raises HBM guidance on AI demand",
    "Huawei's smartphone market share in China jumps to 20%",  # a market, no consequence
]


def test_chinese_firms_on_the_entity_list_alert_without_a_chip_and_others_do_not():
    chinese = MATCHER.match(
        "US extends entity list restrictions to subsidiaries of blacklisted Chinese firms"
    )
    assert chinese.rules == ("china-entity-list",), MATCHER.explain(chinese)
    russian = MATCHER.match("US adds Russian firms to entity list over Ukraine war")
    assert not russian.alert, MATCHER.explain(russian)


@pytest.mark.parametrize("title,rule", RELATIONS, ids=[r for _, r in RELATIONS])
def test_relation_rules_catch_business_wording(title, rule):
    result = MATCHER.match(title)
    assert rule in result.rules, MATCHER.explain(result)


@pytest.mark.parametrize("title", NOT_RELATIONS)
def test_relation_rules_need_every_role(title):
    result = MATCHER.match(title)
    assert not result.alert, MATCHER.explain(result)


def test_relation_needs_its_roles_close_together(tmp_path):
    from alerts.config import Rule, Term

    watchlists = {
        "chips": (Term(name="H20", category="chips"),),
        "verbs": (Term(name="sell", category="verbs"),),
        "parties": (Term(name="China", category="parties"),),
    }
    matcher = compile_matcher(
        watchlists, (Rule(name="near", relation=(("chips",), ("verbs",), ("parties",)), within=4),)
    )
    assert matcher.match("Nvidia can sell H20 to China").rules == ("near",)
    assert not matcher.match("Nvidia can sell H20 chips of every size and kind in China").alert
    # Roles in different fields never make a relation.
    assert not matcher.match("Nvidia can sell H20", "China reacted").alert
    assert "relation near: sell (verbs) … H20 (chips) … China (parties)" in matcher.explain(
        matcher.match("Nvidia can sell H20 to China")
    )
