"""``config.yaml``: what a valid config is (``model``), the forms of single values such as a
database URL or a duration (``values``), the YAML document with each key's line (``document``),
reading and checking a config with file:line: key errors (``load``; its ``destinations`` in
``routes``), and the ``/watch`` edits (``edit``)."""

from .environment import check_environment, secret, unused_secrets
from .load import load_config, parse_config
from .model import (
    DEFAULT_CATEGORIES,
    DEFAULT_RULE,
    LEARNED_RULE,
    OPS_LISTEN_DEFAULT,
    SLACK_API_BASE,
    TELEGRAM_API_BASE,
    Config,
    ConsoleConfig,
    Destination,
    Destinations,
    DigestConfig,
    FeedConfig,
    LearnedConfig,
    OpsConfig,
    PollConfig,
    Rule,
    SlackConfig,
    StoriesConfig,
    TelegramConfig,
    Term,
    WebSubConfig,
)
from .values import POSTGRES_SCHEMES, is_postgres_url, parse_duration, split_listen

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_RULE",
    "LEARNED_RULE",
    "OPS_LISTEN_DEFAULT",
    "POSTGRES_SCHEMES",
    "SLACK_API_BASE",
    "TELEGRAM_API_BASE",
    "Config",
    "ConsoleConfig",
    "Destination",
    "Destinations",
    "DigestConfig",
    "FeedConfig",
    "LearnedConfig",
    "OpsConfig",
    "PollConfig",
    "Rule",
    "SlackConfig",
    "StoriesConfig",
    "TelegramConfig",
    "Term",
    "WebSubConfig",
    "check_environment",
    "is_postgres_url",
    "load_config",
    "parse_config",
    "parse_duration",
    "secret",
    "split_listen",
    "unused_secrets",
]
