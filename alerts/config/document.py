"""A YAML document (config.yaml, the story vocabulary) as plain mappings and lists that know
the line of each key, value and item, for errors that name them. Read with libyaml
(ruamel.yaml.clib) when it is installed: about a seventh of the time of ruamel's pure-Python
round-trip reader, with the same values and lines. A text libyaml refuses is read again by the
pure-Python reader, whose messages name the problem as the config errors always have."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class Lines:
    """Where a container's keys, values or items start, as ``(line, column)`` from 0: what
    ruamel's ``.lc`` gives, so that one Checker reads both kinds of document."""

    __slots__ = ("_keys", "_values", "_items")

    def __init__(self) -> None:
        self._keys: dict[Any, tuple[int, int]] = {}
        self._values: dict[Any, tuple[int, int]] = {}
        self._items: list[tuple[int, int]] = []

    def key(self, key: Any) -> tuple[int, int]:
        return self._keys[key]

    def value(self, key: Any) -> tuple[int, int]:
        """Where the value's text starts: for a block scalar (``|`` or ``>``), the line after
        its indicator, where ruamel's round-trip reader gives the indicator's."""
        return self._values[key]

    def item(self, index: int) -> tuple[int, int]:
        return self._items[index]


class LinedMap(dict):
    """A mapping of the document, with ``lc.key(k)``."""

    __slots__ = ("lc",)
    lc: Lines


class LinedList(list):
    """A sequence of the document, with ``lc.item(i)``."""

    __slots__ = ("lc",)
    lc: Lines


def _at(node: Node) -> tuple[int, int]:
    return node.start_mark.line, node.start_mark.column


def _text_at(node: Node) -> tuple[int, int]:
    if isinstance(node, ScalarNode) and node.style in ("|", ">"):
        return node.start_mark.line + 1, 0
    return _at(node)


class _Constructor(SafeConstructor):
    """The safe constructor (YAML 1.2 values, merge keys, duplicate keys refused), building
    containers that keep their lines."""

    def construct_lined_map(self, node: MappingNode) -> Iterator[LinedMap]:
        data = LinedMap()
        data.lc = lines = Lines()
        yield data
        data.update(self.construct_mapping(node))  # merge keys flattened into node.value first
        for key_node, value_node in node.value:  # the last of a merged key wins
            key = self.construct_object(key_node)
            lines._keys[key], lines._values[key] = _at(key_node), _text_at(value_node)

    def construct_lined_list(self, node: SequenceNode) -> Iterator[LinedList]:
        data = LinedList()
        data.lc = lines = Lines()
        yield data
        data.extend(self.construct_sequence(node))
        lines._items = [_at(item) for item in node.value]


_Constructor.add_constructor("tag:yaml.org,2002:map", _Constructor.construct_lined_map)
_Constructor.add_constructor("tag:yaml.org,2002:seq", _Constructor.construct_lined_list)


def read_document(text: str) -> Any:
    """The document in ``text`` (None when it is empty); raises ruamel's ``YAMLError``."""
    fast = YAML(typ="safe")  # libyaml's parser when ruamel.yaml.clib is installed
    fast.Constructor = _Constructor
    try:
        return fast.load(text)
    except Exception:  # noqa: BLE001 - libyaml's own errors: the pure reader says it better
        return YAML(typ="rt", pure=True).load(text)
