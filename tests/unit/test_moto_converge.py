"""Converging the layers after a failover, on the emulator, with the primary region refused.

An in-process moto server holds a deployment of the real layers (created through
``MotoBackend`` as the rehearsal does). The primary region is then made unreachable
(``MotoBackend.refuse``) and secondary-db is re-run with ``replicaPromoted: true`` and
dns-failover after it, against their deployed runs, as an operator converges them while
the primary region is down: not one call may go to the primary region.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from offline.emulator import EmulatorCorrections, apply_environment, emulator_environment, start_emulator
from offline.harness import DELETED, UNCHANGED, UPDATED, LayerRun, run_all
from offline.moto_backend import MotoBackend
from offline.rehearse import layer_config, seed_master_secret

PRIMARY, SECONDARY = "eu-west-1", "eu-central-1"
# Set here, so the expected values come from this test, not from the layer's defaults.
RETENTION, WINDOW = 5, "01:00-01:30"
SECONDARY_DB = {"backupRetentionDaysAfterPromotion": RETENTION, "backupWindow": WINDOW}
PROMOTED = {"secondary-db": {**SECONDARY_DB, "replicaPromoted": True}}
INSTANCE, ALARM = "aws:rds/instance:Instance", "aws:cloudwatch/metricAlarm:MetricAlarm"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    saved = dict(os.environ)
    server = start_emulator()
    apply_environment(emulator_environment(server.endpoint_url, PRIMARY))
    try:
        yield server.endpoint_url
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def _deploy(endpoint: str, suffix: str, layers: tuple[str, ...]
            ) -> tuple[MotoBackend, dict[str, Any], dict[str, LayerRun]]:
    backend = MotoBackend(endpoint)
    config = layer_config(suffix, PRIMARY, SECONDARY)
    seed_master_secret(config, suffix)
    runs = run_all(config, stack=suffix, backend=backend, layers=layers,
                   layer_config={"secondary-db": SECONDARY_DB})
    return backend, config, runs


def _replica(runs: dict[str, LayerRun]) -> dict[str, Any]:
    identifier = runs["secondary-db"].one(INSTANCE).outputs["identifier"]
    return boto3.client("rds", region_name=SECONDARY).describe_db_instances(
        DBInstanceIdentifier=identifier)["DBInstances"][0]


def test_converging_after_a_failover_touches_nothing_in_the_refused_primary_region(emulator):
    backend, config, runs = _deploy(emulator, "cv4", ("network", "primary-db", "secondary-db",
                                                      "dns-failover"))
    [lag] = [r for r in runs["secondary-db"].of_type(ALARM) if "lag" in r.name]
    sent_before = len(backend.calls)
    backend.refuse([PRIMARY])

    converged = run_all(config, stack="cv4", backend=backend, layers=("secondary-db", "dns-failover"),
                        layer_config=PROMOTED, previous=runs)

    assert backend.refused == []
    sent = backend.calls[sent_before:]
    assert sent and {call.region for call in sent} == {SECONDARY}
    # The provider's update of the replica: the refresh read, the promotion, one modify.
    rds = [call.operation for call in sent if call.service == "rds"]
    assert rds.index("DescribeDBInstances") < rds.index("PromoteReadReplica") < rds.index(
        "ModifyDBInstance")
    assert rds.count("PromoteReadReplica") == 1
    replica = _replica(runs)
    assert replica["BackupRetentionPeriod"] == RETENTION and replica["PreferredBackupWindow"] == WINDOW
    assert replica["DbiResourceId"] == runs["secondary-db"].one(INSTANCE).id  # the same instance

    secondary = converged["secondary-db"].changes
    assert secondary[runs["secondary-db"].one(INSTANCE).urn] == UPDATED and secondary[lag.urn] == DELETED
    alarms = boto3.client("cloudwatch", region_name=SECONDARY).describe_alarms()["MetricAlarms"]
    names = {a["AlarmName"] for a in alarms}
    assert lag.outputs["name"] not in names
    assert {r.outputs["name"] for r in converged["secondary-db"].of_type(ALARM)} <= names

    # The writer record's PRIMARY member now names the promoted replica, in Route 53.
    dns = converged["dns-failover"]
    writer = next(r for r in dns.of_type("aws:route53/record:Record")
                  if r.inputs.get("setIdentifier") == "primary" and r.name.startswith("writer"))
    assert {urn for urn, change in dns.changes.items() if change != UNCHANGED} == {writer.urn}
    zone_id = writer.inputs["zoneId"]
    answer = boto3.client("route53", region_name=SECONDARY).list_resource_record_sets(
        HostedZoneId=zone_id)["ResourceRecordSets"]
    [member] = [rs for rs in answer if rs.get("SetIdentifier") == "primary"
                and rs["Name"].startswith("writer.")]
    assert member["ResourceRecords"] == [{"Value": replica["Endpoint"]["Address"]}]
    assert member["Failover"] == "PRIMARY"

    # A layer that needs the primary region cannot converge while it is refused, and the
    # refused calls say where it tried to go.
    with pytest.raises(EndpointConnectionError):
        run_all(config, stack="cv4", backend=backend, layers=("primary-db",), previous=runs)
    assert backend.refused and {call.region for call in backend.refused} == {PRIMARY}

    # Route 53's control plane down too (a us-east-1 outage): the same converge of
    # dns-failover cannot change the record.
    backend.refuse([PRIMARY], route53=True)
    refused_before = len(backend.refused)
    with pytest.raises(EndpointConnectionError):
        run_all(config, stack="cv4", backend=backend, layers=("dns-failover",),
                previous={**runs, "secondary-db": converged["secondary-db"]})
    assert {call.service for call in backend.refused[refused_before:]} == {"route53"}


def test_a_replica_promoted_outside_pulumi_is_not_promoted_again(emulator):
    backend, config, runs = _deploy(emulator, "cv5", ("network", "primary-db", "secondary-db"))
    identifier = runs["secondary-db"].one(INSTANCE).outputs["identifier"]
    # moto keeps naming a promoted instance's source; AWS does not (RDS User Guide,
    # USER_ReadRepl.Promote). The drills' open correction, on both the operator's client
    # and the backend's, makes the backend's refresh read what AWS would answer.
    corrections = EmulatorCorrections()
    operator = boto3.client("rds", region_name=SECONDARY)
    corrections.hook(operator)
    operator.promote_read_replica(DBInstanceIdentifier=identifier, BackupRetentionPeriod=1)
    backend.add_client_hook(corrections.hook)
    sent_before = len(backend.calls)
    backend.refuse([PRIMARY])

    run_all(config, stack="cv5", backend=backend, layers=("secondary-db",), layer_config=PROMOTED,
            previous=runs)

    operations = [call.operation for call in backend.calls[sent_before:] if call.service == "rds"]
    assert "PromoteReadReplica" not in operations and "ModifyDBInstance" in operations
    assert corrections.applied  # the refresh did read the corrected answer
    assert backend.refused == []
    assert _replica(runs)["BackupRetentionPeriod"] == RETENTION  # from 1, by the modify


def _policy_program(resource: str):
    def program() -> None:
        import json

        import pulumi
        import pulumi_aws as aws

        provider = aws.Provider("aws-secondary-cv6", region=SECONDARY)
        aws.iam.Policy("db-connect-cv6", name="db-connect-cv6", policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": resource}]}),
            opts=pulumi.ResourceOptions(provider=provider))
    return program


def test_a_changed_policy_document_becomes_the_default_version_and_the_policy_still_deletes(emulator):
    # What a failback does to databaseConnectPolicyArn: the rebuilt instances have new
    # resource ids, so the document changes (resourcePolicyUpdate: a new default version).
    from offline.harness import run_layer

    backend = MotoBackend(emulator)
    config = layer_config("cv6", PRIMARY, SECONDARY)
    old_arn = f"arn:aws:rds-db:{SECONDARY}:123456789012:dbuser:db-OLD/app"
    new_arn = f"arn:aws:rds-db:{SECONDARY}:123456789012:dbuser:db-NEW/app"
    deployed = run_layer("dns-failover", config, stack="cv6", backend=backend,
                         program=_policy_program(old_arn))
    policy = next(r for r in deployed.resources if r.type == "aws:iam/policy:Policy")
    updated = run_layer("dns-failover", config, stack="cv6", backend=backend,
                        program=_policy_program(new_arn), previous=deployed)
    assert updated.changes[policy.urn] == UPDATED
    iam = boto3.client("iam", region_name=SECONDARY)
    versions = iam.list_policy_versions(PolicyArn=policy.id)["Versions"]
    default = next(v for v in versions if v["IsDefaultVersion"])
    document = iam.get_policy_version(PolicyArn=policy.id, VersionId=default["VersionId"])
    assert len(versions) == 2
    assert new_arn in str(document["PolicyVersion"]["Document"])
    operations = [c.operation for c in backend.calls if c.service == "iam"]
    assert operations.index("CreatePolicyVersion") < operations.index("SetDefaultPolicyVersion")

    backend.delete(updated.by_urn(policy.urn))
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=policy.id)
