"""Every policy rule catches its violation, passes a compliant resource, and
reports nothing it cannot judge (values unknown during preview)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from policy import rules, waivers
from policy.props import PULUMI_UNKNOWN_SENTINELS, UNKNOWN, get, is_unknown, to_plain
from policy.rules import Context, StackResource

SUFFIX = "qa7"
PRIMARY, SECONDARY = "eu-west-1", "ap-southeast-2"
ACCOUNT = "111122223333"
TAGS = {"Environment": SUFFIX, "Project": "rds-multi-region-failover", "ManagedBy": "pulumi",
        "Layer": "primary-db", "DeploymentId": "5eed1d0f"}
CTX = Context(suffix=SUFFIX, regions=(PRIMARY, SECONDARY), region=PRIMARY, tags=TAGS,
              name=f"thing-{SUFFIX}", provider=f"aws-primary-{SUFFIX}", explicit_provider=True)
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

PRIMARY_KEY = f"arn:aws:kms:{PRIMARY}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECONDARY_KEY = f"arn:aws:kms:{SECONDARY}:{ACCOUNT}:key/5678abcd-12ab-34cd-56ef-1234567890ab"
PRIMARY_DB = {
    "identifier": f"pg-primary-{SUFFIX}",
    "engine": "postgres",
    "instanceClass": "db.m6g.large",
    "storageEncrypted": True,
    "kmsKeyId": PRIMARY_KEY,
    "publiclyAccessible": False,
    "parameterGroupName": f"pg-tls-primary-{SUFFIX}",
    "iamDatabaseAuthenticationEnabled": True,
    "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
    "monitoringInterval": 60,
    "monitoringRoleArn": f"arn:aws:iam::{ACCOUNT}:role/rds-monitoring-primary-{SUFFIX}",
    "backupRetentionPeriod": 7,
    "deletionProtection": True,
    "skipFinalSnapshot": True,
    "copyTagsToSnapshot": True,
    "autoMinorVersionUpgrade": True,
    "caCertIdentifier": "rds-ca-rsa2048-g1",
    "multiAz": True,
    "username": "dbadmin",
    "password": "not-a-real-password",
    "dbName": "appdb",
}
REPLICA_DB = {
    **{k: v for k, v in PRIMARY_DB.items()
       if k not in ("username", "password", "dbName", "storageEncrypted", "backupRetentionPeriod")},
    "identifier": f"pg-replica-{SUFFIX}",
    "replicateSourceDb": f"arn:aws:rds:{PRIMARY}:{ACCOUNT}:db:pg-primary-{SUFFIX}",
    "kmsKeyId": SECONDARY_KEY,
    "parameterGroupName": f"pg-tls-secondary-{SUFFIX}",
}
REPLICA_CTX = replace(CTX, region=SECONDARY)


def policy_doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


# (rule id, case id, resource type, bad props, bad context, good props, good context)
CASES: list[tuple[str, str, str, dict, Context, dict, Context]] = [
    ("naming-physical-suffix", "sns-name", "aws:sns/topic:Topic",
     {"name": "db-alerts-primary"}, CTX, {"name": f"db-alerts-primary-{SUFFIX}"}, CTX),
    ("naming-physical-suffix", "rds-identifier", rules.RDS_INSTANCE,
     {"identifier": "pg-primary"}, CTX, {"identifier": f"pg-primary-{SUFFIX}"}, CTX),
    ("naming-physical-suffix", "suffix-as-part-of-a-longer-word", rules.RDS_INSTANCE,
     {"identifier": f"pg-primary-{SUFFIX}1"}, CTX, {"identifier": f"pg-primary-{SUFFIX}"}, CTX),
    ("naming-physical-suffix", "dashboard", "aws:cloudwatch/dashboard:Dashboard",
     {"dashboardName": "db-failover"}, CTX, {"dashboardName": f"db-failover-{SUFFIX}"}, CTX),
    ("naming-physical-suffix", "kms-alias", "aws:kms/alias:Alias",
     {"name": "alias/rds-primary"}, CTX, {"name": f"alias/rds-primary-{SUFFIX}"}, CTX),
    ("naming-physical-suffix", "lambda-log-group", rules.LOG_GROUP,
     {"name": "/aws/lambda/db-canary"}, CTX, {"name": f"/aws/lambda/db-canary-{SUFFIX}"}, CTX),
    ("naming-physical-suffix", "name-tag", "aws:ec2/vpc:Vpc",
     {"tags": {"Name": "vpc-primary"}}, CTX, {"tags": {"Name": f"vpc-primary-{SUFFIX}"}}, CTX),
    ("naming-physical-suffix", "dns-zone", "aws:route53/zone:Zone",
     {"name": "db.internal"}, CTX, {"name": f"db-{SUFFIX}.internal"}, CTX),
    ("naming-logical-suffix", "logical", rules.SNS_TOPIC,
     {}, replace(CTX, name="db-alerts"), {}, replace(CTX, name=f"db-alerts-{SUFFIX}")),
    ("naming-logical-suffix", "stack-reference-exempt", rules.SNS_TOPIC,
     {}, replace(CTX, name="organization/rds-network/other"), {}, CTX),
    ("naming-no-hardcoded-values", "environment-word", rules.RDS_INSTANCE,
     {"identifier": f"pg-prod-{SUFFIX}"}, CTX, {"identifier": f"pg-primary-{SUFFIX}"}, CTX),
    ("naming-no-hardcoded-values", "suffix-may-be-an-environment-word", rules.RDS_INSTANCE,
     {"identifier": "pg-staging-dev"}, replace(CTX, suffix="dev"),
     {"identifier": "pg-primary-dev"}, replace(CTX, suffix="dev")),
    ("naming-no-hardcoded-values", "account-id", rules.IAM_ROLE,
     {"name": f"role-{ACCOUNT}-{SUFFIX}"}, CTX, {"name": f"db-canary-role-{SUFFIX}"}, CTX),
    ("naming-no-hardcoded-values", "region", rules.SNS_TOPIC,
     {"name": f"alerts-us-east-1-{SUFFIX}"}, CTX, {"name": f"db-canary-1-{SUFFIX}"}, CTX),
    ("region-configured-only", "property", "aws:ec2/subnet:Subnet",
     {"availabilityZone": "us-east-1a"}, CTX, {"availabilityZone": f"{PRIMARY}a"}, CTX),
    ("region-configured-only", "arn-in-policy", rules.IAM_ROLE_POLICY,
     {"policy": policy_doc(allow("sns:Publish", f"arn:aws:sns:us-west-2:{ACCOUNT}:t"))}, CTX,
     {"policy": policy_doc(allow("sns:Publish", f"arn:aws:sns:{SECONDARY}:{ACCOUNT}:t"))}, CTX),
    ("region-configured-only", "resource-region", "aws:ec2/vpc:Vpc",
     {}, replace(CTX, region="us-west-2"), {}, replace(CTX, region=SECONDARY)),
    ("provider-explicit", "default-provider", "aws:ec2/vpc:Vpc",
     {}, replace(CTX, explicit_provider=False), {}, CTX),
    ("rds-encrypted-customer-key", "unencrypted", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "storageEncrypted": False}, CTX, PRIMARY_DB, CTX),
    ("rds-encrypted-customer-key", "no-customer-key", rules.RDS_INSTANCE,
     {k: v for k, v in PRIMARY_DB.items() if k != "kmsKeyId"}, CTX, PRIMARY_DB, CTX),
    ("rds-encrypted-customer-key", "aws-managed-key", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "kmsKeyId": f"arn:aws:kms:{PRIMARY}:{ACCOUNT}:alias/aws/rds"}, CTX,
     PRIMARY_DB, CTX),
    ("rds-encrypted-customer-key", "cross-region-replica-without-key", rules.RDS_INSTANCE,
     {k: v for k, v in REPLICA_DB.items() if k != "kmsKeyId"}, REPLICA_CTX, REPLICA_DB, REPLICA_CTX),
    # A same-region replica inherits the source's key and passes none (FIELD-NOTES 6).
    ("rds-encrypted-customer-key", "same-region-replica-inherits-the-key", rules.RDS_INSTANCE,
     {k: v for k, v in REPLICA_DB.items() if k != "kmsKeyId"}, REPLICA_CTX,
     {**{k: v for k, v in REPLICA_DB.items() if k != "kmsKeyId"},
      "replicateSourceDb": f"pg-primary-{SUFFIX}"}, REPLICA_CTX),
    ("rds-not-public", "public", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "publiclyAccessible": True}, CTX, PRIMARY_DB, CTX),
    ("rds-iam-auth", "off", rules.RDS_INSTANCE,
     {k: v for k, v in PRIMARY_DB.items() if k != "iamDatabaseAuthenticationEnabled"}, CTX,
     PRIMARY_DB, CTX),
    ("rds-log-exports", "upgrade-missing", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "enabledCloudwatchLogsExports": ["postgresql"]}, CTX, PRIMARY_DB, CTX),
    ("rds-enhanced-monitoring", "interval-zero", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "monitoringInterval": 0}, CTX, PRIMARY_DB, CTX),
    ("rds-enhanced-monitoring", "no-role", rules.RDS_INSTANCE,
     {k: v for k, v in PRIMARY_DB.items() if k != "monitoringRoleArn"}, CTX, PRIMARY_DB, CTX),
    ("rds-primary-backups", "primary-without-backups", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "backupRetentionPeriod": 0}, CTX,
     {**REPLICA_DB, "backupRetentionPeriod": 0}, REPLICA_CTX),
    # Omitted, CreateDBInstance keeps backups for 1 day.
    ("rds-primary-backups", "omitted-retention-means-one-day", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "backupRetentionPeriod": 0}, CTX,
     {k: v for k, v in PRIMARY_DB.items() if k != "backupRetentionPeriod"}, CTX),
    ("rds-backup-retention-week", "three-days", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "backupRetentionPeriod": 3}, CTX, PRIMARY_DB, CTX),
    ("rds-skip-final-snapshot", "final-snapshot", rules.RDS_INSTANCE,
     {k: v for k, v in PRIMARY_DB.items() if k != "skipFinalSnapshot"}, CTX, PRIMARY_DB, CTX),
    ("rds-deletion-protection-baseline", "off", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "deletionProtection": False}, CTX, PRIMARY_DB, CTX),
    ("rds-replica-key-in-own-region", "key-of-source-region", rules.RDS_INSTANCE,
     {**REPLICA_DB, "kmsKeyId": PRIMARY_KEY}, REPLICA_CTX, REPLICA_DB, REPLICA_CTX),
    ("rds-replica-key-in-own-region", "per-resource-region-argument", rules.RDS_INSTANCE,
     {**REPLICA_DB, "region": PRIMARY}, REPLICA_CTX, {**REPLICA_DB, "region": SECONDARY}, CTX),
    ("rds-replica-no-credentials", "username-password", rules.RDS_INSTANCE,
     {**REPLICA_DB, "username": "dbadmin", "password": "x"}, REPLICA_CTX, REPLICA_DB, REPLICA_CTX),
    ("rds-replica-no-credentials", "db-name", rules.RDS_INSTANCE,
     {**REPLICA_DB, "dbName": "appdb"}, REPLICA_CTX, REPLICA_DB, REPLICA_CTX),
    ("rds-replica-no-credentials", "managed-password", rules.RDS_INSTANCE,
     {**REPLICA_DB, "manageMasterUserPassword": True}, REPLICA_CTX, REPLICA_DB, REPLICA_CTX),
    ("rds-copy-tags-to-snapshots", "off", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "copyTagsToSnapshot": False}, CTX, PRIMARY_DB, CTX),
    ("rds-auto-minor-upgrade", "off", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "autoMinorVersionUpgrade": False}, CTX, PRIMARY_DB, CTX),
    ("rds-modern-ca", "expired-ca", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "caCertIdentifier": "rds-ca-2019"}, CTX, PRIMARY_DB, CTX),
    ("rds-multi-az", "single-az", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "multiAz": False}, CTX, PRIMARY_DB, CTX),
    ("kms-rotation", "no-rotation", rules.KMS_KEY,
     {"description": "x"}, CTX, {"enableKeyRotation": True}, CTX),
    ("kms-rotation", "asymmetric-keys-cannot-rotate", rules.KMS_KEY,
     {"enableKeyRotation": False}, CTX,
     {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"}, CTX),
    ("sns-encrypted", "no-key", rules.SNS_TOPIC,
     {"name": f"t-{SUFFIX}"}, CTX, {"name": f"t-{SUFFIX}", "kmsMasterKeyId": PRIMARY_KEY}, CTX),
    ("sns-encrypted", "empty-key", rules.SNS_TOPIC,
     {"kmsMasterKeyId": ""}, CTX, {"kmsMasterKeyId": "alias/db-alerts"}, CTX),
    ("logs-retention-set", "forever", rules.LOG_GROUP,
     {"name": f"/x/{SUFFIX}"}, CTX, {"name": f"/x/{SUFFIX}", "retentionInDays": 30}, CTX),
    ("logs-kms-encrypted", "service-default-encryption", rules.LOG_GROUP,
     {"name": f"/x/{SUFFIX}", "retentionInDays": 30}, CTX,
     {"name": f"/x/{SUFFIX}", "retentionInDays": 30, "kmsKeyId": PRIMARY_KEY}, CTX),
    ("logs-kms-encrypted", "empty-key", rules.LOG_GROUP,
     {"kmsKeyId": ""}, CTX, {"kmsKeyId": SECONDARY_KEY}, replace(CTX, region=SECONDARY)),
    ("logs-retention-year", "thirty-days", rules.LOG_GROUP,
     {"retentionInDays": 30}, CTX, {"retentionInDays": 365}, CTX),
    ("network-no-internet-ingress", "inline-ingress", rules.SECURITY_GROUP,
     {"ingress": [{"fromPort": 5432, "toPort": 5432, "protocol": "tcp",
                   "cidrBlocks": ["0.0.0.0/0"]}]}, CTX,
     {"ingress": [{"fromPort": 5432, "toPort": 5432, "protocol": "tcp",
                   "cidrBlocks": ["10.10.0.0/16"]}]}, CTX),
    ("network-no-internet-ingress", "ipv6-rule", rules.SECURITY_GROUP_RULE,
     {"type": "ingress", "ipv6CidrBlocks": ["::/0"]}, CTX,
     {"type": "egress", "cidrBlocks": ["0.0.0.0/0"]}, CTX),
    ("network-no-internet-ingress", "vpc-ingress-rule", rules.SECURITY_GROUP_INGRESS_RULE,
     {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp"}, CTX,
     {"referencedSecurityGroupId": "sg-123", "ipProtocol": "tcp"}, CTX),
    ("network-no-internet-ingress", "default-group", rules.DEFAULT_SECURITY_GROUP,
     {"ingress": [{"protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}]}, CTX, {"ingress": []}, CTX),
    ("iam-no-wildcard-permissions", "star-action", rules.IAM_ROLE_POLICY,
     {"policy": policy_doc(allow("*", f"arn:aws:rds:{PRIMARY}:{ACCOUNT}:db:x"))}, CTX,
     {"policy": policy_doc(allow(["cloudwatch:GetMetricData"], "*"))}, CTX),
    ("iam-no-wildcard-permissions", "service-wildcard-on-everything", rules.IAM_POLICY,
     {"policy": policy_doc(allow("rds:*", "*"))}, CTX,
     {"policy": policy_doc(allow("rds:*", f"arn:aws:rds:{PRIMARY}:{ACCOUNT}:db:pg-{SUFFIX}"))}, CTX),
    ("iam-no-wildcard-permissions", "inline-policy-of-role", rules.IAM_ROLE,
     {"inlinePolicies": [{"name": "p", "policy": policy_doc(allow(["logs:*"], ["*"]))}]}, CTX,
     {"inlinePolicies": [{"name": "p", "policy": policy_doc(allow(["logs:PutLogEvents"], ["*"]))}]},
     CTX),
    ("iam-no-wildcard-permissions", "not-action", rules.IAM_ROLE_POLICY,
     {"policy": policy_doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})}, CTX,
     {"policy": policy_doc({"Effect": "Deny", "Action": "*", "Resource": "*"})}, CTX),
    ("iam-no-wildcard-permissions", "admin-attachment", rules.IAM_ROLE_POLICY_ATTACHMENT,
     {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}, CTX,
     {"policyArn": "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"}, CTX),
    ("iam-no-wildcard-permissions", "invalid-json", rules.IAM_ROLE_POLICY,
     {"policy": "{not json"}, CTX, {"policy": policy_doc(allow("sns:Publish", "*"))}, CTX),
    ("lambda-supported-runtime", "deprecated-python", rules.LAMBDA_FUNCTION,
     {"runtime": "python3.9"}, CTX, {"runtime": "python3.12"}, CTX),
    ("lambda-supported-runtime", "deprecated-node", rules.LAMBDA_FUNCTION,
     {"runtime": "nodejs18.x"}, CTX, {"runtime": "python3.13"}, CTX),
    # Reading the existing secret is what the layers do instead: no secret resource.
    ("secrets-not-created", "secret", (rules.SECRET, rules.RDS_INSTANCE),
     {"name": f"s-{SUFFIX}"}, CTX, PRIMARY_DB, CTX),
    ("secrets-not-created", "secret-version", (rules.SECRET_VERSION, rules.RDS_INSTANCE),
     {"secretId": "x", "secretString": "y"}, CTX, PRIMARY_DB, CTX),
    ("tags-required", "missing-layer", "aws:ec2/vpc:Vpc",
     {}, replace(CTX, tags={k: v for k, v in TAGS.items() if k != "Layer"}), {}, CTX),
    ("tags-required", "empty-value", rules.RDS_INSTANCE,
     {}, replace(CTX, tags={**TAGS, "Project": ""}), {}, CTX),
    ("tags-required", "untaggable-types-need-none", ("aws:ec2/vpc:Vpc", rules.IAM_ROLE_POLICY),
     {}, replace(CTX, tags={}), {}, replace(CTX, tags={})),
    ("lifecycle-destroyable", "log-group-skip-destroy", rules.LOG_GROUP,
     {"retentionInDays": 30, "skipDestroy": True}, CTX, {"retentionInDays": 30}, CTX),
    ("lifecycle-destroyable", "rds-deletion-protection", rules.RDS_INSTANCE,
     {**PRIMARY_DB, "deletionProtection": True}, CTX, {**PRIMARY_DB, "deletionProtection": False},
     CTX),
    ("lifecycle-destroyable", "log-group-deletion-protection", rules.LOG_GROUP,
     {"deletionProtectionEnabled": True}, CTX, {"deletionProtectionEnabled": False}, CTX),
]


def _fires(rule: rules.Rule, resource_type: str, props: dict, ctx: Context) -> list[str]:
    return rule.check(resource_type, props, ctx) if rule.applies(resource_type) else []


@pytest.mark.parametrize(
    "rule_id,resource_type,bad,bad_ctx,good,good_ctx",
    [pytest.param(c[0], *c[2:], id=f"{c[0]}:{c[1]}") for c in CASES],
)
def test_rule_catches_the_bad_resource_and_passes_the_good_one(rule_id, resource_type, bad, bad_ctx,
                                                               good, good_ctx):
    rule = rules.RULES_BY_ID[rule_id]
    bad_type, good_type = resource_type if isinstance(resource_type, tuple) else (resource_type,) * 2
    bad_messages = _fires(rule, bad_type, bad, bad_ctx)
    assert bad_messages, f"{rule_id} did not catch {bad}"
    assert all(isinstance(m, str) and m for m in bad_messages)
    # "good" is a stack-reference name here, whose exemption is tested below.
    if rule_id == "naming-logical-suffix" and bad_ctx.name.startswith("organization/"):
        return
    assert _fires(rule, good_type, good, good_ctx) == []


def test_stack_references_keep_the_name_pulumi_gives_them():
    rule = rules.RULES_BY_ID["naming-logical-suffix"]
    ref_ctx = replace(CTX, name="organization/rds-network/other")
    assert rule.check(rules.STACK_REFERENCE, {}, ref_ctx) == []
    assert rule.check(rules.SNS_TOPIC, {}, ref_ctx)


def test_pulumi_resources_have_no_physical_name_to_judge():
    # A stack reference's name is "org/project/stack", chosen by Pulumi, not by the program.
    ref = {"name": "organization/rds-network/dev"}
    for rule_id in ("naming-physical-suffix", "naming-no-hardcoded-values"):
        assert rules.RULES_BY_ID[rule_id].check(rules.STACK_REFERENCE, ref, CTX) == []
        assert rules.RULES_BY_ID[rule_id].check(rules.SNS_TOPIC, ref, CTX)


def test_a_suffix_that_looks_like_a_region_is_not_a_hard_coded_region():
    ctx = replace(CTX, suffix="us-east-1")
    props = {"name": "db-alerts-primary-us-east-1"}
    assert rules.RULES_BY_ID["region-configured-only"].check(rules.SNS_TOPIC, props, ctx) == []
    assert rules.RULES_BY_ID["naming-no-hardcoded-values"].check(rules.SNS_TOPIC, props, ctx) == []
    assert rules.RULES_BY_ID["region-configured-only"].check(
        rules.SNS_TOPIC, {"name": "db-us-west-2-alerts-us-east-1"}, ctx)


def test_every_rule_has_a_bad_and_a_good_case():
    covered = {case[0] for case in CASES} | set(STACK_CASES)
    assert covered == set(rules.RULES_BY_ID) | set(rules.STACK_RULES_BY_ID)


def test_rule_ids_are_unique_across_resource_and_stack_rules():
    ids = [r.id for r in rules.RULES] + [r.id for r in rules.STACK_RULES]
    assert len(ids) == len(set(ids))
    assert "all" not in ids  # reserved by the policy SDK


# --------------------------------------------------------------------------- unknown values

# Rules whose verdict does not depend on property values: the logical name, the
# provider and the effective tags come from the context, and creating a secret
# is a violation whatever its properties.
_NOT_PROPERTY_BASED = {"naming-logical-suffix", "provider-explicit", "secrets-not-created",
                       "tags-required"}


@pytest.mark.parametrize(
    "rule_id,resource_type,bad,bad_ctx",
    [pytest.param(c[0], c[2], c[3], c[4], id=f"{c[0]}:{c[1]}") for c in CASES
     if c[0] not in _NOT_PROPERTY_BASED and isinstance(c[2], str)
     and c[4].region in (PRIMARY, SECONDARY)],
)
def test_unknown_values_are_never_violations(rule_id, resource_type, bad, bad_ctx):
    rule = rules.RULES_BY_ID[rule_id]
    keys = set(bad) | set(PRIMARY_DB) | set(REPLICA_DB) | {
        "kmsMasterKeyId", "retentionInDays", "enableKeyRotation", "runtime", "policy", "tags",
        "customerMasterKeySpec", "skipDestroy", "deletionProtectionEnabled"}
    # What CrossGuard hands a rule during preview, after policy.props.to_plain.
    unknown = to_plain({key: UNKNOWN_STRING for key in keys})
    assert rule.check(resource_type, unknown, bad_ctx) == []


def test_nested_unknowns_are_not_violations():
    ingress = rules.RULES_BY_ID["network-no-internet-ingress"]
    props = to_plain({"ingress": [{"cidrBlocks": [UNKNOWN_STRING]}, UNKNOWN_STRING]})
    assert ingress.check(rules.SECURITY_GROUP, props, CTX) == []
    exports = rules.RULES_BY_ID["rds-log-exports"]
    assert exports.check(rules.RDS_INSTANCE, to_plain({"enabledCloudwatchLogsExports": [
        "postgresql", UNKNOWN_STRING]}), CTX) == []


def test_a_replica_source_unknown_at_preview_is_still_a_replica():
    props = to_plain({**REPLICA_DB, "replicateSourceDb": UNKNOWN_STRING, "username": "dbadmin"})
    assert rules.RULES_BY_ID["rds-replica-no-credentials"].check(rules.RDS_INSTANCE, props, CTX)
    assert rules.RULES_BY_ID["rds-primary-backups"].check(rules.RDS_INSTANCE, props, CTX) == []


def test_unknown_tags_are_not_judged():
    rule = rules.RULES_BY_ID["tags-required"]
    assert rule.check("aws:ec2/vpc:Vpc", {}, replace(CTX, tags=None)) == []


def test_null_values_count_as_unknown_but_absent_keys_take_the_aws_default():
    assert is_unknown(None) and is_unknown(UNKNOWN)
    assert get({"storageEncrypted": None}, "storageEncrypted", False) is UNKNOWN
    assert get({}, "storageEncrypted", False) is False


def test_unknown_has_no_truth_value_so_rules_cannot_mistake_it_for_false():
    with pytest.raises(TypeError):
        bool(UNKNOWN)


def test_sentinels_match_the_policy_sdk():
    proxy = pytest.importorskip("pulumi_policy.proxy")
    sdk = {getattr(proxy, name) for name in dir(proxy) if name.startswith("UNKNOWN_") and
           name.endswith("_VALUE")}
    assert sdk == set(PULUMI_UNKNOWN_SENTINELS)


# --------------------------------------------------------------------------- stack rules


def _instance(name: str, region: str, group: str | None, **props: Any) -> StackResource:
    base = {**PRIMARY_DB, "identifier": name, **props}
    if group is None:
        base.pop("parameterGroupName")
    else:
        base["parameterGroupName"] = group
    return StackResource(rules.RDS_INSTANCE, name, base, urn=f"urn:{name}", region=region)


def _group(name: str, region: str, force_ssl: str | None = "1") -> StackResource:
    params = [{"name": "log_connections", "value": "1"}]
    if force_ssl is not None:
        params.append({"name": "rds.force_ssl", "value": force_ssl, "applyMethod": "pending-reboot"})
    return StackResource(rules.RDS_PARAMETER_GROUP, name,
                         {"name": name, "family": "postgres17", "parameters": params},
                         urn=f"urn:{name}", region=region)


GROUP = f"pg-tls-primary-{SUFFIX}"
STACK_CASES: dict[str, list[tuple[str, list[StackResource], list[StackResource]]]] = {
    "rds-force-ssl-parameter-group": [
        ("default-group", [_instance("pg", PRIMARY, None)],
         [_instance("pg", PRIMARY, GROUP), _group(GROUP, PRIMARY)]),
        ("group-outside-the-stack", [_instance("pg", PRIMARY, GROUP)],
         [_instance("pg", PRIMARY, GROUP), _group(GROUP, PRIMARY)]),
        ("group-without-force-ssl", [_instance("pg", PRIMARY, GROUP), _group(GROUP, PRIMARY, None)],
         [_instance("pg", PRIMARY, GROUP), _group(GROUP, PRIMARY, "1")]),
        ("force-ssl-off", [_instance("pg", PRIMARY, GROUP), _group(GROUP, PRIMARY, "0")],
         [_instance("pg", PRIMARY, GROUP), _group(GROUP, PRIMARY, "1")]),
        ("group-of-the-other-region", [_instance("pg", SECONDARY, GROUP), _group(GROUP, PRIMARY)],
         [_instance("pg", SECONDARY, GROUP), _group(GROUP, SECONDARY)]),
    ],
    "lifecycle-no-protect": [
        ("protect", [replace(_group(GROUP, PRIMARY), protect=True)], [_group(GROUP, PRIMARY)]),
        ("retain-on-delete", [replace(_group(GROUP, PRIMARY), retain_on_delete=True)],
         [replace(_group(GROUP, PRIMARY), retain_on_delete=None)]),
    ],
}


@pytest.mark.parametrize(
    "rule_id,bad,good",
    [pytest.param(rule_id, bad, good, id=f"{rule_id}:{case}")
     for rule_id, cases in STACK_CASES.items() for case, bad, good in cases],
)
def test_stack_rule_catches_the_bad_stack_and_passes_the_good_one(rule_id, bad, good):
    rule = rules.STACK_RULES_BY_ID[rule_id]
    stack_ctx = Context(suffix=SUFFIX, regions=(PRIMARY, SECONDARY))
    found = rule.check(bad, stack_ctx)
    assert found and all(resource in bad for resource, _ in found)
    assert rule.check(good, stack_ctx) == []


def test_force_ssl_cannot_judge_names_unknown_at_preview():
    rule = rules.STACK_RULES_BY_ID["rds-force-ssl-parameter-group"]
    unknown_group = replace(_group(GROUP, PRIMARY, None), props=to_plain(
        {"name": UNKNOWN_STRING, "parameters": []}))
    assert rule.check([_instance("pg", PRIMARY, GROUP), unknown_group], CTX) == []
    unknown_attach = _instance("pg", PRIMARY, GROUP)
    unknown_attach = replace(unknown_attach, props={**unknown_attach.props, "parameterGroupName": UNKNOWN})
    assert rule.check([unknown_attach], CTX) == []


# --------------------------------------------------------------------------- waivers


def _by_rule(findings: list[rules.Finding]) -> dict[str, rules.Finding]:
    return {f.rule_id: f for f in findings}


def test_deletion_protection_off_is_reported_as_waived_with_its_reason():
    found = _by_rule(rules.evaluate_resource(
        rules.RDS_INSTANCE, {**PRIMARY_DB, "deletionProtection": False}, CTX))
    finding = found["rds-deletion-protection-baseline"]
    assert finding.waived and finding.status == "WAIVED"
    assert "destroy" in finding.waiver_reason and "RDS.8" in finding.waiver_reason
    assert "WAIVED" in str(finding) and finding.waiver_reason in str(finding)
    assert not [f for f in found.values() if not f.waived]


def test_short_backup_retention_is_waived_but_no_backups_is_a_violation():
    short = _by_rule(rules.evaluate_resource(
        rules.RDS_INSTANCE, {**PRIMARY_DB, "backupRetentionPeriod": 3}, CTX))
    assert short["rds-backup-retention-week"].waived
    assert "rds-primary-backups" not in short
    none = rules.evaluate_resource(rules.RDS_INSTANCE, {**PRIMARY_DB, "backupRetentionPeriod": 0},
                                   CTX)
    violations = {f.rule_id for f in none if not f.waived}
    assert {"rds-primary-backups", "rds-backup-retention-week"} <= violations


def test_log_retention_under_a_year_is_waived_and_a_year_needs_no_waiver():
    month = _by_rule(rules.evaluate_resource(rules.LOG_GROUP, {"retentionInDays": 30}, CTX))
    assert month["logs-retention-year"].waived
    year = rules.evaluate_resource(rules.LOG_GROUP, {"retentionInDays": 365}, CTX)
    assert "logs-retention-year" not in _by_rule(year)
    forever = _by_rule(rules.evaluate_resource(rules.LOG_GROUP, {}, CTX))
    assert not forever["logs-retention-set"].waived


def test_multi_az_is_waived_for_the_replica_and_when_configured_off_but_not_when_forgotten():
    replica = _by_rule(rules.evaluate_resource(
        rules.RDS_INSTANCE, {**REPLICA_DB, "multiAz": False}, REPLICA_CTX))
    assert replica["rds-multi-az"].waived and "replica" in replica["rds-multi-az"].waiver_reason
    configured = _by_rule(rules.evaluate_resource(
        rules.RDS_INSTANCE, {**PRIMARY_DB, "multiAz": False}, CTX))
    assert configured["rds-multi-az"].waived
    forgotten = {k: v for k, v in PRIMARY_DB.items() if k != "multiAz"}
    assert not _by_rule(rules.evaluate_resource(rules.RDS_INSTANCE, forgotten, CTX))[
        "rds-multi-az"].waived


def test_every_waiver_names_a_rule_and_gives_a_reason():
    for waiver in waivers.WAIVERS:
        assert waiver.rule_id in rules.RULES_BY_ID or waiver.rule_id in rules.STACK_RULES_BY_ID
        assert len(waiver.reason) > 40


def test_waivers_never_cover_the_destroyability_rules():
    # The task's own requirements are not negotiable per resource.
    waived_rules = {w.rule_id for w in waivers.WAIVERS}
    assert not waived_rules & {"lifecycle-destroyable", "rds-skip-final-snapshot",
                               "lifecycle-no-protect", "secrets-not-created"}


# --------------------------------------------------------------------------- taggable


@pytest.mark.parametrize("resource_type,taggable", [
    (rules.RDS_INSTANCE, True),
    (rules.LAMBDA_FUNCTION, True),  # pulumi_aws.lambda_: the module name is a Python keyword
    (rules.SECURITY_GROUP_INGRESS_RULE, True),
    (rules.IAM_ROLE_POLICY, False),
    ("aws:route53/record:Record", False),
    ("aws:kms/alias:Alias", False),
    ("pulumi:providers:aws", False),
    ("random:index/randomId:RandomId", False),
    ("aws:nosuchmodule/thing:Thing", False),
])
def test_taggable_is_decided_by_the_provider_sdk(resource_type, taggable):
    assert rules.is_taggable(resource_type) is taggable


def test_the_rules_module_does_not_import_the_policy_sdk():
    import subprocess
    import sys

    code = ("import sys, policy, policy.rules, policy.waivers; "
            "print('pulumi_policy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_strings_in_policy_documents_are_checked_for_foreign_regions():
    rule = rules.RULES_BY_ID["region-configured-only"]
    props = {"dashboardBody": json.dumps({"widgets": [{"properties": {"region": "us-east-1"}}]})}
    assert rule.check("aws:cloudwatch/dashboard:Dashboard", props, CTX)
    assert get(props, "missing") is None
    assert UNKNOWN is to_plain(UNKNOWN_STRING)


def test_the_policy_readme_documents_every_rule_and_waiver():
    from pathlib import Path

    readme = (Path(rules.__file__).parent / "README.md").read_text()
    for rule_id in [*rules.RULES_BY_ID, *rules.STACK_RULES_BY_ID]:
        assert f"| `{rule_id}`" in readme, rule_id
    waiver_rows = [line for line in readme.split("## Waivers", 1)[1].splitlines()
                   if line.startswith("| `")]
    assert len(waiver_rows) == len(waivers.WAIVERS)
    for waiver in waivers.WAIVERS:
        assert any(row.startswith(f"| `{waiver.rule_id}`") for row in waiver_rows)
