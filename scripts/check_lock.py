"""Fail `make install` when requirements.lock no longer covers pyproject.toml.

The lock is installed with hashes and the project on top with ``--no-deps``, so
nothing else would notice a dependency added to (or tightened in) pyproject.toml
without `make lock`. This reads the requirements of the installed project (its
metadata is rebuilt from pyproject.toml by the editable install), with the
``test`` and ``dev`` extras, plus requirements-lock.in, and checks the
virtualenv satisfies each one.

    python scripts/check_lock.py    # exit 0, or 1 naming what is missing
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "rds-multi-region-failover"
EXTRAS = ("", "test", "dev")
LOCK_INPUTS = Path(__file__).resolve().parents[1] / "requirements-lock.in"


def required() -> list[Requirement]:
    reqs = [Requirement(line) for line in metadata.requires(PROJECT) or []]
    reqs += [Requirement(line) for line in LOCK_INPUTS.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return [req for req in reqs
            if canonicalize_name(req.name) != canonicalize_name(PROJECT)
            and (req.marker is None or any(req.marker.evaluate({"extra": e}) for e in EXTRAS))]


def problems(reqs: list[Requirement]) -> list[str]:
    found = []
    for req in reqs:
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            found.append(f"{req} is not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            found.append(f"{req} is required but {req.name} {version} is installed")
    return found


def main() -> int:
    found = problems(required())
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if found:
        print("error: requirements.lock is out of date with pyproject.toml: run `make lock`, "
              "then `make install`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
