"""``make plan``: synthesize all four layers offline and check every rule on them.

    python -m offline.plan --suffix demo [--primary-region eu-west-1]
                           [--secondary-region ap-southeast-2] [--config key=value ...]

No AWS credentials and no Pulumi CLI: ``offline.harness.run_all`` runs each
layer's real program under the Pulumi mock runtime, in dependency order, each
layer reading the outputs the previous ones exported. The plan then

- prints per layer the resource counts by type, the settings that matter
  (engine, instance class, Multi-AZ, encryption, regions...), the exported
  outputs (secrets masked) and, for the failover layer, the worst case of each failure
  path, step by step;
- writes every resource (type, name, region, provider, inputs with secrets
  masked) to ``plan-out/plan-<suffix>.json``;
- evaluates every policy rule of ``policy.rules`` (the ones the CrossGuard
  pack enforces) and prints violations and waivers;
- with ``--config`` overrides, also synthesizes the baseline (same suffix, regions
  and layers, without the overrides) and reports per layer which resources the
  overrides create, delete or change, with type, logical name and region
  (``offline.changes``), in the summary and under ``changesAgainstBaseline`` in
  the JSON: ``--config secondary-db/replicaPromoted=true`` shows what converging
  the layers after a failover touches, and that none of it is in the primary region.

Exit status: 0 when every rule passes (waivers allowed), 1 on any violation
or an export that breaks the layer contract, 2 on invalid configuration (the
message names the key), 3 when a layer cannot be synthesized.

Options may also come from the PLAN_ARGS environment variable (how ``make plan``
passes them): it is split like shell words (``shlex``), never run by a shell, and
its options follow the command line's.

``--config`` applies to every layer whose Pulumi.yaml declares the key;
``--config <layer>/<key>=<value>`` (for example ``primary-db/multiAz=false``) to
one layer only, since the database layers share key names with different
defaults. A key no layer declares is refused (exit 2), like the rules between
layers (regions, organization, the replica's storage ceiling), before any
layer is synthesized.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import textwrap
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline.changes import MARKS, ResourceChange, diff_runs, regions_touched
from offline.harness import (
    CREATED,
    DELETED,
    REPO_ROOT,
    UPDATED,
    LayerRun,
    ResourceRecord,
    SyntheticBackend,
    layer_configs,
    layer_dir,
    run_all,
)
from policy import rules
from policy.props import is_secret_wrapper, to_plain
from shared import config as cfg
from shared.contract import EXPORTS, LAYERS, FailoverOutputs, PrimaryDbOutputs, SecondaryDbOutputs

DEFAULT_OUT_DIR = REPO_ROOT / "plan-out"
MASK = "[secret]"
# Input names whose values are credentials wherever they appear.
_SECRET_KEY = re.compile(r"(?i)(password|secretstring|secretbinary|privatekey|authtoken)")

EXIT_OK, EXIT_VIOLATIONS, EXIT_CONFIG, EXIT_SYNTHESIS = 0, 1, 2, 3


class PlanError(RuntimeError):
    """A layer could not be synthesized (missing program, program failure)."""


@dataclass
class Plan:
    suffix: str
    stack: str
    regions: tuple[str, str]
    config: dict[str, Any]
    layer_config: dict[str, dict[str, Any]]
    runs: dict[str, LayerRun]
    report: rules.Report
    contract_problems: list[str]
    secrets: frozenset[str]
    # With a baseline: its config, and per layer what this plan changes against it.
    baseline_config: dict[str, Any] | None = None
    changes: dict[str, list[ResourceChange]] | None = None

    @property
    def ok(self) -> bool:
        return not self.report.violations and not self.contract_problems


# --------------------------------------------------------------------------- configuration


def parse_overrides(pairs: Sequence[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``key=value`` (every layer) and ``layer/key=value`` (one layer) pairs."""
    common: dict[str, str] = {}
    per_layer: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise cfg.ConfigError(pair, "a --config override must look like key=value")
        layer, slash, name = key.partition("/")
        if slash:
            if layer not in LAYERS:
                raise cfg.ConfigError(key, f"names no layer; layers are {', '.join(LAYERS)}")
            per_layer.setdefault(layer, {})[name] = value
        else:
            common[key] = value
    return common, per_layer


