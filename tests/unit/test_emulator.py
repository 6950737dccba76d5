"""What the emulator plays on boto3 clients: a regional outage, and moto's corrections."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from offline.emulator import ApiCall, EmulatorCorrections, RegionRefusal


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield


def test_a_refused_region_fails_like_an_unreachable_endpoint_and_others_answer(aws):
    outage = RegionRefusal()
    down, up = boto3.client("sts", region_name="eu-west-1"), boto3.client("sts", region_name="eu-central-1")
    route53 = boto3.client("route53", region_name="eu-central-1")
    for made in (down, up, route53):
        outage.hook(made)
    assert down.get_caller_identity()["Account"]  # nothing refused before the outage
    outage.refuse(["eu-west-1"])
    with pytest.raises(EndpointConnectionError):
        down.get_caller_identity()
    assert up.get_caller_identity()["Account"]
    assert route53.list_hosted_zones()["HostedZones"] == []  # the control plane answers
    outage.refuse(["eu-west-1"], route53=True)
    with pytest.raises(EndpointConnectionError):
        route53.list_hosted_zones()
    # botocore serves Route 53 from its global endpoint whatever region the client names.
    assert outage.refused == [ApiCall("sts", "eu-west-1", "GetCallerIdentity"),
                              ApiCall("route53", route53.meta.region_name, "ListHostedZones")]
    outage.stop()
    assert down.get_caller_identity()["Account"] and not outage.active


@pytest.mark.parametrize("regions, route53", [(["us-east-1"], True), (["eu-west-1", "ap-south-1"], False)])
def test_a_child_process_rebuilds_the_same_outage_from_its_environment(regions, route53):
    env = RegionRefusal(regions, route53=route53).environment()
    rebuilt = RegionRefusal.from_environment(env)
    assert rebuilt.regions == frozenset(regions) and rebuilt.route53 is route53
    assert RegionRefusal.from_environment({}).active is False
    assert RegionRefusal().environment() == {}


def test_a_promotion_made_elsewhere_is_corrected_in_later_answers(aws):
    rds = boto3.client("rds", region_name="eu-west-1")
    rds.create_db_instance(DBInstanceIdentifier="src", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="u", MasterUserPassword="password1", AllocatedStorage=20)
    rds.create_db_instance_read_replica(DBInstanceIdentifier="rep", SourceDBInstanceIdentifier="src")
    rds.promote_read_replica(DBInstanceIdentifier="rep")
    # moto still names the source after the promotion (what the correction is for).
    assert "ReadReplicaSourceDBInstanceIdentifier" in rds.describe_db_instances(
        DBInstanceIdentifier="rep")["DBInstances"][0]
    corrections = EmulatorCorrections(promoted=["rep"])
    corrected = corrections.client("rds", "eu-west-1")
    answer = corrected.describe_db_instances(DBInstanceIdentifier="rep")["DBInstances"][0]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in answer
    assert corrections.applied
    # Nothing is corrected for an instance nobody promoted.
    assert "ReadReplicaSourceDBInstanceIdentifier" not in corrected.describe_db_instances(
        DBInstanceIdentifier="src")["DBInstances"][0]
