"""Converging the layers after a failover, on the emulator, with the primary region refused.

An in-process moto server holds a deployment of the real layers (created through
``MotoBackend`` as the rehearsal does). The primary region is then made unreachable
(``MotoBackend.refuse``) and secondary-db is re-run with ``replicaPromoted: true`` and
dns-failover after it, against their deployed runs, as an operator converges them while
the primary region is down: not one call may go to the primary region, and what the
backend changed must really have changed in the emulator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto.backends import get_backend

from offline.emulator import (
    ApiCall,
    EmulatorCorrections,
    apply_environment,
    emulator_environment,
    start_emulator,
)
from offline.harness import DELETED, UNCHANGED, UPDATED, LayerRun, run_all
from offline.moto_backend import MotoBackend
from offline.rehearse import layer_config, seed_master_secret

PRIMARY, SECONDARY = "eu-west-1", "eu-central-1"
# Set here, so the expected values come from this test, not from the layer's defaults.
RETENTION, WINDOW = 5, "01:00-01:30"
SECONDARY_DB = {"backupRetentionDaysAfterPromotion": RETENTION, "backupWindow": WINDOW}
PROMOTED = {"secondary-db": {**SECONDARY_DB, "replicaPromoted": True}}
INSTANCE, ALARM = "aws:rds/instance:Instance", "aws:cloudwatch/metricAlarm:MetricAlarm"
RECORD = "aws:route53/record:Record"
ALL = ("network", "primary-db", "secondary-db", "dns-failover")


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


class Sent:
    """The parameters of every call a client hooked here sends, by operation."""

    def __init__(self) -> None:
        self.params: dict[str, list[dict[str, Any]]] = {}

    def hook(self, made: Any) -> None:
        made.meta.events.register("before-parameter-build.*.*", self._sent)

    def _sent(self, model: Any, params: Any, **_: Any) -> None:
        self.params.setdefault(model.name, []).append(dict(params))


def _deploy(endpoint: str, suffix: str, layers: tuple[str, ...], primary: str = PRIMARY
            ) -> tuple[MotoBackend, dict[str, Any], dict[str, LayerRun]]:
    backend = MotoBackend(endpoint)
    config = layer_config(suffix, primary, SECONDARY)
    seed_master_secret(config, suffix)
    runs = run_all(config, stack=suffix, backend=backend, layers=layers,
                   layer_config={"secondary-db": SECONDARY_DB})
    return backend, config, runs


def _identifier(runs: dict[str, LayerRun]) -> str:
    return runs["secondary-db"].one(INSTANCE).outputs["identifier"]


def _describe(identifier: str) -> dict[str, Any]:
    return boto3.client("rds", region_name=SECONDARY).describe_db_instances(
        DBInstanceIdentifier=identifier)["DBInstances"][0]


def _moto_says_replica(backend: MotoBackend, identifier: str) -> bool:
    # moto's own model of the instance, which its DescribeDBInstances answer misreports
    # after a promotion (offline/emulator.py, EmulatorCorrections).
    return get_backend("rds")[backend.account_id][SECONDARY].databases[identifier].is_replica


def _writer_primary(runs: dict[str, LayerRun]) -> Any:
    return next(r for r in runs["dns-failover"].of_type(RECORD)
                if r.inputs.get("setIdentifier") == "primary" and r.name.startswith("writer"))


def _record_sets(zone_id: str) -> list[dict[str, Any]]:
    return boto3.client("route53", region_name=SECONDARY).list_resource_record_sets(
        HostedZoneId=zone_id)["ResourceRecordSets"]


def test_converging_after_a_failover_touches_nothing_in_the_refused_primary_region(emulator):
    backend, config, runs = _deploy(emulator, "cv4", ALL)
    identifier = _identifier(runs)
    [lag] = [r for r in runs["secondary-db"].of_type(ALARM) if "lag" in r.name]
    writer = _writer_primary(runs)
    sent, corrections = Sent(), EmulatorCorrections()
    backend.add_client_hook(sent.hook)
    backend.add_client_hook(corrections.hook)
    calls_before = len(backend.calls)
    assert _moto_says_replica(backend, identifier)
    backend.refuse([PRIMARY])

    converged = run_all(config, stack="cv4", backend=backend, layers=("secondary-db", "dns-failover"),
                        layer_config=PROMOTED, previous=runs)

    assert backend.refused == []
    calls = backend.calls[calls_before:]
    # Everything in the secondary region, but Route 53's API, which is served from us-east-1.
    assert {c.region for c in calls if c.service != "route53"} == {SECONDARY}
    assert {c.region for c in calls if c.service == "route53"} == {"us-east-1"}

    # resourceInstanceUpdate: PromoteReadReplica with the retention and window, then ONE
    # ModifyDBInstance carrying them again (the provider diffs against the state).
    rds = [c.operation for c in calls if c.service == "rds"]
    assert rds.count("PromoteReadReplica") == 1 and rds.count("ModifyDBInstance") == 1
    assert rds.index("PromoteReadReplica") < rds.index("ModifyDBInstance")
    [promote], [modify] = sent.params["PromoteReadReplica"], sent.params["ModifyDBInstance"]
    assert promote == {"DBInstanceIdentifier": identifier, "BackupRetentionPeriod": RETENTION,
                       "PreferredBackupWindow": WINDOW}
    assert modify == {"DBInstanceIdentifier": identifier, "BackupRetentionPeriod": RETENTION,
                      "PreferredBackupWindow": WINDOW, "ApplyImmediately": True,
                      "DeletionProtection": False}
    # The same instance, standing alone now: moto's model says so; its describe answer keeps
    # naming the source (a known moto deviation), which the corrections, having seen the
    # promotion succeed, remove as AWS's answer would not name it.
    assert not _moto_says_replica(backend, identifier)
    assert _describe(identifier)["DbiResourceId"] == runs["secondary-db"].one(INSTANCE).id
    corrected = corrections.client("rds", SECONDARY, lambda s, r: boto3.client(s, region_name=r))
    replica = corrected.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in replica
    assert (replica["BackupRetentionPeriod"], replica["PreferredBackupWindow"]) == (RETENTION, WINDOW)

    # The lag alarm is gone (DeleteAlarms, once); the other alarms are still there.
    secondary = converged["secondary-db"].changes
    assert secondary[runs["secondary-db"].one(INSTANCE).urn] == UPDATED and secondary[lag.urn] == DELETED
    assert [c for c in calls if c.service == "cloudwatch"] == [
        ApiCall("cloudwatch", SECONDARY, "DeleteAlarms")]
    assert sent.params["DeleteAlarms"] == [{"AlarmNames": [lag.outputs["name"]]}]
    names = {a["AlarmName"] for a in boto3.client("cloudwatch", region_name=SECONDARY)
             .describe_alarms()["MetricAlarms"]}
    assert lag.outputs["name"] not in names
    assert {r.outputs["name"] for r in converged["secondary-db"].of_type(ALARM)} <= names

    # The writer record's PRIMARY member now names the promoted replica, in Route 53, by
    # an UPSERT of that member; the SECONDARY member already named it.
    dns = converged["dns-failover"]
    assert {urn for urn, change in dns.changes.items() if change != UNCHANGED} == {writer.urn}
    [batch] = sent.params["ChangeResourceRecordSets"]
    assert [change["Action"] for change in batch["ChangeBatch"]["Changes"]] == ["UPSERT"]
    assert batch["ChangeBatch"]["Changes"][0]["ResourceRecordSet"]["SetIdentifier"] == "primary"
    members = {rs.get("SetIdentifier"): rs for rs in _record_sets(writer.inputs["zoneId"])
               if rs["Name"].startswith("writer.")}
    assert members["primary"]["ResourceRecords"] == [{"Value": replica["Endpoint"]["Address"]}]
    assert members["primary"]["Failover"] == "PRIMARY"
    assert members["secondary"]["ResourceRecords"] == [{"Value": replica["Endpoint"]["Address"]}]

    # A layer that needs the primary region cannot converge while it is refused, and the
    # refused calls say where it tried to go.
    with pytest.raises(EndpointConnectionError):
        run_all(config, stack="cv4", backend=backend, layers=("primary-db",), previous=runs,
                layer_config={"primary-db": {"multiAz": False}})
    assert backend.refused and {c.region for c in backend.refused} == {PRIMARY}


def test_a_us_east_1_outage_lets_secondary_db_converge_and_refuses_the_writer_record(emulator):
    """Refusing us-east-1 refuses Route 53's control plane with it: nobody said route53=True."""
    backend, config, runs = _deploy(emulator, "cv8", ALL, primary="us-east-1")
    backend.refuse(["us-east-1"])

    converged = run_all(config, stack="cv8", backend=backend, layers=("secondary-db",),
                        layer_config=PROMOTED, previous=runs)
    assert backend.refused == []
    assert converged["secondary-db"].changes[runs["secondary-db"].one(INSTANCE).urn] == UPDATED

    writer = _writer_primary(runs)
    with pytest.raises(EndpointConnectionError):
        run_all(config, stack="cv8", backend=backend, layers=("dns-failover",),
                layer_config=PROMOTED, previous={**runs, **converged})
    assert backend.refused and {(c.service, c.region) for c in backend.refused} == {
        ("route53", "us-east-1")}
    backend.stop_refusing()
    # Nothing reached Route 53: the record still names the old primary.
    [member] = [rs for rs in _record_sets(writer.inputs["zoneId"])
                if rs.get("SetIdentifier") == "primary" and rs["Name"].startswith("writer.")]
    assert member["ResourceRecords"] == [{"Value": runs["primary-db"].exports["primaryDbAddress"]}]