def base_config(suffix: str | None, primary: str | None, secondary: str | None,
                overrides: Mapping[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if suffix:
        config["environmentSuffix"] = suffix
    if primary:
        config["aws:region"] = primary
    if secondary:
        config["secondaryRegion"] = secondary
    config.update(overrides)
    return config


def validate_config(config: Mapping[str, Any], layer_config: Mapping[str, Mapping[str, Any]],
                    stack: str, layers: Sequence[str]) -> cfg.CommonSettings:
    """Check the whole config before anything runs, so bad config stops the plan first.

    Every key must be one a layer declares, every layer's loader must accept its values,
    and the rules between layers must hold: here each layer's upstream config is known,
    whereas a deployment finds a disagreement only when a layer reads its upstream's outputs.
    """
    configs = layer_configs(config, layer_config, layers)
    settings = {layer: cfg.LOADERS[layer](cfg.DictSource(configs[layer], stack=stack))
                for layer in layers}
    cfg.validate_across_layers(settings)
    return settings[layers[0]].common


# --------------------------------------------------------------------------- evaluation


def record_context(record: ResourceRecord, common: cfg.CommonSettings) -> rules.Context:
    region = record.target_region
    aws_resource = record.custom and record.type.startswith("aws:")
    return rules.Context(
        suffix=common.environment_suffix,
        regions=(common.primary_region, common.secondary_region),
        region=region,
        tags=record.effective_tags if aws_resource else None,
        name=record.name,
        provider=_provider_name(record.provider_urn),
        explicit_provider=(record.provider_urn is not None) if aws_resource else None,
    )


def evaluate(runs: Mapping[str, LayerRun], common: cfg.CommonSettings) -> rules.Report:
    """Every resource rule on every resource, and the stack rules once per layer (stack)."""
    report = rules.Report()
    stack_ctx = rules.Context(suffix=common.environment_suffix,
                              regions=(common.primary_region, common.secondary_region))
    for run in runs.values():
        for record in run.resources:
            report.findings += rules.evaluate_resource(
                record.type, to_plain(record.inputs), record_context(record, common), urn=record.urn
            )
        report.findings += rules.evaluate_stack(stack_resources(run), stack_ctx)
    return report


def stack_resources(run: LayerRun) -> list[rules.StackResource]:
    return [
        rules.StackResource(
            type=r.type, name=r.name, props=to_plain(r.inputs), urn=r.urn,
            region=r.target_region,
            protect=r.protect, retain_on_delete=r.retain_on_delete,
        )
        for r in run.resources
    ]


def contract_problems(runs: Mapping[str, LayerRun]) -> list[str]:
    problems = []
    for layer, run in runs.items():
        expected, actual = set(EXPORTS[layer]), set(run.exports)
        if expected - actual:
            problems.append(f"{layer} does not export {', '.join(sorted(expected - actual))}")
        if actual - expected:
            problems.append(f"{layer} exports {', '.join(sorted(actual - expected))}, which "
                            "shared/contract.py does not list")
    return problems


# --------------------------------------------------------------------------- the plan


def build_plan(config: Mapping[str, Any], *, stack: str | None = None,
               layer_config: Mapping[str, Mapping[str, Any]] | None = None,
               layers: Sequence[str] = LAYERS,
               baseline: Mapping[str, Any] | None = None) -> Plan:
    """Validate the config, synthesize the layers and evaluate the rules.

    ``baseline`` (config for every layer, no per-layer config) is synthesized too, with the
    same stack and layers, and ``Plan.changes`` says what this plan changes against it.
    Raises ``ConfigError`` for invalid config and ``PlanError`` when a layer's
    program is missing or fails.
    """
    layer_config = {k: dict(v) for k, v in (layer_config or {}).items()}
    # One stack name per environment in every layer (FIELD-NOTES 20): the suffix.
    stack = stack or str(config.get("environmentSuffix") or "dev")
    common = validate_config(config, layer_config, stack, layers)
    if baseline is not None:
        validate_config(baseline, {}, stack, layers)
    for layer in layers:
        if not (layer_dir(layer) / "__main__.py").exists():
            raise PlanError(f"layer {layer} has no program ({layer_dir(layer) / '__main__.py'})")
    runs, secrets = _synthesize(config, layer_config, stack, layers)
    plan = Plan(
        suffix=common.environment_suffix, stack=stack,
        regions=(common.primary_region, common.secondary_region),
        config=dict(config), layer_config=layer_config, runs=runs,
        report=evaluate(runs, common), contract_problems=contract_problems(runs),
        secrets=secrets | frozenset(_secret_export_values(runs)),
    )
    if baseline is not None:
        baseline_runs, baseline_secrets = _synthesize(baseline, {}, stack, layers)
        plan.baseline_config = dict(baseline)
        plan.changes = diff_runs(baseline_runs, runs)
        plan.secrets |= baseline_secrets | frozenset(_secret_export_values(baseline_runs))
    return plan


def _synthesize(config: Mapping[str, Any], layer_config: Mapping[str, Mapping[str, Any]],
                stack: str, layers: Sequence[str]) -> tuple[dict[str, LayerRun], frozenset[str]]:
    """The layers' runs on a fresh synthetic backend, and the secret values it handed out."""
    backend = SyntheticBackend()
    try:
        runs = run_all(dict(config), stack=stack, layer_config=layer_config, backend=backend,
                       layers=layers)
    except cfg.ConfigError:
        raise
    except Exception as exc:
        raise PlanError(f"a layer program failed: {exc}\n{traceback.format_exc()}") from exc
    return runs, frozenset(v for v in backend.master_secret.values() if v)


def _secret_export_values(runs: Mapping[str, LayerRun]) -> list[str]:
    return [str(run.exports[k]) for run in runs.values() for k in run.secret_exports
            if run.exports.get(k)]


# --------------------------------------------------------------------------- output


def _provider_name(urn: str | None) -> str | None:
    return urn.rsplit("::", 1)[-1] if urn else None


def mask(value: Any, secrets: frozenset[str], key: str = "") -> Any:
    """``value`` with credentials replaced: secret-marked values, values under credential
    input names, and any known secret value wherever it appears."""
    if is_secret_wrapper(value):
        return MASK
    if isinstance(value, Mapping):
        return {k: mask(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v, secrets, key) for v in value]
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key):
            return MASK
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, MASK)
    return value


