"""What the emulator plays on boto3 clients: a regional outage, and moto's corrections."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from offline.emulator import ApiCall, EmulatorCorrections, RegionRefusal, endpoint_region


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
    # botocore serves Route 53 from its global endpoint, in us-east-1, whatever region the
    # client names: the refused call says where it went.
    assert outage.refused == [ApiCall("sts", "eu-west-1", "GetCallerIdentity"),
                              ApiCall("route53", "us-east-1", "ListHostedZones")]
    outage.stop()
    assert down.get_caller_identity()["Account"] and not outage.active


@pytest.mark.parametrize("service, region, expected", [
    ("route53", "eu-central-1", "us-east-1"),  # one endpoint, route53.amazonaws.com
    ("iam", "ap-southeast-2", "us-east-1"),
    ("route53", "us-gov-east-1", "us-gov-west-1"),  # GovCloud's own global endpoint
    ("rds", "eu-central-1", "eu-central-1"),  # regional services answer where they are
    ("sts", "eu-central-1", "eu-central-1"),  # regional endpoints (botocore's default)
    ("cloudwatch", "us-east-1", "us-east-1"),
    ("route53", "aws-global", "us-east-1"),  # what botocore names a client it sent there
])
def test_a_call_goes_to_its_service_endpoint_region(service, region, expected):
    assert endpoint_region(service, region) == expected


def test_a_us_east_1_outage_takes_route53_s_control_plane_with_it_and_no_other_outage_does(aws):
    route53 = boto3.client("route53", region_name="eu-central-1")
    rds = boto3.client("rds", region_name="eu-central-1")
    outage = RegionRefusal(["eu-west-1"])
    for made in (route53, rds):
        outage.hook(made)
    assert route53.list_hosted_zones()["HostedZones"] == []  # eu-west-1 down: answers
    outage.refuse(["us-east-1"])
    with pytest.raises(EndpointConnectionError):
        route53.list_hosted_zones()
    assert rds.describe_db_instances()["DBInstances"] == []  # the secondary region answers
    assert outage.refused == [ApiCall("route53", "us-east-1", "ListHostedZones")]
    assert outage.refuses("route53", "ap-south-1") and not outage.refuses("rds", "ap-south-1")


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


def test_promoting_an_instance_that_stands_alone_is_refused_as_aws_does(aws):
    rds = boto3.client("rds", region_name="eu-west-1")
    rds.create_db_instance(DBInstanceIdentifier="src", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="u", MasterUserPassword="password1", AllocatedStorage=20)
    for name in ("rep", "other", "third"):
        rds.create_db_instance_read_replica(DBInstanceIdentifier=name, SourceDBInstanceIdentifier="src")
    corrections = EmulatorCorrections()
    corrected = corrections.client("rds", "eu-west-1")
    # The first promotion is a real one and is answered by moto.
    assert corrected.promote_read_replica(DBInstanceIdentifier="rep")["DBInstance"]
    # moto would answer a second one as a success too; AWS refuses it.
    assert rds.promote_read_replica(DBInstanceIdentifier="rep")["DBInstance"]
    with pytest.raises(ClientError) as refused:
        corrected.promote_read_replica(DBInstanceIdentifier="rep")
    assert refused.value.response["Error"]["Code"] == "InvalidDBInstanceState"
    # One promoted by another process is refused once this object is told of it...
    rds.promote_read_replica(DBInstanceIdentifier="third")
    corrections.promoted_elsewhere(["third"])
    with pytest.raises(ClientError, match="InvalidDBInstanceState"):
        corrected.promote_read_replica(DBInstanceIdentifier="third")
    # ...and a replica nobody promoted yet is promoted normally.
    assert corrected.promote_read_replica(DBInstanceIdentifier="other")["DBInstance"]
    assert corrections.count("PromoteReadReplica") == 2
    # Once deleted and rebuilt under its identifier, an instance is a replica again.
    corrections.forget("rep")
    assert "rep" not in corrections.promoted_ids and not [
        arn for arn in corrections.promoted_arns if arn.endswith(":db:rep")]
