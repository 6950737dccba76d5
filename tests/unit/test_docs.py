"""README.md and RUNBOOK.md say what the code does: config keys and defaults, the layer
contract, make targets, the master-secret example and the failover timings."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from shared.config import (
    DEFAULT_PRIMARY_REGION,
    DEFAULT_SECONDARY_REGION,
    DictSource,
    load_failover_settings,
)
from shared.contract import EXPORTS, LAYERS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
RUNBOOK = (REPO / "RUNBOOK.md").read_text()
COMMON_TABLE = "**Every layer**"


@contextmanager
def layer_modules(layer: str):
    """Import a layer's own modules by plain name, as its program does, then forget them."""
    before = set(sys.modules)
    sys.path.insert(0, str(REPO / "stacks" / layer))
    try:
        yield importlib.import_module
    finally:
        sys.path.pop(0)
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if module_file.startswith(str(REPO / "stacks")):
                del sys.modules[name]


def declared_config(layer: str) -> dict:
    return yaml.safe_load((REPO / "stacks" / layer / "Pulumi.yaml").read_text())["config"]


def readme_table(heading: str) -> dict[str, tuple[str, str]]:
    """{key: (type, default cell)} of the README table that follows ``heading``."""
    start = README.index(heading)
    rows: dict[str, tuple[str, str]] = {}
    for line in README[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        match = re.match(r"\| `([^`]+)` \| (\w+) \| ([^|]+) \|", line)
        if match:
            rows[match[1]] = (match[2], match[3].strip())
    return rows


def default_cell(default: object) -> str:
    """How the README writes a Pulumi.yaml default."""
    if default == "":
        return "*(derived, see description)*"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


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


@pytest.mark.parametrize("layer", LAYERS)
def test_the_layer_config_tables_give_the_declared_type_and_default(layer):
    table = readme_table(f"**{layer}** (`stacks/{layer}`")
    common = set(readme_table(COMMON_TABLE))
    expected = {key: (decl["type"], default_cell(decl["default"]))
                for key, decl in declared_config(layer).items() if key not in common}
    assert table == expected


def test_the_common_config_table_matches_every_layer():
    table = readme_table(COMMON_TABLE)
    assert table.pop("aws:region") == ("string", f"`{DEFAULT_PRIMARY_REGION}`")
    for layer in LAYERS:
        declared = declared_config(layer)
        for key, (kind, default) in table.items():
            assert key in declared, f"{layer} does not declare common key {key}"
            assert (declared[key]["type"], default_cell(declared[key]["default"])) == (kind, default)


def test_every_make_target_the_docs_show_exists():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, flags=re.MULTILINE))
    targets |= {f"{prefix}-{layer}" for prefix in ("up", "destroy", "preview") for layer in LAYERS}
    # Placeholders such as `make up-<layer>` are covered by the per-layer targets above.
    shown = set(re.findall(r"`make ([a-z][\w-]*\w)(?=[\s`])", README))
    assert {"install", "test", "deploy", "destroy", "outputs", "plan", "rehearse"} <= shown
    assert shown - targets == set()
    in_runbook = set(re.findall(r"`make ([a-z][\w-]*\w)(?=[\s`])", RUNBOOK))
    assert in_runbook and in_runbook - targets == set()


def test_make_commands_that_need_a_suffix_show_one():
    # Commands, not mentions in prose: a line of a code block, or inline code with arguments.
    target = r"make (?:deploy|destroy|outputs|plan|rehearse|preview|(?:up|preview|destroy)-[a-z-]+)\b"
    commands = re.findall(rf"^\s*({target}.*)$", "\n".join(
        block for doc in (README, RUNBOOK) for block in re.findall(r"```bash\n(.*?)```", doc, re.S)
    ), flags=re.MULTILINE)
    commands += re.findall(rf"`({target}\s[^`]+)`", README)
    commands += re.findall(rf"`({target}[^`]*)`", RUNBOOK)  # the runbook names no target in prose
    assert len(commands) > 10
    for command in commands:
        assert "ENV_SUFFIX=" in command, f"`{command}` lacks ENV_SUFFIX"