def plan_json(plan: Plan) -> dict[str, Any]:
    layers = {}
    for layer, run in plan.runs.items():
        layers[layer] = {
            "project": run.project,
            "stack": run.stack,
            "exports": {k: (MASK if k in run.secret_exports else mask(v, plan.secrets))
                        for k, v in sorted(run.exports.items())},
            "resources": [
                {
                    "type": r.type, "name": r.name, "urn": r.urn,
                    "region": r.target_region,
                    "provider": _provider_name(r.provider_urn),
                    "parent": r.parent_urn,
                    "custom": r.custom,
                    "protect": r.protect, "retainOnDelete": r.retain_on_delete,
                    "inputs": mask(r.inputs, plan.secrets),
                }
                for r in run.resources
            ],
        }
    return {
        "environmentSuffix": plan.suffix,
        "stack": plan.stack,
        "primaryRegion": plan.regions[0],
        "secondaryRegion": plan.regions[1],
        "config": mask(plan.config, plan.secrets),
        "layerConfig": mask(plan.layer_config, plan.secrets),
        "layers": layers,
        "violations": [_finding_json(f) for f in plan.report.violations],
        "waived": [_finding_json(f) for f in plan.report.waived],
        "contractProblems": plan.contract_problems,
        # What the --config overrides change against the same plan without them (null
        # when there are no overrides).
        "changesAgainstBaseline": _changes_json(plan),
        "applications": application_access(plan),
    }


