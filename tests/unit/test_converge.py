"""``make converge`` (offline/converge.py): the refusal, the steps, and what it leaves alone.

The dns-failover state the converge reads is built from the real layer program (the
offline plan), so the resources it targets are the ones the layer really declares, and
its choice is checked against the plan's own region of every resource.
"""

from __future__ import annotations

import json

import pytest

from offline import converge as converge_module
from offline import plan as plan_module
from offline.harness import PROVIDER_TYPE, state_export
from shared.contract import FailoverOutputs, SecondaryDbOutputs

SUFFIX = "cv1"
PRIMARY, SECONDARY = "eu-west-1", "eu-central-1"
REPLICA = f"pg-replica-{SUFFIX}"
ZONE_ID = "Z0123456789ABCDEFGHIJ"


def route53_answers(zone_id, region):
    assert (zone_id, region) == (ZONE_ID, SECONDARY)
    return None


def route53_down(zone_id, region):
    return "EndpointConnectionError: Could not connect to https://route53.amazonaws.com/"


@pytest.fixture(scope="module")
def dns_run():
    plan = plan_module.build_plan(plan_module.base_config(SUFFIX, PRIMARY, SECONDARY, {}))
    return plan.runs["dns-failover"]


def state_resources(run) -> list[dict]:
    return state_export(run)["deployment"]["resources"]


def in_aws(run):
    return [r for r in run.resources if r.custom and r.type != PROVIDER_TYPE]


def test_targets_are_exactly_the_resources_outside_the_primary_region(dns_run):
    targets, region, skipped = converge_module.dns_failover_targets(
        state_resources(dns_run), f"aws-primary-{SUFFIX}")
    assert region == PRIMARY
    # The plan's own region of each resource (provider region, or its region argument).
    expected_skipped = {r.urn for r in in_aws(dns_run) if r.target_region == PRIMARY}
    assert set(skipped) == expected_skipped
    assert set(targets) == {r.urn for r in in_aws(dns_run)} - expected_skipped
    kinds = {urn.split("::")[2].rsplit("$", 1)[-1] for urn in skipped}
    # The primary region's canary and what feeds its alarm stay untouched...
    assert {"aws:lambda/function:Function", "aws:cloudwatch/metricAlarm:MetricAlarm",
            "aws:sns/topic:Topic"} <= kinds
    # ...while the records, the promoter and its ledger are converged.
    target_kinds = {urn.split("::")[2].rsplit("$", 1)[-1] for urn in targets}
    assert {"aws:route53/record:Record", "aws:dynamodb/table:Table",
            "aws:lambda/function:Function"} <= target_kinds


def test_a_state_without_the_primary_provider_is_refused(dns_run):
    with pytest.raises(converge_module.Refused, match="aws-primary-other"):
        converge_module.dns_failover_targets(state_resources(dns_run), "aws-primary-other")


class FakePulumi:
    """Answers `pulumi` commands per layer and records them; `fail` names a failing one."""

    def __init__(self, outputs: dict, state: dict, fail: tuple[str, str] | None = None):
        self.outputs = {"secondary-db": outputs,
                        "dns-failover": {FailoverOutputs.ZONE_ID: ZONE_ID} if outputs else {}}
        self.state, self.fail = state, fail
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, layer, args):
        self.calls.append((layer, list(args)))
        if self.fail == (layer, args[0]):
            return 255, "", "error: update failed"
        if args[:2] == ["stack", "output"]:
            return 0, json.dumps(self.outputs[layer]), ""
        if args[:2] == ["stack", "export"]:
            return 0, json.dumps(self.state, default=str), ""
        return 0, "", ""

    def verbs(self):
        return [(layer, args[0]) for layer, args in self.calls]


class Rds:
    """DescribeDBInstances as RDS answers it: ReadReplicaSourceDBInstanceIdentifier is
    present while the instance replicates, absent once it stands alone (API Reference)."""

    def __init__(self, source: str | None, error: Exception | None = None):
        self.source, self.error = source, error
        self.regions: list[str] = []

    def __call__(self, region):
        self.regions.append(region)
        return self

    def describe_db_instances(self, DBInstanceIdentifier):  # boto3's parameter name
        if self.error:
            raise self.error
        db = {"DBInstanceIdentifier": DBInstanceIdentifier, "DBInstanceStatus": "available"}
        if self.source:
            db["ReadReplicaSourceDBInstanceIdentifier"] = self.source
        return {"DBInstances": [db]}


OUTPUTS = {SecondaryDbOutputs.INSTANCE_IDENTIFIER: REPLICA, SecondaryDbOutputs.REGION: SECONDARY,
           SecondaryDbOutputs.PROMOTED: False}


