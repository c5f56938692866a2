"""Load and validate ``config.yaml`` into frozen dataclasses.

Every error names the file, the 1-based line and the dotted key (``feeds[2].url``), so that
``check-config`` and the bot itself can point at the exact place to fix.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..errors import ConfigError
from . import values
from .checker import Checker, type_name
from .document import read_document
from .model import (
    DEFAULT_CATEGORIES,
    DEFAULT_RULE,
    LEARNED_RULE,
    Config,
    FeedConfig,
    LearnedConfig,
    PollConfig,
    Rule,
    StoriesConfig,
    Term,
    keys,
)
from .routes import Known, parse_destinations
from .sections import number_field as _number
from .sections import ops_section, websub_section

T = TypeVar("T")

_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


# --- sections -------------------------------------------------------------------------------

# A section's keys are its dataclass's fields; a term's name is written ``term``, and its category
# is the watchlist it is listed in.
_TERM_KEYS = keys(Term) - {"name", "category"} | {"term"}


def _intervals(
    c: Checker, m: dict, key: str, line: int | None, given: dict[str, Any], default: PollConfig
) -> tuple[int, int]:
    """``interval_seconds`` and ``max_interval_seconds`` of a section (``poll``, or a feed), those
    not given taken from ``default``: a ceiling not given rises to the interval, one given must
    reach it."""
    interval = given.get("interval_seconds", default.interval_seconds)
    if "max_interval_seconds" not in given:
        return interval, max(interval, default.max_interval_seconds)
    if given["max_interval_seconds"] < interval:
        raise c.fail(
            f"must be at least interval_seconds ({interval})",
            f"{key}.max_interval_seconds",
            c.key_line(m, "max_interval_seconds", line),
        )
    return interval, given["max_interval_seconds"]


def _poll(c: Checker, node: Any, line: int | None) -> PollConfig:
    if node is None:
        return PollConfig()
    m = c.mapping(node, "poll", line, keys(PollConfig))
    given: dict[str, Any] = {
        k: c.boolean(v, "poll.adaptive", c.key_line(m, k, line))
        if k == "adaptive"
        else _proxy(c, m, "poll", line)
        if k == "proxy"
        else _number(c, PollConfig, m, k, "poll", line)
        for k, v in m.items()
    }
    interval, ceiling = _intervals(c, m, "poll", line, given, PollConfig())
    return PollConfig(**{**given, "interval_seconds": interval, "max_interval_seconds": ceiling})


def _stories(c: Checker, node: Any, line: int | None) -> StoriesConfig:
    if node is None:
        return StoriesConfig()
    m = c.mapping(node, "stories", line, keys(StoriesConfig))
    return StoriesConfig(**{k: _number(c, StoriesConfig, m, k, "stories", line) for k in m})


def _learned(c: Checker, node: Any, line: int | None) -> LearnedConfig:
    if node is None:
        return LearnedConfig()
    m = c.mapping(node, "learned", line, keys(LearnedConfig))
    return LearnedConfig(
        **{
            k: c.boolean(v, "learned.enabled", c.key_line(m, k, line))
            if k == "enabled"
            else _number(c, LearnedConfig, m, k, "learned", line)
            for k, v in m.items()
        }
    )


def _feeds(c: Checker, node: Any, line: int | None, poll: PollConfig) -> tuple[FeedConfig, ...]:
    if node is None:
        return ()
    seq = c.seq(node, "feeds", line)
    feeds: list[FeedConfig] = []
    names: set[str] = set()
    urls: dict[str, str] = {}  # the same URL (as ``values.same_url`` compares) -> its feed
    for i, raw in enumerate(seq):
        key, ln = f"feeds[{i}]", c.item_line(seq, i, line)
        m = c.mapping(raw, key, ln, keys(FeedConfig))
        for required in ("name", "url"):
            if required not in m:
                raise c.fail(f"missing required key '{required}'", key, ln)
        name = c.string(m["name"], f"{key}.name", c.key_line(m, "name", ln))
        if name in names:
            raise c.fail(f"duplicate feed name {name!r}", f"{key}.name", c.key_line(m, "name", ln))
        names.add(name)
        url = c.value(values.http_url, m["url"], f"{key}.url", c.key_line(m, "url", ln))
        if values.same_url(url) in urls:
            raise c.fail(
                f"the same URL as feed {urls[values.same_url(url)]!r}: list a feed once",
                f"{key}.url",
                c.key_line(m, "url", ln),
            )
        urls[values.same_url(url)] = name
        given = {
            k: _number(c, FeedConfig, m, k, key, ln)
            for k in ("interval_seconds", "max_interval_seconds")
            if k in m
        }
        interval, ceiling = _intervals(c, m, key, ln, given, poll)
        tags = (
            c.strings(m["tags"], f"{key}.tags", c.key_line(m, "tags", ln), values.tag)
            if "tags" in m
            else ()
        )
        proxy = _proxy(c, m, key, ln) if "proxy" in m else poll.proxy
        feeds.append(
            FeedConfig(
                name=name,
                url=url,
                interval_seconds=interval,
                max_interval_seconds=ceiling,
                tags=tuple(dict.fromkeys(tags)),
                proxy=proxy or None,
            )
        )
    return tuple(feeds)


def _guard_word(raw: str) -> str:
    """A context or exclude entry: a term, or ``@category`` (any match in that category)."""
    return raw if raw.startswith("@") and raw[1:] else values.term(raw)


def _proxy(c: Checker, m: dict, section: str, line: int | None) -> str | None:
    """A ``proxy`` key: a proxy URL; empty (or null) for none."""
    at = c.key_line(m, "proxy", line)
    if m["proxy"] is None:
        return ""
    raw = c.string(m["proxy"], f"{section}.proxy", at, empty_ok=True)
    return c.value(values.proxy_url, raw, f"{section}.proxy", at) if raw else ""


def _term(c: Checker, raw: Any, category: str, key: str, line: int | None) -> Term:
    if not isinstance(raw, dict):
        return Term(name=c.value(values.term, raw, key, line), category=category)
    m = c.mapping(raw, key, line, _TERM_KEYS)
    if "term" not in m and "regex" not in m:
        raise c.fail("missing required key 'term' (or 'regex')", key, line)

    def kl(k: str) -> int | None:
        return c.key_line(m, k, line)

    opts: dict[str, Any] = {}
    for k in ("aliases", "context", "exclude"):
        if k in m:
            parse = values.term if k == "aliases" else _guard_word
            opts[k] = c.strings(m[k], f"{key}.{k}", kl(k), parse)
    for k in ("case_sensitive", "fuzzy"):
        if k in m:
            opts[k] = c.boolean(m[k], f"{key}.{k}", kl(k))
    if "regex" in m:
        opts["regex"] = _regex(c, m, key, line, opts)
    name = (
        c.value(values.term, m["term"], f"{key}.term", kl("term")) if "term" in m else opts["regex"]
    )
    return Term(name=name, category=category, **opts)


def _regex(c: Checker, m: dict, key: str, line: int | None, opts: dict[str, Any]) -> str:
    """A regex term's pattern, checked: it compiles in RE2 and cannot match an empty text."""
    at = c.key_line(m, "regex", line)
    pattern = c.string(m["regex"], f"{key}.regex", at)
    for k in ("aliases", "fuzzy"):
        if k in m:
            raise c.fail(
                f"a regex term takes no {k!r} (write the variants into the pattern)",
                f"{key}.{k}",
                c.key_line(m, k, line),
            )
    try:
        values.term_regex(pattern, case_sensitive=opts.get("case_sensitive", False))
    except ValueError as exc:
        raise c.fail(str(exc), f"{key}.regex", at) from None
    return pattern


