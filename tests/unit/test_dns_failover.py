"""The dns-failover layer, run for real under the Pulumi mock runtime.

The upstream stacks are given as outputs keyed by the contract's constants (the same
names the network and database layers export), with a non-default suffix and regions.
"""

from __future__ import annotations

import gc
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings

from offline.harness import SyntheticBackend, run_all, run_layer
from shared.config import ConfigError, DictSource, load_common
from shared.contract import (
    FailoverOutputs,
    MissingOutputError,
    NetworkOutputs,
    PrimaryDbOutputs,
    SecondaryDbOutputs,
    stack_reference_name,
)
from tests.support.lambdas import load_lambda

REPO = Path(__file__).resolve().parents[2]
SUFFIX = "ops42"
PRIMARY, SECONDARY = "eu-central-1", "ca-central-1"
ACCOUNT = "111122223333"
CONFIG = {
    "environmentSuffix": SUFFIX,
    "aws:region": PRIMARY,
    "secondaryRegion": SECONDARY,
    "recordTtlSeconds": 45,
    "alarmEvaluationPeriods": 4,
    "alarmDatapointsToAlarm": 3,
    "probeTimeoutSeconds": 7,
    "automationMode": "manual",
    "promoterApiTimeoutSeconds": 4,
    "promoterMaxAttempts": 2,
    "logRetentionDays": 14,
    "alarmEmail": "dba@example.org",
}
ZONE = f"db-{SUFFIX}.internal"

PRIMARY_VPC, SECONDARY_VPC = "vpc-0aaa1111", "vpc-0bbb2222"
CANARY_SUBNETS = ["subnet-0p1", "subnet-0p2", "subnet-0p3"]
PROBE_SG = "sg-0probe"
PRIMARY_ID, REPLICA_ID = f"pg-primary-{SUFFIX}", f"pg-replica-{SUFFIX}"
PRIMARY_ADDRESS = f"{PRIMARY_ID}.cabc123.{PRIMARY}.rds.amazonaws.com"
REPLICA_ADDRESS = f"{REPLICA_ID}.cdef456.{SECONDARY}.rds.amazonaws.com"
PRIMARY_ARN = f"arn:aws:rds:{PRIMARY}:{ACCOUNT}:db:{PRIMARY_ID}"
REPLICA_ARN = f"arn:aws:rds:{SECONDARY}:{ACCOUNT}:db:{REPLICA_ID}"
PRIMARY_KEY = f"arn:aws:kms:{PRIMARY}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
SECONDARY_KEY = f"arn:aws:kms:{SECONDARY}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222"

ZONE_T = "aws:route53/zone:Zone"
RECORD = "aws:route53/record:Record"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
PARAMETER = "aws:ssm/parameter:Parameter"


DEPLOYMENT_ID = "5eed1d0f"


def upstream_outputs(config: dict, promoted: object = False, *,
                     network_primary_region: str = PRIMARY) -> dict[str, dict]:
    """Upstream stack outputs as the three lower layers export them, keyed by reference."""
    common = load_common(DictSource(config, stack="ci"))
    network = {
        NetworkOutputs.PRIMARY.region: network_primary_region,
        NetworkOutputs.SECONDARY.region: SECONDARY,
        NetworkOutputs.PRIMARY.vpc_id: PRIMARY_VPC,
        NetworkOutputs.SECONDARY.vpc_id: SECONDARY_VPC,
        NetworkOutputs.PRIMARY.private_subnet_ids: CANARY_SUBNETS,
        NetworkOutputs.SECONDARY.private_subnet_ids: ["subnet-0s1", "subnet-0s2"],
        NetworkOutputs.PRIMARY.probe_security_group_id: PROBE_SG,
        NetworkOutputs.SECONDARY.probe_security_group_id: "sg-0probe2",
        NetworkOutputs.PRIMARY.db_security_group_id: "sg-0db1",
        NetworkOutputs.SECONDARY.db_security_group_id: "sg-0db2",
        NetworkOutputs.DEPLOYMENT_ID: DEPLOYMENT_ID,
    }
    primary = {
        PrimaryDbOutputs.REGION: PRIMARY,
        PrimaryDbOutputs.INSTANCE_IDENTIFIER: PRIMARY_ID,
        PrimaryDbOutputs.INSTANCE_ARN: PRIMARY_ARN,
        PrimaryDbOutputs.ADDRESS: PRIMARY_ADDRESS,
        PrimaryDbOutputs.PORT: 5433,
        PrimaryDbOutputs.KMS_KEY_ARN: PRIMARY_KEY,
    }
    secondary = {
        SecondaryDbOutputs.REGION: SECONDARY,
        SecondaryDbOutputs.INSTANCE_IDENTIFIER: REPLICA_ID,
        SecondaryDbOutputs.INSTANCE_ARN: REPLICA_ARN,
        SecondaryDbOutputs.ADDRESS: REPLICA_ADDRESS,
        SecondaryDbOutputs.PORT: 5433,
        SecondaryDbOutputs.KMS_KEY_ARN: SECONDARY_KEY,
        SecondaryDbOutputs.PROMOTED: promoted,
        # Not the promoter's old default of 7: the value must come from this export.
        # A double, as stack outputs carry numbers.
        SecondaryDbOutputs.BACKUP_RETENTION_DAYS_AFTER_PROMOTION: 12.0,
    }
    return {
        stack_reference_name(common, "network"): network,
        stack_reference_name(common, "primary-db"): primary,
        stack_reference_name(common, "secondary-db"): secondary,
    }