@pytest.fixture
def state(dns_run):
    return {"version": 3, "deployment": {"resources": state_resources(dns_run)}}


def test_a_replica_that_still_replicates_is_refused_and_nothing_changes(state, capsys):
    pulumi = FakePulumi(OUTPUTS, state)
    rds = Rds(source=f"arn:aws:rds:{PRIMARY}:123456789012:db:pg-primary-{SUFFIX}")
    assert converge_module.converge(SUFFIX, pulumi, rds) == converge_module.EXIT_REFUSED
    assert "is still a read replica" in capsys.readouterr().err
    assert pulumi.verbs() == [("secondary-db", "stack")]
    assert rds.regions == [SECONDARY]


def test_an_unreachable_rds_is_a_refusal_naming_the_instance(state, capsys):
    pulumi = FakePulumi(OUTPUTS, state)
    rds = Rds(source=None, error=ConnectionError("endpoint refused"))
    assert converge_module.converge(SUFFIX, pulumi, rds) == converge_module.EXIT_REFUSED
    err = capsys.readouterr().err
    assert f"could not describe {REPLICA} in {SECONDARY}" in err and "endpoint refused" in err
    assert ("secondary-db", "up") not in pulumi.verbs()


def test_a_promoted_replica_is_converged_without_touching_the_primary_region(state, dns_run):
    pulumi = FakePulumi(OUTPUTS, state)
    assert converge_module.converge(SUFFIX, pulumi, Rds(source=None),
                                    route53_answers) == converge_module.EXIT_OK
    assert pulumi.verbs() == [("secondary-db", "stack"), ("dns-failover", "stack"),
                              ("dns-failover", "stack"), ("secondary-db", "config"),
                              ("secondary-db", "up"), ("dns-failover", "up")]
    config_args = pulumi.calls[3][1]
    assert config_args == ["config", "set", "replicaPromoted", "true", "--stack", SUFFIX]
    # secondary-db refreshes (its project's refresh: always): only secondary-region resources.
    assert "--refresh=false" not in pulumi.calls[4][1]
    dns_up = pulumi.calls[5][1]
    assert "--refresh=false" in dns_up and "--yes" in dns_up
    targets = {dns_up[i + 1] for i, arg in enumerate(dns_up) if arg == "--target"}
    primary_side = {r.urn for r in in_aws(dns_run) if r.target_region == PRIMARY}
    assert targets and not targets & primary_side


def test_without_route53s_control_plane_secondary_db_converges_and_dns_failover_waits(state, capsys):
    # With us-east-1 down, a record change would be retried by the provider for many
    # minutes; the writer fence (a health check) already moved writers.
    pulumi = FakePulumi(OUTPUTS, state)
    assert converge_module.converge(SUFFIX, pulumi, Rds(source=None),
                                    route53_down) == converge_module.EXIT_PARTIAL
    assert ("secondary-db", "up") in pulumi.verbs()
    assert ("dns-failover", "up") not in pulumi.verbs()
    err = capsys.readouterr().err
    assert "dns-failover NOT converged" in err and "route53.amazonaws.com" in err
    assert f"make converge ENV_SUFFIX={SUFFIX} again" in err


def test_a_failed_secondary_db_update_stops_before_dns_failover(state, capsys):
    pulumi = FakePulumi(OUTPUTS, state, fail=("secondary-db", "up"))
    assert converge_module.converge(SUFFIX, pulumi, Rds(source=None),
                                    route53_answers) == converge_module.EXIT_FAILED
    assert ("dns-failover", "up") not in pulumi.verbs()
    assert "run make converge again" in capsys.readouterr().err


def test_a_secondary_db_stack_without_outputs_is_refused(state, capsys):
    pulumi = FakePulumi({}, state)
    assert converge_module.converge(SUFFIX, pulumi, Rds(source=None)) == converge_module.EXIT_REFUSED
    assert "deploy it first" in capsys.readouterr().err


def test_route53s_control_plane_counts_as_down_only_when_nothing_answers(monkeypatch):
    import boto3
    from botocore.config import Config
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        zone = boto3.client("route53", region_name=SECONDARY).create_hosted_zone(
            Name="db-cv1.internal", CallerReference="cv1")["HostedZone"]["Id"]
        answers = converge_module.route53_control_plane_answers
        assert answers(zone, SECONDARY) is None
        # An error answer is still an answer: the update will report it itself.
        assert answers("Z0000NOSUCHZONE", SECONDARY) is None

    def unreachable(service, region):
        return boto3.client(service, region_name=region, endpoint_url="http://127.0.0.1:9",
                            config=Config(connect_timeout=1, retries={"max_attempts": 1}))

    problem = converge_module.route53_control_plane_answers(zone, SECONDARY, unreachable)
    assert problem and problem.startswith("EndpointConnectionError")
