"""Sections of ``config.yaml`` read apart from ``load``: those that open a port in ``run``,
``ops`` (/healthz, /metrics) and ``websub`` (the callback WebSub hubs call; they may share
one address), and the number check every section uses."""

from __future__ import annotations

from typing import Any

from . import values
from .checker import Checker
from .model import OpsConfig, WebSubConfig, keys, limits


def ops_section(c: Checker, node: Any, line: int | None) -> OpsConfig:
    if node is None:
        return OpsConfig()
    m = c.mapping(node, "ops", line, keys(OpsConfig))
    given: dict[str, Any] = _listen(c, m, "ops", line, empty_ok=True)
    if "paused_after_minutes" in m:
        given["paused_after_minutes"] = number_field(
            c, OpsConfig, m, "paused_after_minutes", "ops", line
        )
    return OpsConfig(**given)


def websub_section(c: Checker, node: Any, line: int | None) -> WebSubConfig | None:
    """Absent: WebSub is off."""
    if node is None:
        return None
    m = c.mapping(node, "websub", line, keys(WebSubConfig))
    if "callback_url" not in m:
        raise c.fail("missing required key 'callback_url' (the URL the hub calls)", "websub", line)
    at = c.key_line(m, "callback_url", line)
    given = {
        "callback_url": c.value(values.callback_url, m["callback_url"], "websub.callback_url", at),
        **_listen(c, m, "websub", line, empty_ok=False),
    }
    if "lease_seconds" in m:
        given["lease_seconds"] = number_field(c, WebSubConfig, m, "lease_seconds", "websub", line)
    return WebSubConfig(**given)


def _listen(c: Checker, m: dict, section: str, line: int | None, *, empty_ok: bool) -> dict:
    """``{"listen": …}`` when the section gives one (null: off, where off is allowed)."""
    if "listen" not in m:
        return {}
    at, raw = c.key_line(m, "listen", line), m["listen"]
    if raw is None and empty_ok:
        return {"listen": ""}
    return {"listen": c.value(values.listen, raw, f"{section}.listen", at, empty_ok=empty_ok)}


def number_field(c: Checker, cls: type, m: dict, name: str, section: str, line: int | None) -> Any:
    """``m[name]``, for the number field ``name`` of ``cls`` in ``section``: within the limit
    declared beside the field, and whole when the field is an ``int``."""
    limit, kind = limits(cls)[name]
    key, kln = f"{section}.{name}", c.key_line(m, name, line)
    return kind(c.number(m[name], key, kln, lo=limit.lo, hi=limit.hi, integer=kind is int))
