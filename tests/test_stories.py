"""One alert per story: clustering across sources, republish and edit detection, alerts that
grow by edits, momentum, and retention."""

from __future__ import annotations

import json
import os
import random
from datetime import datetime, timedelta, timezone

import pytest

from alerts.dedupe import edited_titles, title_key
from alerts.deliver import Deliverer
from alerts.deliver.telegram import TelegramSink
from alerts.store import open_store
from alerts.stories import (
    CANDIDATES,
    FOLLOW,
    JOIN,
    NEW,
    Clusterer,
    Rarity,
    Story,
    StoryIndex,
    categories_of,
    cluster_offline,
    headline_features,
)
from alerts.types import FeedItem, NewItem
from tests.fakes.slack_webhook import FakeSlack
from tests.support import (
    CHANNEL,
    CHANNEL_ID,
    Clock,
    ago,
    cli,
    rss,
    shipped_config,
    shipped_matcher,
    shipped_watchlists,
    write_config,
)

CONFIG = shipped_config()
MATCHER = shipped_matcher()
OUTLETS = [
    ("Reuters", "China approves first imports of Nvidia H200 AI chips"),
    ("Bloomberg", "Beijing approves Nvidia H200 imports for Chinese tech giants"),
    ("SCMP", "China clears first batch of Nvidia H200 chip imports"),
    ("CNBC", "Nvidia H200 imports approved by China, sources say"),
    ("The Verge", "China lets Nvidia's H200 AI chips in after import approval"),
]


def _env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL", "CHIPWATCH_DATABASE")
    }
    return env | extra


def _config(tmp_path, feeds, *, destinations):
    return write_config(
        tmp_path,
        feeds,
        watchlists=shipped_watchlists() + destinations,
    )


def test_five_outlets_one_story_one_message_edited_to_list_the_others(
    tmp_path, serve, telegram, feed_server
):
    feeds, bodies = [], []
    for i, (outlet, title) in enumerate(OUTLETS):
        link = f"https://{outlet.lower().replace(' ', '')}.com/h200-{i}?utm_source=rss&fbclid=x{i}"
        bodies.append(
            rss(
                [{"title": title, "link": link, "guid": f"{outlet}-1", "date": ago(minutes=30 - i)}]
            ).encode()
        )
        # Only the first outlet has the story at the first poll; the others follow.
        feeds.append((outlet, serve(bodies[0] if i == 0 else rss([]))))
    config = _config(
        tmp_path,
        feeds,
        destinations=(
            f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
            f"    api_base_url: {telegram.base_url}\n"
        ),
    )
    env = _env(TELEGRAM_BOT_TOKEN=telegram.token)
    first = cli("once", "--config", str(config), env=env)
    assert first.returncode == 0, first.stderr
    assert len(telegram.sent) == 1 and "alerts=1" in first.stdout

    for (_outlet, url), body in zip(feeds[1:], bodies[1:], strict=True):
        feed_server.routes[url.split(str(feed_server.port))[1]].body = body
    second = cli("once", "--config", str(config), env=env)
    assert second.returncode == 0, second.stderr
    assert "alerts=0" in second.stdout and len(telegram.sent) == 1, "no second message"
    assert len(telegram.edits) == 1, "the four updates of one cycle merge into one edit"
    final = telegram.messages[(CHANNEL_ID, telegram.sent[0]["message_id"])]
    also = final.split("also reported by ", 1)[1].split("\n")[0]
    assert sorted(also.split(", ")) == sorted(o for o, _ in OUTLETS[1:])
    assert "MAJOR STORY · 5 sources" in final, "5 sources within the hour make it major"
    # The safety net: a joining outlet's headline that says more than the title is shown, so
    # a join hides nothing; CNBC's and The Verge's say nothing the title does not ("sources
    # say"; "lets … in after import approval" is "approves imports").
    for outlet, title in OUTLETS[1:]:
        assert (f"• {outlet}: {title}" in final) is (outlet not in ("CNBC", "The Verge")), outlet
    assert "story_joined" in second.stderr and "similarity" in second.stderr


@pytest.mark.slow
def test_different_events_with_the_same_entities_stay_apart(tmp_path, serve, telegram):
    url_a = serve(
        rss(
            [
                {
                    "title": "US bans Nvidia H20 exports to China",
                    "guid": "a",
                    "link": "https://a.example/ban",
                    "date": ago(minutes=20),
                }
            ]
        )
    )
    url_b = serve(
        rss(
            [
                {
                    "title": "US allows Nvidia H20 exports to China",
                    "guid": "b",
                    "link": "https://b.example/allow",
                    "date": ago(minutes=10),
                }
            ]
        )
    )
    config = _config(
        tmp_path,
        [("A", url_a), ("B", url_b)],
        destinations=(
            f'destinations:\n  telegram:\n    chat_id: "{CHANNEL}"\n'
            f"    api_base_url: {telegram.base_url}\n"
        ),
    )
    result = cli("once", "--config", str(config), env=_env(TELEGRAM_BOT_TOKEN=telegram.token))
    assert result.returncode == 0, result.stderr
    assert len(telegram.sent) == 2 and telegram.edits == []
    assert result.stderr.count("story_new ") == 2, "two notifications: neither is a follow-up"
    assert "story_followup" not in result.stderr


