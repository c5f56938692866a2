"""``config.yaml``: what a valid config is (``model``), reading and checking one with
file:line: key errors (``load``), and the ``/watch`` edits (``edit``)."""

from .load import load_config, parse_config
from .model import (
    DEFAULT_CATEGORIES,
    DEFAULT_RULE,
    OPS_LISTEN_DEFAULT,
    TELEGRAM_API_BASE,
    Config,
    Destinations,
    FeedConfig,
    OpsConfig,
    PollConfig,
    Rule,
    SlackConfig,
    StoriesConfig,
    TelegramConfig,
    Term,
    split_listen,
)

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_RULE",
    "OPS_LISTEN_DEFAULT",
    "TELEGRAM_API_BASE",
    "Config",
    "Destinations",
    "FeedConfig",
    "OpsConfig",
    "PollConfig",
    "Rule",
    "SlackConfig",
    "StoriesConfig",
    "TelegramConfig",
    "Term",
    "load_config",
    "parse_config",
    "split_listen",
]