def test_the_master_secret_example_yields_a_secret_the_primary_layer_accepts():
    command = re.search(r'--secret-string ("(?:[^"\\]|\\.)*")\n', README)
    assert command, "README lacks the create-secret example"
    with layer_modules("primary-db") as load:
        parse_secret = load("credentials").parse_secret
        for _ in range(20):  # the password is random: try several
            value = subprocess.run(["bash", "-c", f"printf %s {command[1]}"], capture_output=True,
                                   text=True, check=True).stdout
            username, password = parse_secret("rds-master-pr123", value)
            assert username and 8 <= len(password) <= 128


def test_the_master_secret_example_replicates_it_to_the_default_secondary_region():
    example = re.search(r"aws secretsmanager create-secret (.*?)--secret-string", README, re.S)
    assert example, "README lacks the create-secret example"
    words = example[1].replace("\\\n", " ").split()
    assert words[words.index("--region") + 1] == DEFAULT_PRIMARY_REGION
    assert words[words.index("--add-replica-regions") + 1] == f"Region={DEFAULT_SECONDARY_REGION}"


def test_every_outage_day_step_names_the_api_and_region_it_needs():
    section = RUNBOOK.split("### 2.6 Outage day", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [int(row.split("|")[1]) for row in rows] == list(range(1, len(rows) + 1))
    assert len(rows) >= 8
    for row in rows:
        needs = row.rstrip(" |").rsplit("|", 1)[1]
        assert re.search(r"\$S|\$P|us-east-1|state backend|local|none", needs), row


def test_the_runbook_timings_are_the_code_defaults():
    settings = load_failover_settings(DictSource({"environmentSuffix": "docs"}))
    instance, region = settings.instance_failure_worst_case_seconds, settings.region_outage_worst_case_seconds
    assert f"`instanceFailureWorstCaseSeconds` ({instance} s)" in RUNBOOK
    assert f"`regionOutageWorstCaseSeconds` ({region} s)" in RUNBOOK
    assert f"(M = {settings.alarm_datapoints}) of (N = {settings.alarm_periods})" in RUNBOOK
    assert f"`recoveryGraceMinutes` ({settings.recovery_grace_minutes})" in RUNBOOK
    # Each step of each path, with its worst case, as the code computes it.
    for path in (settings.instance_failure_path, settings.region_outage_path):
        for step in path:
            assert f"| {step.step} |".lower() in RUNBOOK.lower(), step.step
    call = settings.promoter_call_seconds
    assert f"60 s + {call} s" in RUNBOOK
    with layer_modules("dns-failover") as load:
        datapoints, periods = load("automated_promotion").stuck_alarm_window(settings)
    assert f"in {datapoints} of the last {periods} minutes" in RUNBOOK


def test_the_runbook_lists_every_promoter_action_and_what_the_layer_counts_as_stuck():
    with layer_modules("dns-failover") as load:
        stuck = load("automated_promotion").STUCK_ACTIONS
    from tests.support.lambdas import load_lambda

    actions = load_lambda("promoter").decision_rules.ACTIONS
    table = RUNBOOK.split("| Decision (`action`) |", 1)[1].split("\n\n", 1)[0]
    for action in actions:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{action}`"))
        assert row.rstrip(" |").endswith("yes" if action in stuck else "no"), row


def test_the_policy_readme_lists_every_rule_and_the_required_tags():
    from policy.rules import REQUIRED_TAG_KEYS, RULES, STACK_RULES

    doc = (REPO / "policy" / "README.md").read_text()
    rules_section = doc.split("## Rules", 1)[1].split("## Waivers", 1)[0]
    listed = dict(re.findall(r"^\| `([a-z0-9-]+)`( \(stack\))? \|", rules_section, flags=re.MULTILINE))
    assert {rule.id: "" for rule in RULES} | {rule.id: " (stack)" for rule in STACK_RULES} == listed
    tags_row = next(line for line in rules_section.splitlines() if line.startswith("| `tags-required`"))
    assert all(f"`{key}`" in tags_row for key in REQUIRED_TAG_KEYS)
