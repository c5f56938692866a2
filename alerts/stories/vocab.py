"""The clustering vocabulary: ``vocab.yaml`` read once at import, checked, and turned into the
lookups ``features`` uses.

A word listed under two kinds is refused with both named: the lookups would otherwise keep one
of them silently ("seized" under both *legal* and *control* used to mean *control*)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from ..config.document import read_document
from ..errors import ChipwatchError

# Sections of words separated by spaces, and of kinds, each a list of words or of names.
WORD_LISTS = (
    "stopwords",
    "generic",
    "announcing",
    "hedges",
    "not_acting",
    "skip_lead",
    "market",
    "moves",
    "connectives",
    "context",
    "negations",
    "unproven",
    "probe_objects",
)
WORDS_BY_KIND = ("actions", "idioms", "synonyms")
NAMES_BY_KIND = ("countries", "agencies", "leading_agencies", "policy_tokens")
# Sections whose words share one namespace: a word may be under one kind of them only.
NAMESPACES = (
    ("actions", "idioms"),
    ("countries", "agencies"),
    ("leading_agencies",),
    ("synonyms",),
    ("policy_tokens",),
)


class VocabularyError(ChipwatchError):
    """``vocab.yaml`` is invalid; ``str()`` reads ``file:line: message``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Vocabulary:
    """The lookups, each named for its section of ``vocab.yaml``."""

    stopwords: frozenset[str]
    generic: frozenset[str]
    actions: dict[str, str]  # word -> kind of action (idioms too)
    idioms: frozenset[str]  # the action words that are weaker evidence: they only thread
    priority: tuple[str, ...]  # the kinds of action, first the one a headline reports
    announcing: frozenset[str]
    hedges: frozenset[str]  # plan words that only hedge the action after them
    countries: dict[str, str]  # name -> country
    agencies: dict[str, str]  # name -> agency
    leaders: dict[str, str]  # name -> the country a headline it opens is led by
    not_acting: frozenset[str]
    skip_lead: frozenset[str]
    market: frozenset[str]
    moves: frozenset[str]
    connectives: frozenset[str]
    context: frozenset[str]
    negations: frozenset[str]
    unproven: frozenset[str]
    probe_objects: frozenset[str]
    synonyms: dict[str, str]  # form -> word
    policy_tokens: dict[str, str]  # watchlist term -> token


@dataclass(frozen=True, slots=True)
class _Entry:
    word: str
    kind: str
    line: int