def _watchlists(c: Checker, node: Any, line: int | None) -> dict[str, tuple[Term, ...]]:
    if node is None:
        raise c.fail("missing required section (categories of terms to watch)", "watchlists", line)
    if not isinstance(node, dict):
        raise c.fail(f"must be a mapping, got {type_name(node)}", "watchlists", line)
    lists: dict[str, tuple[Term, ...]] = {}
    for cat, raw in node.items():
        key, ln = f"watchlists.{cat}", c.key_line(node, cat, line)
        if not isinstance(cat, str) or not _CATEGORY_RE.match(cat):
            raise c.fail("category names are lowercase letters, digits and _", key, ln)
        seq = c.seq(raw, key, ln)
        if not seq:
            raise c.fail("must list at least one term", key, ln)
        terms = [
            _term(c, t, cat, f"{key}[{i}]", c.item_line(seq, i, ln)) for i, t in enumerate(seq)
        ]
        seen: dict[str, int] = {}
        for i, t in enumerate(terms):
            folded = t.name.casefold()
            if folded in seen:
                raise c.fail(
                    f"duplicate term {t.name!r} (also at index {seen[folded]})",
                    f"{key}[{i}]",
                    c.item_line(seq, i, ln),
                )
            seen[folded] = i
        lists[cat] = tuple(terms)
    if not lists:
        raise c.fail("must define at least one category", "watchlists", line)
    return lists