def test_republished_and_edited_items_alert_nothing_new(tmp_path, serve, feed_server):
    items = [
        {
            "title": "Huawei hit by new US export controls on Ascend chips",
            "guid": "orig",
            "link": "https://n.example/huawei?utm_source=rss",
            "date": ago(minutes=30),
        }
    ]
    url = serve(rss(items))
    config = _config(tmp_path, [("Wire", url)], destinations="")
    first = cli("once", "--config", str(config))
    assert "alerts=1" in first.stdout
    # New guid, same article behind a different tracking URL; and a lightly edited title.
    items += [
        {
            "title": "Huawei hit by new US export controls on Ascend chips",
            "guid": "republished",
            "link": "https://www.n.example/huawei/?utm_campaign=x#top",
            "date": ago(minutes=5),
        },
        {
            "title": "UPDATE: Huawei hit by new U.S. export controls on Ascend chips",
            "guid": "edit",
            "link": "https://n.example/huawei-updated",
            "date": ago(minutes=4),
        },
        {
            "title": "Huawei hit by new US export contrls on Ascend chips",
            "guid": "typo",
            "link": "https://n.example/huawei-typo",
            "date": ago(minutes=3),
        },
    ]
    feed_server.routes[url.split(str(feed_server.port))[1]].body = rss(items).encode()
    second = cli("once", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert "alerts=0" in second.stdout and "🔔" not in second.stdout
    assert second.stderr.count("item_edited") == 2


def test_slack_records_sources_but_posts_once(tmp_path, serve):
    with FakeSlack(interval=0) as slack:
        feeds = [
            (
                o,
                serve(
                    rss(
                        [
                            {
                                "title": t,
                                "guid": o,
                                "link": f"https://www.{o.lower()}.com/s",
                                "date": ago(minutes=10 - i),
                            }
                        ]
                    )
                ),
            )
            for i, (o, t) in enumerate(OUTLETS[:3])
        ]
        config = _config(
            tmp_path, feeds, destinations=f"destinations:\n  slack: {slack.destination}\n"
        )
        result = cli("once", "--config", str(config), env=_env(SLACK_WEBHOOK_URL=slack.url))
        assert result.returncode == 0, result.stderr
        assert len(slack.received) == 1
    store = open_store(tmp_path / "cw.db")
    [story] = store.recent_stories(since=datetime.now(timezone.utc) - timedelta(days=1))
    assert sorted(story.sources) == sorted(o for o, _ in OUTLETS[:3])
    store.close()


# --- deliverer: edits are merged, paced, and "not modified" is fine -------------------------


def _item(feed, title, i):
    return FeedItem(
        feed=feed,
        guid=f"{feed}-{i}",
        link=f"https://{feed}.example/{i}",
        title=title,
        summary="",
        published=None,
    )


def _poll(store, feed, title, *, story_id, new_story, clock, i=0):
    result = MATCHER.match(title)
    assert result.alert, title
    h = headline_features(title, result.matches)
    store.record_poll(
        feed,
        f"http://127.0.0.1:9/{feed}",
        [
            NewItem(
                item=_item(feed, title, i),
                canonical_link=f"https://{feed}.example/{i}",
                result=result,
                story_id=story_id,
                new_story=new_story,
                member=tuple(h.encode()),
                entities=tuple(sorted(h.entities)),
                story_actions=tuple(sorted(h.actions)),
                report=True,
                destinations=("telegram",),
            )
        ],
        now=clock(),
        edit_delay=timedelta(seconds=30),
    )


@pytest.mark.slow
async def test_quick_updates_merge_into_one_edit_and_not_modified_is_not_an_error(
    database, telegram
):
    store = open_store(database)
    clock = Clock()
    sink = TelegramSink(token=telegram.token, chat_id=CHANNEL, base_url=telegram.base_url)
    deliverer = Deliverer(store, [sink], now=clock, sleep=clock.sleep)
    _poll(store, "Reuters", OUTLETS[0][1], story_id=1, new_story=True, clock=clock)
    assert (await deliverer.deliver_due()).sent == 1
    for i, (outlet, title) in enumerate(OUTLETS[1:3], start=1):
        clock.now += timedelta(seconds=5)
        _poll(store, outlet, title, story_id=1, new_story=False, clock=clock, i=i)
    assert (await deliverer.deliver_due()).edits == 0, "waits for more updates first"
    clock.now += timedelta(seconds=31)
    report = await deliverer.deliver_due()
    assert report.edits == 1 and len(telegram.edits) == 1
    assert "Bloomberg, SCMP" in telegram.edits[0]["shown_text"]

    # Asked to edit again with nothing new: Telegram says "not modified", which is done.
    store.db.execute(
        "UPDATE deliveries SET edit_pending = 1, edit_after = ?",
        [(clock.now - timedelta(seconds=1)).isoformat(timespec="milliseconds")],
    )
    report = await deliverer.deliver_due()
    assert report.edits == 1 and not store.edits_due("telegram", now=clock.now + timedelta(hours=1))
    assert len(telegram.edits) == 1, "the fake refused the identical edit"
    await sink.aclose()
    store.close()


# --- clustering decisions ----------------------------------------------------------------------


def _placed(titles_times):
    items = [(t, at, f"src{i}", MATCHER.match(t).matches) for i, (t, at) in enumerate(titles_times)]
    return cluster_offline(items, window=timedelta(hours=48), threshold=CONFIG.stories.threshold)


def _cluster(titles_times):
    """The story of each headline."""
    return [p.story for p in _placed(titles_times)]


def _notifications(titles):
    """How many of the headlines, each from its own outlet a minute apart, notify."""
    return sum(
        p.notifies for p in _placed([(t, NOW + timedelta(minutes=i)) for i, t in enumerate(titles)])
    )


NOW = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
SAME = [
    ("outlets_rephrase", [OUTLETS[0][1], OUTLETS[1][1], OUTLETS[2][1]]),
    (
        "ban_reworded",
        ["US bans Nvidia H20 sales to China", "Washington blocks Nvidia H20 chip sales to China"],
    ),
    (
        "family_and_model",
        ["US curbs Huawei Ascend 910C chip exports", "Huawei Ascend chip exports curbed by US"],
    ),
    # A market reaction wrapped around the event: the event is what follows "as" / "on".
    (
        "market_reaction_wrapper",
        [
            "US considering new restrictions on AI chip exports to China",
            "Chinese stocks fall as US reportedly weighs curbs on AI chip exports",
        ],
    ),
    # A product planned is the product offered.
    (
        "product_planned_and_offered",
        [
            "Nvidia offers new chip for China to meet US export rules",
            "Nvidia Plans New Graphics-Processing Chip for China to Meet U.S. Export Rules",
        ],
    ),
    # A company in common; one side also names a chip, the other a customer.
    (
        "company_in_common_other_kinds",
        [
            "Applied Materials faces US criminal probe over shipments to SMIC",
            "Applied Materials Subpoenaed Over Chip Equipment Shipments to China",
        ],
    ),
]
APART = [
    ("ban_vs_allow", ["US bans H20 exports to China", "US allows H20 exports to China"]),
    (
        "same_company_other_event",
        ["Huawei added to entity list over chip sales", "Huawei imports of HBM halted"],
    ),
    (
        "shared_policy_term_only",
        ["SMIC faces new export controls on tools", "Nvidia lobbies against export controls"],
    ),
    (
        "other_company_same_chip",
        ["US halts Micron HBM exports to China", "US halts Samsung HBM exports to China"],
    ),
    (
        "other_model_same_company",
        ["US bans Nvidia H20 sales to China", "US bans Nvidia H200 sales to China"],
    ),
    # Distinct events of one busy day that share their subject.
    (
        "other_country",
        [
            "Japan to restrict exports of 23 types of chipmaking equipment",
            "Netherlands announces new export rules for ASML's DUV machines",
        ],
    ),
    (
        "other_numbers",
        [
            "US adds 140 Chinese chip firms to entity list",
            "US adds 36 Chinese chip firms to entity list",
        ],
    ),
    (
        "rescind_vs_tighten",
        [
            "Commerce tightens export controls on Nvidia H20 chips",
            "Trump administration rescinds Nvidia H20 export curbs",
        ],
    ),
    (
        "other_agency",
        [
            "Justice Department charges Nvidia chip smugglers in Singapore case",
            "Commerce Department charges Nvidia chip smugglers in Singapore case",
        ],
    ),
    (
        "other_actor",
        [
            "Dutch government takes control of Chinese-owned chipmaker Nexperia",
            "China bans exports of Nexperia chips after Dutch takeover",
        ],
    ),
    (
        "other_kind_of_action",
        [
            "Prosecutors charge smuggling ring with exporting Nvidia GPUs to China",
            "Nvidia's China-specific B30A chip awaits Washington's export approval",
        ],
    ),
    (
        "weighs_vs_imposes",
        [
            "US weighs new curbs on Nvidia AI chip sales to China",
            "US imposes new curbs on Nvidia AI chip sales to China",
        ],
    ),
    (
        "specific_headline_not_hidden_in_vaguer_story",
        [
            "US blocks sales of some AI chips to China",
            "US bans sales of Nvidia H20 AI chips to China",
        ],
    ),
    (
        "other_company_same_customer",
        [
            "Applied Materials faces US probe over shipments to SMIC",
            "Lam Research faces US probe over shipments to SMIC",
        ],
    ),
    # The reaction is left out, not the event in it.
    (
        "opposite_actions_in_market_wrappers",
        [
            "Nvidia shares fall as US bans H20 sales to China",
            "Nvidia shares jump as US allows H20 sales to China",
        ],
    ),
    (
        "possible_curbs_vs_curbs",
        [
            "Nvidia falls on possible US curbs on H20 sales to China",
            "US curbs Nvidia H20 sales to China",
        ],
    ),
]


@pytest.mark.parametrize("titles", [c[1] for c in SAME], ids=[c[0] for c in SAME])
def test_same_event_is_one_story(titles):
    assert len(set(_cluster([(t, NOW + timedelta(minutes=i)) for i, t in enumerate(titles)]))) == 1


@pytest.mark.parametrize("titles", [c[1] for c in APART], ids=[c[0] for c in APART])
def test_different_events_are_different_stories(titles):
    assert len(
        set(_cluster([(t, NOW + timedelta(minutes=i)) for i, t in enumerate(titles)]))
    ) == len(titles)


# --- follow-ups: threaded quietly under a story -------------------------------------------------

# Reports of one event worded too differently to join: the same company and kind of action.
CADENCE = [
    "Cadence to pay $140 million and plead guilty over exports to Chinese military university",
    "Cadence Pleads Guilty to Illegally Exporting Chip Design Tools to China",
    "Cadence admits guilt over illegally exporting chip design tools to China",
]


def test_a_report_sharing_the_subject_and_the_kind_of_action_is_a_quiet_follow_up():
    story, follow = _placed([(t, NOW + timedelta(minutes=i)) for i, t in enumerate(CADENCE[:2])])
    assert story.outcome == NEW and follow.outcome == FOLLOW
    assert follow.story != story.story, "a follow-up is a story of its own"
    assert follow.thread == story.story, "posted in the first story's thread"
    assert _notifications(CADENCE[:2]) == 1


def test_a_later_report_of_the_follow_ups_event_joins_the_follow_up():
    story, follow, later = _placed([(t, NOW + timedelta(minutes=i)) for i, t in enumerate(CADENCE)])
    assert later.outcome == JOIN and later.story == follow.story
    assert later.thread == story.story, "in the same thread, still flat"


@pytest.mark.parametrize("titles", [c[1] for c in APART], ids=[c[0] for c in APART])
def test_no_follow_up_across_a_veto(titles):
    """Other directions, countries, agencies, actors, numbers, companies and models, a plan
    and the action: each is news, and notifies."""
    assert _notifications(titles) == len(titles)


@pytest.mark.parametrize(
    "titles",
    [
        # The item names a company the story does not: TSMC acting on the US rule.
        [
            "U.S. adds Huawei to trade blacklist, restricting its access to American technology",
            "TSMC halts new orders from Huawei after US export rule",
        ],
        [
            "US bans Nvidia H20 sales to China",
            "TSMC halts production of Nvidia H20 chips for China",
        ],
        # The company without the model is not a report of the model's event.
        [
            "US tells Nvidia its H20 chip now needs a licence for sale to China",
            "Commerce revokes some Nvidia licences for sales to Chinese cloud providers",
        ],
    ],
    ids=["another_company", "another_company_same_chip", "company_not_model"],
)
def test_a_subject_in_common_is_not_enough_to_follow_up(titles):
    assert _notifications(titles) == 2


def test_the_five_outlet_h200_story_with_its_nod_notifies_once():
    """ "China gives nod to Nvidia's H200 imports, sources say" after "China approves first
    imports of Nvidia H200 AI chips" was a second notification (similarity 0.34): "gives
    nod" said no kind of action."""
    titles = [title for _, title in OUTLETS] + [
        "China gives nod to Nvidia's H200 imports, sources say"
    ]
    assert _notifications(titles) == 1


def test_bans_and_allows_stay_two_notifications():
    assert _notifications(["US bans H20 exports", "US allows H20 exports"]) == 2


def test_a_kind_of_action_said_only_as_context_is_no_follow_up():
    titles = [
        "Nvidia tweaks flagship H100 chip for export to China as H800",
        "Nvidia CEO Jensen Huang visits Beijing days after Nvidia launches H800",
    ]
    assert _notifications(titles) == 2


def test_alike_headlines_naming_who_acted_on_one_side_only_are_a_follow_up_not_a_join():
    """Alike enough to join, but only one of them names who acted: who did is not certain,
    and a wrong join would hide news."""
    titles = [
        "US Orders TSMC, Other Foundries to Tighten China Customer Checks",
        "TSMC to halt shipments of advanced AI chips to Chinese customers after US order",
    ]
    story, item = _placed([(t, NOW + timedelta(minutes=i)) for i, t in enumerate(titles)])
    assert item.outcome == FOLLOW and item.thread == story.story


# --- a join needs today's evidence: weaker evidence only threads ---------------------------------


def _decisions(titles):
    """Each headline's decision, each from its own outlet a minute apart."""
    index = StoryIndex(
        window=timedelta(hours=48),
        threshold=CONFIG.stories.threshold,
        categories=categories_of(CONFIG.watchlists),
    )
    return [
        index.assign(
            _features(t), at=NOW + timedelta(minutes=i), source=f"s{i}", title=t, new_id=i + 1
        )[0]
        for i, t in enumerate(titles)
    ]


def test_a_kind_of_action_said_only_as_an_idiom_makes_a_follow_up_never_a_join():
    """ "Warns … against" reads as a restriction, an outlet's idiom: alike enough to join, it
    follows the story up instead; the same report in the established words joins."""
    ban = "US bans Nvidia H20 sales to China"
    first, plain, idiom = _placed(
        [
            (ban, NOW),
            ("Washington blocks Nvidia H20 chip sales to China", NOW + timedelta(minutes=1)),
            ("Washington warns firms against Nvidia H20 chips", NOW + timedelta(minutes=2)),
        ]
    )
    assert plain.outcome == JOIN and plain.story == first.story
    assert idiom.outcome == FOLLOW and idiom.thread == first.story
    _, decision = _decisions([ban, "Washington warns firms against Nvidia H20 chips"])
    assert "its kind of action is said as an idiom" in decision.explain()


def test_two_idioms_join_only_on_distinctive_words_in_common():
    """Both say their kind of action as idioms ("avoid", "shun"): that agreement is no
    evidence, so they join only when their own words make them alike enough."""
    avoid = "Beijing tells tech firms to avoid Nvidia H20 chips"
    assert [d.outcome for d in _decisions([avoid, "China urges firms to shun Nvidia H20"])] == [
        NEW,
        FOLLOW,
    ]
    same_words = [
        "China tells state firms to avoid Nvidia H20 over security concerns",
        "China tells state firms to shun Nvidia H20 over security concerns",
    ]
    assert [d.outcome for d in _decisions(same_words)] == [NEW, JOIN]


def test_a_stored_story_keeps_its_idiom_reading(tmp_path):
    """A story loaded at startup still knows its headline said its kind as an idiom."""
    store = open_store(tmp_path / "cw.db")
    title = "Washington warns firms against Nvidia H20 chips"
    f = _features(title)
    assert f.soft
    store.db["stories"].insert(
        {
            "id": 1,
            "title": title,
            "actions": json.dumps(sorted(f.actions)),
            "first_seen": NOW.isoformat(timespec="milliseconds"),
            "last_seen": NOW.isoformat(timespec="milliseconds"),
            "words": json.dumps([f.encode()]),
            "entities": json.dumps([sorted(f.entities)]),
            "sources": json.dumps(["FT"]),
        }
    )
    clusterer = Clusterer(store, CONFIG.stories, now=NOW, watchlists=CONFIG.watchlists)
    loaded = clusterer.index.stories[1].members[0]
    assert loaded.soft and loaded.primary == "restrict" and loaded.tokens == f.tokens
    item = _features("US bans Nvidia H20 sales to China")
    decision = clusterer.index.decide(item, NOW + timedelta(minutes=5), source="Reuters")
    assert decision.outcome == FOLLOW, decision.explain()
    store.close()


@pytest.mark.parametrize(
    "titles",
    [
        # A vague report of the same event: alike enough to join, so a follow-up.
        [
            "US orders Nvidia and AMD to stop selling AI chips to China",
            "US blocks sales of some AI chips to China as tech crackdown intensifies",
        ],
        # Another event sharing a word: muted at worst, never hidden.
        [
            "US administration blocks Nvidia's H20 chip exports to China",
            "US administration blocks AI chip exports to most countries",
        ],
    ],
    ids=["same_event", "other_event"],
)
def test_a_vague_headline_never_joins_a_specific_story(titles):
    """A headline naming no specific chip or company can share with a specific story only
    words and the kind of action: it follows the story up when alike enough, never joins."""
    story, item = _decisions(titles)
    assert story.outcome == NEW and item.outcome == FOLLOW, item.explain()
    assert "it names no chip or company" in item.explain()


@pytest.mark.parametrize(
    ("title", "kind", "idiom"),
    [
        ("Chinese customs say Nvidia H200 chips are not permitted entry", "restrict", True),
        ("White House will not allow Nvidia to sell B30A chip to China", "restrict", True),
        (
            "H20 no longer exempt: Nvidia says every China shipment needs a licence",
            "restrict",
            True,
        ),
        ("US has not yet approved Nvidia H200 sales", "restrict", True),
        ("Washington won't ban Nvidia H20 sales, officials say", "", False),
        ("US bans Nvidia H20 sales to China", "restrict", False),
    ],
)
def test_a_negated_approval_is_a_restriction_and_another_negated_kind_none(title, kind, idiom):
    """Read as an idiom: weaker evidence, it can make a follow-up, not a join."""
    h = _features(title)
    assert (h.primary, h.soft) == (kind, idiom)


def test_an_approval_after_a_negated_one_is_news():
    """ "Not permitted entry" is no approval: China's later approval is the opposite action, a
    notification of its own, not a follow-up in the refusal's thread."""
    refused = "Chinese customs say Nvidia H200 chips are not permitted entry"
    assert _notifications([refused, "China allows Nvidia H200 imports"]) == 2
    border = [refused, "China blocks Nvidia H200 imports at the border"]
    assert [d.outcome for d in _decisions(border)] == [NEW, FOLLOW], "a restriction, an idiom"


@pytest.mark.parametrize(
    ("title", "kind"),
    [
        ("Market regulator probes Nvidia over suspected breach of anti-monopoly law", "probe"),
        ("China investigates Nvidia for possible breach of Mellanox deal conditions", "probe"),
        ("US probes Applied Materials over export violations", "probe"),
        ("Prosecutors charge pair over alleged export violations", "legal"),
        ("Regulator finds Nvidia breached antitrust law", "finding"),
        ("Probe finds Nvidia violated antitrust law", "finding"),
    ],
)
def test_a_suspected_finding_is_no_finding(title, kind):
    """A finding suspected ("suspected", "alleged", after a hedge) or what a probe looks into
    ("probes … over violations") is not what the headline reports."""
    assert _features(title).primary == kind


def test_a_finding_after_the_probe_is_news():
    probe = "Market regulator probes Nvidia over suspected breach of anti-monopoly law"
    finding = "Nvidia broke anti-monopoly rules over Mellanox deal, Chinese regulator finds"
    assert [d.outcome for d in _decisions([probe, finding])] == [NEW, NEW]


def test_an_item_as_alike_to_two_stories_joins_the_first_reported():
    """Two stories of other numbers (two events), and a report naming none, as alike to each:
    it joins the first reported, whatever order blocking found them in (a set of ids 2 and 9
    lists 9 first)."""
    index = StoryIndex(
        window=timedelta(hours=48),
        threshold=CONFIG.stories.threshold,
        categories=categories_of(CONFIG.watchlists),
    )
    for n, (sid, title) in enumerate(
        [
            (2, "US bans Nvidia H20 sales to 12 firms"),
            (9, "US bans Nvidia H20 sales to 15 firms"),
            (10, "US bans Nvidia H20 sales to Chinese firms"),
        ]
    ):
        decision, story = index.assign(
            _features(title), at=NOW + timedelta(minutes=n), source=f"s{n}", title=title, new_id=sid
        )
    assert decision.outcome == JOIN and story.id == 2, decision.explain()


def test_a_follow_up_explains_what_it_shares_and_why_it_is_no_join():
    index = StoryIndex(
        window=timedelta(hours=48),
        threshold=CONFIG.stories.threshold,
        categories=categories_of(CONFIG.watchlists),
    )
    index.assign(_features(CADENCE[0]), at=NOW, source="Reuters", title=CADENCE[0], new_id=1)
    decision, story = index.assign(
        _features(CADENCE[1]),
        at=NOW + timedelta(minutes=5),
        source="WSJ",
        title=CADENCE[1],
        new_id=2,
    )
    assert decision.outcome == FOLLOW and decision.thread == 1 and story.parent == 1
    explained = decision.explain()
    assert explained.startswith(f'follow-up of story 1 "{CADENCE[0]}"')
    assert "shares cadence, legal;" in explained
    assert f"not enough to join: similarity {decision.score:.2f}" in explained
    assert decision.score < CONFIG.stories.threshold


def test_one_outlet_never_makes_one_story_twice():
    first, second = (
        "US bans Nvidia H20 sales to China",
        "Washington blocks Nvidia H20 chip sales to China",
    )
    items = [
        (first, NOW, "Reuters", MATCHER.match(first).matches),
        (second, NOW + timedelta(minutes=5), "Reuters", MATCHER.match(second).matches),
        (second, NOW + timedelta(minutes=6), "Bloomberg", MATCHER.match(second).matches),
    ]
    ids = [
        p.story
        for p in cluster_offline(
            items, window=timedelta(hours=48), threshold=CONFIG.stories.threshold
        )
    ]
    assert ids[0] != ids[1], (
        "one outlet's second headline is another event (its edits are caught earlier)"
    )
    assert ids[2] == ids[0], "another outlet's same headline joins"


def test_an_outlets_retitled_copy_joins_only_when_it_says_exactly_the_same_soon_after():
    first = "Nvidia Says US Order Restricts Sales of AI Chips to China"
    copy = "Nvidia Says US Ordered It to Stop Sales of AI Chips to China"
    other = "Nvidia Says US Order Restricts Sales of AI Chips to China and Russia"

    def ids(second: str, later: timedelta) -> list[int]:
        items = [
            (first, NOW, "CNET", MATCHER.match(first).matches),
            (second, NOW + later, "CNET", MATCHER.match(second).matches),
        ]
        return [
            p.story
            for p in cluster_offline(
                items, window=timedelta(hours=48), threshold=CONFIG.stories.threshold
            )
        ]

    assert len(set(ids(copy, timedelta(0)))) == 1, "the same article re-titled at once"
    assert len(set(ids(copy, timedelta(hours=3)))) == 2, (
        "hours later, the outlet reports an event again"
    )
    assert len(set(ids(other, timedelta(0)))) == 2, "the second headline says more: another event"


def test_same_headline_months_apart_is_two_stories():
    title = "Nvidia to sell H200 in China after export licence"
    assert len(set(_cluster([(title, NOW), (title, NOW + timedelta(days=90))]))) == 2


def test_decision_explains_itself():
    index = StoryIndex(window=timedelta(hours=48), threshold=0.4)
    first = headline_features(OUTLETS[0][1], MATCHER.match(OUTLETS[0][1]).matches)
    story = Story(id=7, first_seen=NOW, last_seen=NOW, title=OUTLETS[0][1])
    story.absorb(first, source="Reuters", at=NOW)
    index.add(story)
    second = headline_features(OUTLETS[2][1], MATCHER.match(OUTLETS[2][1]).matches)
    decision = index.decide(second, NOW + timedelta(minutes=5))
    assert decision.story is story
    assert "joins story 7" in decision.explain() and "h200" in decision.explain()
    other = headline_features("US bans H200 imports", MATCHER.match("US bans H200 imports").matches)
    assert "new story" in index.decide(other, NOW).explain()


def test_token_weights_add_up_the_same_in_any_order():
    """A set's order changes with PYTHONHASHSEED: the weights must not add up differently, or a
    decision on the threshold could differ between two runs on the same items."""
    rarity = Rarity()
    for i in range(50):
        rarity.observe([f"w{j}" for j in range(i % 7 + 1)] + ["!restrict"])
    tokens = ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "!restrict", "unseen"]
    rng = random.Random(7)  # 3,000 of the 362,880 orders: a plain sum differs in most of them
    orders = [rng.sample(tokens, len(tokens)) for _ in range(3000)]
    assert len({rarity.total(order) for order in orders}) == 1


