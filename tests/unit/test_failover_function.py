"""Every function FailoverFunction builds: encrypted logs, scoped VPC permissions, safe teardown.

The layers run for real under the mock runtime on each other's exports. Both VPC functions
the layer declares (the canary in the primary region, the replica canary in the secondary
one) are checked, so what holds for one holds for every VPC function.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from offline.harness import DYNAMIC_TYPE_PREFIX, destroy_order, run_all
from shared.naming import FAILOVER_FUNCTION_BASES, Namer

LAYER_DIR = Path(__file__).resolve().parents[2] / "stacks" / "dns-failover"
SUFFIX = "eni7"
PRIMARY, SECONDARY = "eu-west-2", "eu-north-1"
CONFIG = {"environmentSuffix": SUFFIX, "aws:region": PRIMARY, "secondaryRegion": SECONDARY}

FUNCTION = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KEY = "aws:kms/key:Key"
REPLICA_SUBNETS = ["subnet-0s1", "subnet-0s2"]
REPLICA_PROBE_SG = "sg-0probe2"
SECONDARY_KEY = f"arn:aws:kms:{SECONDARY}:111122223333:key/22222222-2222-2222-2222-222222222222"


@pytest.fixture(scope="module")
def runs():
    return run_all(CONFIG, stack="ci")


def _functions(run) -> list:
    return run.of_type(FUNCTION)


def _sibling(run, function, type_: str):
    """The resource of ``type_`` that the same FailoverFunction built."""
    [match] = [r for r in run.resources if r.type == type_ and r.parent_urn == function.parent_urn]
    return match


def _drains(run, function) -> list:
    return [r for r in run.resources if r.type.startswith(DYNAMIC_TYPE_PREFIX)
            and r.parent_urn == function.parent_urn]


def _statements(run, function) -> dict[str, dict[str, Any]]:
    policy = json.loads(_sibling(run, function, ROLE_POLICY).inputs["policy"])
    return {st["Sid"]: st for st in policy["Statement"]}


def _vpc_cases(runs):
    return [(runs["dns-failover"], f) for f in _functions(runs["dns-failover"])
            if f.inputs.get("vpcConfig")]


# ------------------------------------------------------------------ teardown order


def test_every_vpc_function_is_destroyed_before_its_drain_and_the_drain_before_its_role(runs):
    cases = _vpc_cases(runs)
    assert {f.inputs["name"] for _, f in cases} == {f"db-canary-{SUFFIX}", f"db-replica-canary-{SUFFIX}"}
    for run, function in cases:
        [drain] = _drains(run, function)
        role, policy = _sibling(run, function, ROLE), _sibling(run, function, ROLE_POLICY)
        # The edges the engine orders the destroy by...
        assert drain.urn in function.dependencies
        assert {role.urn, policy.urn} <= set(drain.dependencies)
        # ...and the order they give: function, then the drain (it waits for Lambda to
        # release the interfaces), then the policy and the role Lambda needed for that.
        order = [r.urn for r in destroy_order(run)]
        assert order.index(function.urn) < order.index(drain.urn)
        assert order.index(drain.urn) < order.index(policy.urn)
        assert order.index(drain.urn) < order.index(role.urn)
        # The drain looks for exactly the interfaces of this function's placement.
        vpc = function.inputs["vpcConfig"]
        assert drain.inputs["subnetIds"] == vpc["subnetIds"]
        assert drain.inputs["securityGroupIds"] == vpc["securityGroupIds"]
        assert drain.inputs["region"] == function.region
        assert drain.inputs["functionName"] == function.inputs["name"]


def test_a_function_outside_any_vpc_gets_no_drain_and_no_interface_permissions(runs):
    run = runs["dns-failover"]
    [promoter] = [f for f in _functions(run) if not f.inputs.get("vpcConfig")]
    assert _drains(run, promoter) == []
    actions = {a for st in _statements(run, promoter).values() for a in st["Action"]}
    assert not any(a.startswith("ec2:") for a in actions)


# ------------------------------------------------------------------ interface permissions


def test_interface_permissions_are_scoped_to_the_functions_subnets_and_groups(runs):
    for run, function in _vpc_cases(runs):
        region, vpc = function.region, function.inputs["vpcConfig"]
        prefix = f"arn:aws:ec2:{region}:111122223333"
        subnets = [f"{prefix}:subnet/{s}" for s in vpc["subnetIds"]]
        groups = [f"{prefix}:security-group/{g}" for g in vpc["securityGroupIds"]]
        statements = _statements(run, function)
        create = statements["CreateInterfacesInOwnSubnetsAndGroups"]
        assert create["Action"] == ["ec2:CreateNetworkInterface"]
        assert sorted(create["Resource"]) == sorted(
            [f"{prefix}:network-interface/*", *subnets, *groups])
        manage = statements["ManageInterfacesInOwnSubnets"]
        assert set(manage["Action"]) == {"ec2:DeleteNetworkInterface",
                                         "ec2:AssignPrivateIpAddresses",
                                         "ec2:UnassignPrivateIpAddresses"}
        assert manage["Resource"] == [f"{prefix}:network-interface/*"]
        assert manage["Condition"] == {"ArnEquals": {"ec2:Subnet": subnets}}
        describe = statements["DescribeInterfacesInOwnRegion"]
        assert set(describe["Action"]) == {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}
        assert describe["Resource"] == ["*"]
        assert describe["Condition"] == {"StringEquals": {"ec2:Region": region}}
        # Nothing else of EC2 is granted, and nothing EC2 on "*" beyond the two describes.
        ec2_actions = {a for st in statements.values() for a in st["Action"] if a.startswith("ec2:")}
        assert len(ec2_actions) == 6


def test_the_canary_may_not_create_interfaces_in_another_subnet_or_group(runs):
    run = runs["dns-failover"]
    network = runs["network"].exports
    canary = next(f for f in _functions(run) if f.inputs["name"] == f"db-canary-{SUFFIX}")
    create = _statements(run, canary)["CreateInterfacesInOwnSubnetsAndGroups"]
    granted = " ".join(create["Resource"])
    for other in network["secondaryPrivateSubnetIds"] + [network["primaryDbSecurityGroupId"],
                                                          network["primaryClientSecurityGroupId"]]:
        assert other not in granted


# ------------------------------------------------------------------ encrypted log groups


def test_every_function_log_group_is_encrypted_with_a_key_whose_policy_names_it(runs):
    keys = {k.outputs["arn"]: k for layer in ("primary-db", "secondary-db")
            for k in runs[layer].of_type(KEY)}
    groups = runs["dns-failover"].of_type(LOG_GROUP)
    assert {g.inputs["name"] for g in groups} == {
        f"/aws/lambda/{base}-{SUFFIX}" for bases in FAILOVER_FUNCTION_BASES.values() for base in bases}
    assert len(groups) == 3
    for group in groups:
        key = keys[group.inputs["kmsKeyId"]]  # a database layer's key, not the service default
        assert key.region == group.region
        policy = {st["Sid"]: st for st in json.loads(key.inputs["policy"])["Statement"]}
        logs = policy["CloudWatchLogsForOwnLogGroups"]
        assert logs["Principal"] == {"Service": f"logs.{group.region}.amazonaws.com"}
        patterns = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        assert any(fnmatch.fnmatchcase(group.outputs["arn"], p) for p in patterns), group.name


def test_a_function_cannot_be_declared_without_a_key_for_its_log_group():
    sys.path.insert(0, str(LAYER_DIR))
    try:
        module = importlib.import_module("failover_function")
        common = dict(base="db-canary", module="canary", description="x", environment={},
                      timeout_seconds=1, memory_mb=128, log_retention_days=30, namer=Namer(SUFFIX))
        with pytest.raises(TypeError, match="log_group_kms_key_arn"):
            module.FailoverFunctionArgs(**common)
        args = module.FailoverFunctionArgs(**common, log_group_kms_key_arn=SECONDARY_KEY)
        assert args.log_group_kms_key_arn == SECONDARY_KEY
    finally:
        sys.path.remove(str(LAYER_DIR))
        sys.modules.pop("failover_function", None)
