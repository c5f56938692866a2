"""Build the sinks a config asks for."""

from __future__ import annotations

from ..config import Config
from .console import ConsoleSink
from . import Sink


def build_sinks(config: Config) -> list[Sink]:
    """One sink per destination name in ``config.destinations.names()``."""
    sinks: list[Sink] = []
    for name in config.destinations.names():
        if name == "console":
            sinks.append(ConsoleSink())
        else:
            raise NotImplementedError(f"destination {name!r} is not available yet")
    return sinks
