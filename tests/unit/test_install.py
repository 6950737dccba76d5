"""Reproducible installs: requirements.lock pins and hashes everything `make install` needs.

The lock is one universal resolution (Python 3.10+, Linux and macOS) made by `make lock`;
`make install` installs it with --require-hashes, builds the project with the locked
setuptools, and scripts/check_lock.py refuses a lock that no longer covers pyproject.toml.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCK_TEXT = (REPO / "requirements.lock").read_text()
sys.path.insert(0, str(REPO / "scripts"))
import check_lock  # noqa: E402


def locked() -> dict[str, list[tuple[str, list[str]]]]:
    """{package: [(version, hashes)]}; a package may have one pin per Python range."""
    pins: dict[str, list[tuple[str, list[str]]]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", LOCK_TEXT.split("\n", 1)[1]):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        if match:
            pins.setdefault(canonicalize_name(match[1]), []).append(
                (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)))
    return pins


def declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    reqs += [r for extra in project["optional-dependencies"].values() for r in extra]
    reqs += PYPROJECT["build-system"]["requires"]
    return [Requirement(r) for r in reqs if not r.startswith(project["name"])]


def test_every_locked_package_has_hashes():
    pins = locked()
    assert len(pins) > 50
    assert [name for name, versions in pins.items() if any(not h for _, h in versions)] == []


def test_the_lock_pins_every_declared_requirement_within_its_range():
    pins = locked()
    for req in declared():
        versions = [v for v, _ in pins.get(canonicalize_name(req.name), [])]
        assert versions, f"{req} is not in requirements.lock: run `make lock`"
        assert all(req.specifier.contains(v, prereleases=True) for v in versions), (req, versions)


def test_the_build_backend_is_locked_as_pyproject_requires_it():
    lock_inputs = [line for line in (REPO / "requirements-lock.in").read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
    assert PYPROJECT["build-system"]["requires"] == [lock_inputs[0]]
    assert "setuptools" in locked()


def test_the_lock_was_made_by_make_lock_for_python_3_10_up():
    assert "make lock" in LOCK_TEXT.splitlines()[1]
    makefile = (REPO / "Makefile").read_text()
    assert "--universal --python-version 3.10 --generate-hashes" in makefile
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"


def test_check_lock_names_a_requirement_the_environment_lacks():
    assert check_lock.problems(check_lock.required()) == []  # this virtualenv, from the lock
    missing = check_lock.problems([Requirement("no-such-package-xyz>=1"),
                                   Requirement("pytest<1")])
    assert missing[0] == "no-such-package-xyz>=1 is not installed"
    assert missing[1].startswith("pytest<1 is required but pytest ")


def _make_q(repo: Path, venv: Path) -> int:
    return subprocess.run(["make", "-q", "-C", str(repo), f"VENV={venv}", "install"],
                          capture_output=True, timeout=60).returncode


def test_make_install_is_a_no_op_until_the_lock_or_pyproject_changes(tmp_path):
    repo, venv = tmp_path / "repo", tmp_path / "venv"
    repo.mkdir()
    venv.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(REPO / name, repo / name)
    stamp = venv / ".installed"
    stamp.touch()
    base = stamp.stat().st_mtime
    for name in ("requirements.lock", "pyproject.toml"):
        for other in ("requirements.lock", "pyproject.toml"):
            os.utime(repo / other, (base - 100, base - 100))
        assert _make_q(repo, venv) == 0  # up to date: nothing would run
        os.utime(repo / name, (base + 100, base + 100))
        assert _make_q(repo, venv) == 1, name  # would reinstall


@pytest.mark.parametrize("target", ["install", "lock", "lock-upgrade"])
def test_install_and_lock_use_only_hash_checked_wheels(target):
    dry = subprocess.run(["make", "-n", "-B", "-C", str(REPO), f"VENV={REPO / 'no-venv'}", target],
                         capture_output=True, text=True, timeout=60).stdout
    pip_lines = [line for line in dry.splitlines()
                 if "pip install" in line and "-r requirements.lock" in line]
    assert pip_lines and all("--require-hashes" in line and "--only-binary :all:" in line
                             for line in pip_lines)
    if target == "install":
        assert "--no-deps --no-build-isolation -e ." in dry
    else:
        assert "uv\" pip compile" in dry
