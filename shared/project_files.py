"""The config keys each layer declares in its own ``stacks/<layer>/Pulumi.yaml``.

A layer's project file is the one list of the keys that layer accepts: each key is
declared there with its type, default and description, and
``tests/unit/test_project_files.py`` keeps those declarations and the loaders in step.
``shared.config`` refuses stack config the file does not declare, so a misspelt key
stops the layer instead of being ignored while the real key keeps its default.

Each file is read once per process. PyYAML is imported only when a file is read:
``offline.preflight`` imports ``shared.config`` with nothing but the standard library.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

STACKS_DIR = Path(__file__).resolve().parents[1] / "stacks"


def project_file(layer: str) -> Path:
    return STACKS_DIR / layer / "Pulumi.yaml"


@cache
def _project(layer: str) -> dict[str, Any]:
    import yaml

    path = project_file(layer)
    if not path.is_file():
        raise FileNotFoundError(f"layer {layer!r} has no project file {path}")
    return yaml.safe_load(path.read_text()) or {}


@cache
def declared_keys(layer: str) -> frozenset[str]:
    """The keys of the ``config:`` block of ``layer``'s Pulumi.yaml, without namespace."""
    project = _project(layer)
    prefix = f"{project.get('name')}:"
    return frozenset(key.removeprefix(prefix) for key in project.get("config") or {})


def project_name(layer: str) -> str:
    """The Pulumi project ``layer``'s file names: the namespace of its own config keys."""
    return str(_project(layer)["name"])


@cache
def layers() -> tuple[str, ...]:
    """Every directory under ``stacks/`` that holds a Pulumi project file."""
    return tuple(sorted(p.parent.name for p in STACKS_DIR.glob("*/Pulumi.yaml")))


def layer_of_project(project: str) -> str:
    """The layer whose project file is named ``project``."""
    for layer in layers():
        if project_name(layer) == project:
            return layer
    raise LookupError(f"no stacks/*/Pulumi.yaml is named {project!r}")
