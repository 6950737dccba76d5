"""Each layer's Pulumi.yaml documents exactly the config its program reads.

The loaders in ``shared.config`` are the only place config is read, so recording
which keys a loader asks for tells which keys the layer uses; the project file
must declare each one with a type, a description and the same default the code
applies.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shared import config as cfg
from shared.contract import LAYERS, PROJECTS

REPO = Path(__file__).resolve().parents[2]
LOADERS = cfg.LOADERS
# The provider's own key: documented in the README and the project description.
FOREIGN_KEYS = {"aws:region"}


class RecordingSource(cfg.DictSource):
    def __init__(self, values=None):
        super().__init__(values or {}, stack="recorder")
        object.__setattr__(self, "asked", set())

    def get(self, key):
        self.asked.add(key)
        return super().get(key)


def _project(layer: str) -> dict:
    path = REPO / "stacks" / layer / "Pulumi.yaml"
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("layer", LAYERS)
def test_project_file_names_the_project_and_uses_the_repository_venv(layer):
    project = _project(layer)
    assert project["name"] == PROJECTS[layer]
    assert project["description"].strip()
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == "../../.venv"
    assert (REPO / "stacks" / layer / "__main__.py").exists()


@pytest.mark.parametrize("layer", LAYERS)
def test_every_key_the_program_reads_is_declared_and_nothing_else(layer):
    declared = set(_project(layer).get("config") or {})
    source = RecordingSource()
    LOADERS[layer](source)
    assert declared == source.asked - FOREIGN_KEYS


@pytest.mark.parametrize("layer", LAYERS)
def test_declarations_have_type_description_and_the_code_default(layer):
    baseline = LOADERS[layer](RecordingSource())
    for key, decl in (_project(layer).get("config") or {}).items():
        assert decl.get("type") in ("string", "integer", "boolean"), key
        assert decl.get("description", "").strip(), key
        assert "default" in decl, key
        # Setting the documented default explicitly must change nothing.
        explicit = LOADERS[layer](RecordingSource({key: decl["default"]}))
        assert explicit == baseline, f"{layer}: documented default of {key} differs from the code"