def _finding_json(finding: rules.Finding) -> dict[str, Any]:
    return {"rule": finding.rule_id, "type": finding.resource_type, "name": finding.resource_name,
            "urn": finding.urn, "message": finding.message, "waiverReason": finding.waiver_reason}


def write_plan(plan: Plan, out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"plan-{plan.suffix}.json"
    path.write_text(json.dumps(plan_json(plan), indent=2, sort_keys=False, default=str) + "\n")
    return path


def _short(value: Any, width: int = 90) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt(v) for v in value)
    text = str(value)
    parts = text.split(":")
    if text.startswith("arn:") and len(parts) >= 6:
        # Service, region and resource say what matters; the account is the caller's.
        return f"{parts[2]}:{parts[3] or '-'}:{':'.join(parts[5:])}"
    return text


def _settings_line(record: ResourceRecord, region: str | None, fields: Sequence[tuple[str, str]]
                   ) -> str:
    parts = []
    for label, key in fields:
        value = record.inputs.get(key)
        if value not in (None, "", []):
            parts.append(f"{label}={_fmt(value)}")
    return f"{record.name} [{region or 'no region'}]: " + " ".join(parts)


# What the summary shows of each resource type that carries a key setting.
_KEY_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "aws:ec2/vpc:Vpc": (("cidr", "cidrBlock"),),
    "aws:rds/instance:Instance": (
        ("id", "identifier"), ("engine", "engine"), ("version", "engineVersion"),
        ("class", "instanceClass"), ("multiAz", "multiAz"), ("encrypted", "storageEncrypted"),
        ("kms", "kmsKeyId"), ("replicaOf", "replicateSourceDb"),
        ("storage", "allocatedStorage"), ("maxStorage", "maxAllocatedStorage"),
        ("backupDays", "backupRetentionPeriod"), ("paramGroup", "parameterGroupName"),
        ("iamAuth", "iamDatabaseAuthenticationEnabled"), ("monitoring", "monitoringInterval"),
        ("public", "publiclyAccessible"), ("deletionProtection", "deletionProtection"),
        ("skipFinalSnapshot", "skipFinalSnapshot"),
    ),
    "aws:rds/parameterGroup:ParameterGroup": (("name", "name"), ("family", "family")),
    "aws:kms/key:Key": (("rotation", "enableKeyRotation"), ("deletionWindow", "deletionWindowInDays")),
    "aws:sns/topic:Topic": (("name", "name"), ("kms", "kmsMasterKeyId")),
    "aws:cloudwatch/logGroup:LogGroup": (("name", "name"), ("retentionDays", "retentionInDays")),
    "aws:lambda/function:Function": (("name", "name"), ("runtime", "runtime"),
                                      ("timeout", "timeout"), ("memory", "memorySize")),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        ("name", "name"), ("metric", "metricName"), ("period", "period"),
        ("datapoints", "datapointsToAlarm"), ("of", "evaluationPeriods"),
        ("missing", "treatMissingData"),
    ),
    "aws:route53/zone:Zone": (("name", "name"),),
    "aws:route53/healthCheck:HealthCheck": (
        ("type", "type"), ("alarm", "cloudwatchAlarmName"), ("alarmRegion", "cloudwatchAlarmRegion"),
        ("insufficientData", "insufficientDataHealthStatus"),
    ),
    "aws:route53/record:Record": (("name", "name"), ("type", "type"), ("ttl", "ttl"),
                                  ("setId", "setIdentifier")),
}


