"""The deployed databases: the encrypted Multi-AZ primary and its cross-region replica.

Every expectation comes from the flat outputs (what the layers say they built) and
every observation from the AWS APIs (what is really there); a deployment that differs
from its outputs or from the design fails here.
"""

from __future__ import annotations

import pytest

from tests.support.integration import alarms_on, db_parameters, describe_instance, region_of

# Forced TLS (FSBP RDS.38); the replica needs its own group (FIELD-NOTES 11).
FORCE_SSL = "rds.force_ssl"


@pytest.fixture(scope="module")
def primary(deployment, aws, primary_region):
    return describe_instance(aws("rds", primary_region), deployment["primaryDbInstanceIdentifier"])


@pytest.fixture(scope="module")
def replica(deployment, aws, replica_region):
    return describe_instance(aws("rds", replica_region), deployment["replicaInstanceIdentifier"])


def test_primary_is_the_exported_instance_and_available(deployment, primary, primary_region):
    assert primary["DBInstanceArn"] == deployment["primaryDbInstanceArn"]
    assert region_of(primary["DBInstanceArn"]) == primary_region
    assert primary["DBInstanceStatus"] == "available"
    assert primary["Endpoint"]["Address"] == deployment["primaryDbAddress"]
    assert int(primary["Endpoint"]["Port"]) == int(deployment["primaryDbPort"])
    assert primary["Engine"] == deployment["dbEngine"] == "postgres"
    assert primary["EngineVersion"].split(".")[0] == str(deployment["dbEngineMajorVersion"])


def test_primary_is_encrypted_with_its_own_key(deployment, primary, primary_region):
    assert primary["StorageEncrypted"] is True
    assert primary["KmsKeyId"] == deployment["primaryKmsKeyArn"]
    assert region_of(deployment["primaryKmsKeyArn"]) == primary_region


def test_primary_is_multi_az_private_and_backed_up(deployment, primary):
    assert primary["MultiAZ"] is True
    assert primary["PubliclyAccessible"] is False
    # A source needs automated backups to have a replica (FIELD-NOTES 8).
    assert primary["BackupRetentionPeriod"] >= 1
    assert primary["DeletionProtection"] is False  # the deployment must be destroyable
    groups = [g["VpcSecurityGroupId"] for g in primary["VpcSecurityGroups"]]
    assert groups == [deployment["primaryDbSecurityGroupId"]]
    assert primary["DBSubnetGroup"]["VpcId"] == deployment["primaryVpcId"]


def test_primary_forces_tls_through_its_parameter_group(deployment, primary, aws, primary_region):
    attached = [g["DBParameterGroupName"] for g in primary["DBParameterGroups"]]
    assert attached == [deployment["primaryDbParameterGroupName"]]
    parameters = db_parameters(aws("rds", primary_region), deployment["primaryDbParameterGroupName"])
    assert parameters.get(FORCE_SSL) == "1", f"{FORCE_SSL} is {parameters.get(FORCE_SSL)!r}"


def test_replica_replicates_from_the_primary_arn_across_regions(deployment, replica, primary,
                                                                 replica_region, primary_region):
    if deployment["replicaPromoted"]:
        pytest.fail("the outputs say the replica was promoted: these checks are for the "
                    "active-passive state (run them before a drill or after a rebuild)")
    assert replica["DBInstanceArn"] == deployment["replicaInstanceArn"]
    assert region_of(replica["DBInstanceArn"]) == replica_region != primary_region
    # A cross-region replica names its source by ARN (FIELD-NOTES 7).
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == deployment["primaryDbInstanceArn"]
    listed = primary.get("ReadReplicaDBInstanceIdentifiers", [])
    assert deployment["replicaInstanceArn"] in listed or deployment["replicaInstanceIdentifier"] in listed
    assert replica["DBInstanceStatus"] == "available"
    assert replica["Endpoint"]["Address"] == deployment["replicaAddress"]


def test_replica_is_encrypted_with_the_secondary_regions_key(deployment, replica, replica_region):
    assert replica["StorageEncrypted"] is True
    assert replica["KmsKeyId"] == deployment["secondaryKmsKeyArn"]
    # KMS keys are regional: the replica's key must live where the replica lives (FIELD-NOTES 6).
    assert region_of(deployment["secondaryKmsKeyArn"]) == replica_region
    assert deployment["secondaryKmsKeyArn"] != deployment["primaryKmsKeyArn"]


def test_replica_stands_in_the_secondary_network_and_is_private(deployment, replica):
    assert replica["PubliclyAccessible"] is False
    groups = [g["VpcSecurityGroupId"] for g in replica["VpcSecurityGroups"]]
    assert groups == [deployment["secondaryDbSecurityGroupId"]]
    assert replica["DBSubnetGroup"]["VpcId"] == deployment["secondaryVpcId"]
    assert replica["DeletionProtection"] is False


def test_replica_forces_tls_through_its_own_parameter_group(deployment, replica, aws, replica_region):
    attached = [g["DBParameterGroupName"] for g in replica["DBParameterGroups"]]
    assert attached == [deployment["replicaParameterGroupName"]]
    parameters = db_parameters(aws("rds", replica_region), deployment["replicaParameterGroupName"])
    assert parameters.get(FORCE_SSL) == "1", f"{FORCE_SSL} is {parameters.get(FORCE_SSL)!r}"


@pytest.mark.parametrize("role", ["primary", "secondary"])
def test_database_alarms_notify_the_alerts_topic(deployment, aws, role):
    if role == "primary":
        region, identifier = deployment["primaryDbRegion"], deployment["primaryDbInstanceIdentifier"]
        topic, expected = deployment["primaryAlertsTopicArn"], {"CPUUtilization", "FreeStorageSpace"}
    else:
        region, identifier = deployment["replicaRegion"], deployment["replicaInstanceIdentifier"]
        topic, expected = deployment["secondaryAlertsTopicArn"], {"CPUUtilization", "FreeStorageSpace"}
        if not deployment["replicaPromoted"]:
            expected.add("ReplicaLag")  # the RPO the operator accepts
    alarms = alarms_on(aws("cloudwatch", region), "DBInstanceIdentifier", identifier)
    assert expected <= {a["MetricName"] for a in alarms}, [a["AlarmName"] for a in alarms]
    for alarm in alarms:
        assert topic in alarm["AlarmActions"], f"{alarm['AlarmName']} does not notify {topic}"


@pytest.mark.parametrize("role", ["primary", "secondary"])
def test_alerts_topic_is_encrypted_and_gets_rds_events(deployment, aws, role):
    if role == "primary":
        region, identifier = deployment["primaryDbRegion"], deployment["primaryDbInstanceIdentifier"]
        topic = deployment["primaryAlertsTopicArn"]
    else:
        region, identifier = deployment["replicaRegion"], deployment["replicaInstanceIdentifier"]
        topic = deployment["secondaryAlertsTopicArn"]
    assert region_of(topic) == region
    attributes = aws("sns", region).get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes.get("KmsMasterKeyId"), f"{topic} is not encrypted (FSBP SNS.1)"
    subscriptions = aws("rds", region).describe_event_subscriptions()["EventSubscriptionsList"]
    feeding = [s for s in subscriptions if s["SnsTopicArn"] == topic and s.get("Enabled")]
    assert feeding, f"no enabled RDS event subscription publishes to {topic}"
    assert any(identifier in s.get("SourceIdsList", []) or not s.get("SourceIdsList")
               for s in feeding)
