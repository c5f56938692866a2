"""Stories: one alert per event, however many outlets carry it; never one alert for two
events.

A wrong join hides news (the story's message is edited, and edits do not notify), a missed join
costs one extra message, so joining needs agreement on the *event*, not on the subject:

- **Event overlap.** Each headline is reduced to the tokens that say what happened: its
  distinctive words, the kind of action (``!restrict``, ``!allow``, ``!legal``…, so "bans" and
  "blocks" agree), the policy terms it matched (``§entity list``), third countries and agencies
  (``@japan``, ``@justice``) and numbers (``#23``). Watchlist subjects (Nvidia, H20), the US and
  China and everyday words are left out: they say who, not what; so are a section label
  ("Tech war: …") and a market reaction wrapped around the event ("Nvidia stock tumbles as US
  bans…": the event is what follows "as"). Tokens are weighted by how rare they are among the
  stored items (IDF, learned as items arrive), and the measure is symmetric (weighted Dice over
  both headlines).
- **Vetoes.** No join between items of the same outlet (it does not report one event twice; its
  updates are edits, caught earlier, or the same article re-titled at once: the very event
  tokens and subjects of a story headline within an hour); between opposite directions (a ban
  and an approval) or different kinds of action, or a plan and the action ("weighs curbs" /
  "imposes curbs"; a product planned is the product offered); between different third
  countries, agencies, leading actors ("China bans…" against "Dutch government…") or numbers
  ("23 types" against "140 entities"); between other companies or other models of the same
  company. Agreeing on the kind of action alone joins only headlines about the same subjects
  (kind by kind, one side naming no other), or a vaguer item (everyday subjects only) led by
  the same actor; never a specific item into a vaguer story.
- **Subject.** Candidates share a chip or company with the item (inverted indexes over the
  stories in the window, read from their most recently active end, so a new item never scans
  all history).
- **Lifetime.** A story takes new items while reported within the window, and for at most two
  windows after its first report.

Where each part lives: ``vocab.yaml`` the word lists (read by ``vocab``), ``features`` what a
headline says, ``index`` the stories of the window and blocking, ``decide`` the decision
policy, ``place`` the ``Clusterer`` the pipeline calls (``Clusterer.place``).
"""

from .decide import FOLLOW, FOLLOW_UP, JOIN, NEW, Decision, FollowUpRules
from .features import Headline, headline_features
from .index import CANDIDATES, Rarity, Story, StoryIndex
from .place import (
    IDF_ITEMS,
    Clusterer,
    Offline,
    Placement,
    categories_of,
    cluster_offline,
    outlet_of,
    says_more,
)

__all__ = [
    "CANDIDATES",
    "IDF_ITEMS",
    "JOIN",
    "NEW",
    "Offline",
    "Clusterer",
    "Decision",
    "FollowUpRules",
    "FOLLOW",
    "FOLLOW_UP",
    "Headline",
    "Placement",
    "Rarity",
    "Story",
    "StoryIndex",
    "categories_of",
    "cluster_offline",
    "headline_features",
    "outlet_of",
    "says_more",
]