def _rules(
    c: Checker,
    node: Any,
    line: int | None,
    watchlists: dict[str, tuple[Term, ...]],
    tags: frozenset[str],
) -> tuple[Rule, ...]:
    if node is None:
        missing = [cat for cat in DEFAULT_CATEGORIES if cat not in watchlists]
        if missing:
            raise c.fail(
                f"no 'rules' given, and the default rule needs the missing "
                f"watchlist(s) {', '.join(missing)}",
                "watchlists",
                line,
            )
        return (DEFAULT_RULE,)
    seq = c.seq(node, "rules", line)
    if not seq:
        raise c.fail("must list at least one rule", "rules", line)
    term_names = {t.name.casefold(): t.name for terms in watchlists.values() for t in terms}
    rules: list[Rule] = []
    for i, raw in enumerate(seq):
        key, ln = f"rules[{i}]", c.item_line(seq, i, line)
        m = c.mapping(raw, key, ln, keys(Rule))
        if "name" not in m:
            raise c.fail("missing required key 'name'", key, ln)
        name = c.string(m["name"], f"{key}.name", c.key_line(m, "name", ln))
        if name == LEARNED_RULE:
            raise c.fail(
                f"'{LEARNED_RULE}' names the learned opinion (set it under learned:)",
                f"{key}.name",
                c.key_line(m, "name", ln),
            )
        parts: dict[str, Any] = {}
        for k in ("all_of", "any_of", "none_of"):
            if k in m:
                kln = c.key_line(m, k, ln)
                cats = c.strings(m[k], f"{key}.{k}", kln)
                parts[k] = _defined(c, cats, f"{key}.{k}", kln, watchlists)
        if "terms" in m:
            kln = c.key_line(m, "terms", ln)
            names = c.strings(m["terms"], f"{key}.terms", kln)
            for t in names:
                if t.casefold() not in term_names:
                    raise c.fail(
                        f"refers to unknown term {t!r}; add it to a watchlist first",
                        f"{key}.terms",
                        kln,
                    )
            parts["terms"] = tuple(term_names[t.casefold()] for t in names)
        relation: list[tuple[str, ...]] = []
        if "relation" in m:
            kln = c.key_line(m, "relation", ln)
            roles = c.seq(m["relation"], f"{key}.relation", kln)
            if len(roles) < 2:
                raise c.fail(
                    "must list at least two roles (a category, or a list of categories)",
                    f"{key}.relation",
                    kln,
                )
            for j, role in enumerate(roles):
                rkey = f"{key}.relation[{j}]"
                cats = c.strings(role, rkey, c.item_line(roles, j, kln))
                relation.append(_defined(c, cats, rkey, kln, watchlists))
        if "within" in m:
            if not relation:
                raise c.fail(
                    "only means something with 'relation'",
                    f"{key}.within",
                    c.key_line(m, "within", ln),
                )
            parts["within"] = _number(c, Rule, m, "within", key, ln)
        if "description" in m:
            parts["description"] = c.string(
                m["description"], f"{key}.description", c.key_line(m, "description", ln)
            )
        if "tags" in m:
            kln = c.key_line(m, "tags", ln)
            parts["tags"] = c.strings(m["tags"], f"{key}.tags", kln)
            for t in parts["tags"]:
                if t not in tags:
                    raise c.fail(
                        f"refers to unknown feed tag {t!r} "
                        f"(defined: {', '.join(sorted(tags)) or 'none'}; tag a feed first)",
                        f"{key}.tags",
                        kln,
                    )
        if not (parts.get("all_of") or parts.get("any_of") or parts.get("terms") or relation):
            raise c.fail("needs at least one of all_of, any_of, terms or relation", key, ln)
        rules.append(Rule(name=name, **parts, relation=tuple(relation)))
    return tuple(rules)


