"""Load the dns-failover Lambda handlers as the Lambda runtime does, and the layer's modules.

The layer directory name has a hyphen, so the modules cannot be imported as a package.
Each handler is loaded from its file under a test-private module name (so it never
shadows, or is forgotten with, modules the offline harness imports while running the
layer program); its directory goes on the import path first, as the Lambda runtime puts
the archive's root there, so the handler's ``promoter_*`` siblings import as they do in
Lambda.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "stacks" / "dns-failover"
LAMBDAS = LAYER / "lambdas"


def load_lambda(name: str) -> ModuleType:
    """``load_lambda("canary")`` -> the module in lambdas/canary/canary.py."""
    module_name = f"_dns_failover_lambda_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = LAMBDAS / name / f"{name}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    return _load(module_name, path)


def load_layer_module(name: str) -> ModuleType:
    """A module of the dns-failover layer that imports no sibling module, for its constants
    (e.g. ``failover_dns``), loaded under a private name like the handlers."""
    module_name = f"_dns_failover_layer_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    return _load(module_name, LAYER / f"{name}.py")


def _load(module_name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve their module through sys.modules while the class is built.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