def _features(title):
    return headline_features(title, MATCHER.match(title).matches)


def _name(n):
    """A made-up word per number (letters only: normalisation keeps them whole)."""
    letters = ""
    while True:
        n, r = divmod(n, 20)
        letters += "bcdfghjklmnpqrstvwxz"[r] + "a"
        if not n:
            return letters.capitalize()


def test_a_busy_subject_still_finds_the_items_story_and_compares_few():
    index = StoryIndex(window=timedelta(hours=48), threshold=CONFIG.stories.threshold)
    first = "Nvidia H20 shipments to Penang probed over smuggling by Kovalenko Trading"
    index.assign(_features(first), at=NOW, source="Reuters", title=first, new_id=1)
    # Then a thousand other Nvidia H20 stories, each kept apart, all more recent than story 1.
    for n in range(2, 1002):
        title = f"Nvidia H20 {_name(n)} and {_name(n + 5000)} sign {_name(n + 9000)} accord"
        story = Story(
            id=n,
            first_seen=NOW + timedelta(seconds=n),
            last_seen=NOW + timedelta(seconds=n),
            title=title,
        )
        story.absorb(_features(title), source=f"outlet {n}", at=story.last_seen)
        index.add(story)
    item = _features("Kovalenko Trading smuggled Nvidia H20 chips through Penang, probe finds")
    assert len(index._candidates(item)) <= CANDIDATES
    decision = index.decide(item, NOW + timedelta(hours=3))
    assert decision.story is not None and decision.story.id == 1, decision.explain()