def _run(config=CONFIG, promoted: object = False, **kwargs):
    return run_layer("dns-failover", config, stack="ci",
                     upstream=upstream_outputs(config, promoted), **kwargs)


@pytest.fixture(scope="module")
def run():
    return _run()


@pytest.fixture(scope="module")
def promoted_run():
    return _run(promoted=True)


def _writer(run, set_identifier: str):
    matches = [r for r in run.of_type(RECORD)
               if r.inputs["name"] == f"writer.{ZONE}"
               and r.inputs.get("setIdentifier") == set_identifier]
    assert len(matches) == 1, [r.inputs for r in run.of_type(RECORD)]
    return matches[0]


def _function(run, base: str):
    return run.one(FUNCTION, f"{base}-{SUFFIX}")


def _statements(run, base: str) -> list[dict]:
    document = json.loads(run.one(ROLE_POLICY, f"{base}-policy").inputs["policy"])
    out = []
    for st in document["Statement"]:
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        out.append({**st, "Action": actions, "Resource": resources})
    return out


# ------------------------------------------------------------------ zone and records


def test_private_zone_is_associated_with_both_vpcs_in_their_regions(run):
    zone = run.one(ZONE_T)
    assert zone.inputs["name"] == ZONE
    assert sorted(zone.inputs["vpcs"], key=lambda v: v["vpcId"]) == [
        {"vpcId": PRIMARY_VPC, "vpcRegion": PRIMARY},
        {"vpcId": SECONDARY_VPC, "vpcRegion": SECONDARY},
    ]
    assert zone.provider_urn is not None  # global service, still an explicit provider


