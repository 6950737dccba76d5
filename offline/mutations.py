"""Break the rehearsed deployment on purpose, one way at a time, and expect a test to fail.

A passing integration test proves little unless it would fail on a wrong deployment.
Each mutation here changes the deployment in the emulator the way a real mistake would
(a replica made from the wrong source, TLS not forced, the zone missing a VPC, ...),
runs the one test that must catch it, and undoes the change. The rehearsal fails if a
mutated deployment passes its test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

Revert = Callable[[], None]


@dataclass(frozen=True)
class Mutation:
    name: str
    test: str  # pytest node id, relative to the repository root
    apply: Callable[[Mapping[str, Any]], tuple[Revert, dict[str, Any]]]
    """Changes the deployment; returns how to undo it and any outputs to override."""


def _client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)


_DB_TESTS = "tests/integration/test_deployed_databases.py"
_DNS_TESTS = "tests/integration/test_deployed_failover.py"


def _replica_from_wrong_source(out: Mapping[str, Any]) -> tuple[Revert, dict[str, Any]]:
    """A replica that replicates, encrypted and in the right region, from another instance."""
    primary_rds = _client("rds", out["primaryDbRegion"])
    replica_rds = _client("rds", out["replicaRegion"])
    source = primary_rds.describe_db_instances(
        DBInstanceIdentifier=out["primaryDbInstanceIdentifier"])["DBInstances"][0]
    decoy_id = f"{out['primaryDbInstanceIdentifier']}-decoy"
    decoy = primary_rds.create_db_instance(
        DBInstanceIdentifier=decoy_id, Engine=source["Engine"], EngineVersion=source["EngineVersion"],
        DBInstanceClass=source["DBInstanceClass"], AllocatedStorage=source["AllocatedStorage"],
        MasterUsername="decoy", MasterUserPassword="decoy-password-1", StorageEncrypted=True,
        KmsKeyId=out["primaryKmsKeyArn"], BackupRetentionPeriod=1,
        DBSubnetGroupName=source["DBSubnetGroup"]["DBSubnetGroupName"],
    )["DBInstance"]
    major = source["EngineVersion"].split(".")[0]
    wrong_id = f"{out['replicaInstanceIdentifier']}-wrong"
    replica_rds.create_db_instance_read_replica(
        DBInstanceIdentifier=wrong_id, SourceDBInstanceIdentifier=decoy["DBInstanceArn"],
        KmsKeyId=out["secondaryKmsKeyArn"], DBInstanceClass=source["DBInstanceClass"],
        # moto needs the default group named (see offline.moto_backend, replica creation).
        DBParameterGroupName=f"default.{source['Engine']}{major}",
    )
    wrong = replica_rds.describe_db_instances(DBInstanceIdentifier=wrong_id)["DBInstances"][0]

    def revert() -> None:
        # Promote first: moto fails to delete an un-promoted cross-region replica cleanly.
        replica_rds.promote_read_replica(DBInstanceIdentifier=wrong_id)
        replica_rds.delete_db_instance(DBInstanceIdentifier=wrong_id, SkipFinalSnapshot=True)
        primary_rds.delete_db_instance(DBInstanceIdentifier=decoy_id, SkipFinalSnapshot=True)

    return revert, {
        "replicaInstanceIdentifier": wrong_id,
        "replicaInstanceArn": wrong["DBInstanceArn"],
        "replicaAddress": wrong["Endpoint"]["Address"],
    }


def _tls_not_forced(out: Mapping[str, Any]) -> tuple[Revert, dict[str, Any]]:
    rds = _client("rds", out["primaryDbRegion"])
    group = out["primaryDbParameterGroupName"]

    def force_ssl(value: str) -> None:
        rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[{
            "ParameterName": "rds.force_ssl", "ParameterValue": value, "ApplyMethod": "immediate"}])

    force_ssl("0")
    return (lambda: force_ssl("1")), {}


def _zone_without_secondary_vpc(out: Mapping[str, Any]) -> tuple[Revert, dict[str, Any]]:
    route53 = _client("route53", out["primaryDbRegion"])
    vpc = {"VPCId": out["secondaryVpcId"], "VPCRegion": out["secondaryRegion"]}
    route53.disassociate_vpc_from_hosted_zone(HostedZoneId=out["hostedZoneId"], VPC=vpc)
    return (lambda: route53.associate_vpc_with_hosted_zone(HostedZoneId=out["hostedZoneId"], VPC=vpc)), {}


def _writer_primary_unchecked(out: Mapping[str, Any]) -> tuple[Revert, dict[str, Any]]:
    route53 = _client("route53", out["primaryDbRegion"])
    zone, name = out["hostedZoneId"], out["writerRecordName"]
    records = route53.list_resource_record_sets(HostedZoneId=zone, StartRecordName=name,
                                                StartRecordType="CNAME")["ResourceRecordSets"]
    original = next(r for r in records if r.get("Failover") == "PRIMARY"
                    and r["Name"].rstrip(".") == name.rstrip("."))
    unchecked = {k: v for k, v in original.items() if k != "HealthCheckId"}

    def upsert(record: Mapping[str, Any]) -> None:
        route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": dict(record)}]})

    upsert(unchecked)
    return (lambda: upsert(original)), {}


_ALARM_KEYS = (
    "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
    "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "Dimensions", "Period",
    "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
)


def _canary_alarm_unwired(out: Mapping[str, Any]) -> tuple[Revert, dict[str, Any]]:
    cloudwatch = _client("cloudwatch", out["primaryDbRegion"])
    alarm = cloudwatch.describe_alarms(AlarmNames=[out["canaryAlarmName"]])["MetricAlarms"][0]
    original = {k: alarm[k] for k in _ALARM_KEYS if alarm.get(k) not in (None, [])}
    cloudwatch.put_metric_alarm(**{**original, "AlarmActions": [], "OKActions": []})
    return (lambda: cloudwatch.put_metric_alarm(**original)), {}


def _fence_alarm_on_another_metric(out: Mapping[str, Any]) -> tuple[Revert, dict[str, Any]]:
    cloudwatch = _client("cloudwatch", out["replicaRegion"])
    alarm = cloudwatch.describe_alarms(AlarmNames=[out["fenceAlarmName"]])["MetricAlarms"][0]
    original = {k: alarm[k] for k in _ALARM_KEYS if alarm.get(k) not in (None, [])}
    cloudwatch.put_metric_alarm(**{**original, "MetricName": "SomethingElse"})
    return (lambda: cloudwatch.put_metric_alarm(**original)), {}


MUTATIONS: tuple[Mutation, ...] = (
    Mutation("replica made from the wrong source",
             f"{_DB_TESTS}::test_replica_replicates_from_the_primary_arn_across_regions",
             _replica_from_wrong_source),
    Mutation("TLS not forced on the primary",
             f"{_DB_TESTS}::test_primary_forces_tls_through_its_parameter_group", _tls_not_forced),
    Mutation("private zone not associated with the secondary VPC",
             f"{_DNS_TESTS}::test_private_zone_is_associated_with_both_vpcs",
             _zone_without_secondary_vpc),
    Mutation("writer PRIMARY record without the health check",
             f"{_DNS_TESTS}::test_writer_failover_pair_targets_the_right_endpoints",
             _writer_primary_unchecked),
    Mutation("canary alarm not wired to its topic",
             f"{_DNS_TESTS}::test_canary_alarm_watches_the_canary_and_notifies_its_topic",
             _canary_alarm_unwired),
    Mutation("writer fence alarm on another metric than the promoter publishes",
             f"{_DNS_TESTS}::test_fence_alarm_follows_the_promoters_metric_in_the_secondary_region",
             _fence_alarm_on_another_metric),
)


def mutated_outputs(outputs: Mapping[str, Any], override: Mapping[str, Any]) -> str:
    return json.dumps({**outputs, **override}, indent=2, sort_keys=True) + "\n"