def test_of_stories_sharing_as_much_with_an_item_the_newest_are_compared():
    """An item sharing only an everyday subject ("AI chips") ties with every vague story of
    the window: the newest are compared, not the first ids."""
    index = StoryIndex(window=timedelta(hours=48), threshold=CONFIG.stories.threshold)
    for n in range(1, 2 * CANDIDATES + 1):
        title = f"{_name(n)} weighs {_name(n + 5000)} for AI chips"
        at = NOW + timedelta(minutes=n)
        story = Story(id=n, first_seen=at, last_seen=at, title=title)
        story.absorb(_features(title), source=f"outlet {n}", at=at)
        index.add(story)
    found = index._candidates(_features("Japan adds AI chips to its export control list"))
    assert found == set(range(CANDIDATES + 1, 2 * CANDIDATES + 1))


def test_stories_leave_the_index_when_the_window_passes_them():
    index = StoryIndex(window=timedelta(hours=48), threshold=CONFIG.stories.threshold)
    for n, (title, hours) in enumerate(
        [
            ("US bans Nvidia H20 sales to China", 0),
            ("Huawei Ascend 910C output doubles at SMIC", 1),
            ("Washington blocks Nvidia H20 chip sales to China", 30),
        ]
    ):
        index.assign(
            _features(title),
            at=NOW + timedelta(hours=hours),
            source=f"s{n}",
            title=title,
            new_id=n + 1,
        )
    assert sorted(index.stories) == [1, 2], "the third headline joins story 1"
    index.expire(NOW + timedelta(hours=60))
    # Story 1 was reported again at +30 h, so it stays; story 2 (+1 h) is gone.
    assert sorted(index.stories) == [1]
    decision = index.decide(
        _features("Huawei Ascend 910C output doubles at SMIC"), NOW + timedelta(hours=60)
    )
    assert decision.story is None and "no recent story" in decision.reason
    again = index.decide(
        _features("US blocks Nvidia H20 chip sales to China"), NOW + timedelta(hours=60)
    )
    assert again.story is not None and again.story.id == 1


