"""A deployment after a failover, checked with the primary region gone.

Run after a promotion and ``make converge`` (RUNBOOK.md section 2.6), on AWS with
``RUN_AFTER_FAILOVER=1 make integration``, and by the rehearsal's outage day, which also
hands the outage to every client here (each call to the primary region, and to Route 53's
control plane when that is us-east-1, fails as an unreachable endpoint). So each check
uses only what the surviving region serves: RDS, Secrets Manager, CloudWatch and DynamoDB
in the secondary region, and the outputs.
"""

from __future__ import annotations

import datetime
import json

import pytest

from tests.support.integration import (
    after_failover_requested,
    alarms_on,
    describe_instance,
    region_of,
)

pytestmark = [
    pytest.mark.after_failover,
    pytest.mark.skipif(not after_failover_requested(),
                       reason="checks a deployment after a failover: opt in with "
                              "RUN_AFTER_FAILOVER=1 once the replica is promoted and converged"),
]


@pytest.fixture(scope="module")
def promoted(deployment, aws, replica_region):
    return describe_instance(aws("rds", replica_region), deployment["replicaInstanceIdentifier"])


def test_the_promoted_replica_stands_alone_with_backups_on(deployment, promoted):
    assert promoted["DBInstanceArn"] == deployment["replicaInstanceArn"]
    assert promoted["DBInstanceStatus"] == "available"
    assert "ReadReplicaSourceDBInstanceIdentifier" not in promoted, "still a read replica"
    assert promoted["BackupRetentionPeriod"] == deployment["replicaBackupRetentionDaysAfterPromotion"]
    # The secondary-db layer has been converged onto it.
    assert deployment["replicaPromoted"] is True


def test_applications_in_the_secondary_region_read_the_master_secrets_replica(deployment, aws,
                                                                            replica_region):
    arn = deployment["secondaryMasterSecretArn"]
    primary_arn = deployment["primaryMasterSecretArn"]
    assert region_of(arn) == replica_region
    # The same secret (Secrets Manager keeps the ARN and changes the Region).
    assert arn.split(":")[4:] == primary_arn.split(":")[4:]
    secret = json.loads(aws("secretsmanager", replica_region).get_secret_value(SecretId=arn)["SecretString"])
    assert isinstance(secret.get("username"), str) and secret["username"]
    assert isinstance(secret.get("password"), str) and len(secret["password"]) >= 8


def test_the_failover_is_recorded_and_writers_are_fenced(deployment, aws, replica_region):
    item = aws("dynamodb", replica_region).get_item(
        TableName=deployment["failoverLedgerTableName"],
        Key={"pk": {"S": f"failover/{deployment['replicaInstanceIdentifier']}"}}).get("Item")
    assert item and item["state"]["S"] in ("promote-requested", "recorded"), item
    # The promoter's FailoverFenced metric is what the writer fence's health check follows.
    now = datetime.datetime.now(datetime.timezone.utc)
    points = aws("cloudwatch", replica_region).get_metric_statistics(
        Namespace=deployment["fenceMetricNamespace"], MetricName="FailoverFenced",
        StartTime=now - datetime.timedelta(hours=3), EndTime=now + datetime.timedelta(minutes=5),
        Period=60, Statistics=["Maximum"])["Datapoints"]
    assert max((p["Maximum"] for p in points), default=0) == 1


def test_a_promoted_instance_has_no_replica_lag_alarm_left(deployment, aws, replica_region):
    alarms = alarms_on(aws("cloudwatch", replica_region), "DBInstanceIdentifier",
                       deployment["replicaInstanceIdentifier"])
    metrics = {a["MetricName"] for a in alarms}
    assert "ReplicaLag" not in metrics
    assert {"CPUUtilization", "FreeStorageSpace"} <= metrics
