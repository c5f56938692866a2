"""The layering of ``alerts/``: nothing imports a module above it, and ``cli`` only parses
arguments and prints. A new module must be given its layer here, deliberately."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support import ROOT

# Lowest first. A module may import from lower layers, and within its own package.
LAYERS = [
    {"alerts"},  # the package root: version and user agent
    {"types", "errors", "tls"},  # tls: the one context every HTTP client verifies with
    {"text"},  # text as the matcher sees it: normalised words and a term's keys
    {"logs", "metrics", "healthcheck"},
    {"config"},  # values, model, load, edit
    # the learned second opinion's model, and whether a rule holds: below the matcher
    {"relevance", "rules"},
    {"loopback", "fetch", "parse", "match", "outlets", "httpd"},
    {"stories", "store"},
    {"dedupe", "deliver", "lock", "coordinate"},
    {"digest"},  # scheduled digests: when each falls due, what goes in, queued once
    {"health"},  # the one health model: store facts and live state to a verdict
    {"pipeline", "backtest", "status", "explain"},
    {"runtime", "scheduler"},
    {"bot", "ops", "websub"},  # bot: the command handlers and their Telegram adapter
    {"app"},
    {"demo"},
    {"cli"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
PACKAGE = ROOT / "alerts"


def _unit(path: Path) -> str:
    """The layer unit of a module: its top-level module or package under ``alerts``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts == ("__init__",):
        return "alerts"
    name = parts[0]
    return "parse" if name.startswith("parse_") else name


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, unit) for each import of another part of ``alerts``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_parts = list(path.relative_to(root).with_suffix("").parts)
    if module_parts[-1] == "__init__":
        module_parts.pop()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_parts[: len(module_parts) - node.level + (path.name == "__init__.py")]
                target = [*base, *(node.module.split(".") if node.module else [])]
            else:
                target = (node.module or "").split(".")
            if node.module:
                names = [target]
            else:  # ``from . import x``: x is a submodule, or a name in the package itself
                names = [
                    [*target, a.name] if _is_module(root, [*target, a.name]) else target
                    for a in node.names
                ]
            found += [(node.lineno, t) for t in names if t and t[0] == "alerts"]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.split("."))
                for a in node.names
                if a.name.split(".")[0] == "alerts"
            ]
    units = []
    for line, target in found:
        if len(target) == 1:
            units.append((line, "alerts"))
        else:
            name = target[1]
            units.append((line, "parse" if name.startswith("parse_") else name))
    return units


def _is_module(root: Path, parts: list[str]) -> bool:
    path = root.joinpath(*parts)
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_module_above_it(path):
    unit = _unit(path)
    assert unit in RANK, f"{unit}: give the new module a layer in LAYERS"
    upward = [
        f"line {line}: {target}"
        for line, target in _imports(path)
        if target != unit and RANK.get(target, len(LAYERS)) >= RANK[unit]
    ]
    assert not upward, f"{path.relative_to(ROOT)} imports upward or sideways: {upward}"


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The check above must be able to fail: relative imports resolve to their units."""
    probe = tmp_path / "alerts" / "store" / "feeds.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from ..cli import main\nfrom . import schema\nfrom ..types import FeedState\n"
        "from alerts.parse_dates import parse_date\nimport alerts.app\n"
    )
    assert [u for _, u in _imports(probe, tmp_path)] == ["cli", "store", "types", "parse", "app"]


def test_cli_only_parses_arguments_and_prints():
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    coroutines = [n.name for n in tree.body if isinstance(n, ast.AsyncFunctionDef)]
    assert classes == [] and coroutines == [], "services belong in app/explain/status, not cli"
    imported = {u for _, u in _imports(PACKAGE / "cli.py")}
    assert not imported & {"store", "pipeline", "fetch", "deliver", "stories", "runtime"}


def test_only_the_adapters_import_telegram():
    """Command handlers are plain functions: only the python-telegram-bot adapter for
    commands and the Telegram sink know the library."""
    importers = set()
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(n.split(".")[0] == "telegram" for n in names):
                importers.add(str(path.relative_to(PACKAGE)))
    assert importers == {"bot/telegram.py", "deliver/telegram.py"}


def test_no_sql_outside_the_store():
    """Every query is the store's (on both engines): no other module runs SQL or opens a
    database connection of its own."""
    sql = re.compile(r"\.(execute|query|executescript)\(|\bimport (sqlite3|psycopg)\b|sqlite_utils")
    found = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in MODULES
        if path.relative_to(PACKAGE).parts[0] != "store"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if sql.search(line)
    ]
    assert found == []
