"""The secondary-db layer, run for real on real runs of the network and primary-db layers.

Both states of the replica are run: replicating (the default) and promoted
(``replicaPromoted: true``), so the switch is shown to do what it says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import shared.components
from offline.harness import OFFLINE_ACCOUNT_ID, SyntheticBackend
from shared.contract import MissingOutputError, NetworkOutputs, PrimaryDbOutputs, SecondaryDbOutputs
from tests.support.db_layers import (
    ALARM,
    ALIAS,
    BASE_CONFIG,
    EVENT_SUBSCRIPTION,
    INSTANCE,
    KEY,
    LOG_GROUP,
    PARAMETER_GROUP,
    PRIMARY,
    ROLE,
    SECONDARY,
    SECRET_INVOKE,
    SUBNET_GROUP,
    SUFFIX,
    TOPIC,
    all_strings,
    arn_region,
    assert_encrypted_with_own_key,
    assert_tls_forced,
    aws_resources,
    document,
    mentions_default_region,
    run_expecting_failure,
    run_upstream,
    run_with_upstream,
    statements_by_sid,
)

CONFIG = {
    **BASE_CONFIG,
    "replicaLagThresholdSeconds": 120,
    "backupRetentionDaysAfterPromotion": 14,
    "logRetentionDays": 60,
}
PROMOTED = {**CONFIG, "replicaPromoted": True}
REPO = Path(__file__).resolve().parents[2]
SECRET_LOOKUP = "aws:secretsmanager/getSecret:getSecret"
IDENTIFIER = f"pg-replica-{SUFFIX}"
CREDENTIAL_INPUTS = ("username", "password", "passwordWo", "dbName", "manageMasterUserPassword",
                     "masterUserSecretKmsKeyId")


@pytest.fixture(scope="module")
def upstream():
    # The primary's config only needs to agree on suffix and regions.
    return run_upstream(BASE_CONFIG, "network", "primary-db")


@pytest.fixture(scope="module")
def run(upstream):
    return run_with_upstream("secondary-db", CONFIG, upstream)


@pytest.fixture(scope="module")
def promoted(upstream):
    return run_with_upstream("secondary-db", PROMOTED, upstream)


@pytest.fixture(scope="module")
def replica(run):
    return run.one(INSTANCE)


# ---------------------------------------------------------------- region and source


def test_everything_is_in_the_secondary_region_through_an_explicit_provider(run, promoted):
    for layer_run in (run, promoted):
        resources = aws_resources(layer_run)
        assert resources
        for r in resources:
            assert r.provider_urn, f"{r.type} {r.name} has no explicit provider"
            assert r.region == SECONDARY, f"{r.type} {r.name} is in {r.region}"


def test_replica_replicates_from_the_primary_arn(upstream, replica):
    source = replica.inputs["replicateSourceDb"]
    primary_instance = upstream["primary-db"].one(INSTANCE)
    # Cross-region sources must be named by ARN, not identifier (FIELD-NOTES 7).
    assert source == upstream["primary-db"].exports[PrimaryDbOutputs.INSTANCE_ARN]
    assert source == primary_instance.outputs["arn"]
    assert source.startswith("arn:aws:rds:") and arn_region(source) == PRIMARY


def test_a_primary_stack_of_another_region_stops_the_layer(upstream):
    other = {**CONFIG, "aws:region": "eu-west-3"}
    failure = run_expecting_failure("secondary-db", other, upstream)
    assert isinstance(failure, MissingOutputError)
    assert "eu-west-3" in str(failure)


# ---------------------------------------------------------------- encryption and TLS


def test_replica_is_encrypted_with_the_secondary_regions_own_key(upstream, run, replica):
    assert_encrypted_with_own_key(run, SECONDARY)
    key_arn = replica.inputs["kmsKeyId"]
    assert arn_region(key_arn) == SECONDARY
    assert key_arn != upstream["primary-db"].exports[PrimaryDbOutputs.KMS_KEY_ARN]
    assert run.one(ALIAS).inputs["name"] == f"alias/rds-secondary-{SUFFIX}"
    rds = statements_by_sid(document(run.one(KEY)))["RdsInThisRegionForThisAccount"]
    assert rds["Condition"]["StringEquals"]["kms:ViaService"] == f"rds.{SECONDARY}.amazonaws.com"


def test_tls_is_forced_by_the_replicas_own_parameter_group(upstream, run):
    # Not inherited across regions (FIELD-NOTES 11): the group must be this stack's.
    assert_tls_forced(run, SECONDARY)
    group = run.one(PARAMETER_GROUP)
    assert group.inputs["name"] == f"pg17-tls-secondary-{SUFFIX}"
    assert group.inputs["name"] != upstream["primary-db"].exports[
        PrimaryDbOutputs.PARAMETER_GROUP_NAME]
    assert group.inputs["family"] == upstream["primary-db"].exports[
        PrimaryDbOutputs.PARAMETER_GROUP_FAMILY]


@pytest.mark.parametrize("mutation", ["no-key", "no-parameter-group"])
def test_dropping_the_key_or_the_group_fails_the_checks(upstream, monkeypatch, mutation):
    original = shared.components.hardened_instance_args

    def weakened(baseline):
        args = original(baseline)
        if mutation == "no-key":
            args.update(kms_key_id=None)
        else:
            args.update(parameter_group_name=None)
        return args

    monkeypatch.setattr(shared.components, "hardened_instance_args", weakened)
    mutated = run_with_upstream("secondary-db", CONFIG, upstream)
    check = assert_encrypted_with_own_key if mutation == "no-key" else assert_tls_forced
    with pytest.raises(AssertionError):
        check(mutated, SECONDARY)


# ---------------------------------------------------------------- credentials


def test_replica_carries_no_credentials_and_reads_no_secret(run, promoted):
    for layer_run in (run, promoted):
        instance = layer_run.one(INSTANCE)
        present = [k for k in CREDENTIAL_INPUTS if instance.inputs.get(k) not in (None, False)]
        assert present == []
        assert not [r for r in layer_run.resources if r.type.startswith("aws:secretsmanager/")]
        assert not [t for t, _, _ in layer_run.invokes if t == SECRET_INVOKE]


def test_applications_here_read_the_master_secrets_replica_in_this_region(upstream, run, promoted):
    primary_arn = upstream["primary-db"].exports[PrimaryDbOutputs.MASTER_SECRET_ARN]
    # Secrets Manager: a replica's ARN is the primary secret's with only the Region changed.
    account_and_name = primary_arn.split(":", 4)[4]
    expected = f"arn:aws:secretsmanager:{SECONDARY}:{account_and_name}"
    assert arn_region(primary_arn) == PRIMARY
    for layer_run in (run, promoted):
        lookups = [(args, region) for token, args, region in layer_run.invokes
                   if token == SECRET_LOOKUP]
        # Looked up where the replica lives, and only there: the primary region may be gone.
        assert lookups == [({"arn": expected}, SECONDARY)]
        assert layer_run.exports[SecondaryDbOutputs.MASTER_SECRET_ARN] == expected


def test_a_master_secret_that_was_never_replicated_stops_the_layer(upstream):
    failure = run_expecting_failure("secondary-db", CONFIG, upstream, _NoReplicaBackend())
    assert "ResourceNotFoundException" in str(failure)


class _NoReplicaBackend(SyntheticBackend):
    """Secrets Manager in the secondary region has no replica of the master secret."""

    def call(self, token, args, region):
        if token == SECRET_LOOKUP and region == SECONDARY:
            raise RuntimeError("ResourceNotFoundException: Secrets Manager can't find the "
                               "specified secret.")
        return super().call(token, args, region)


# ---------------------------------------------------------------- the replica


def test_replica_lives_in_the_networks_secondary_subnets_and_is_private(upstream, run, replica):
    network = upstream["network"].exports
    keys = NetworkOutputs.SECONDARY
    assert replica.inputs["publiclyAccessible"] is False
    assert replica.inputs["vpcSecurityGroupIds"] == [network[keys.db_security_group_id]]
    subnet_group = run.one(SUBNET_GROUP)
    assert replica.inputs["dbSubnetGroupName"] == subnet_group.inputs["name"]
    assert subnet_group.inputs["subnetIds"] == network[keys.private_subnet_ids]
    assert not [r for r in run.resources if r.type.startswith(("aws:ec2/", "aws:vpc/"))]


def test_replica_defaults_to_the_primarys_class_and_single_az(upstream, replica):
    assert replica.inputs["instanceClass"] == upstream["primary-db"].exports[
        PrimaryDbOutputs.INSTANCE_CLASS]
    assert replica.inputs["multiAz"] is False


def test_replica_storage_ceiling_follows_the_primarys_and_never_falls_below_it(upstream, replica):
    primary_ceiling = upstream["primary-db"].exports[PrimaryDbOutputs.MAX_ALLOCATED_STORAGE_GIB]
    assert replica.inputs["maxAllocatedStorage"] == primary_ceiling
    larger = run_with_upstream("secondary-db", {**CONFIG, "maxAllocatedStorageGiB": 500}, upstream)
    assert larger.one(INSTANCE).inputs["maxAllocatedStorage"] == 500
    error = run_expecting_failure(
        "secondary-db", {**CONFIG, "maxAllocatedStorageGiB": primary_ceiling - 1}, upstream)
    assert "maxAllocatedStorageGiB" in str(error)


def test_instance_class_and_multi_az_can_be_set_for_the_replica(upstream):
    custom = run_with_upstream(
        "secondary-db", {**CONFIG, "instanceClass": "db.r7g.xlarge", "multiAz": True}, upstream)
    inputs = custom.one(INSTANCE).inputs
    assert inputs["instanceClass"] == "db.r7g.xlarge"
    assert inputs["multiAz"] is True


def test_replica_has_no_automated_backups_and_is_destroyable(run, replica):
    # Automated backups are not supported on PostgreSQL read replicas (FIELD-NOTES 10).
    assert replica.inputs["backupRetentionPeriod"] == 0
    assert "backupWindow" not in replica.inputs
    # A final snapshot cannot be taken of a replica being deleted (FIELD-NOTES 12).
    assert replica.inputs["skipFinalSnapshot"] is True
    assert replica.inputs["deletionProtection"] is False
    assert not [r for r in run.resources if r.protect or r.retain_on_delete]


def test_replica_hardening(run, replica):
    i = replica.inputs
    assert i["identifier"] == IDENTIFIER
    assert i["iamDatabaseAuthenticationEnabled"] is True
    assert i["caCertIdentifier"] == "rds-ca-rsa2048-g1"
    assert i["storageType"] == "gp3"
    assert i["maxAllocatedStorage"] == 200
    assert i["autoMinorVersionUpgrade"] is True
    assert i["copyTagsToSnapshot"] is True
    assert i["maintenanceWindow"] == "sun:07:00-sun:08:00"
    role = run.one(ROLE)
    assert role.inputs["name"] == f"rds-monitoring-secondary-{SUFFIX}"
    assert i["monitoringRoleArn"] == role.outputs["arn"]
    assert i["monitoringInterval"] == 60
    assert i["databaseInsightsMode"] == "standard"
    assert sorted(i["enabledCloudwatchLogsExports"]) == ["iam-db-auth-error", "postgresql", "upgrade"]
    groups = {g.inputs["name"]: g for g in run.of_type(LOG_GROUP)}
    assert set(groups) == {f"/aws/rds/instance/{IDENTIFIER}/{log}"
                           for log in ("postgresql", "upgrade", "iam-db-auth-error")}
    for group in groups.values():
        assert group.inputs["retentionInDays"] == 60
        assert group.urn in replica.dependencies


# ---------------------------------------------------------------- promotion switch


def test_promotion_drops_the_link_and_turns_backups_on(promoted):
    inputs = promoted.one(INSTANCE).inputs
    assert "replicateSourceDb" not in inputs
    assert inputs["backupRetentionPeriod"] == 14
    assert inputs["backupWindow"] == "03:00-04:00"


def test_promotion_keeps_the_same_instance_key_and_parameter_group(run, promoted):
    before, after = run.one(INSTANCE), promoted.one(INSTANCE)
    # Same URN (same logical name and parent): Pulumi updates the instance in place and
    # the provider promotes it; a new URN would mean delete-and-create.
    assert after.urn == before.urn
    assert after.inputs["identifier"] == before.inputs["identifier"] == IDENTIFIER
    for key in ("kmsKeyId", "parameterGroupName", "dbSubnetGroupName", "vpcSecurityGroupIds",
                "instanceClass", "storageEncrypted", "publiclyAccessible"):
        assert after.inputs[key] == before.inputs[key], key
    assert {r.urn for r in aws_resources(promoted) if r.type != ALARM} == {
        r.urn for r in aws_resources(run) if r.type != ALARM}


def test_promoted_state_is_exported(run, promoted):
    assert run.exports[SecondaryDbOutputs.PROMOTED] is False
    assert promoted.exports[SecondaryDbOutputs.PROMOTED] is True


def test_every_update_reads_aws_first_so_an_outside_promotion_is_not_repeated():
    # The promoter promotes with PromoteReadReplica outside Pulumi. Without a refresh the
    # state still holds replicate_source_db, so flipping replicaPromoted makes the provider
    # promote again and RDS refuses (the instance is no longer a read replica): the
    # runbook's converge step would fail. `refresh: always` (Pulumi.yaml options) makes
    # every update, preview and destroy read AWS first.
    project = yaml.safe_load((REPO / "stacks" / "secondary-db" / "Pulumi.yaml").read_text())
    assert project.get("options", {}).get("refresh") == "always"


def test_replica_group_follows_the_primarys_family_when_it_comes_from_the_stack():
    # The family is only known from the primary's outputs; for postgres18 log_connections
    # takes a list value (RDS rejects "1"), so the group must be built from the resolved one.
    pg18 = run_upstream({**BASE_CONFIG, "engineMajorVersion": "18"}, "network", "primary-db")
    run18 = run_with_upstream("secondary-db", CONFIG, pg18)
    group = run18.one(PARAMETER_GROUP)
    params = {p["name"]: p["value"] for p in group.inputs["parameters"]}
    assert group.inputs["family"] == "postgres18"
    assert params["log_connections"] == "all"
    assert params["rds.force_ssl"] == "1"


# ---------------------------------------------------------------- alerting


def test_replica_lag_alarm_uses_the_configured_rpo_while_replicating(run, promoted, replica):
    topic_arn = run.one(TOPIC).outputs["arn"]
    lag = run.one(ALARM, "pg-replica-lag-").inputs
    assert lag["name"] == f"pg-replica-lag-{SUFFIX}"
    assert lag["metricName"] == "ReplicaLag" and lag["namespace"] == "AWS/RDS"
    assert lag["threshold"] == 120
    assert lag["dimensions"] == {"DBInstanceIdentifier": IDENTIFIER}
    assert lag["alarmActions"] == [topic_arn] and lag["okActions"] == [topic_arn]
    # No lag once promoted: the alarm would only report missing data forever.
    assert not [a for a in promoted.of_type(ALARM) if a.inputs["metricName"] == "ReplicaLag"]


def test_cpu_and_storage_alarms_in_both_states(run, promoted):
    for layer_run in (run, promoted):
        topic_arn = layer_run.one(TOPIC).outputs["arn"]
        metrics = {a.inputs["metricName"]: a.inputs for a in layer_run.of_type(ALARM)}
        assert {"CPUUtilization", "FreeStorageSpace"} <= set(metrics)
        for metric in ("CPUUtilization", "FreeStorageSpace"):
            assert metrics[metric]["alarmActions"] == [topic_arn]
            assert metrics[metric]["okActions"] == [topic_arn]


def test_alert_topic_is_encrypted_with_the_secondary_key(run):
    topic = run.one(TOPIC)
    assert topic.inputs["name"] == f"db-alerts-secondary-{SUFFIX}"
    assert topic.inputs["kmsMasterKeyId"] == run.one(KEY).outputs["arn"]
    assert arn_region(topic.outputs["arn"]) == SECONDARY


def test_rds_events_for_the_replica_reach_the_topic(run):
    s = run.one(EVENT_SUBSCRIPTION).inputs
    assert s["snsTopic"] == run.one(TOPIC).outputs["arn"]
    assert s["sourceType"] == "db-instance" and s["sourceIds"] == [IDENTIFIER]
    assert {"failure", "read replica", "low storage", "maintenance"} <= set(s["eventCategories"])


# ---------------------------------------------------------------- outputs


def test_exports_exactly_the_contract(run, replica):
    e = run.exports
    assert set(e) == set(SecondaryDbOutputs.all())
    assert e[SecondaryDbOutputs.INSTANCE_ARN] == replica.outputs["arn"]
    assert arn_region(e[SecondaryDbOutputs.INSTANCE_ARN]) == SECONDARY
    assert e[SecondaryDbOutputs.INSTANCE_IDENTIFIER] == IDENTIFIER
    assert e[SecondaryDbOutputs.ADDRESS] == replica.outputs["address"]
    assert e[SecondaryDbOutputs.PORT] == 5432
    assert e[SecondaryDbOutputs.RESOURCE_ID] == replica.outputs["resourceId"]
    assert e[SecondaryDbOutputs.REGION] == SECONDARY
    assert e[SecondaryDbOutputs.KMS_KEY_ARN] == run.one(KEY).outputs["arn"]
    assert e[SecondaryDbOutputs.SNS_TOPIC_ARN] == run.one(TOPIC).outputs["arn"]
    assert e[SecondaryDbOutputs.PARAMETER_GROUP_NAME] == run.one(PARAMETER_GROUP).inputs["name"]
    # The dns-failover promoter reads this instead of keeping its own copy of the setting.
    assert e[SecondaryDbOutputs.BACKUP_RETENTION_DAYS_AFTER_PROMOTION] == 14


def test_nothing_mentions_a_default_region_under_other_regions(run, promoted):
    for layer_run in (run, promoted):
        assert not mentions_default_region(layer_run.exports)
        assert not mentions_default_region([r.inputs for r in layer_run.resources])


def test_account_id_comes_from_the_caller_identity(run):
    # No account ID is written in the code: every one in an ARN or a policy is the caller's.
    numbers = {m for s in all_strings([r.inputs for r in run.resources])
               for m in re.findall(r"(?<!\d)\d{12}(?!\d)", s)}
    assert numbers == {OFFLINE_ACCOUNT_ID}


def test_key_lets_cloudwatch_logs_encrypt_exactly_the_failover_functions_of_this_region(run):
    # The promoter (and the replica canary being wired in) log in this region; their log
    # groups are encrypted with this key, so its policy must name them, and nothing else.
    logs = statements_by_sid(document(run.one(KEY)))["CloudWatchLogsForOwnLogGroups"]
    assert logs["Principal"] == {"Service": f"logs.{SECONDARY}.amazonaws.com"}
    prefix = f"arn:aws:logs:{SECONDARY}:{OFFLINE_ACCOUNT_ID}:log-group:"
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == [
        f"{prefix}/aws/rds/instance/{IDENTIFIER}/*",
        f"{prefix}/aws/lambda/db-promoter-{SUFFIX}",
        f"{prefix}/aws/lambda/db-replica-canary-{SUFFIX}",
    ]