def test_loaded_stories_leave_memory_by_last_report_not_by_id(tmp_path):
    store = open_store(tmp_path / "cw.db")
    for sid, title, first, last in [
        (1, "US bans Nvidia H20 sales to China", 40, 1),
        (2, "Huawei Ascend 910C output doubles at SMIC", 30, 30),
    ]:
        f = _features(title)
        store.db["stories"].insert(
            {
                "id": sid,
                "title": title,
                "actions": json.dumps(sorted(f.actions)),
                "first_seen": (NOW - timedelta(hours=first)).isoformat(timespec="milliseconds"),
                "last_seen": (NOW - timedelta(hours=last)).isoformat(timespec="milliseconds"),
                "words": json.dumps([sorted(f.words)]),
                "entities": json.dumps([sorted(f.entities)]),
                "sources": json.dumps(["Reuters"]),
            }
        )
    clusterer = Clusterer(store, CONFIG.stories, now=NOW, watchlists=CONFIG.watchlists)
    assert sorted(clusterer.index.stories) == [1, 2]
    clusterer.index.expire(NOW + timedelta(hours=20))  # story 2 was last reported 50 h before
    assert sorted(clusterer.index.stories) == [1]
    store.close()


def test_steady_coverage_does_not_keep_a_story_open_for_ever():
    variants = [
        "US bans Nvidia H20 sales to China",
        "Washington blocks Nvidia H20 chip sales to China",
    ]
    ids = _cluster([(variants[n % 2], NOW + timedelta(hours=20 * n)) for n in range(6)])
    # Each report is within 48 h of the one before; the sixth comes 100 h after the first.
    assert ids[:5] == [ids[0]] * 5 and ids[5] != ids[0]


