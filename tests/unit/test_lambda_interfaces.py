"""The interface drain: what its delete waits for, deletes and refuses, without waiting for real.

Against moto's EC2 (in-process) for the API shapes, and against a scripted client for the
in-use interfaces Lambda owns, which moto cannot produce; time is a fake clock.
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from shared.components.lambda_interfaces import (
    LambdaInterfaceDrainProvider,
    drain_lambda_interfaces,
)

REGION = "eu-west-1"


@pytest.fixture
def ec2(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def _placement(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24")["Subnet"]["SubnetId"]
               for i in (1, 2)]
    probe = ec2.create_security_group(GroupName="probe", Description="probe", VpcId=vpc)["GroupId"]
    other = ec2.create_security_group(GroupName="other", Description="other", VpcId=vpc)["GroupId"]
    return subnets, probe, other


def _interface(ec2, subnet, group, description):
    return ec2.create_network_interface(SubnetId=subnet, Groups=[group],
                                        Description=description)["NetworkInterface"]["NetworkInterfaceId"]


def _ids(ec2):
    return {n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces()["NetworkInterfaces"]}


def test_released_lambda_interfaces_of_the_placement_are_deleted_and_nothing_else(ec2):
    subnets, probe, other = _placement(ec2)
    ours = [_interface(ec2, s, probe, f"AWS Lambda VPC ENI-db-canary-x-{i}")
            for i, s in enumerate(subnets)]
    not_lambda = _interface(ec2, subnets[0], probe, "an application's interface")
    other_group = _interface(ec2, subnets[0], other, "AWS Lambda VPC ENI-someone-else")
    deleted = drain_lambda_interfaces(ec2, subnets, [probe], sleep=_no_sleep)
    assert sorted(deleted) == sorted(ours)
    assert _ids(ec2) == {not_lambda, other_group}


def test_nothing_to_release_returns_at_once(ec2):
    subnets, probe, _ = _placement(ec2)
    assert drain_lambda_interfaces(ec2, subnets, [probe], sleep=_no_sleep) == []


class _ScriptedEc2:
    """Answers DescribeNetworkInterfaces from a script: one list of interfaces per call."""

    def __init__(self, script):
        self.script, self.deleted, self.filters = list(script), [], []

    def get_paginator(self, name):
        assert name == "describe_network_interfaces"
        return self

    def paginate(self, Filters):
        self.filters.append(Filters)
        current = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return [{"NetworkInterfaces": current}]

    def delete_network_interface(self, NetworkInterfaceId):
        self.deleted.append(NetworkInterfaceId)


def _lambda_eni(eni_id, status):
    return {"NetworkInterfaceId": eni_id, "Status": status, "InterfaceType": "lambda",
            "Description": "AWS Lambda VPC ENI-db-canary-x"}


class _Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_interfaces_still_in_use_are_waited_for_then_deleted_once_lambda_detached_them():
    ec2 = _ScriptedEc2([[_lambda_eni("eni-1", "in-use")], [_lambda_eni("eni-1", "in-use")],
                        [_lambda_eni("eni-1", "available")], []])
    clock = _Clock()
    deleted = drain_lambda_interfaces(ec2, ["subnet-a"], ["sg-p"], timeout_seconds=600,
                                      poll_seconds=20, sleep=clock.sleep, clock=clock)
    assert deleted == ["eni-1"] and ec2.deleted == ["eni-1"]
    assert clock.sleeps == [20, 20]  # waited while Lambda still had it, never deleted it in use
    assert ec2.filters[0] == [{"Name": "subnet-id", "Values": ["subnet-a"]},
                              {"Name": "group-id", "Values": ["sg-p"]}]


def test_interfaces_never_released_stop_the_destroy_naming_them_and_keep_the_role():
    ec2 = _ScriptedEc2([[_lambda_eni("eni-9", "in-use"), _lambda_eni("eni-8", "available")]])
    clock = _Clock()
    with pytest.raises(TimeoutError, match="eni-9") as err:
        drain_lambda_interfaces(ec2, ["subnet-a"], ["sg-p"], timeout_seconds=60,
                                poll_seconds=20, sleep=clock.sleep, clock=clock)
    assert "execution role is kept" in str(err.value)
    assert "eni-9" not in ec2.deleted  # an interface Lambda still uses is never deleted here
    assert clock.now >= 60


def _no_sleep(_seconds):
    raise AssertionError("nothing was in use: the drain must not wait")


def test_the_drain_is_updated_in_place_never_replaced():
    # A replacement would delete the old drain while the function still uses its
    # interfaces: that delete would wait for the full timeout and fail the update.
    provider = LambdaInterfaceDrainProvider()
    olds = {"functionName": "f", "region": REGION, "subnetIds": ["a"], "securityGroupIds": ["g"],
            "timeoutSeconds": 2700}
    news = {**olds, "subnetIds": ["a", "b"]}
    diff = provider.diff("f-interfaces", olds, news)
    assert diff.changes is True and diff.replaces == []
    assert provider.diff("f-interfaces", olds, dict(olds)).changes is False
    assert provider.update("f-interfaces", olds, news).outs["subnetIds"] == ["a", "b"]
    assert provider.create(olds).id == "f-interfaces"
