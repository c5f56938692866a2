"""Bot commands: ``handlers`` (plain functions: a request in, a reply out) and ``telegram``
(the python-telegram-bot adapter, the only part that knows Telegram)."""
