"""The project's policy rules, as plain functions usable anywhere.

Each resource rule is ``check(resource_type, props, context) -> [message, ...]``
over the resource's inputs under their wire (camelCase) names: the shape of
CrossGuard's ``args.props`` and of the offline harness's ``ResourceRecord.inputs``.
Each stack rule is ``check(resources, context) -> [(resource, message), ...]``
over every resource of one stack (one layer), for properties that span
resources (a parameter group attached to an instance) or live in resource
options (``protect``). An empty list means "no violation".

Two callers use the same functions:

- ``policy/__main__.py`` wraps them in a CrossGuard policy pack, so
  ``pulumi preview --policy-pack policy`` enforces them on real deployments;
- ``offline/plan.py`` and the tests evaluate them over the plan of all four
  layers produced by ``offline.harness``.

Values that are unknown during preview are never violations (FIELD-NOTES 24):
rules read properties through ``policy.props.get`` and skip what they cannot
judge. Findings for which ``policy.waivers`` lists a waiver are reported as
WAIVED with the waiver's reason, never dropped.

This module must stay importable without starting the policy SDK's gRPC server
(FIELD-NOTES 23): it imports nothing from ``pulumi_policy``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import ipaddress
import json
import keyword
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy.props import UNKNOWN, as_list, contains_unknown, get, is_unknown, strings
from shared.tags import REQUIRED_TAG_KEYS

MANDATORY = "mandatory"
ADVISORY = "advisory"

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
KMS_KEY = "aws:kms/key:Key"
SNS_TOPIC = "aws:sns/topic:Topic"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LAMBDA_FUNCTION = "aws:lambda/function:Function"
IAM_ROLE = "aws:iam/role:Role"
IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_USER_POLICY = "aws:iam/userPolicy:UserPolicy"
IAM_GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
IAM_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
STACK = "pulumi:pulumi:Stack"
STACK_REFERENCE = "pulumi:pulumi:StackReference"

# Runtimes Lambda supports through late 2026 (AWS Lambda Developer Guide,
# "Lambda runtimes", projected deprecation dates): python3.12 until 2028-10-31,
# python3.13 and python3.14 until 2029-06-30. python3.9 was deprecated on
# 2025-12-15; python3.10/3.11 (Amazon Linux 2) reach deprecation on 2026-06-30,
# and nodejs20.x on 2026-04-30. Review this list against that page.
SUPPORTED_LAMBDA_RUNTIMES = ("python3.12", "python3.13", "python3.14", "nodejs22.x", "nodejs24.x")

# RDS certificate authorities that are current (RDS User Guide, "Using SSL/TLS
# to encrypt a connection to a DB instance"); rds-ca-2019 expired in 2024.
MODERN_RDS_CAS = ("rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1")

# Words the task forbids hard-coding into names (the environment is the suffix).
ENVIRONMENT_WORDS = ("dev", "prod", "stage", "staging", "production", "development")

# Properties that hold the resource's own physical name (not references to
# other resources' names). ``tags.Name`` is checked too.
PHYSICAL_NAME_KEYS = (
    "name", "namePrefix", "identifier", "identifierPrefix", "functionName", "roleName",
    "topicName", "dashboardName", "alarmName", "ruleName", "logGroupName",
    "finalSnapshotIdentifier", "referenceName",
)

# An AWS region code: partition prefix, optional qualifier (gov, iso, isob, the
# sovereign cloud's country), a direction and a number. Requiring a direction
# word keeps names like "db-canary-1" from looking like regions.
REGION_PATTERN = re.compile(
    r"(?<![a-z0-9])([a-z]{2,4}(?:-[a-z]{2,4})?-"
    r"(?:north|south|east|west|central|northeast|northwest|southeast|southwest)-\d{1,2})(?!\d)"
)
# CloudWatch namespaces whose metrics exist in one region only, whatever regions a
# deployment uses: Route 53 publishes health-check metrics in US East (N. Virginia)
# only (Route 53 Developer Guide, "Monitoring health checks using CloudWatch").
AWS_MANDATED_METRIC_REGIONS = {"AWS/Route53": "us-east-1"}
ACCOUNT_ID_PATTERN = re.compile(r"(?<!\d)\d{12}(?!\d)")
_SERVICE_WILDCARD = re.compile(r"^[A-Za-z0-9-]+:\*$")
# Managed policies that grant (nearly) everything.
_ADMIN_POLICY_SUFFIXES = (":policy/AdministratorAccess", ":policy/PowerUserAccess",
                          ":policy/IAMFullAccess")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Context:
    """What a rule may know beyond the resource's own properties.

    Every field may be ``None`` when the caller cannot tell (for example no
    configured regions in a unit test); rules that need it then stay silent.
    """

    suffix: str | None = None
    regions: tuple[str, ...] = ()  # the configured primary and secondary regions
    region: str | None = None  # the region the resource is created in
    tags: Mapping[str, Any] | None = None  # effective tags: provider defaults + resource tags
    name: str | None = None  # the logical (Pulumi) name
    provider: str | None = None  # the provider's logical name; None: no explicit provider known
    explicit_provider: bool | None = None  # False: the engine's default provider


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    check: Callable[[str, Mapping[str, Any], Context], list[str]]
    applies_to: tuple[str, ...] | None = None  # resource types; None: every type
    enforcement: str = MANDATORY
    reference: str = ""  # the baseline control or field note the rule implements

    def applies(self, resource_type: str) -> bool:
        return self.applies_to is None or resource_type in self.applies_to


@dataclass(frozen=True)
class StackResource:
    """One resource of a stack, for stack rules (options included)."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    region: str | None = None
    protect: bool | None = False
    retain_on_delete: bool | None = False  # None: not visible (CrossGuard does not pass it)

    @property
    def label(self) -> str:
        return self.urn or f"{self.type}::{self.name}"


