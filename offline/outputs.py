"""Flatten the four layers' stack outputs into ``cfn-outputs/flat-outputs.json``.

The integration tests read only that file. ``make outputs`` fills it from the
real stacks (``pulumi stack output --json`` per layer); the rehearsal fills it
from the emulator deployment with the same ``write_flat_outputs``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.contract import EXPORTS, LAYERS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO_ROOT / "cfn-outputs" / "flat-outputs.json"


def flatten(outputs_by_layer: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Merge per-layer outputs; names are unique across layers by contract."""
    flat: dict[str, Any] = {}
    for layer in LAYERS:
        for key, value in (outputs_by_layer.get(layer) or {}).items():
            if key in flat:
                raise ValueError(f"output {key!r} is exported by more than one layer")
            flat[key] = value
    return flat


def write_flat_outputs(outputs_by_layer: Mapping[str, Mapping[str, Any]],
                       path: Path = DEFAULT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(flatten(outputs_by_layer), indent=2, sort_keys=True) + "\n")
    return path


def read_stack_outputs(layer: str, stack: str) -> dict[str, Any]:
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--stack", stack],
        cwd=REPO_ROOT / "stacks" / layer, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{layer}: pulumi stack output failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "{}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.outputs")
    parser.add_argument("--stack", required=True, help="stack name (the environment suffix)")
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    try:
        outputs = {layer: read_stack_outputs(layer, args.stack) for layer in LAYERS}
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = {layer: sorted(set(EXPORTS[layer]) - set(outputs[layer])) for layer in LAYERS}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        print(f"error: stacks lack contract outputs (deploy them first): {missing}", file=sys.stderr)
        return 2
    path = write_flat_outputs(outputs, args.path)
    print(f"wrote {path} ({sum(len(v) for v in outputs.values())} outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
