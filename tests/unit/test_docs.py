"""The README documents every config key and every output of the layer contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shared.contract import EXPORTS, LAYERS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("layer", LAYERS)
def test_every_config_key_is_documented(layer):
    declared = yaml.safe_load((REPO / "stacks" / layer / "Pulumi.yaml").read_text())["config"]
    missing = [key for key in declared if f"`{key}`" not in README]
    assert missing == [], f"README lacks {layer} config keys {missing}"


@pytest.mark.parametrize("layer", LAYERS)
def test_every_contract_output_is_documented(layer):
    # The table abbreviates the per-region pairs of the network layer as {primary,secondary}X.
    def documented(key: str) -> bool:
        for role in ("primary", "secondary"):
            if key.startswith(role) and f"{{primary,secondary}}{key[len(role):]}" in README:
                return True
        return f"`{key}`" in README

    missing = [key for key in EXPORTS[layer] if not documented(key)]
    assert missing == [], f"README lacks {layer} outputs {missing}"


def test_every_make_target_the_readme_shows_exists():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, flags=re.MULTILINE))
    targets |= {f"{prefix}-{layer}" for prefix in ("up", "destroy", "preview") for layer in LAYERS}
    # Placeholders such as `make up-<layer>` are covered by the per-layer targets above.
    shown = set(re.findall(r"`make ([a-z][\w-]*\w)(?=[\s`])", README))
    assert {"install", "test", "deploy", "destroy", "outputs", "plan", "rehearse"} <= shown
    assert shown - targets == set()