class _Reader:
    """Reads the sections of one parsed file, keeping each word's line."""

    def __init__(self, doc: Any, file: str):
        self.doc = doc
        self.file = file

    def fail(self, line: int, message: str) -> VocabularyError:
        return VocabularyError(f"{self.file}:{line}: {message}")

    def words(self, parent: Any, key: str, where: str) -> Iterator[tuple[str, int]]:
        """Each word of a space-separated list, with its line."""
        value = parent[key]
        line = parent.lc.value(key)[0] + 1  # where its text starts
        if not isinstance(value, str):
            raise self.fail(line, f"{where}: expected words separated by spaces")
        first = line + 1 if isinstance(value, LiteralScalarString) else line  # read by ruamel's
        # round-trip reader (what libyaml refused), which gives a block's indicator line
        for n, text in enumerate(value.splitlines()):
            for word in text.split():
                yield word, first + n

    def names(self, parent: Any, key: str, where: str) -> Iterator[tuple[str, int]]:
        """Each name of a YAML list, with its line."""
        value = parent[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(parent.lc.value(key)[0] + 1, f"{where}: expected a list of names")
        for i, name in enumerate(value):
            yield " ".join(name.split()), parent[key].lc.item(i)[0] + 1  # a document's list

    def kinds(self, name: str) -> list[_Entry]:
        """A section of kinds, each with its words (or names), in the order written."""
        section = self.doc[name]
        if not isinstance(section, dict) or not section:
            raise self.fail(self.line_of(name), f"{name}: expected kinds, each with its words")
        read = self.names if name in NAMES_BY_KIND else self.words
        return [
            _Entry(word, str(kind), line)
            for kind in section
            for word, line in read(section, kind, f"{name}.{kind}")
        ]

    def word_list(self, name: str) -> frozenset[str]:
        return frozenset(word for word, _ in self.words(self.doc, name, name))

    def line_of(self, name: str) -> int:
        return self.doc.lc.key(name)[0] + 1


def _one_kind_each(sections: dict[str, list[_Entry]], reader: _Reader) -> None:
    """Refuse a word under two kinds of one namespace (or twice under one kind)."""
    for names in NAMESPACES:
        seen: dict[str, tuple[str, _Entry]] = {}
        for name in names:
            for entry in sections[name]:
                if entry.word not in seen:
                    seen[entry.word] = (name, entry)
                    continue
                first_name, first = seen[entry.word]
                if first_name == name and first.kind == entry.kind:
                    where = f"twice under {name}.{entry.kind} (lines {first.line} and {entry.line})"
                else:
                    where = (
                        f"under two kinds: {first_name}.{first.kind} (line {first.line}) and "
                        f"{name}.{entry.kind} (line {entry.line})"
                    )
                raise reader.fail(entry.line, f"{entry.word!r} is listed {where}")


def load(path: Path | None = None) -> Vocabulary:
    """Read and check a vocabulary file (default: the ``vocab.yaml`` beside this module)."""
    if path is None:
        source = resources.files(__package__).joinpath("vocab.yaml")
        file, text = "vocab.yaml", source.read_text(encoding="utf-8")
    else:
        file, text = str(path), path.read_text(encoding="utf-8")
    try:
        doc = read_document(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise VocabularyError(f"{file}:{line}: {getattr(exc, 'problem', None) or exc}") from exc
    reader = _Reader(doc, file)
    if not isinstance(doc, dict):
        raise reader.fail(1, "expected sections of words")
    known = (*WORD_LISTS, *WORDS_BY_KIND, *NAMES_BY_KIND)
    for name in doc:
        if name not in known:
            raise reader.fail(reader.line_of(name), f"unknown section {name!r}")
    for name in known:
        if name not in doc:
            raise reader.fail(1, f"missing section {name!r}")
    kinds = {name: reader.kinds(name) for name in (*WORDS_BY_KIND, *NAMES_BY_KIND)}
    _one_kind_each(kinds, reader)
    lists = {name: reader.word_list(name) for name in WORD_LISTS}

    def lookup(name: str) -> dict[str, str]:
        return {e.word: e.kind for e in kinds[name]}

    actions, idioms, agencies = lookup("actions"), lookup("idioms"), lookup("agencies")
    for e in kinds["idioms"]:
        if e.kind not in doc["actions"]:
            raise reader.fail(e.line, f"idioms: {e.kind!r} is not a kind under actions")
    for e in kinds["leading_agencies"]:
        if e.word not in agencies:
            raise reader.fail(e.line, f"leading_agencies: {e.word!r} is not under agencies")
    products = {w for w, kind in actions.items() if kind == "product"}
    stray = sorted(lists["announcing"] - products)
    if stray:
        raise reader.fail(
            reader.line_of("announcing"), f"announcing: {stray[0]!r} is not under actions.product"
        )
    plans = {w for w, kind in actions.items() if kind == "plan"}
    stray = sorted(lists["hedges"] - plans)
    if stray:
        raise reader.fail(
            reader.line_of("hedges"), f"hedges: {stray[0]!r} is not under actions.plan"
        )
    countries = lookup("countries")
    return Vocabulary(
        stopwords=lists["stopwords"],
        generic=lists["generic"],
        actions={**actions, **idioms},
        idioms=frozenset(idioms),
        priority=tuple(str(kind) for kind in doc["actions"]),
        announcing=lists["announcing"],
        hedges=lists["hedges"],
        countries=countries,
        agencies=agencies,
        leaders={**countries, **lookup("leading_agencies")},
        not_acting=lists["not_acting"],
        skip_lead=lists["skip_lead"],
        market=lists["market"],
        moves=lists["moves"],
        connectives=lists["connectives"],
        context=lists["context"],
        negations=lists["negations"],
        unproven=lists["unproven"],
        probe_objects=lists["probe_objects"],
        synonyms=lookup("synonyms"),
        policy_tokens=lookup("policy_tokens"),
    )


VOCAB = load()
