"""The installable package: a wheel built from this tree, installed into a fresh venv, gives a
working ``chipwatch`` command outside the repository. Offline: the wheel is built with the dev
venv's setuptools, and the fresh venv sees the dev venv's site-packages for its dependencies.

Also: the hashed locks agree with the pins they are compiled from and with pyproject.toml."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import alerts

ROOT = Path(__file__).resolve().parent.parent
H200 = "China approves first imports of Nvidia H200 AI chips"


@dataclass(frozen=True, kw_only=True)
class Installed:
    wheel: Path
    venv: Path
    outside: Path  # an empty directory outside the repository, the commands' working directory

    def run(self, *args: str) -> subprocess.CompletedProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "CHIPWATCH_DATABASE")
        }
        return subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=self.outside,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and a fresh venv it is installed in, built once per run: under xdist the
    workers share the run's temporary directory, and the first to get there builds under a
    lock while the others wait, then reuse it."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's directory, above each worker's own
    base = shared / "packaging"
    with (shared / "packaging.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "built").exists():
            _build(base)
            (base / "built").touch()
    (wheel,) = (base / "dist").glob("chipwatch-*.whl")
    return wheel, base / "venv"


def _build(base: Path) -> None:
    # Build from a copy so that build/ and *.egg-info never land in the working tree.
    src = base / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "config.yaml"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "alerts",
        src / "alerts",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    dist = base / "dist"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src))
    (wheel,) = dist.glob("chipwatch-*.whl")

    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)
    _pip(
        "--python",
        str(env_dir / "bin" / "python"),
        "install",
        "--no-deps",
        "--no-index",
        str(wheel),
    )
    # The dependencies come from the dev venv, appended after the fresh venv's own site-packages.
    found = list((env_dir / "lib").glob("python3.*/site-packages"))
    assert len(found) == 1, found
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (found[0] / "_chipwatch_test_deps.pth").write_text("\n".join(paths) + "\n", encoding="utf-8")


@pytest.fixture
def installed(built: tuple[Path, Path], tmp_path: Path) -> Installed:
    wheel, env_dir = built
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    return Installed(wheel=wheel, venv=env_dir, outside=outside)


@pytest.mark.system
def test_the_wheel_carries_the_package_its_data_and_the_entry_point(installed):
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(info).decode()
        entry_points = whl.read(info.replace("METADATA", "entry_points.txt")).decode()
        shipped_config = whl.read("alerts/demo/config.yaml")

    assert {
        "alerts/__init__.py",
        "alerts/cli.py",
        "alerts/deliver/telegram.py",
        "alerts/store/schema.py",
        "alerts/demo/__init__.py",
        "alerts/demo/wire.xml",
        "alerts/demo/policy.atom",
        "alerts/demo/syndicated.xml",
    } <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    # The demo's config is the repository's config.yaml, as a file (the symlink followed).
    assert shipped_config == (ROOT / "config.yaml").read_bytes()
    assert "chipwatch = alerts.cli:main" in entry_points
    assert "Name: chipwatch\n" in metadata
    assert f"Version: {alerts.__version__}\n" in metadata
    assert "Requires-Python: >=3.11\n" in metadata


@pytest.mark.system
def test_chipwatch_imports_the_installed_copy_not_the_checkout(installed):
    done = installed.run("python", "-c", "import alerts; print(alerts.__file__)")

    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.venv)


@pytest.mark.system
def test_chipwatch_help_and_version(installed):
    helped = installed.run("chipwatch", "--help")
    version = installed.run("chipwatch", "--version")

    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: chipwatch ")
    for command in ("run", "once", "demo", "match", "check-config", "backtest", "status"):
        assert re.search(rf"^\s+{command}\s", helped.stdout, re.M), command
    assert version.returncode == 0 and version.stdout.strip() == f"chipwatch {alerts.__version__}"


@pytest.mark.system
def test_chipwatch_check_config_accepts_a_good_file_and_names_the_line_of_a_bad_one(installed):
    good = installed.outside.parent / "good.yaml"
    shutil.copy2(ROOT / "config.yaml", good)
    bad = installed.outside.parent / "bad.yaml"
    bad.write_text("feeds: []\npoll:\n  interval_secondz: 5\n", encoding="utf-8")

    ok = installed.run("chipwatch", "check-config", "--config", str(good))
    failed = installed.run("chipwatch", "check-config", "--config", str(bad))
    missing = installed.run("chipwatch", "check-config")  # no ./config.yaml out here

    assert ok.returncode == 0, ok.stderr
    assert f"config {good}: OK" in ok.stdout
    assert failed.returncode == 2
    assert f"{bad}:3: poll.interval_secondz: unknown key" in failed.stderr
    assert missing.returncode == 2
    assert "config.yaml" in missing.stderr


@pytest.mark.system
def test_chipwatch_demo_runs_from_the_wheel_outside_the_repository(installed):
    done = installed.run("chipwatch", "demo")

    assert done.returncode == 0, done.stderr
    titles = [line[2:].strip() for line in done.stdout.splitlines() if line.startswith("🔔")]
    assert titles.count(H200) == 1
    assert f"watchlists from {installed.venv}" in done.stdout  # the config the wheel carries
    assert list(installed.outside.iterdir()) == [], "demo must leave nothing behind"


# --- locks --------------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    return _pins_text(path.read_text(encoding="utf-8"))


def _pins_text(text: str) -> dict[str, str]:
    """``name==version`` lines of a requirements or lock file, by canonical name."""
    return {
        canonicalize_name(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;]+)", text, re.M)
    }


def _hashed(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {
        canonicalize_name(m.group(1))
        for m in re.finditer(r"^([A-Za-z0-9._-]+)==\S+ \\\n\s+--hash=sha256:", text, re.M)
    }


@pytest.mark.parametrize(
    ("inputs", "lock"),
    [
        (["requirements.txt"], "requirements.lock"),
        (["requirements.txt", "requirements-dev.txt"], "requirements-dev.lock"),
    ],
)
def test_each_lock_pins_what_its_inputs_pin_with_hashes(inputs, lock):
    locked = _pins(ROOT / lock)
    wanted = {k: v for name in inputs for k, v in _pins(ROOT / name).items()}

    assert wanted, inputs
    drift = {
        name: (version, locked.get(name))
        for name, version in wanted.items()
        if locked.get(name) != version
    }
    assert drift == {}, f"{lock} is stale; run `make lock` (input pin, locked pin): {drift}"
    assert _hashed(ROOT / lock) == set(locked), "every locked package carries its hashes"


def test_pyproject_dependencies_are_satisfied_by_the_runtime_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    locked = _pins(ROOT / "requirements.lock")
    runtime = _pins(ROOT / "requirements.txt")

    declared = [Requirement(r) for r in project["dependencies"]]
    for req in declared:
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(locked[name]), f"{req} excludes locked {locked[name]}"
    # Both directions: a direct dependency added to one list and not the other is caught (the
    # direct ones are those above requirements.txt's "# transitive" line).
    direct = {canonicalize_name(r.name) for r in declared}
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "\n# transitive\n" in text
    assert set(_pins_text(text.split("\n# transitive\n")[0])) == direct
    assert direct <= set(runtime)