def test_writer_failover_pair_targets_and_health_check(run):
    health_check_id = run.one(HEALTH_CHECK).id
    primary, secondary = _writer(run, "primary"), _writer(run, "secondary")
    assert primary.inputs["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert secondary.inputs["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    assert primary.inputs["records"] == [PRIMARY_ADDRESS]
    assert secondary.inputs["records"] == [REPLICA_ADDRESS]
    assert primary.inputs["healthCheckId"] == health_check_id
    assert not secondary.inputs.get("healthCheckId")
    zone_id = run.one(ZONE_T).id
    for record in (primary, secondary):
        assert record.inputs["type"] == "CNAME"
        assert record.inputs["ttl"] == 45
        assert record.inputs["zoneId"] == zone_id


def test_reader_is_a_simple_cname_to_the_replica(run):
    readers = [r for r in run.of_type(RECORD) if r.inputs["name"] == f"reader.{ZONE}"]
    assert len(readers) == 1
    reader = readers[0].inputs
    assert reader["records"] == [REPLICA_ADDRESS]
    assert reader["type"] == "CNAME" and reader["ttl"] == 45
    assert not reader.get("setIdentifier") and not reader.get("failoverRoutingPolicies")


@pytest.mark.parametrize("flag", [True, "true"])
def test_promoted_replica_keeps_writers_fenced_on_it(promoted_run, flag):
    run = promoted_run if flag is True else _run(promoted=flag)
    assert _writer(run, "primary").inputs["records"] == [REPLICA_ADDRESS]
    assert _writer(run, "secondary").inputs["records"] == [REPLICA_ADDRESS]
    assert PRIMARY_ADDRESS not in json.dumps([r.inputs for r in run.of_type(RECORD)])


def test_ttl_above_route53_guidance_is_rejected():
    with pytest.raises(ConfigError) as err:
        _run({**CONFIG, "recordTtlSeconds": 61})
    assert err.value.key == "recordTtlSeconds"


# ------------------------------------------------------------------ health signal


def test_health_check_follows_the_canary_alarm_and_fails_closed(run):
    check = run.one(HEALTH_CHECK)
    alarm = run.one(ALARM, "db-canary-errors")
    assert check.inputs["type"] == "CLOUDWATCH_METRIC"
    assert check.inputs["insufficientDataHealthStatus"] == "Unhealthy"
    assert check.inputs["cloudwatchAlarmName"] == alarm.inputs["name"]
    assert check.inputs["cloudwatchAlarmRegion"] == PRIMARY
    assert alarm.region == PRIMARY


def test_health_check_resynchronizes_when_the_alarm_settings_change(run):
    # Route 53 copies the alarm's settings at creation and ignores later alarm changes
    # until an UpdateHealthCheck (Route 53 Developer Guide, "Updating health checks when you
    # change CloudWatch alarm settings"); pulumi-aws sends one when `triggers` changes.
    check = run.one(HEALTH_CHECK).inputs
    alarm = run.one(ALARM, "db-canary-errors").outputs
    synced = json.loads(check["triggers"]["alarmConfiguration"])
    assert (synced["evaluation_periods"], synced["datapoints_to_alarm"]) == (
        alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (4, 3)
    assert (synced["namespace"], synced["metric_name"], synced["statistic"], synced["period"]) == (
        "AWS/Lambda", "Errors", "Sum", 60)
    assert synced["dimensions"] == alarm["dimensions"]
    assert synced["treat_missing_data"] == "breaching"
    # Another M of N is another trigger value: the check is updated with the alarm.
    other = _run({**CONFIG, "alarmEvaluationPeriods": 5, "alarmDatapointsToAlarm": 2})
    resynced = json.loads(other.one(HEALTH_CHECK).inputs["triggers"]["alarmConfiguration"])
    assert (resynced["evaluation_periods"], resynced["datapoints_to_alarm"]) == (5, 2)
    # ...and only that: the same alarm settings keep the same value (no update every run).
    assert json.loads(_run().one(HEALTH_CHECK).inputs["triggers"]["alarmConfiguration"]) == synced


def test_canary_alarm_is_a_single_standard_resolution_metric_route53_accepts(run):
    alarm = run.one(ALARM, "db-canary-errors").inputs
    canary = _function(run, "db-canary")
    assert (alarm["namespace"], alarm["metricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["dimensions"] == {"FunctionName": canary.inputs["name"]}
    assert alarm["statistic"] == "Sum" and alarm["period"] == 60
    assert not alarm.get("extendedStatistic") and not alarm.get("metricQueries")
    assert (alarm["datapointsToAlarm"], alarm["evaluationPeriods"]) == (3, 4)
    assert alarm["comparisonOperator"] == "GreaterThanThreshold" and alarm["threshold"] == 0
    # No canary run at all (region or Lambda down) must count as a failure.
    assert alarm["treatMissingData"] == "breaching"
    topic = run.one(TOPIC, "db-canary-alarm")
    assert alarm["alarmActions"] == [topic.id] and alarm["okActions"] == [topic.id]
    assert topic.region == PRIMARY
    assert topic.inputs["kmsMasterKeyId"] == PRIMARY_KEY
    policy = json.loads(run.one("aws:sns/topicPolicy:TopicPolicy", "db-canary-alarm").inputs["policy"])
    assert [st["Principal"] for st in policy["Statement"]] == [{"Service": ["cloudwatch.amazonaws.com"]}]


def test_canary_runs_in_the_primary_vpc_probe_group(run):
    canary = _function(run, "db-canary")
    assert canary.region == PRIMARY
    assert canary.inputs["vpcConfig"] == {"subnetIds": CANARY_SUBNETS,
                                          "securityGroupIds": [PROBE_SG]}
    assert canary.inputs["handler"] == "canary.handler"
    assert canary.inputs["runtime"] == "python3.13"
    assert canary.inputs["memorySize"] == 128
    assert 7 < canary.inputs["timeout"] <= 15
    assert canary.inputs["environment"]["variables"] == {
        "DB_HOST": PRIMARY_ADDRESS, "DB_PORT": "5433", "PROBE_TIMEOUT_SECONDS": "7",
    }


@pytest.mark.parametrize("base,region", [("db-canary", PRIMARY), ("db-promoter", SECONDARY)])
def test_each_function_is_scheduled_every_minute_in_its_region(run, base, region):
    function = _function(run, base)
    rule = run.one(RULE, f"{base}-schedule")
    target = run.one(TARGET, f"{base}-schedule-target")
    permission = run.one(PERMISSION, f"{base}-schedule-invoke")
    assert rule.region == target.region == permission.region == region
    assert rule.inputs["scheduleExpression"] == "rate(1 minute)"
    assert target.inputs["rule"] == rule.inputs["name"]
    assert target.inputs["arn"] == function.outputs["arn"]
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]
    assert permission.inputs["function"] == function.inputs["name"]


@pytest.mark.parametrize("base,module", [("db-canary", "canary"), ("db-promoter", "promoter")])
def test_each_function_ships_only_its_handler_file(run, base, module):
    code = _function(run, base).inputs["code"]
    assert set(code.assets) == {f"{module}.py"}
    path = Path(code.assets[f"{module}.py"].path)
    assert path == REPO / "stacks" / "dns-failover" / "lambdas" / module / f"{module}.py"


@pytest.mark.parametrize("base", ["db-canary", "db-promoter"])
def test_log_groups_have_retention_and_exist_before_their_functions(run, base):
    function = _function(run, base)
    group = run.one(LOG_GROUP, f"{base}-logs")
    assert group.inputs["name"] == f"/aws/lambda/{function.inputs['name']}"
    assert group.inputs["retentionInDays"] == 14
    assert group.region == function.region
    assert group.urn in function.dependencies


# ------------------------------------------------------------------ promoter


def test_promoter_runs_in_the_secondary_region_outside_any_vpc(run):
    promoter = _function(run, "db-promoter")
    assert promoter.region == SECONDARY
    assert not promoter.inputs.get("vpcConfig")
    assert promoter.inputs["handler"] == "promoter.handler"
    assert promoter.inputs["runtime"] == "python3.13"
    # Covers five worst-case calls (evidence, promote, fence, publish, one spare) of
    # 2 attempts x (4 s connect + 4 s read), as the promoter documents.
    assert 5 * 2 * (4 + 4) <= promoter.inputs["timeout"] <= 300


def test_promoter_environment_is_the_fixed_interface(run):
    env = _function(run, "db-promoter").inputs["environment"]["variables"]
    assert env == {
        "REPLICA_IDENTIFIER": REPLICA_ID,
        "REPLICA_REGION": SECONDARY,
        "PRIMARY_IDENTIFIER": PRIMARY_ID,
        "PRIMARY_REGION": PRIMARY,
        "HEALTH_CHECK_ID": run.one(HEALTH_CHECK).id,
        "CANARY_ALARM_NAME": f"db-canary-errors-{SUFFIX}",
        "HOSTED_ZONE_ID": run.one(ZONE_T).id,
        "WRITER_RECORD_NAME": f"writer.{ZONE}",
        "PRIMARY_SET_IDENTIFIER": "primary",
        "RECORD_TTL_SECONDS": "45",
        "EVENTS_TOPIC_ARN": run.one(TOPIC, "db-failover-events").id,
        "AUTOMATION_MODE": "manual",
        "API_TIMEOUT_SECONDS": "4",
        "MAX_ATTEMPTS": "2",
        # From the secondary-db layer's export, not a setting of this layer.
        "BACKUP_RETENTION_DAYS": "12",
        "ARMING_PARAMETER_NAME": f"db-failover-armed-{SUFFIX}",
        "RECOVERY_GRACE_SECONDS": "600",
    }


def _plain(value):
    """A secret input (pulumi-aws marks an SSM parameter's value secret) as its plain value."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return value["value"]
    return value


def test_arming_parameter_starts_unarmed_in_the_secondary_region_and_survives_updates(run):
    parameter = run.one(PARAMETER, "db-failover-armed")
    assert parameter.region == SECONDARY and parameter.provider_urn
    assert parameter.inputs["name"] == f"db-failover-armed-{SUFFIX}"
    assert parameter.inputs["type"] == "String" and parameter.inputs["tier"] == "Standard"
    assert _plain(parameter.inputs["value"]) == "unarmed"
    # The promoter owns the value once deployed: `pulumi up` must not disarm (or re-arm) it.
    assert parameter.ignore_changes == ["value"]
    env = _function(run, "db-promoter").inputs["environment"]["variables"]
    assert env["ARMING_PARAMETER_NAME"] == parameter.inputs["name"]


def test_promoter_runs_one_invocation_at_a_time(run):
    # The alarm notification and the schedule must not decide (and promote) concurrently.
    assert _function(run, "db-promoter").inputs["reservedConcurrentExecutions"] == 1
    assert "reservedConcurrentExecutions" not in _function(run, "db-canary").inputs


def test_serialization_can_be_turned_off_for_accounts_that_cannot_reserve():
    unreserved = _run({**CONFIG, "serializePromoterRuns": False})
    assert "reservedConcurrentExecutions" not in _function(unreserved, "db-promoter").inputs


def test_recovery_grace_is_configurable():
    run = _run({**CONFIG, "recoveryGraceMinutes": 3})
    env = _function(run, "db-promoter").inputs["environment"]["variables"]
    assert env["RECOVERY_GRACE_SECONDS"] == "180"


def test_canary_alarm_notifies_the_promoter_across_regions(run):
    topic = run.one(TOPIC, "db-canary-alarm")
    promoter = _function(run, "db-promoter")
    lambda_subs = [s for s in run.of_type(SUBSCRIPTION) if s.inputs["protocol"] == "lambda"]
    assert len(lambda_subs) == 1
    sub = lambda_subs[0]
    assert sub.region == PRIMARY  # a subscription belongs to its topic's region
    assert sub.inputs["topic"] == topic.id
    assert sub.inputs["endpoint"] == promoter.outputs["arn"]
    permission = run.one(PERMISSION, "db-promoter-alarm-invoke")
    assert permission.region == SECONDARY
    assert permission.inputs["principal"] == "sns.amazonaws.com"
    assert permission.inputs["sourceArn"] == topic.id


def test_failover_events_topic_alarm_email_and_decision_metric(run):
    topic = run.one(TOPIC, "db-failover-events")
    assert topic.region == SECONDARY
    assert topic.inputs["kmsMasterKeyId"] == SECONDARY_KEY
    emails = [s for s in run.of_type(SUBSCRIPTION) if s.inputs["protocol"] == "email"]
    assert [(s.inputs["topic"], s.inputs["endpoint"]) for s in emails] == [
        (topic.id, "dba@example.org")]
    errors = run.one(ALARM, "db-promoter-errors")
    assert errors.region == SECONDARY
    assert errors.inputs["dimensions"] == {
        "FunctionName": _function(run, "db-promoter").inputs["name"]}
    assert errors.inputs["metricName"] == "Errors"
    assert errors.inputs["alarmActions"] == [topic.id]
    metric_filter = run.one(METRIC_FILTER, "promoter-decisions-")
    assert metric_filter.inputs["logGroupName"] == f"/aws/lambda/db-promoter-{SUFFIX}"
    assert "$.action" in metric_filter.inputs["pattern"]
    assert metric_filter.inputs["metricTransformation"]["dimensions"] == {"Action": "$.action"}


STUCK_PATTERN = ('{ ($.event = "failover-decision") && (($.action = "retry-later") || '
                 '($.action = "blocked") || ($.action = "not-armed")) }')


def _stuck(run):
    return run.one(ALARM, "db-failover-stuck"), run.one(METRIC_FILTER, "promoter-stuck-decisions")


def test_stuck_failover_alarm_watches_the_promoters_stuck_decisions_in_the_secondary_region(run):
    alarm, metric_filter = _stuck(run)
    assert alarm.region == metric_filter.region == SECONDARY
    assert alarm.inputs["name"] == f"db-failover-stuck-{SUFFIX}"
    assert metric_filter.inputs["name"] == f"db-promoter-stuck-{SUFFIX}"
    assert metric_filter.inputs["logGroupName"] == run.one(LOG_GROUP, "db-promoter-logs").inputs["name"]
    assert metric_filter.inputs["pattern"] == STUCK_PATTERN
    transformation = metric_filter.inputs["metricTransformation"]
    # 1 per stuck line and nothing else: no default value, so healthy minutes stay empty.
    assert transformation["value"] == "1"
    assert "defaultValue" not in transformation
    # The alarm must read exactly the metric the filter writes: same name and namespace,
    # and no dimensions on either side (an alarm with other dimensions never sees data).
    assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == (
        transformation["namespace"], transformation["name"])
    assert transformation["namespace"] == f"RdsFailover/{SUFFIX}"
    assert not transformation.get("dimensions") and not alarm.inputs.get("dimensions")
    assert not alarm.inputs.get("unit")  # a unit the datapoints lack would hide them
    # One stuck line in a minute makes that minute breach.
    assert alarm.inputs["statistic"] == "Sum" and alarm.inputs["period"] == 60
    assert alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm.inputs["threshold"] == 1
    topic = run.one(TOPIC, "db-failover-events")
    assert alarm.inputs["alarmActions"] == [topic.id] and alarm.inputs["okActions"] == [topic.id]
    # No decisions at all is the promoter not running: the errors alarm covers that.
    assert alarm.inputs["treatMissingData"] == "notBreaching"
    assert run.one(ALARM, "db-promoter-errors").inputs["treatMissingData"] == "breaching"


@pytest.mark.parametrize("override,window", [
    # CONFIG: 3 of 4, 10 min grace. The grace hold ("retry-later" up to 10 min, touching up
    # to 11 one-minute periods) is the longest intended stuck spell: 12 of 14.
    ({}, (12, 14)),
    # Short grace, default 2 of 3: after deployment 2 clean canary minutes + 4 around them
    # = 6 minutes of "not-armed", below the 10-minute floor: 10 of 12.
    ({"recoveryGraceMinutes": 0, "alarmEvaluationPeriods": 3, "alarmDatapointsToAlarm": 2},
     (10, 12)),
    # 1 of 10: the canary alarm needs 10 clean minutes after a deployment, + 4 = 14: 16 of 18.
    ({"recoveryGraceMinutes": 5, "alarmEvaluationPeriods": 10, "alarmDatapointsToAlarm": 1},
     (16, 18)),
    ({"recoveryGraceMinutes": 60}, (62, 64)),
])
def test_stuck_alarm_outlasts_the_intended_stuck_spells(run, override, window):
    alarm = (_run({**CONFIG, **override}) if override else run).one(ALARM, "db-failover-stuck").inputs
    assert (alarm["datapointsToAlarm"], alarm["evaluationPeriods"]) == window
    # CloudWatch: periods under an hour allow at most one day of evaluation.
    assert alarm["evaluationPeriods"] * alarm["period"] <= 86_400


def test_stuck_pattern_names_the_promoters_real_stuck_decisions():
    promoter = load_lambda("promoter")
    quoted = set(re.findall(r'\$\.action = "([^"]+)"', STUCK_PATTERN))
    assert quoted <= set(promoter.ACTIONS)
    down = promoter.Evidence(
        health_check="unhealthy", alarm_state="ALARM", alarm_state_seconds=900.0,
        primary_status="unreachable", replica_status="available", replica_is_replica=True,
        replica_source=PRIMARY_ARN, replica_address=REPLICA_ADDRESS, fence_state="not-fenced",
        arming="armed", arming_value=PRIMARY_ID,
    )
    stuck = {
        "never armed": replace(down, arming="unarmed"),
        "arming unreadable": replace(down, arming="unknown"),
        "replica failed": replace(down, replica_status="failed"),
        "replica backing up": replace(down, replica_status="backing-up"),
        "replica unreadable": replace(down, replica_status="error", replica_is_replica=None),
        "replica deleted": replace(down, replica_status="missing", replica_is_replica=None),
        "health check unreadable, alarm firing": replace(down, health_check="unknown"),
        "signals disagree": replace(down, alarm_state="OK"),
    }
    for case, evidence in stuck.items():
        assert promoter.decide(evidence, "automatic").action in quoted, case
    moving = {
        "healthy": replace(down, health_check="healthy", alarm_state="OK"),
        "promotes": down,
        "already promoted": replace(down, replica_is_replica=False, fence_state="fenced"),
    }
    for case, evidence in moving.items():
        assert promoter.decide(evidence, "automatic").action not in quoted, case


def test_no_email_subscription_without_an_address():
    config = {k: v for k, v in CONFIG.items() if k != "alarmEmail"}
    run = _run(config)
    assert [s.inputs["protocol"] for s in run.of_type(SUBSCRIPTION)] == ["lambda"]


# ------------------------------------------------------------------ IAM


def test_no_wildcard_resource_grants_promotion_or_record_changes(run):
    for base in ("db-canary", "db-promoter"):
        for st in _statements(run, base):
            assert not any(a == "*" or a.endswith(":*") for a in st["Action"]), st
            if "*" in st["Resource"]:
                assert "rds:PromoteReadReplica" not in st["Action"]
                assert "route53:ChangeResourceRecordSets" not in st["Action"]
                assert not any(a.startswith(("rds:", "route53:", "sns:", "kms:"))
                               for a in st["Action"]), st


def test_promoter_may_promote_only_the_replica_and_change_only_the_writer(run):
    statements = _statements(run, "db-promoter")
    by_action: dict[str, list[str]] = {}
    for st in statements:
        for action in st["Action"]:
            by_action.setdefault(action, []).extend(st["Resource"])
    zone_arn = f"arn:aws:route53:::hostedzone/{run.one(ZONE_T).id}"
    assert by_action["rds:PromoteReadReplica"] == [REPLICA_ARN]
    assert sorted(by_action["rds:DescribeDBInstances"]) == sorted([REPLICA_ARN, PRIMARY_ARN])
    assert by_action["route53:ChangeResourceRecordSets"] == [zone_arn]
    assert by_action["route53:GetHealthCheckStatus"] == [
        f"arn:aws:route53:::healthcheck/{run.one(HEALTH_CHECK).id}"]
    assert by_action["cloudwatch:DescribeAlarms"] == [run.one(ALARM, "db-canary-errors").outputs["arn"]]
    arming_arn = run.one(PARAMETER, "db-failover-armed").outputs["arn"]
    assert arming_arn == f"arn:aws:ssm:{SECONDARY}:{ACCOUNT}:parameter/db-failover-armed-{SUFFIX}"
    ssm_actions = {a for a in by_action if a.startswith("ssm:")}
    assert ssm_actions == {"ssm:GetParameter", "ssm:PutParameter"}
    assert all(by_action[a] == [arming_arn] for a in ssm_actions)
    change = next(st for st in statements if "route53:ChangeResourceRecordSets" in st["Action"])
    names = change["Condition"]["ForAllValues:StringEquals"][
        "route53:ChangeResourceRecordSetsNormalizedRecordNames"]
    assert names == [f"writer.{ZONE}"]


def test_promoter_is_granted_exactly_the_api_calls_it_makes(run):
    # Least privilege both ways: every AWS API the handler calls is granted (or it fails in
    # AWS, not here), and nothing it never calls is (say, GetMetricData on "*").
    source = (REPO / "stacks" / "dns-failover" / "lambdas" / "promoter" / "promoter.py").read_text()
    calls = {
        f"{service}:{method.replace('_', '')}".lower()
        for service, method in re.findall(
            r"\b(route53|cloudwatch|ssm|rds|sns)(?:_[a-z]+)?\.([a-z_]+)\(", source)
    }
    assert "cloudwatch:getmetricstatistics" in calls and "rds:promotereadreplica" in calls
    granted = {a.lower() for st in _statements(run, "db-promoter") for a in st["Action"]
               if not a.startswith(("logs:", "kms:"))}
    assert granted == calls
    wildcard = [st for st in _statements(run, "db-promoter") if "*" in st["Resource"]]
    assert [st["Action"] for st in wildcard] == [["cloudwatch:GetMetricStatistics"]]


def test_promoter_publishes_only_to_its_topic_with_its_key(run):
    topic = run.one(TOPIC, "db-failover-events")
    publish = [st for st in _statements(run, "db-promoter") if "sns:Publish" in st["Action"]]
    assert [st["Resource"] for st in publish] == [[topic.id]]
    kms = [st for st in _statements(run, "db-promoter") if any(a.startswith("kms:") for a in st["Action"])]
    assert [st["Resource"] for st in kms] == [[SECONDARY_KEY]]


def test_canary_may_only_write_its_logs_and_manage_its_interfaces(run):
    actions = {a for st in _statements(run, "db-canary") for a in st["Action"]}
    assert {a.split(":")[0] for a in actions} == {"logs", "ec2"}
    assert "logs:CreateLogGroup" not in actions  # the group is declared, with retention
    logs = [st for st in _statements(run, "db-canary") if "logs:PutLogEvents" in st["Action"]]
    group_arn = run.one(LOG_GROUP, "db-canary-logs").outputs["arn"]
    assert all(r.startswith(group_arn) for st in logs for r in st["Resource"])


# ------------------------------------------------------------------ dashboard, placement, outputs


def test_dashboard_reads_each_metric_in_its_own_region(run):
    dashboard = run.one(DASHBOARD)
    assert dashboard.inputs["dashboardName"] == f"db-failover-{SUFFIX}"
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    regions = {}
    for widget in widgets:
        for metric in widget["properties"].get("metrics", []):
            if isinstance(metric[0], str):
                regions[(metric[0], metric[1])] = widget["properties"]["region"]
    # Route 53 publishes health-check metrics in us-east-1 only, whatever our regions are.
    assert regions[("AWS/Route53", "HealthCheckStatus")] == "us-east-1"
    assert regions[("AWS/RDS", "ReplicaLag")] == SECONDARY
    assert regions[("AWS/Lambda", "Errors")] in (PRIMARY, SECONDARY)
    body = dashboard.inputs["dashboardBody"]
    assert run.one(HEALTH_CHECK).id in body and REPLICA_ID in body
    assert any("PromoterDecisions" in json.dumps(w) for w in widgets)


def test_dashboard_shows_the_stuck_failover_and_promoter_alarms_first(run):
    dashboard = run.one(DASHBOARD)
    assert dashboard.region == SECONDARY
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    alarms = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarms) == 1
    # Alarm status widget: properties.alarms holds 1 to 100 alarm ARNs (CloudWatch API
    # Reference, dashboard body structure); both alarms live in the dashboard's region.
    assert alarms[0]["properties"]["alarms"] == [
        run.one(ALARM, "db-failover-stuck").outputs["arn"],
        run.one(ALARM, "db-promoter-errors").outputs["arn"],
    ]
    assert all(f":{SECONDARY}:" in arn for arn in alarms[0]["properties"]["alarms"])
    assert (alarms[0]["x"], alarms[0]["y"]) == (0, 0)
    # No widget overlaps another on the 24-column grid.
    cells = set()
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24
        area = {(x, y) for x in range(widget["x"], widget["x"] + widget["width"])
                for y in range(widget["y"], widget["y"] + widget["height"])}
        assert not cells & area, widget
        cells |= area


def test_dashboard_search_quotes_the_suffixed_namespace():
    # A metric schema name with non-alphanumeric characters (the suffix may hold hyphens)
    # must be double-quoted (CloudWatch User Guide, "CloudWatch search expression syntax").
    config = {**CONFIG, "environmentSuffix": "blue-7"}
    run = run_layer("dns-failover", config, stack="ci", upstream=upstream_outputs(config))
    body = json.loads(run.one(DASHBOARD).inputs["dashboardBody"])
    expressions = [m[0]["expression"] for w in body["widgets"]
                   for m in w["properties"].get("metrics", []) if isinstance(m[0], dict)]
    assert expressions == [
        'SEARCH(\'{"RdsFailover/blue-7",Action} MetricName="PromoterDecisions"\', \'Sum\', 60)']


def test_every_aws_resource_has_an_explicit_provider_and_the_suffix(run):
    for record in run.resources:
        if not record.type.startswith("aws:"):
            continue
        assert record.provider_urn, record.name
        assert record.region in (PRIMARY, SECONDARY), record.name
        assert record.name.endswith(f"-{SUFFIX}"), record.name
        physical = record.inputs.get("name")
        if physical and record.type not in (RECORD, ZONE_T):
            assert SUFFIX in physical, (record.type, physical)


def test_exports_are_exactly_the_contract(run):
    assert set(run.exports) == set(FailoverOutputs.all())
    assert run.exports[FailoverOutputs.WRITER_NAME] == f"writer.{ZONE}"
    assert run.exports[FailoverOutputs.READER_NAME] == f"reader.{ZONE}"
    assert run.exports[FailoverOutputs.ZONE_NAME] == ZONE
    assert run.exports[FailoverOutputs.AUTOMATION_MODE] == "manual"
    assert run.exports[FailoverOutputs.HEALTH_CHECK_ID] == run.one(HEALTH_CHECK).id
    # Operators read (or set, to promote by hand) the arming parameter by this name.
    assert run.exports[FailoverOutputs.ARMING_PARAMETER_NAME] == f"db-failover-armed-{SUFFIX}"
    assert run.exports[FailoverOutputs.ARMING_PARAMETER_NAME] == run.one(
        PARAMETER, "db-failover-armed").inputs["name"]
    # N=4 failing minutes after a still-healthy one (300 s): Route 53's copy of the alarm
    # has no DatapointsToAlarm, so M=3 is not the bound; alarm evaluation (60 s), Route 53
    # pick-up (30 s), then max(TTL 45 s, promoter schedule 60 s).
    assert run.exports[FailoverOutputs.DETECTION_BUDGET_SECONDS] == 450


# ------------------------------------------------------------------ validation


class CountingBackend(SyntheticBackend):
    def __init__(self):
        super().__init__()
        self.created: list[str] = []

    def create(self, record):
        self.created.append(record.type)
        return super().create(record)


@pytest.mark.parametrize("override,key", [
    ({"recordTtlSeconds": 61}, "recordTtlSeconds"),
    ({"recordTtlSeconds": 0}, "recordTtlSeconds"),
    ({"alarmDatapointsToAlarm": 5, "alarmEvaluationPeriods": 4}, "alarmDatapointsToAlarm"),
    ({"automationMode": "yolo"}, "automationMode"),
    ({"probeTimeoutSeconds": 30}, "probeTimeoutSeconds"),
    ({"promoterApiTimeoutSeconds": 10, "promoterMaxAttempts": 4}, "promoterMaxAttempts"),
    ({"logRetentionDays": 10}, "logRetentionDays"),
    ({"zoneName": "Not A Zone"}, "zoneName"),
    ({"zoneName": ".".join(["a" * 61] * 4)}, "zoneName"),
    ({"zoneName": "db.example.internal"}, "zoneName"),  # without the suffix
    ({"recoveryGraceMinutes": 61}, "recoveryGraceMinutes"),
    ({"alarmEmail": "not-an-address"}, "alarmEmail"),
])
def test_invalid_config_fails_before_any_resource_is_created(override, key):
    backend = CountingBackend()
    with pytest.raises(ConfigError) as err:
        _run({**CONFIG, **override}, backend=backend)
    assert err.value.key == key
    assert backend.created == []


def test_upstream_stack_of_other_regions_is_refused():
    with pytest.raises(MissingOutputError, match="aws:region"):
        run_layer("dns-failover", CONFIG, stack="ci",
                  upstream=upstream_outputs(CONFIG, network_primary_region="eu-west-3"))
    # Every resource waiting on the refused output fails with it. Drop the runtime's hold
    # on those futures and collect them now, so asyncio reports them into this test's
    # captured log instead of at interpreter exit.
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    gc.collect()


# ------------------------------------------------------------------ with the real upstream layers


@pytest.fixture(scope="module", params=[False, True], ids=["replicating", "promoted"])
def all_layers(request):
    config = {"environmentSuffix": "blue7", "aws:region": "ap-northeast-1",
              "secondaryRegion": "ap-southeast-1"}
    runs = run_all(config, stack="ci",
                   layer_config={"secondary-db": {"replicaPromoted": request.param,
                                                  "backupRetentionDaysAfterPromotion": 9}})
    return request.param, runs


def test_runs_on_the_real_exports_of_the_layers_below(all_layers):
    promoted, runs = all_layers
    net, primary, secondary = (runs[k].exports for k in ("network", "primary-db", "secondary-db"))
    dns = runs["dns-failover"]
    zone = dns.one(ZONE_T)
    assert {(v["vpcId"], v["vpcRegion"]) for v in zone.inputs["vpcs"]} == {
        (net[NetworkOutputs.PRIMARY.vpc_id], "ap-northeast-1"),
        (net[NetworkOutputs.SECONDARY.vpc_id], "ap-southeast-1"),
    }
    canary = dns.one(FUNCTION, "db-canary")
    assert canary.region == "ap-northeast-1"
    assert canary.inputs["vpcConfig"]["subnetIds"] == net[NetworkOutputs.PRIMARY.private_subnet_ids]
    assert canary.inputs["vpcConfig"]["securityGroupIds"] == [
        net[NetworkOutputs.PRIMARY.probe_security_group_id]]
    assert canary.inputs["environment"]["variables"]["DB_HOST"] == primary[PrimaryDbOutputs.ADDRESS]
    promoter = dns.one(FUNCTION, "db-promoter")
    assert promoter.region == "ap-southeast-1"
    # One setting, in the secondary-db layer: the promoter turns on what a promotion by the
    # program would.
    assert secondary[SecondaryDbOutputs.BACKUP_RETENTION_DAYS_AFTER_PROMOTION] == 9
    assert promoter.inputs["environment"]["variables"]["BACKUP_RETENTION_DAYS"] == "9"
    writers = {r.inputs["setIdentifier"]: r.inputs["records"] for r in dns.of_type(RECORD)
               if r.inputs.get("setIdentifier")}
    replica = secondary[SecondaryDbOutputs.ADDRESS]
    # The secondary-db layer's own switch decides where the PRIMARY writer record points.
    assert secondary[SecondaryDbOutputs.PROMOTED] is promoted
    assert writers == {"primary": [replica if promoted else primary[PrimaryDbOutputs.ADDRESS]],
                       "secondary": [replica]}
    assert set(dns.exports) == set(FailoverOutputs.all())