def render(plan: Plan, plan_path: Path | None = None, elapsed: float | None = None) -> str:
    lines = [
        f"offline plan: suffix {plan.suffix}, stack {plan.stack}, primary {plan.regions[0]}, "
        f"secondary {plan.regions[1]}",
    ]
    for layer, run in plan.runs.items():
        custom = [r for r in run.resources if r.custom and not r.type.startswith("pulumi:")]
        lines += ["", f"== {layer} ({run.project}, stack {run.stack}): {len(custom)} resources =="]
        for type_, count in sorted(Counter(r.type for r in custom).items()):
            lines.append(f"  {count:3d}  {type_}")
        by_region = Counter(r.target_region or "no provider region" for r in custom)
        lines.append("  by region: " + ", ".join(f"{k} {v}" for k, v in sorted(by_region.items())))
        settings = [
            _settings_line(r, r.target_region, _KEY_SETTINGS[r.type])
            for r in custom if r.type in _KEY_SETTINGS
        ]
        if settings:
            lines.append("  key settings:")
            for line in sorted(settings):
                lines += textwrap.wrap(line, width=110, initial_indent="    ",
                                       subsequent_indent="        ", break_long_words=False,
                                       break_on_hyphens=False)
        lines.append("  outputs:")
        for key, value in sorted(run.exports.items()):
            shown = MASK if key in run.secret_exports else mask(value, plan.secrets)
            lines.append(f"    {key} = {_short(shown)}")
        if layer == "dns-failover":
            lines += _timing_lines(plan, run)
    if plan.changes is not None:
        lines += ["", *_change_lines(plan)]
    lines += _application_lines(plan)
    lines.append("")
    if plan.contract_problems:
        lines.append("output contract (shared/contract.py):")
        lines += [f"  [VIOLATION] {p}" for p in plan.contract_problems]
    lines.append(f"policy: {len(rules.RULES)} resource rules, {len(rules.STACK_RULES)} stack rules; "
                 f"{len(plan.report.violations)} violation(s), {len(plan.report.waived)} waived")
    lines += [f"  {f}" for f in plan.report.violations]
    for (rule_id, reason), findings in _group_waived(plan.report.waived).items():
        names = ", ".join(sorted({f.resource_name for f in findings}))
        lines += textwrap.wrap(f"[WAIVED] {rule_id} on {names}: {reason}", width=110,
                               initial_indent="  ", subsequent_indent="      ",
                               break_long_words=False, break_on_hyphens=False)
    if plan_path:
        lines.append(f"plan written to {_display(plan_path)}")
    if elapsed is not None:
        lines.append(f"synthesized and checked in {elapsed:.1f} s")
    lines.append("PLAN OK" if plan.ok else "PLAN FAILED")
    return "\n".join(lines)


def _change_lines(plan: Plan) -> list[str]:
    """What the --config overrides change against the baseline, layer by layer."""
    changes = plan.changes or {}
    lines = ["changes against the baseline (same suffix, regions and layers, without the "
             "--config overrides):"]
    for layer, layer_changes in changes.items():
        counts = Counter(c.action for c in layer_changes)
        summary = ", ".join(f"{counts[action]} {verb}" for action, verb in (
            (CREATED, "to create"), (UPDATED, "to change"), (DELETED, "to delete")) if counts[action])
        lines.append(f"  {layer}: {summary or 'no changes'}")
        for change in layer_changes:
            api = (f"; API in {change.api_region}" if change.api_region != change.region else "")
            lines.append(f"    {MARKS[change.action]} {change.type} {change.name} "
                         f"[{change.region or 'no region'}{api}]")
            for key, (was, now) in sorted(change.properties.items()):
                was, now = (_shown(mask(v, plan.secrets, key)) for v in (was, now))
                if len(was) + len(now) <= 80:
                    lines.append(f"        {key}: {was} -> {now}")
                else:
                    lines += [f"        {key}:", f"          was {was}", f"          now {now}"]
    touched = regions_touched(changes)
    primary = plan.regions[0]
    lines.append("  by region: " + (", ".join(f"{region or 'no region'} {count}" for region, count
                                              in sorted(touched.items(), key=lambda i: str(i[0])))
                                    or "nothing changes"))
    lines.append(f"  primary region {primary}: "
                 + (f"{touched[primary]} change(s)" if primary in touched else "untouched"))
    global_changes = [c for layer_changes in changes.values() for c in layer_changes
                      if c.global_control_plane]
    if global_changes:
        services = sorted({str(c.global_control_plane) for c in global_changes})
        homes = " and ".join(sorted({str(c.api_region) for c in global_changes}))
        lines.append(f"  global control planes (served from {homes} only): {len(global_changes)} "
                     f"change(s) through {', '.join(services)}; they wait while {homes} is down "
                     "(make converge then exits 3)")
    return lines


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _short(value, 100)


