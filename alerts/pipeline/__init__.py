"""One poll cycle, in three steps per feed: ``gather`` (fetch, parse, read what the store
knows), ``decide`` (pure: a ``FeedPlan`` of new items, alerts and the next poll), then, after
story placement across feeds (``place``), ``apply`` (the only writes; a dry run skips them).
``cycle`` runs them. No clocks, no sleeping: the caller passes ``now`` in the ``PollContext``."""

from .apply import apply
from .cycle import poll_feed, push_feed, run_cycle
from .decide import decide, discover, subscribers
from .gather import EDIT_LOOKBACK, gather
from .model import CycleReport, FeedOutcome, FeedPlan, Fetched, Known, PollContext
from .place import strip_source_suffix
from .schedule import backoff_seconds, due_by, next_interval, not_due

__all__ = [
    "EDIT_LOOKBACK",
    "CycleReport",
    "FeedOutcome",
    "FeedPlan",
    "Fetched",
    "Known",
    "PollContext",
    "apply",
    "backoff_seconds",
    "decide",
    "discover",
    "due_by",
    "gather",
    "next_interval",
    "not_due",
    "poll_feed",
    "push_feed",
    "run_cycle",
    "strip_source_suffix",
    "subscribers",
]
