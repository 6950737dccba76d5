"""Load the dns-failover Lambda handlers as the Lambda runtime does: one top-level module each.

The layer directory name has a hyphen, so the modules cannot be imported as a
package. Each is loaded from its file under a test-private module name (so it never
shadows, or is forgotten with, modules the offline harness imports while running the
layer program).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
LAMBDAS = REPO / "stacks" / "dns-failover" / "lambdas"


def load_lambda(name: str) -> ModuleType:
    """``load_lambda("canary")`` -> the module in lambdas/canary/canary.py."""
    module_name = f"_dns_failover_lambda_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = LAMBDAS / name / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve their module through sys.modules while the class is built.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
