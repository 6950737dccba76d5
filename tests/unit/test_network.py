"""The network layer, run for real under the Pulumi mock runtime."""

from __future__ import annotations

import ipaddress
import json

import pytest

from offline.harness import run_layer
from shared.config import ConfigError
from shared.contract import EXPORTS, NetworkOutputs

SUFFIX = "qa7"
PRIMARY, SECONDARY = "eu-west-1", "ap-southeast-2"
CONFIG = {
    "environmentSuffix": SUFFIX,
    "aws:region": PRIMARY,
    "secondaryRegion": SECONDARY,
    "subnetsPerRegion": 3,
}

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


@pytest.fixture(scope="module")
def run():
    return run_layer("network", CONFIG, stack="ci")


def _in_region(run, type_, region):
    return [r for r in run.of_type(type_) if r.region == region]


def test_one_vpc_per_region_with_dns_and_configured_cidrs(run):
    vpcs = {r.region: r.inputs for r in run.of_type(VPC)}
    assert set(vpcs) == {PRIMARY, SECONDARY}
    assert vpcs[PRIMARY]["cidrBlock"] == "10.10.0.0/16"
    assert vpcs[SECONDARY]["cidrBlock"] == "10.20.0.0/16"
    for inputs in vpcs.values():
        assert inputs["enableDnsSupport"] is True
        assert inputs["enableDnsHostnames"] is True


def test_private_subnets_in_distinct_zones_of_their_own_region(run):
    for region, vpc_cidr in ((PRIMARY, "10.10.0.0/16"), (SECONDARY, "10.20.0.0/16")):
        subnets = _in_region(run, SUBNET, region)
        assert len(subnets) == 3
        zones = [s.inputs["availabilityZone"] for s in subnets]
        assert len(set(zones)) == 3
        assert all(z.startswith(region) for z in zones)
        blocks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
        assert all(b.subnet_of(ipaddress.ip_network(vpc_cidr)) for b in blocks)
        assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1:])
        assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)


def test_no_internet_path_exists(run):
    types = {r.type for r in run.resources}
    assert not types & {
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/eip:Eip",
    }


def test_default_security_groups_have_no_rules(run):
    defaults = run.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert {d.region for d in defaults} == {PRIMARY, SECONDARY}
    for d in defaults:
        assert d.inputs.get("ingress") in (None, [])
        assert d.inputs.get("egress") in (None, [])


def test_database_group_admits_postgres_only_from_clients_and_probe(run):
    for region in (PRIMARY, SECONDARY):
        groups = {r.inputs["name"]: r for r in _in_region(run, SG, region)}
        role = "primary" if region == PRIMARY else "secondary"
        db = groups[f"db-access-{role}-{SUFFIX}"]
        clients = groups[f"db-clients-{role}-{SUFFIX}"]
        probe = groups[f"db-probe-{role}-{SUFFIX}"]
        rules = [r for r in _in_region(run, INGRESS, region)
                 if r.inputs["securityGroupId"] == db.id]
        assert {r.inputs["referencedSecurityGroupId"] for r in rules} == {clients.id, probe.id}
        for rule in rules:
            assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (5432, 5432)
            assert rule.inputs["ipProtocol"] == "tcp"
            assert rule.inputs["description"]


def test_no_rule_opens_anything_to_the_internet(run):
    for rule in run.of_type(INGRESS) + run.of_type(EGRESS):
        assert rule.inputs.get("cidrIpv4") is None
        assert rule.inputs.get("cidrIpv6") is None
        assert rule.inputs["description"]
    for group in run.of_type(SG):
        assert not group.inputs.get("ingress")
        assert not group.inputs.get("egress")