def _changes_json(plan: Plan) -> dict[str, Any] | None:
    if plan.changes is None:
        return None
    return {
        "baselineConfig": mask(plan.baseline_config, plan.secrets),
        "layers": {
            layer: [
                {"action": c.action, "type": c.type, "name": c.name, "urn": c.urn,
                 "region": c.region, "apiRegion": c.api_region,
                 "globalControlPlane": c.global_control_plane,
                 "properties": {key: {"before": mask(was, plan.secrets, key),
                                      "after": mask(now, plan.secrets, key)}
                                for key, (was, now) in sorted(c.properties.items())}}
                for c in layer_changes
            ]
            for layer, layer_changes in plan.changes.items()
        },
    }


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _group_waived(findings: Sequence[rules.Finding]) -> dict[tuple[str, str], list[rules.Finding]]:
    grouped: dict[tuple[str, str], list[rules.Finding]] = {}
    for finding in findings:
        grouped.setdefault((finding.rule_id, finding.waiver_reason or ""), []).append(finding)
    return grouped


def application_access(plan: Plan) -> dict[str, Any]:
    """What applications in each region read, from the layers' own exports: the master
    secret's ARN per region (primary-db, and its Secrets Manager replica from secondary-db),
    and the IAM policy granting rds-db:connect on both instances (dns-failover)."""
    exports = {key: value for run in plan.runs.values() for key, value in run.exports.items()}
    primary, secondary = plan.regions
    secrets = {region: exports[key] for region, key in (
        (primary, PrimaryDbOutputs.MASTER_SECRET_ARN),
        (secondary, SecondaryDbOutputs.MASTER_SECRET_ARN)) if key in exports}
    return {"masterSecretArnByRegion": secrets,
            "databaseConnectPolicyArn": exports.get(FailoverOutputs.DATABASE_CONNECT_POLICY_ARN)}


def _application_lines(plan: Plan) -> list[str]:
    access = application_access(plan)
    secrets, policy = access["masterSecretArnByRegion"], access["databaseConnectPolicyArn"]
    if not secrets and not policy:
        return []
    lines = ["", "applications (README, How applications connect):"]
    for region, arn in secrets.items():
        role = ("the Secrets Manager replica, the only copy while the primary region is down"
                if region == plan.regions[1] else "the master secret")
        lines.append(f"  credentials in {region}: {arn} ({role})")
    if policy:
        lines.append(f"  IAM database authentication: attach {policy} (rds-db:connect on both "
                     "instances; sign tokens for the instance endpoint and its region)")
    return lines