def test_a_replica_promoted_outside_pulumi_converges_only_with_a_refresh(emulator):
    backend, config, runs = _deploy(emulator, "cv5", ("network", "primary-db", "secondary-db"))
    identifier = _identifier(runs)
    # The promoter promotes (retention 1) in its own process; the rehearsal tells the
    # corrections on the backend's clients, as the drills report what they promoted.
    boto3.client("rds", region_name=SECONDARY).promote_read_replica(
        DBInstanceIdentifier=identifier, BackupRetentionPeriod=1)
    backend.add_client_hook(EmulatorCorrections(promoted=[identifier]).hook)
    backend.refuse([PRIMARY])
    calls_before = len(backend.calls)

    # pulumi up --refresh=false: the state still names the source, so the provider promotes
    # again and AWS refuses (why stacks/secondary-db/Pulumi.yaml says refresh: always).
    with pytest.raises(RuntimeError, match="InvalidDBInstanceState"):
        run_all(config, stack="cv5", backend=backend, layers=("secondary-db",),
                layer_config=PROMOTED, previous=runs)
    assert [c.operation for c in backend.calls[calls_before:] if c.service == "rds"] == [
        "PromoteReadReplica"]

    # With the refresh: the instance reads back standing alone, nothing is promoted, and
    # one ModifyDBInstance sets the retention (from the promoter's 1) and the window.
    calls_before = len(backend.calls)
    converged = run_all(config, stack="cv5", backend=backend, layers=("secondary-db",),
                        layer_config=PROMOTED, previous=runs, refresh=("secondary-db",))
    run = converged["secondary-db"]
    instance = runs["secondary-db"].one(INSTANCE)
    assert set(run.refreshed[instance.urn]) >= {"replicateSourceDb", "backupRetentionPeriod"}
    # What the backend cannot read back is kept and named, not passed off as read.
    assert instance.urn not in run.not_refreshed
    assert set(run.not_refreshed) >= {r.urn for r in runs["secondary-db"].of_type(ALARM)}
    rds = [c.operation for c in backend.calls[calls_before:] if c.service == "rds"]
    assert "PromoteReadReplica" not in rds and rds.count("ModifyDBInstance") == 1
    replica = _describe(identifier)
    assert (replica["BackupRetentionPeriod"], replica["PreferredBackupWindow"]) == (RETENTION, WINDOW)
    assert backend.refused == []


def test_refreshing_an_untouched_deployment_finds_nothing_changed(emulator):
    backend, config, runs = _deploy(emulator, "cv7", ("network", "primary-db", "secondary-db"))
    calls_before = len(backend.calls)
    converged = run_all(config, stack="cv7", backend=backend, layers=("secondary-db",),
                        layer_config={"secondary-db": SECONDARY_DB}, previous=runs,
                        refresh=("secondary-db",))
    run = converged["secondary-db"]
    assert run.refreshed == {}
    assert set(run.changes.values()) == {UNCHANGED}
    # The refresh read the instance, and nothing was written.
    operations = {c.operation for c in backend.calls[calls_before:]}
    assert "DescribeDBInstances" in operations
    assert not {op for op in operations if not op.startswith(("Describe", "Get", "List"))}


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