def _defined(
    c: Checker, cats: tuple[str, ...], key: str, line: int | None, watchlists: dict[str, Any]
) -> tuple[str, ...]:
    """``cats``, a rule's category names, when each is a watchlist of the config."""
    for cat in cats:
        if cat not in watchlists:
            raise c.fail(
                f"refers to missing watchlist {cat!r} (defined: {', '.join(watchlists)})", key, line
            )
    return cats


def parse_config(text: str, *, path: Path | str) -> Config:
    """Validate config text; ``path`` names the file in errors and anchors relative paths."""
    return _parse(text, Path(path))


# Parsing is a pure function of the text and the path: a touched but unchanged file, the CLI's
# commands in one process and the tests' many loads of one file cost one parse. A Config is
# frozen, and no caller changes its dicts. An invalid text is not kept: it raises each time.
@functools.lru_cache(maxsize=8)
def _parse(text: str, path: Path) -> Config:
    c = Checker(str(path))
    try:
        doc = read_document(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark is not None and exc.problem:
            problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        raise ConfigError(f"invalid YAML: {problem}", file=str(path), line=line) from None
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=str(path)) from None
    if doc is None:
        raise ConfigError("the file is empty", file=str(path), line=1)
    top = c.mapping(doc, "", 1, keys(Config) - {"path", "lines"})

    def kl(k: str) -> int | None:
        return c.key_line(top, k, 1)

    database = c.value(
        lambda raw: values.database(raw, base=path.parent),
        top.get("database", "chipwatch.db"),
        "database",
        kl("database"),
    )
    poll = _poll(c, top.get("poll"), kl("poll"))
    feeds = _feeds(c, top.get("feeds"), kl("feeds"), poll)
    watchlists = _watchlists(c, top.get("watchlists"), kl("watchlists"))
    tags = frozenset(t for f in feeds for t in f.tags)
    rules = _rules(
        c, top.get("rules"), kl("rules" if "rules" in top else "watchlists"), watchlists, tags
    )
    known = Known(
        rules=frozenset({r.name for r in rules} | {LEARNED_RULE}),
        categories=frozenset(watchlists),
        feeds=frozenset(f.name for f in feeds),
        tags=tags,
    )
    destinations = parse_destinations(c, top.get("destinations"), kl("destinations"), known)
    lines = {k: ln for k in top if isinstance(k, str) and (ln := kl(k)) is not None}
    stories = _stories(c, top.get("stories"), kl("stories"))
    log_format = c.string(top.get("log_format", "text"), "log_format", kl("log_format"))
    if log_format not in ("text", "json"):
        raise c.fail(f"must be text or json, got {log_format!r}", "log_format", kl("log_format"))
    ops = ops_section(c, top.get("ops"), kl("ops"))
    learned = _learned(c, top.get("learned"), kl("learned"))
    websub = websub_section(c, top.get("websub"), kl("websub"))
    return Config(
        path=path,
        database=database,
        poll=poll,
        feeds=feeds,
        watchlists=watchlists,
        rules=rules,
        destinations=destinations,
        stories=stories,
        log_format=log_format,
        ops=ops,
        learned=learned,
        websub=websub,
        lines=lines,
    )


def load_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file, then apply the environment's overrides
    (``CHIPWATCH_DATABASE``, ``CHIPWATCH_OPS_LISTEN``; ``environ`` defaults to ``os.environ``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", file=str(path)) from None
    config = parse_config(text, path=path)
    environ = os.environ if environ is None else environ
    database = environ.get("CHIPWATCH_DATABASE")
    if database:
        config = replace(
            config,
            database=_from_env(
                values.database,
                database,
                lambda message: ConfigError(
                    message, file=str(path), key="CHIPWATCH_DATABASE (environment)"
                ),
            ),
        )
    listen = environ.get("CHIPWATCH_OPS_LISTEN")
    if listen is not None:
        listen = _from_env(
            values.listen,
            listen,
            lambda message: ConfigError(
                f"{message} (from the environment)", file="CHIPWATCH_OPS_LISTEN", key="ops.listen"
            ),
        )
        config = replace(config, ops=replace(config.ops, listen=listen))
    return config


def _from_env(parse: Callable[[str], T], raw: str, fail: Callable[[str], ConfigError]) -> T:
    """An environment variable's value read by ``parse``, one of ``values``."""
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise fail(str(exc)) from None
