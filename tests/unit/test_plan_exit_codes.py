"""scripts/plan hands CI the plan's documented exit status; `make plan` cannot.

GNU make exits 2 whenever a recipe fails, so a CI script that must tell a policy
violation (1) from invalid configuration (2) or a synthesis failure (3) runs
scripts/plan. Each case runs the script as CI would, in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "plan"
# Loaded at interpreter start-up (sitecustomize): adds a rule every VPC breaks, so the
# real layers produce a policy violation without changing any project file.
FORBID_VPCS = '''
from policy import rules
rules.RULES.append(rules.Rule("test-no-vpcs", "test rule",
                              lambda resource_type, props, ctx: ["VPCs are forbidden"],
                              ("aws:ec2/vpc:Vpc",)))
'''


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("ENV_SUFFIX", "PRIMARY_REGION", "SECONDARY_REGION", "PLAN_ARGS", "VENV")}
    return subprocess.run([str(SCRIPT), "--layers", "network", "--out-dir", str(tmp_path / "out"),
                           *args], env={**base, **env}, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)


def test_a_clean_plan_exits_0(tmp_path):
    result = run(tmp_path, ENV_SUFFIX="ci1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("PLAN OK")


def test_a_policy_violation_exits_1(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FORBID_VPCS)
    result = run(tmp_path, ENV_SUFFIX="ci1", PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{REPO}")
    assert result.returncode == 1, result.stderr
    assert "[VIOLATION] test-no-vpcs" in result.stdout


@pytest.mark.parametrize("env", [
    {"ENV_SUFFIX": "Bad_Suffix"},
    {"ENV_SUFFIX": "ci1\n"},  # not stripped: refused like any other bad suffix
    {"ENV_SUFFIX": "ci1", "PRIMARY_REGION": "mars-1"},
    {"ENV_SUFFIX": "ci1", "PLAN_ARGS": "--config 'unterminated"},
    {"ENV_SUFFIX": "ci1", "PLAN_ARGS": "--no-such-option"},
])
def test_invalid_configuration_or_arguments_exit_2(tmp_path, env):
    result = run(tmp_path, **env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip()


def test_plan_args_reach_the_plan_as_options(tmp_path):
    result = run(tmp_path, ENV_SUFFIX="ci1", PLAN_ARGS="--config 'network/subnetsPerRegion=3'")
    assert result.returncode == 0, result.stderr
    plan = json.loads((tmp_path / "out" / "plan-ci1.json").read_text())
    resources = plan["layers"]["network"]["resources"]
    assert [r["type"] for r in resources].count("aws:ec2/subnet:Subnet") == 6  # 3 per region


def test_a_layer_that_cannot_be_synthesized_exits_3(tmp_path):
    result = run(tmp_path, "--layers", "no-such-layer", ENV_SUFFIX="ci1")
    assert result.returncode == 3, result.stderr


def test_a_missing_virtualenv_exits_4_with_what_to_run(tmp_path):
    result = run(tmp_path, ENV_SUFFIX="ci1", VENV=str(tmp_path / "no-venv"))
    assert result.returncode == 4
    assert "run `make install` first" in result.stderr


def test_make_plan_reports_the_code_but_exits_2_itself(tmp_path):
    # Why CI runs scripts/plan: make turns the plan's 3 into its own 2.
    base = {k: v for k, v in os.environ.items() if k not in ("PLAN_ARGS", "VENV")}
    result = subprocess.run(["make", "-s", "-C", str(REPO), "-o", ".venv/.installed", "plan",
                             "ENV_SUFFIX=ci1", "PLAN_ARGS=--layers no-such-layer"],
                            env=base, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Error 3" in result.stderr