def test_flow_logs_go_to_a_retained_group_in_each_region_with_a_scoped_role(run):
    logs = run.of_type("aws:cloudwatch/logGroup:LogGroup")
    flows = run.of_type("aws:ec2/flowLog:FlowLog")
    assert {f.region for f in flows} == {PRIMARY, SECONDARY}
    assert {g.region for g in logs} == {PRIMARY, SECONDARY}
    assert all(g.inputs["retentionInDays"] == 30 for g in logs)
    log_arns = {g.outputs["arn"] for g in logs}
    assert {f.inputs["logDestination"] for f in flows} == log_arns
    assert all(f.inputs["trafficType"] == "ALL" for f in flows)

    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    statements = {st["Sid"]: st for st in policy["Statement"]}
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    assert "*" not in resources
    write = statements["WriteOwnFlowLogGroups"]
    assert set(write["Resource"]) == log_arns | {f"{a}:*" for a in log_arns}
    # The VPC User Guide's minimum for a flow-log role includes logs:DescribeLogGroups
    # ("IAM role for publishing flow logs to CloudWatch Logs"). That list call takes no
    # group ARN, so it is scoped to the log groups of this account in each region.
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams",
            "logs:DescribeLogGroups"} <= actions
    assert "logs:CreateLogGroup" not in actions  # the groups are ours, with a retention
    find = statements["FindOwnFlowLogGroups"]
    assert find["Action"] == ["logs:DescribeLogGroups"]
    assert set(find["Resource"]) == {
        f"arn:aws:logs:{region}:{account}:log-group:*"
        for region, account in {(a.split(":")[3], a.split(":")[4]) for a in log_arns}
    }
    assert {r.split(":")[3] for r in find["Resource"]} == {PRIMARY, SECONDARY}
    trust = json.loads(run.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Statement"][0]["Condition"]["StringEquals"]


def test_every_aws_resource_has_an_explicit_regional_provider_with_default_tags(run):
    for r in run.resources:
        if r.type.startswith("aws:"):
            assert r.provider_urn, f"{r.name} would use the default provider"
            assert r.region in (PRIMARY, SECONDARY)
            assert r.effective_tags["Environment"] == SUFFIX
            assert r.effective_tags["Layer"] == "network"


def test_a_random_deployment_id_is_stable_per_suffix_exported_and_tagged(run):
    random_id = run.one("random:index/randomId:RandomId")
    # Keyed on the suffix only: updates keep the id; a new suffix or a fresh
    # deployment (new state) gets a new one.
    assert random_id.inputs["keepers"] == {"environmentSuffix": SUFFIX}
    assert random_id.inputs["byteLength"] >= 4
    assert run.exports[NetworkOutputs.DEPLOYMENT_ID] == random_id.outputs["hex"]
    for r in run.resources:
        if r.type.startswith("aws:"):
            assert r.effective_tags["DeploymentId"] == random_id.outputs["hex"], r.name


def test_exports_follow_the_contract(run):
    assert set(run.exports) == set(EXPORTS["network"])
    assert run.exports[NetworkOutputs.PRIMARY.region] == PRIMARY
    assert run.exports[NetworkOutputs.SECONDARY.region] == SECONDARY
    assert len(run.exports[NetworkOutputs.SECONDARY.private_subnet_ids]) == 3
    subnet_ids = {s.id for s in _in_region(run, SUBNET, SECONDARY)}
    assert set(run.exports[NetworkOutputs.SECONDARY.private_subnet_ids]) == subnet_ids
    assert "us-east-1" not in json.dumps(run.exports)


def test_overlapping_cidrs_are_rejected_before_any_resource():
    with pytest.raises(ConfigError, match="secondaryVpcCidr"):
        run_layer("network", {**CONFIG, "secondaryVpcCidr": "10.10.128.0/17"}, stack="ci")


def test_too_few_zones_for_the_requested_subnets_fails_naming_the_setting():
    with pytest.raises(Exception, match="subnetsPerRegion"):
        run_layer("network", {**CONFIG, "subnetsPerRegion": 7}, stack="ci")


def test_flow_logs_start_only_after_their_role_may_write(run):
    # A flow log created before its role's policy fails its first deliveries.
    policy = run.one("aws:iam/rolePolicy:RolePolicy")
    for flow_log in run.of_type("aws:ec2/flowLog:FlowLog"):
        assert policy.urn in flow_log.dependencies, flow_log.name


def test_flow_log_groups_are_encrypted_with_a_key_of_their_own_region(run):
    keys = {k.region: k for k in run.of_type("aws:kms/key:Key")}
    assert set(keys) == {PRIMARY, SECONDARY}
    aliases = {a.inputs["name"] for a in run.of_type("aws:kms/alias:Alias")}
    assert aliases == {f"alias/flow-logs-primary-{SUFFIX}", f"alias/flow-logs-secondary-{SUFFIX}"}
    for group in run.of_type("aws:cloudwatch/logGroup:LogGroup"):
        key = keys[group.region]
        assert group.inputs["kmsKeyId"] == key.outputs["arn"]
        # CloudWatch Logs checks the key policy when the group is associated with the key:
        # the key (with its policy) is created first.
        assert key.urn in group.dependencies
        assert key.inputs["enableKeyRotation"] is True
        policy = json.loads(key.inputs["policy"])
        statements = {st["Sid"]: st for st in policy["Statement"]}
        # Only the account's administration and CloudWatch Logs for this one group: no RDS,
        # no topic publishers on a key that serves neither.
        assert set(statements) == {"AccountAdministersKeyThroughIam", "CloudWatchLogsForOwnLogGroups"}
        logs = statements["CloudWatchLogsForOwnLogGroups"]
        assert logs["Principal"] == {"Service": f"logs.{group.region}.amazonaws.com"}
        assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == [
            group.outputs["arn"]]
