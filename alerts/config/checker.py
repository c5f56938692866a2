"""The checks every section of ``config.yaml`` is read through: each names the file, the line and
the dotted key of what it refuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConfigError

T = TypeVar("T")


class Checker:
    """Carries the file name so every helper can raise a precise ConfigError."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, message: str, key: str | None, line: int | None) -> ConfigError:
        return ConfigError(message, file=self.file, line=line, key=key)

    @staticmethod
    def key_line(node: Any, key: Any, fallback: int | None) -> int | None:
        try:
            return node.lc.key(key)[0] + 1
        except (AttributeError, KeyError, TypeError):
            return fallback

    @staticmethod
    def item_line(node: Any, index: int, fallback: int | None) -> int | None:
        try:
            return node.lc.item(index)[0] + 1
        except (AttributeError, KeyError, TypeError, IndexError):
            return fallback

    def mapping(self, node: Any, key: str, line: int | None, allowed: set[str]) -> dict[Any, Any]:
        if not isinstance(node, dict):
            raise self.fail(f"must be a mapping, got {type_name(node)}", key, line)
        for k in node:
            if k not in allowed:
                sub = f"{key}.{k}" if key else str(k)
                hint = f" (known keys: {', '.join(sorted(allowed))})"
                raise self.fail(f"unknown key{hint}", sub, self.key_line(node, k, line))
        return node

    def seq(self, node: Any, key: str, line: int | None) -> list[Any]:
        if not isinstance(node, list):
            raise self.fail(f"must be a list, got {type_name(node)}", key, line)
        return node

    def string(self, node: Any, key: str, line: int | None, *, empty_ok: bool = False) -> str:
        if isinstance(node, bool) or not isinstance(node, (str, int, float)):
            raise self.fail(f"must be a string, got {type_name(node)}", key, line)
        value = str(node).strip()
        if not value and not empty_ok:
            raise self.fail("must not be empty", key, line)
        return value

    def number(
        self, node: Any, key: str, line: int | None, *, lo: float, hi: float, integer: bool = False
    ) -> float:
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            raise self.fail(f"must be a number, got {type_name(node)}", key, line)
        if integer and not isinstance(node, int):
            raise self.fail(f"must be a whole number, got {node!r}", key, line)
        if not lo <= node <= hi:
            raise self.fail(f"must be between {lo:g} and {hi:g}, got {node!r}", key, line)
        return node

    def value(
        self,
        parse: Callable[[str], T],
        node: Any,
        key: str,
        line: int | None,
        *,
        empty_ok: bool = False,
    ) -> T:
        """``node`` as a string, read by ``parse`` (one of ``values``): its ValueError becomes
        this key's error."""
        text = self.string(node, key, line, empty_ok=empty_ok)
        try:
            return parse(text)
        except ValueError as exc:
            raise self.fail(str(exc), key, line) from None

    def boolean(self, node: Any, key: str, line: int | None) -> bool:
        if not isinstance(node, bool):
            raise self.fail(f"must be true or false, got {type_name(node)}", key, line)
        return node

    def strings(
        self, node: Any, key: str, line: int | None, parse: Callable[[str], str] | None = None
    ) -> tuple[str, ...]:
        """A string or a list of strings, each read by ``parse`` when given."""
        if isinstance(node, str):
            node = [node]
        seq = self.seq(node, key, line)
        return tuple(
            self.value(parse, v, f"{key}[{i}]", self.item_line(seq, i, line))
            if parse is not None
            else self.string(v, f"{key}[{i}]", self.item_line(seq, i, line))
            for i, v in enumerate(seq)
        )


_TYPE_NAMES = (
    (bool, "a boolean"),
    (dict, "a mapping"),
    (list, "a list"),
    (str, "a string"),
    (int, "a number"),
    (float, "a number"),
)


def type_name(node: Any) -> str:
    if node is None:
        return "nothing (null)"
    return next((name for t, name in _TYPE_NAMES if isinstance(node, t)), type(node).__name__)