@dataclass(frozen=True)
class StackRule:
    id: str
    description: str
    check: Callable[[Sequence[StackResource], Context], list[tuple[StackResource, str]]]
    enforcement: str = MANDATORY
    reference: str = ""


@dataclass(frozen=True)
class Finding:
    """One rule outcome on one resource: a violation or a waived violation."""

    rule_id: str
    resource_type: str
    resource_name: str
    message: str
    waiver_reason: str | None = None
    urn: str = ""

    @property
    def waived(self) -> bool:
        return self.waiver_reason is not None

    @property
    def status(self) -> str:
        return "WAIVED" if self.waived else "VIOLATION"

    def __str__(self) -> str:
        text = f"[{self.status}] {self.rule_id}: {self.resource_type} {self.resource_name}: {self.message}"
        if self.waived:
            text += f" -- waived: {self.waiver_reason}"
        return text


# --------------------------------------------------------------------------- helpers


def _known(value: Any) -> bool:
    return not is_unknown(value)


def _has_token(text: str, token: str) -> bool:
    """``token`` appears in ``text`` delimited by non-alphanumerics (or the ends)."""
    return re.search(rf"(?<![a-z0-9]){re.escape(token)}(?![a-z0-9])", text.lower()) is not None


def physical_names(props: Mapping[str, Any], resource_type: str = "") -> list[tuple[str, str]]:
    """(property, value) for every known physical name of the resource itself.

    Pulumi's own resources (the stack, stack references, providers) have no AWS
    name: a stack reference's ``name`` is ``org/project/stack``, set by Pulumi.
    """
    if resource_type.startswith("pulumi:"):
        return []
    names = []
    for key in PHYSICAL_NAME_KEYS:
        value = get(props, key)
        if isinstance(value, str) and value:
            names.append((key, value))
    tags = get(props, "tags")
    if isinstance(tags, Mapping):
        value = get(tags, "Name")
        if isinstance(value, str) and value:
            names.append(("tags.Name", value))
    return names


def _without_suffix(text: str, suffix: str | None) -> str:
    text = text.lower()
    if not suffix:
        return text
    return re.sub(rf"(?<![a-z0-9]){re.escape(suffix.lower())}(?![a-z0-9])", " ", text)


def regions_in(text: str) -> list[str]:
    return REGION_PATTERN.findall(text.lower())


def _arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn":
        return parts[3] or None
    return None


def _is_replica(props: Mapping[str, Any]) -> bool | None:
    source = get(props, "replicateSourceDb")
    if source is UNKNOWN:
        # The source's ARN is usually computed: during preview it is unknown but
        # present, which already says "this is a replica".
        return True
    return bool(source)


def _same_region_replica(props: Mapping[str, Any], ctx: Context) -> bool:
    source = get(props, "replicateSourceDb")
    if not isinstance(source, str):
        return False  # unknown at preview: judge it as cross-region, the stricter case
    own = get(props, "region")
    region = own if isinstance(own, str) else ctx.region
    # A source given by identifier rather than ARN is in the replica's own region.
    source_region = _arn_region(source) if source.startswith("arn:") else region
    return source_region is not None and source_region == region