def _timing_lines(plan: Plan, run: LayerRun) -> list[str]:
    """Each failure path's worst case, step by step (the RUNBOOK's timing tables)."""
    config = {**plan.config, **plan.layer_config.get("dns-failover", {})}
    settings = cfg.load_failover_settings(cfg.DictSource(config, stack=plan.stack))
    lines = [
        "  failover timing (worst case until the promoter calls PromoteReadReplica):",
        f"    canary alarm {settings.alarm_datapoints} of {settings.alarm_periods} one-minute periods, "
        f"automation {settings.automation_mode}; promotion itself takes minutes on top (RUNBOOK.md)",
    ]
    for title, path, output in (
        ("instance failure, region reachable", settings.instance_failure_path,
         FailoverOutputs.INSTANCE_FAILURE_WORST_CASE_SECONDS),
        ("whole-region outage", settings.region_outage_path,
         FailoverOutputs.REGION_OUTAGE_WORST_CASE_SECONDS),
    ):
        total = sum(step.seconds for step in path)
        lines.append(f"    {title}: {total} s (exported {output} = {run.exports.get(output)})")
        lines += [f"      {step.seconds:4d} s  {step.step}" for step in path]
    return lines


# --------------------------------------------------------------------------- command line


def _arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m offline.plan",
        description="Synthesize the four layers offline, print a summary, write the plan JSON "
                    "and check every policy rule.",
    )
    parser.add_argument("--suffix", default=os.environ.get("ENV_SUFFIX", ""),
                        help="environmentSuffix (default: $ENV_SUFFIX, else the stack name)")
    parser.add_argument("--stack", default="",
                        help="stack name in every layer (default: the suffix)")
    parser.add_argument("--primary-region", default=os.environ.get("PRIMARY_REGION", ""),
                        help="aws:region (default: $PRIMARY_REGION, else us-east-1)")
    parser.add_argument("--secondary-region", default=os.environ.get("SECONDARY_REGION", ""),
                        help="secondaryRegion (default: $SECONDARY_REGION, else us-west-2)")
    parser.add_argument("--config", action="append", default=[], metavar="[LAYER/]KEY=VALUE",
                        help="config override for every layer, or for one layer with LAYER/")
    parser.add_argument("--out-dir", default=str(DEFAULT_OUT_DIR),
                        help="where plan-<suffix>.json is written (default: plan-out/)")
    parser.add_argument("--layers", default=",".join(LAYERS),
                        help="comma-separated layers in dependency order (default: all four; "
                             "a prefix such as 'network' is for development only)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        try:
            argv = sys.argv[1:] + shlex.split(os.environ.get("PLAN_ARGS", ""))
        except ValueError as exc:
            print(f"invalid configuration: PLAN_ARGS: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    args = _arg_parser().parse_args(argv)
    started = time.monotonic()
    layers = [layer.strip() for layer in args.layers.split(",") if layer.strip()]
    unknown = [layer for layer in layers if layer not in LAYERS]
    if unknown or layers != [layer for layer in LAYERS if layer in layers]:
        print(f"--layers must list layers among {', '.join(LAYERS)} in that order", file=sys.stderr)
        return EXIT_SYNTHESIS
    try:
        # The raw values, as `make plan`'s preflight sees them: config loading strips
        # whitespace, which would otherwise let a suffix ending in a newline through here.
        for key, value, validate in (("environmentSuffix", args.suffix, cfg.validate_suffix),
                                     ("aws:region", args.primary_region, cfg.validate_region),
                                     ("secondaryRegion", args.secondary_region, cfg.validate_region)):
            if value:
                validate(key, value)
        overrides, per_layer = parse_overrides(args.config)
        # Not stripped: a stray space or newline is refused like any other bad value.
        config = base_config(args.suffix, args.primary_region, args.secondary_region, overrides)
        # Overrides are compared with the same plan without them.
        baseline = (base_config(args.suffix, args.primary_region, args.secondary_region, {})
                    if overrides or per_layer else None)
        plan = build_plan(config, stack=args.stack.strip() or None, layer_config=per_layer,
                          layers=layers, baseline=baseline)
    except cfg.ConfigError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PlanError as exc:
        print(f"cannot synthesize the plan: {exc}", file=sys.stderr)
        return EXIT_SYNTHESIS
    path = write_plan(plan, Path(args.out_dir))
    print(render(plan, path, time.monotonic() - started))
    return EXIT_OK if plan.ok else EXIT_VIOLATIONS


if __name__ == "__main__":
    sys.exit(main())