def test_a_shared_subject_alone_is_no_story_and_says_so():
    index = StoryIndex(window=timedelta(hours=48), threshold=CONFIG.stories.threshold)
    index.assign(_features("US bans Nvidia H20 exports"), at=NOW, source="a", title="t", new_id=1)
    decision = index.decide(_features("Nvidia H20 benchmarked: fast, quiet, costly"), NOW)
    assert decision.story is None
    assert "share the chip or company but nothing else" in decision.reason


@pytest.mark.parametrize(
    "old,new,edited",
    [
        ("China approves H200 imports", "UPDATE: China approves H200 imports", True),
        ("China approves H200 imports", "China aproves H200 imports", True),
        ("China approves H200 imports (Updated)", "China approves H200 imports", True),
        ("US bans H20 exports", "US allows H20 exports", False),
        ("China approves H200 imports", "China approves B200 imports", False),
    ],
    ids=["update_prefix", "typo_fix", "updated_suffix", "opposite_action", "other_model"],
)
def test_title_edit_detection(old, new, edited):
    assert (edited_titles([title_key(new)], [title_key(old)]) == {0}) is edited


# --- retention ---------------------------------------------------------------------------------


def test_retention_keeps_the_database_bounded(tmp_path):
    store = open_store(tmp_path / "cw.db")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows_after_prune = []
    for day in range(60):
        now = start + timedelta(days=day)
        new = [
            NewItem(
                item=FeedItem(
                    feed="Wire",
                    guid=f"{day}-{i}",
                    link=f"https://n.example/{day}/{i}",
                    title=f"Headline {day} {i}",
                    summary="x" * 200,
                    published=now,
                ),
                canonical_link=f"https://n.example/{day}/{i}",
                result=None,
            )
            for i in range(200)
        ]
        store.record_poll("Wire", "http://127.0.0.1:9/w", new, now=now)
        store.prune(older_than=timedelta(days=30), now=now)
        rows_after_prune.append(store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    assert max(rows_after_prune) <= 31 * 200
    assert rows_after_prune[-1] == rows_after_prune[40], "steady state: the row count stops growing"
    size_day_40 = os.path.getsize(tmp_path / "cw.db")
    assert size_day_40 < 5_000_000
    store.close()


def test_one_cycle_places_items_in_publication_order_across_feeds(tmp_path, serve):
    """The feed listed (and polled) first has the later report; the story starts with the
    earlier one all the same, and the later one joins it."""
    later, earlier = OUTLETS[1], OUTLETS[0]
    feeds = [
        (
            later[0],
            serve(
                rss(
                    [
                        {
                            "title": later[1],
                            "guid": "l",
                            "date": ago(minutes=5),
                            "link": "https://www.bloomberg.com/l",
                        }
                    ]
                )
            ),
        ),
        (
            earlier[0],
            serve(
                rss(
                    [
                        {
                            "title": earlier[1],
                            "guid": "e",
                            "date": ago(minutes=30),
                            "link": "https://www.reuters.com/e",
                        }
                    ]
                )
            ),
        ),
    ]
    config = _config(tmp_path, feeds, destinations="")
    out = cli("once", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert "alerts=1" in out.stdout
    alert = out.stdout.split("🔔 ", 1)[1]
    assert alert.startswith(earlier[1]) and f"also reported by {later[0]}" in alert


def test_stories_stored_before_schema_5_keep_their_kind_of_action(tmp_path):
    """Schema 4 kept plain words per member and the first headline's actions beside them:
    a loaded old story about a ban still refuses an approval."""
    store = open_store(tmp_path / "cw.db")
    ban = "US bans Nvidia H20 sales to Kovalenko Trading"
    f = _features(ban)
    store.db["stories"].insert(
        {
            "id": 1,
            "title": ban,
            "actions": json.dumps(["restrict"]),
            "first_seen": NOW.isoformat(timespec="milliseconds"),
            "last_seen": NOW.isoformat(timespec="milliseconds"),
            "words": json.dumps([sorted(f.words)]),
            "entities": json.dumps([sorted(f.entities)]),
            "sources": json.dumps(["Reuters"]),
        }
    )
    clusterer = Clusterer(store, CONFIG.stories, now=NOW, watchlists=CONFIG.watchlists)
    same = clusterer.index.decide(_features(ban.replace("bans", "blocks")), NOW, source="AP")
    assert same.story is not None and same.story.id == 1, same.explain()
    other = clusterer.index.decide(_features(ban.replace("bans", "allows")), NOW, source="AP")
    assert other.story is None and "opposite action" in other.reason, other.explain()
    store.close()


def test_cluster_command_explains_each_placement(tmp_path):
    config = _config(tmp_path, [], destinations="")
    out = cli(
        "cluster",
        "--config",
        str(config),
        "US bans H20 exports",
        "US allows H20 exports",
        "Commerce bans Nvidia H20 exports to China",
        *CADENCE[:2],
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "1. US bans H20 exports" and "new story" in lines[1]
    assert lines[2] == "2. US allows H20 exports" and "new story" in lines[3]
    assert "opposite" in lines[3]
    assert (
        lines[4].startswith("3. Commerce bans")
        and 'joins story 1 "US bans H20 exports"' in lines[5]
    )
    assert lines[6].startswith("4. Cadence to pay") and "new story" in lines[7]
    assert lines[8].startswith("5. Cadence Pleads Guilty")
    assert f'follow-up of story 4 "{CADENCE[0]}" (shares cadence, legal;' in lines[9]
    assert "not enough to join: similarity" in lines[9]


def test_a_follow_up_is_recorded_threaded_and_logged_and_its_events_later_report_joins_it(
    tmp_path, serve
):
    """Through the bot: the first report notifies, the second is a follow-up (a story of its
    own, its alert threaded under the first story, with the clusterer's explanation), the
    third joins the follow-up's story; each decision is one JSON log event with its fields.
    Another instance on the same database learns the thread at startup and when catching up."""
    feeds = []
    for i, (outlet, title) in enumerate(zip(("Reuters", "WSJ", "Nikkei"), CADENCE, strict=True)):
        item = {
            "title": title,
            "link": f"https://{outlet.lower()}.example/cadence",
            "guid": f"{outlet}-1",
            "date": ago(minutes=30 - 10 * i),
        }
        feeds.append((outlet, serve(rss([item]))))
    config = _config(tmp_path, feeds, destinations="")
    database = tmp_path / "cw.db"
    store = open_store(database)
    before = Clusterer(store, CONFIG.stories, now=NOW, watchlists=CONFIG.watchlists)
    store.close()

    out = cli("--log-format", "json", "once", "--config", str(config), env=_env())
    assert out.returncode == 0, out.stderr

    store = open_store(database)
    rows = {
        r["title"]: r
        for r in store.db.query(
            "SELECT i.title, i.story_id, i.alert_id, a.thread_story, a.decision, s.parent "
            "FROM items i LEFT JOIN alerts a ON a.id = i.alert_id "
            "LEFT JOIN stories s ON s.id = i.story_id"
        )
    }
    first, follow, later = (rows[t] for t in CADENCE)
    assert first["alert_id"] and first["thread_story"] is None and first["parent"] is None
    assert follow["alert_id"] and follow["story_id"] != first["story_id"]
    assert follow["thread_story"] == follow["parent"] == first["story_id"]
    assert follow["decision"].startswith(f"follow-up of story {first['story_id']}")
    assert later["alert_id"] is None and later["story_id"] == follow["story_id"]

    logged = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    decisions = {r["event"]: r for r in logged if r.get("event", "").startswith("story_")}
    assert {"story_new", "story_followup", "story_joined"} <= decisions.keys()
    for name, row in (("story_new", first), ("story_followup", follow), ("story_joined", later)):
        logged_event = decisions[name]
        assert {"story", "title", "feed", "outlet", "decision"} <= logged_event.keys()
        assert int(logged_event["story"]) == row["story_id"]
    assert decisions["story_followup"]["decision"] == follow["decision"]
    assert decisions["story_followup"]["outlet"] == "wsj.example"  # the link's host

    loaded = Clusterer(store, CONFIG.stories, now=datetime.now(timezone.utc), watchlists=None)
    assert loaded.index.stories[follow["story_id"]].parent == first["story_id"]
    assert before.catch_up(store) == 3
    assert before.index.stories[follow["story_id"]].parent == first["story_id"]
    store.close()