@functools.cache
def is_taggable(resource_type: str) -> bool:
    """Whether the pulumi-aws resource accepts ``tags``.

    Decided by introspection instead of a hand-kept list: the type token
    ``aws:<module>/<resource>:<Class>`` maps to ``pulumi_aws.<module>.<Class>Args``
    (``index`` is the package root; a module named like a Python keyword gets a
    trailing underscore, as ``lambda`` -> ``pulumi_aws.lambda_``, the same rule
    pulumi-aws's generated module registry follows), and a resource is taggable
    when that class's constructor has a ``tags`` parameter.
    """
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "aws":
        return False
    module_part = parts[1].split("/")[0]
    if module_part == "index":
        module_name = "pulumi_aws"
    else:
        module_name = "pulumi_aws." + (module_part + "_" if keyword.iskeyword(module_part)
                                       else module_part)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    args_class = getattr(module, f"{parts[2]}Args", None)
    if args_class is None:
        return False
    return "tags" in inspect.signature(args_class.__init__).parameters


def _policy_documents(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(where, document) for each identity-based policy document of the resource."""
    docs: list[tuple[str, Any]] = []
    if resource_type == IAM_ROLE:
        for index, inline in enumerate(as_list(get(props, "inlinePolicies"))):
            if isinstance(inline, Mapping):
                docs.append((f"inlinePolicies[{index}]", get(inline, "policy")))
    elif resource_type in (IAM_ROLE_POLICY, IAM_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY):
        docs.append(("policy", get(props, "policy")))
    return docs


# --------------------------------------------------------------------------- naming rules


def check_physical_suffix(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    if not ctx.suffix:
        return []
    return [
        f"{key} {value!r} does not carry the environment suffix {ctx.suffix!r}"
        for key, value in physical_names(props, resource_type)
        if not _has_token(value, ctx.suffix)
    ]


def check_logical_suffix(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    # The stack's own name and a stack reference's name ("org/project/stack")
    # are dictated by Pulumi, not chosen by the program.
    if not ctx.suffix or not ctx.name or resource_type in (STACK, STACK_REFERENCE):
        return []
    if _has_token(ctx.name, ctx.suffix):
        return []
    return [f"logical name {ctx.name!r} does not carry the environment suffix {ctx.suffix!r} "
            "(auto-named resources take their physical name from it)"]


def check_no_hardcoded_values(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    messages = []
    for key, value in physical_names(props, resource_type):
        # The suffix may itself be an environment word ("dev"): judge the rest.
        text = _without_suffix(value, ctx.suffix)
        words = sorted({w for w in re.split(r"[^a-z0-9]+", text) if w in ENVIRONMENT_WORDS})
        if words:
            messages.append(f"{key} {value!r} hard-codes environment word(s) {', '.join(words)}")
        if ACCOUNT_ID_PATTERN.search(text):
            messages.append(f"{key} {value!r} hard-codes an AWS account ID")
        found = regions_in(text)
        if found:
            messages.append(f"{key} {value!r} hard-codes region(s) {', '.join(sorted(set(found)))}")
    return messages


def _dashboard_strings(body: Any) -> list[str]:
    """Strings of a dashboard body, minus the regions AWS dictates for a widget's metrics."""
    if not isinstance(body, str):
        return strings(body)
    try:
        document = json.loads(body)
    except ValueError:
        return [body]
    for widget in as_list(document.get("widgets") if isinstance(document, Mapping) else None):
        properties = widget.get("properties") if isinstance(widget, Mapping) else None
        if not isinstance(properties, Mapping):
            continue
        namespaces = {m[0] for m in as_list(properties.get("metrics"))
                      if isinstance(m, list) and m and isinstance(m[0], str)}
        mandated = {AWS_MANDATED_METRIC_REGIONS[ns] for ns in namespaces
                    if ns in AWS_MANDATED_METRIC_REGIONS}
        if len(namespaces) == 1 and properties.get("region") in mandated:
            properties = {k: v for k, v in properties.items() if k != "region"}
            widget["properties"] = properties
    return strings(document)


def check_configured_regions(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Regions may appear in properties (vpcRegion, cloudwatchAlarmRegion, ARNs,
    availability zones, dashboard widgets) only if they are the configured ones,
    or where AWS dictates the region (AWS_MANDATED_METRIC_REGIONS)."""
    if not ctx.regions:
        return []
    messages = []
    if ctx.region and ctx.region not in ctx.regions:
        messages.append(f"is created in {ctx.region}, not in a configured region "
                        f"({', '.join(ctx.regions)})")
    texts = strings({k: v for k, v in props.items() if k != "dashboardBody"})
    if "dashboardBody" in props:
        texts += _dashboard_strings(get(props, "dashboardBody"))
    # The operator chose the suffix; only the rest of a string can hard-code a region.
    foreign = sorted({r for text in texts for r in regions_in(_without_suffix(text, ctx.suffix))}
                     - set(ctx.regions))
    if foreign:
        messages.append(f"properties mention region(s) {', '.join(foreign)}, which are not the "
                        f"configured regions ({', '.join(ctx.regions)}): hard-coded?")
    return messages


def check_explicit_provider(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    if not resource_type.startswith("aws:") or ctx.explicit_provider is None:
        return []
    if ctx.explicit_provider:
        return []
    return ["uses the default AWS provider: pass an explicit regional provider so the region "
            "comes from configuration, not from the operator's environment"]


# --------------------------------------------------------------------------- RDS rules


def check_rds_encrypted(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    messages = []
    replica = _is_replica(props)
    key = get(props, "kmsKeyId")
    # A replica's encryption follows its source; the provider ignores
    # storageEncrypted there. In the source's region it also inherits the
    # source's key; in another region it needs kmsKeyId (FIELD-NOTES 6).
    if not replica:
        encrypted = get(props, "storageEncrypted", False)
        if _known(encrypted) and encrypted is not True:
            messages.append("storageEncrypted is not true")
    elif _same_region_replica(props, ctx):
        return messages
    if key is None:
        messages.append("kmsKeyId is not set: encrypt with a customer managed KMS key, not the "
                        "AWS managed aws/rds key")
    elif isinstance(key, str) and (key.endswith("alias/aws/rds") or ":alias/aws/" in key):
        messages.append(f"kmsKeyId {key!r} is the AWS managed key; use a customer managed key")
    return messages


def check_rds_not_public(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    public = get(props, "publiclyAccessible", False)
    return ["publiclyAccessible is true"] if _known(public) and public is True else []


def check_rds_iam_auth(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    enabled = get(props, "iamDatabaseAuthenticationEnabled", False)
    if _known(enabled) and enabled is not True:
        return ["iamDatabaseAuthenticationEnabled is not true"]
    return []


def check_rds_log_exports(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    exports = get(props, "enabledCloudwatchLogsExports", [])
    if not _known(exports) or contains_unknown(exports):
        return []
    missing = sorted({"postgresql", "upgrade"} - set(exports))
    return [f"enabledCloudwatchLogsExports lacks {', '.join(missing)}"] if missing else []


def check_rds_enhanced_monitoring(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    messages = []
    interval = get(props, "monitoringInterval", 0)
    if _known(interval) and not (isinstance(interval, (int, float)) and interval > 0):
        messages.append("monitoringInterval is 0: enhanced monitoring is off")
    if get(props, "monitoringRoleArn") is None:
        messages.append("monitoringRoleArn is not set")
    return messages


def check_rds_primary_backups(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    if _is_replica(props):
        # PostgreSQL read replicas have no automated backups (FIELD-NOTES 10).
        return []
    # CreateDBInstance's default BackupRetentionPeriod is 1 day.
    retention = get(props, "backupRetentionPeriod", 1)
    if _known(retention) and retention < 1:
        return ["backupRetentionPeriod is below 1 day: no automated backups, so no "
                "replica can be created from this instance (FIELD-NOTES 8)"]
    return []


def check_rds_backup_retention_week(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    if _is_replica(props):
        return []
    retention = get(props, "backupRetentionPeriod", 1)
    if _known(retention) and retention < 7:
        return [f"backupRetentionPeriod is {retention:g} days, below the 7 days of the baseline"]
    return []


def check_rds_skip_final_snapshot(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    skip = get(props, "skipFinalSnapshot", False)
    if _known(skip) and skip is not True:
        return ["skipFinalSnapshot is not true: destroy would leave (or, for a replica, fail "
                "on) a final snapshot"]
    return []


def check_rds_deletion_protection_baseline(resource_type: str, props: Mapping[str, Any],
                                           ctx: Context) -> list[str]:
    enabled = get(props, "deletionProtection", False)
    return ["deletionProtection is off"] if _known(enabled) and enabled is not True else []


def check_rds_replica_key_region(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    if not _is_replica(props):
        return []
    key = get(props, "kmsKeyId")
    if not isinstance(key, str):
        return []
    key_region = _arn_region(key)
    region = get(props, "region") if isinstance(get(props, "region"), str) else ctx.region
    if key_region and region and key_region != region:
        return [f"kmsKeyId is a key in {key_region} but the replica is in {region}: KMS keys "
                "are regional (FIELD-NOTES 6)"]
    return []


def check_rds_replica_no_credentials(resource_type: str, props: Mapping[str, Any],
                                     ctx: Context) -> list[str]:
    if not _is_replica(props):
        return []
    present = []
    for key in ("username", "password", "passwordWo", "dbName", "manageMasterUserPassword",
                "masterUserSecretKmsKeyId"):
        value = get(props, key)
        if value is not UNKNOWN and value not in (None, False, ""):
            present.append(key)
    if present:
        return [f"a replica inherits credentials and database from its source; remove "
                f"{', '.join(present)} (FIELD-NOTES 9)"]
    return []


def check_rds_copy_tags(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    copy = get(props, "copyTagsToSnapshot", False)
    return ["copyTagsToSnapshot is not true"] if _known(copy) and copy is not True else []


def check_rds_minor_upgrades(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    upgrade = get(props, "autoMinorVersionUpgrade", True)
    return ["autoMinorVersionUpgrade is false"] if _known(upgrade) and upgrade is not True else []


def check_rds_ca(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    ca = get(props, "caCertIdentifier")
    # Absent: RDS picks its current default CA for a new instance.
    if isinstance(ca, str) and ca not in MODERN_RDS_CAS:
        return [f"caCertIdentifier {ca!r} is not one of {', '.join(MODERN_RDS_CAS)}"]
    return []


def check_rds_multi_az(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    multi_az = get(props, "multiAz", False)
    return ["multiAz is not true"] if _known(multi_az) and multi_az is not True else []


# --------------------------------------------------------------------------- other services


def check_kms_rotation(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    # Rotation applies to symmetric encryption keys only.
    spec = get(props, "customerMasterKeySpec", "SYMMETRIC_DEFAULT")
    if _known(spec) and spec != "SYMMETRIC_DEFAULT":
        return []
    rotation = get(props, "enableKeyRotation", False)
    return ["enableKeyRotation is not true"] if _known(rotation) and rotation is not True else []


def check_sns_encrypted(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    key = get(props, "kmsMasterKeyId")
    if key is UNKNOWN:
        return []
    return [] if key else ["kmsMasterKeyId is not set: the topic is not encrypted at rest"]


def check_log_retention_set(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    days = get(props, "retentionInDays", 0)
    if _known(days) and not days:
        return ["retentionInDays is not set: the log group keeps events forever"]
    return []


def check_log_retention_year(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    days = get(props, "retentionInDays", 0)
    if _known(days) and days and days < 365:
        return [f"retentionInDays is {days:g}, below the 365 days of the baseline"]
    return []


def check_log_group_encrypted(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    # Without kmsKeyId CloudWatch Logs encrypts with a key AWS owns and no key policy of
    # ours governs who can read the data (CloudWatch Logs User Guide, "Encrypt log data in
    # CloudWatch Logs using AWS KMS"; Checkov CKV_AWS_158).
    key = get(props, "kmsKeyId")
    if key is UNKNOWN:
        return []
    return [] if key else ["kmsKeyId is not set: the log group is not encrypted with a KMS key "
                           "of this deployment"]


def _open_cidrs(values: Iterable[Any]) -> list[str]:
    out = []
    for value in values:
        if not isinstance(value, str):
            continue
        try:
            if ipaddress.ip_network(value, strict=False).prefixlen == 0:
                out.append(value)
        except ValueError:
            continue
    return out


def check_no_internet_ingress(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    found: list[str] = []
    if resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for rule in as_list(get(props, "ingress")):
            if isinstance(rule, Mapping):
                found += _open_cidrs(as_list(get(rule, "cidrBlocks")))
                found += _open_cidrs(as_list(get(rule, "ipv6CidrBlocks")))
    elif resource_type == SECURITY_GROUP_RULE:
        if get(props, "type") == "ingress":
            found += _open_cidrs(as_list(get(props, "cidrBlocks")))
            found += _open_cidrs(as_list(get(props, "ipv6CidrBlocks")))
    elif resource_type == SECURITY_GROUP_INGRESS_RULE:
        found += _open_cidrs([get(props, "cidrIpv4"), get(props, "cidrIpv6")])
    return [f"ingress from the whole internet ({cidr})" for cidr in found]


def _statement_problems(statement: Mapping[str, Any]) -> list[str]:
    if get(statement, "Effect") != "Allow":
        return []
    if "NotAction" in statement:
        return ["allows NotAction: everything except a list is effectively a wildcard"]
    actions = [a for a in as_list(get(statement, "Action")) if isinstance(a, str)]
    resources = [r for r in as_list(get(statement, "Resource")) if isinstance(r, str)]
    all_resources = "*" in resources or "NotResource" in statement
    problems = []
    if "*" in actions:
        problems.append('allows every action ("*")')
    wildcards = [a for a in actions if _SERVICE_WILDCARD.match(a)]
    if wildcards and all_resources:
        problems.append(f"allows service wildcard(s) {', '.join(wildcards)} on every resource")
    return problems


def check_iam_no_wildcards(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    # Identity-based policies only. KMS key policies, SNS topic policies and
    # role trust policies are resource-based: there "Resource": "*" means "this
    # key/topic" and is the documented form, so they are deliberately not read.
    messages = []
    if resource_type == IAM_ROLE_POLICY_ATTACHMENT:
        arn = get(props, "policyArn")
        if isinstance(arn, str) and arn.endswith(_ADMIN_POLICY_SUFFIXES):
            messages.append(f"attaches the broad managed policy {arn}")
        return messages
    if resource_type == IAM_ROLE:
        for arn in as_list(get(props, "managedPolicyArns")):
            if isinstance(arn, str) and arn.endswith(_ADMIN_POLICY_SUFFIXES):
                messages.append(f"attaches the broad managed policy {arn}")
    for where, document in _policy_documents(resource_type, props):
        if is_unknown(document):
            continue
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                messages.append(f"{where} is not valid JSON")
                continue
        if not isinstance(document, Mapping):
            continue
        for index, statement in enumerate(as_list(get(document, "Statement"))):
            if isinstance(statement, Mapping):
                sid = get(statement, "Sid")
                label = f"{where} statement {sid or index}"
                messages += [f"{label} {problem}" for problem in _statement_problems(statement)]
    return messages


def check_lambda_runtime(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    if get(props, "packageType", "Zip") == "Image":
        return []
    runtime = get(props, "runtime")
    if runtime is UNKNOWN:
        return []
    if runtime not in SUPPORTED_LAMBDA_RUNTIMES:
        return [f"runtime {runtime!r} is not a supported Lambda runtime "
                f"({', '.join(SUPPORTED_LAMBDA_RUNTIMES)})"]
    return []


def check_no_secret_created(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    return ["creates a Secrets Manager secret (or secret value): secrets must come from an "
            "existing Secrets Manager entry"]


def check_required_tags(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    if ctx.tags is None or not is_taggable(resource_type):
        return []
    missing = [key for key in REQUIRED_TAG_KEYS if key not in ctx.tags]
    empty = [key for key in REQUIRED_TAG_KEYS
             if key in ctx.tags and _known(ctx.tags[key]) and not str(ctx.tags[key]).strip()]
    messages = []
    if missing:
        messages.append(f"missing required tag(s) {', '.join(missing)} (effective tags: provider "
                        "default tags plus the resource's tags)")
    if empty:
        messages.append(f"empty required tag(s) {', '.join(empty)}")
    return messages


def check_destroyable(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    messages = []
    for key in ("deletionProtection", "deletionProtectionEnabled", "skipDestroy"):
        value = get(props, key, False)
        if _known(value) and value is True:
            messages.append(f"{key} is true: the resource would survive (or block) destroy")
    return messages


# --------------------------------------------------------------------------- stack rules


def check_force_ssl(resources: Sequence[StackResource], ctx: Context) -> list[tuple[StackResource, str]]:
    """Every instance is attached to a parameter group of this stack, in its own
    region, that sets rds.force_ssl=1 (FSBP RDS.38). A cross-region replica does
    not inherit the source's group (FIELD-NOTES 11)."""
    groups = [r for r in resources if r.type == RDS_PARAMETER_GROUP]
    if any(not isinstance(get(g.props, "name"), str) for g in groups):
        return []  # a group's name is not known yet (preview): cannot match
    found = []
    for instance in (r for r in resources if r.type == RDS_INSTANCE):
        attached = get(instance.props, "parameterGroupName")
        if attached is UNKNOWN:
            continue
        if attached is None:
            found.append((instance, "uses the engine's default parameter group, which does not "
                                    "force TLS; attach one with rds.force_ssl=1"))
            continue
        matches = [g for g in groups if get(g.props, "name") == attached
                   and (g.region is None or instance.region is None or g.region == instance.region)]
        if not matches:
            found.append((instance, f"parameter group {attached!r} is not a parameter group of "
                                    f"this stack in {instance.region or 'its region'}, so forced "
                                    "TLS cannot be shown"))
            continue
        params = as_list(get(matches[0].props, "parameters"))
        if contains_unknown(params):
            continue
        force = [p for p in params if isinstance(p, Mapping) and get(p, "name") == "rds.force_ssl"]
        if not force or str(get(force[0], "value")) != "1":
            found.append((instance, f"parameter group {attached!r} does not set rds.force_ssl=1"))
    return found


def check_no_protect(resources: Sequence[StackResource], ctx: Context) -> list[tuple[StackResource, str]]:
    found = []
    for resource in resources:
        if resource.protect is True:
            found.append((resource, "is protected (protect=True): destroy would fail"))
        if resource.retain_on_delete is True:
            found.append((resource, "has retainOnDelete: destroy would leave it behind"))
    return found


# --------------------------------------------------------------------------- registry

_IAM_TYPES = (IAM_ROLE, IAM_ROLE_POLICY, IAM_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY,
              IAM_ROLE_POLICY_ATTACHMENT)
_INGRESS_TYPES = (SECURITY_GROUP, DEFAULT_SECURITY_GROUP, SECURITY_GROUP_RULE,
                  SECURITY_GROUP_INGRESS_RULE)
_RDS = (RDS_INSTANCE,)

RULES: list[Rule] = [
    Rule("naming-physical-suffix", "Every physical name carries the environment suffix.",
         check_physical_suffix, reference="task: resource naming with environmentSuffix"),
    Rule("naming-logical-suffix", "Every logical name carries the environment suffix.",
         check_logical_suffix, reference="task: resource naming with environmentSuffix"),
    Rule("naming-no-hardcoded-values",
         "Physical names hard-code no environment word, account ID or region.",
         check_no_hardcoded_values, reference="task: hardcoded values forbidden"),
    Rule("region-configured-only",
         "Resources live in, and properties mention, only the two configured regions.",
         check_configured_regions, reference="task: no hard-coded regions"),
    Rule("provider-explicit", "Every AWS resource has an explicit regional provider.",
         check_explicit_provider, reference="shared/providers.py"),
    Rule("rds-encrypted-customer-key", "RDS storage is encrypted with a customer managed KMS key.",
         check_rds_encrypted, _RDS, reference="FSBP RDS.3; FIELD-NOTES 6"),
    Rule("rds-not-public", "RDS instances are not publicly accessible.",
         check_rds_not_public, _RDS, reference="FSBP RDS.2"),
    Rule("rds-iam-auth", "RDS instances enable IAM database authentication.",
         check_rds_iam_auth, _RDS, reference="FSBP RDS.10"),
    Rule("rds-log-exports", "RDS PostgreSQL exports the postgresql and upgrade logs.",
         check_rds_log_exports, _RDS, reference="FSBP RDS.9"),
    Rule("rds-enhanced-monitoring", "RDS enhanced monitoring is on, with a monitoring role.",
         check_rds_enhanced_monitoring, _RDS, reference="FSBP RDS.6"),
    Rule("rds-primary-backups", "A primary (non-replica) instance keeps automated backups.",
         check_rds_primary_backups, _RDS, reference="FSBP RDS.11; FIELD-NOTES 8"),
    Rule("rds-backup-retention-week", "A primary keeps automated backups for at least 7 days.",
         check_rds_backup_retention_week, _RDS, reference="FSBP RDS.11 (7-day default)"),
    Rule("rds-skip-final-snapshot", "RDS instances skip the final snapshot (destroyable).",
         check_rds_skip_final_snapshot, _RDS, reference="task: destroyable; FIELD-NOTES 12"),
    Rule("rds-deletion-protection-baseline",
         "RDS deletion protection is on (baseline; waived for destroyability).",
         check_rds_deletion_protection_baseline, _RDS, reference="FSBP RDS.8"),
    Rule("rds-replica-key-in-own-region", "A replica's KMS key is in the replica's region.",
         check_rds_replica_key_region, _RDS, reference="FIELD-NOTES 6"),
    Rule("rds-replica-no-credentials",
         "A replica sets no username, password, database name or managed password.",
         check_rds_replica_no_credentials, _RDS, reference="FIELD-NOTES 9"),
    Rule("rds-copy-tags-to-snapshots", "RDS copies tags to snapshots.",
         check_rds_copy_tags, _RDS, reference="FSBP RDS.17"),
    Rule("rds-auto-minor-upgrade", "RDS applies minor engine upgrades automatically.",
         check_rds_minor_upgrades, _RDS, reference="FSBP RDS.13"),
    Rule("rds-modern-ca", "RDS uses a current certificate authority.",
         check_rds_ca, _RDS, reference="RDS User Guide, certificate rotation"),
    Rule("rds-multi-az", "RDS instances are Multi-AZ (baseline; waived where configured off).",
         check_rds_multi_az, _RDS, reference="FSBP RDS.5"),
    Rule("kms-rotation", "KMS keys rotate automatically.",
         check_kms_rotation, (KMS_KEY,), reference="FSBP KMS.4"),
    Rule("sns-encrypted", "SNS topics are encrypted with KMS.",
         check_sns_encrypted, (SNS_TOPIC,), reference="FSBP SNS.1"),
    Rule("logs-retention-set", "Log groups declare a retention period.",
         check_log_retention_set, (LOG_GROUP,), reference="task: log groups with retention"),
    Rule("logs-kms-encrypted", "Log groups are encrypted with a customer managed KMS key.",
         check_log_group_encrypted, (LOG_GROUP,), reference="task: KMS encryption at rest; CKV_AWS_158"),
    Rule("logs-retention-year", "Log groups keep events for at least a year (baseline; waived).",
         check_log_retention_year, (LOG_GROUP,), reference="FSBP CloudWatch.16"),
    Rule("network-no-internet-ingress",
         "No security group admits traffic from 0.0.0.0/0 or ::/0.",
         check_no_internet_ingress, _INGRESS_TYPES, reference="FSBP EC2.18/EC2.19"),
    Rule("iam-no-wildcard-permissions",
         'No identity policy allows "*" actions, or service wildcards on "*" resources.',
         check_iam_no_wildcards, _IAM_TYPES, reference="FSBP IAM.1/IAM.21"),
    Rule("lambda-supported-runtime", "Lambda functions use a supported runtime.",
         check_lambda_runtime, (LAMBDA_FUNCTION,), reference="FSBP Lambda.2"),
    Rule("secrets-not-created", "No Secrets Manager secret is created (use an existing one).",
         check_no_secret_created, (SECRET, SECRET_VERSION), reference="task: secrets"),
    Rule("tags-required", "Every taggable resource carries the required tags.",
         check_required_tags, reference="shared/tags.py REQUIRED_TAG_KEYS"),
    Rule("lifecycle-destroyable", "No resource sets deletion protection or skip-destroy.",
         check_destroyable, reference="task: resources must be destroyable"),
]

STACK_RULES: list[StackRule] = [
    StackRule("rds-force-ssl-parameter-group",
              "Every RDS instance is attached to a parameter group in its region with "
              "rds.force_ssl=1.", check_force_ssl,
              reference="FSBP RDS.38 (Config rds-postgres-instance-encrypted-in-transit); FIELD-NOTES 11"),
    StackRule("lifecycle-no-protect", "No resource is protected or retained on delete.",
              check_no_protect, reference="task: no protect=True / retain"),
]

RULES_BY_ID = {rule.id: rule for rule in RULES}
STACK_RULES_BY_ID = {rule.id: rule for rule in STACK_RULES}


# --------------------------------------------------------------------------- evaluation


def evaluate_resource(resource_type: str, props: Mapping[str, Any], ctx: Context,
                      rules: Iterable[Rule] | None = None, urn: str = "") -> list[Finding]:
    """Findings (violations and waived violations) of every applicable rule."""
    from policy.waivers import waiver_for

    findings = []
    for rule in RULES if rules is None else rules:
        if not rule.applies(resource_type):
            continue
        for message in rule.check(resource_type, props, ctx):
            waiver = waiver_for(rule.id, resource_type, props, ctx)
            findings.append(Finding(rule.id, resource_type, ctx.name or "", message,
                                    waiver.reason if waiver else None, urn))
    return findings


def evaluate_stack(resources: Sequence[StackResource], ctx: Context,
                   rules: Iterable[StackRule] | None = None) -> list[Finding]:
    from policy.waivers import waiver_for

    findings = []
    for rule in STACK_RULES if rules is None else rules:
        for resource, message in rule.check(resources, ctx):
            resource_ctx = Context(suffix=ctx.suffix, regions=ctx.regions, region=resource.region,
                                   name=resource.name)
            waiver = waiver_for(rule.id, resource.type, resource.props, resource_ctx)
            findings.append(Finding(rule.id, resource.type, resource.name, message,
                                    waiver.reason if waiver else None, resource.urn))
    return findings


@dataclass
class Report:
    """All findings of a plan or a stack, split by status."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if not f.waived]

    @property
    def waived(self) -> list[Finding]:
        return [f for f in self.findings if f.waived]
