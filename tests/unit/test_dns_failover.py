"""The dns-failover layer, run for real under the Pulumi mock runtime.

The upstream stacks are given as outputs keyed by the contract's constants (the same
names the network and database layers export), with a non-default suffix and regions.
How the records answer (failover rules, health checks) is exercised end to end in
test_promoter.py's failure matrix; here: what the layer declares, where, and with what
permissions.
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

from offline.harness import OFFLINE_ACCOUNT_ID, SyntheticBackend, run_all, run_layer
from shared.config import ConfigError, DictSource, load_common
from shared.contract import (
    FailoverOutputs,
    MissingOutputError,
    NetworkOutputs,
    PrimaryDbOutputs,
    SecondaryDbOutputs,
    stack_reference_name,
)
from tests.support.lambdas import LAMBDAS, load_lambda

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
REPLICA_CANARY_SUBNETS = ["subnet-0s1", "subnet-0s2"]
PROBE_SG, REPLICA_PROBE_SG = "sg-0probe", "sg-0probe2"
PRIMARY_ID, REPLICA_ID = f"pg-primary-{SUFFIX}", f"pg-replica-{SUFFIX}"
PRIMARY_ADDRESS = f"{PRIMARY_ID}.cabc123.{PRIMARY}.rds.amazonaws.com"
REPLICA_ADDRESS = f"{REPLICA_ID}.cdef456.{SECONDARY}.rds.amazonaws.com"
PRIMARY_ARN = f"arn:aws:rds:{PRIMARY}:{ACCOUNT}:db:{PRIMARY_ID}"
REPLICA_ARN = f"arn:aws:rds:{SECONDARY}:{ACCOUNT}:db:{REPLICA_ID}"
PRIMARY_RESOURCE_ID, REPLICA_RESOURCE_ID = "db-PRIMARY7ABCDEFGHIJKLMNOP", "db-REPLICA2QRSTUVWXYZ"
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
TABLE = "aws:dynamodb/table:Table"


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
        NetworkOutputs.SECONDARY.private_subnet_ids: REPLICA_CANARY_SUBNETS,
        NetworkOutputs.PRIMARY.probe_security_group_id: PROBE_SG,
        NetworkOutputs.SECONDARY.probe_security_group_id: REPLICA_PROBE_SG,
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
        PrimaryDbOutputs.RESOURCE_ID: PRIMARY_RESOURCE_ID,
    }
    secondary = {
        SecondaryDbOutputs.REGION: SECONDARY,
        SecondaryDbOutputs.INSTANCE_IDENTIFIER: REPLICA_ID,
        SecondaryDbOutputs.INSTANCE_ARN: REPLICA_ARN,
        SecondaryDbOutputs.ADDRESS: REPLICA_ADDRESS,
        SecondaryDbOutputs.PORT: 5433,
        SecondaryDbOutputs.KMS_KEY_ARN: SECONDARY_KEY,
        SecondaryDbOutputs.RESOURCE_ID: REPLICA_RESOURCE_ID,
        SecondaryDbOutputs.PROMOTED: promoted,
        # Not the promoter's old default of 7: the value must come from this export.
        # A double, as stack outputs carry numbers.
        SecondaryDbOutputs.BACKUP_RETENTION_DAYS_AFTER_PROMOTION: 12.0,
        # The RPO the replica layer accepts: the promoter's lag guard unless set here.
        SecondaryDbOutputs.LAG_THRESHOLD_SECONDS: 240.0,
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


def _member(run, label: str, set_identifier: str):
    matches = [r for r in run.of_type(RECORD)
               if r.inputs["name"] == f"{label}.{ZONE}"
               and r.inputs.get("setIdentifier") == set_identifier]
    assert len(matches) == 1, [r.inputs for r in run.of_type(RECORD)]
    return matches[0]


def _writer(run, set_identifier: str):
    return _member(run, "writer", set_identifier)


def _check(run, name: str):
    return run.one(HEALTH_CHECK, f"{name}-{SUFFIX}")


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


def test_route53_resources_do_not_depend_on_the_primary_regions_provider(run):
    # Global resources sit on the secondary region's provider: a `pulumi up` during a
    # primary-region outage can still manage them (Route 53's API itself is global).
    for record in run.of_type(ZONE_T) + run.of_type(RECORD) + run.of_type(HEALTH_CHECK):
        assert record.provider_urn and record.region == SECONDARY, record.name


def test_writer_follows_the_fence_not_the_canary(run):
    fence, canary = _check(run, "db-writer-fence"), _check(run, "db-primary-health")
    primary, secondary = _writer(run, "primary"), _writer(run, "secondary")
    assert primary.inputs["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert secondary.inputs["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    assert primary.inputs["records"] == [PRIMARY_ADDRESS]
    assert secondary.inputs["records"] == [REPLICA_ADDRESS]
    # Writers move only when the fence (a recorded failover) says so; a failing canary
    # alone never sends them to the read-only replica.
    assert primary.inputs["healthCheckId"] == fence.id != canary.id
    assert not secondary.inputs.get("healthCheckId")
    zone_id = run.one(ZONE_T).id
    for record in (primary, secondary):
        assert record.inputs["type"] == "CNAME"
        assert record.inputs["ttl"] == 45
        assert record.inputs["zoneId"] == zone_id


def test_witness_answers_route53s_view_of_the_canary(run):
    canary = _check(run, "db-primary-health")
    primary, secondary = _member(run, "witness", "primary"), _member(run, "witness", "secondary")
    assert primary.inputs["healthCheckId"] == canary.id
    assert not secondary.inputs.get("healthCheckId")
    assert {primary.inputs["type"], secondary.inputs["type"]} == {"A"}
    # Two distinct reserved documentation addresses (RFC 5737 TEST-NET-1): never routed.
    healthy, failing = primary.inputs["records"], secondary.inputs["records"]
    assert healthy != failing
    assert all(address.startswith("192.0.2.") for address in healthy + failing)
    # The replica canary compares what it resolves with exactly these values.
    env = _function(run, "db-replica-canary").inputs["environment"]["variables"]
    assert (env["WITNESS_NAME"], [env["WITNESS_HEALTHY_ADDRESS"]], [env["WITNESS_FAILING_ADDRESS"]]) == (
        f"witness.{ZONE}", healthy, failing)
    # Looked up every minute: the resolver must not cache an answer for longer.
    assert primary.inputs["ttl"] <= 60 and secondary.inputs["ttl"] <= 60


def test_reader_is_a_simple_cname_to_the_replica(run):
    readers = [r for r in run.of_type(RECORD) if r.inputs["name"] == f"reader.{ZONE}"]
    assert len(readers) == 1
    reader = readers[0].inputs
    assert reader["records"] == [REPLICA_ADDRESS]
    assert reader["type"] == "CNAME" and reader["ttl"] == 45
    assert not reader.get("setIdentifier") and not reader.get("failoverRoutingPolicies")


@pytest.mark.parametrize("flag", [True, "true"])
def test_promoted_replica_keeps_writers_on_it(promoted_run, flag):
    run = promoted_run if flag is True else _run(promoted=flag)
    assert _writer(run, "primary").inputs["records"] == [REPLICA_ADDRESS]
    assert _writer(run, "secondary").inputs["records"] == [REPLICA_ADDRESS]
    assert PRIMARY_ADDRESS not in json.dumps([r.inputs for r in run.of_type(RECORD)])


def test_a_replica_promoted_before_the_flag_flip_keeps_writers_on_it():
    # The promoter promoted it; nobody has set replicaPromoted yet. The layer asks AWS (in
    # the secondary region) and does not point writers back at the old primary.
    backend = SyntheticBackend()
    backend.promoted_instances.add(REPLICA_ID)

    run = _run(promoted=False, backend=backend)

    assert _writer(run, "primary").inputs["records"] == [REPLICA_ADDRESS]
    lookups = [(token, args["dbInstanceIdentifier"], region) for token, args, region in run.invokes
               if token == "aws:rds/getInstance:getInstance"]
    assert lookups == [("aws:rds/getInstance:getInstance", REPLICA_ID, SECONDARY)]


def test_no_invoke_goes_through_the_primary_regions_provider(run):
    # Account id, partition and the replica's live state are all looked up in the secondary
    # region, so nothing this layer reads needs the primary region's APIs.
    assert run.invokes and all(region == SECONDARY for _token, _args, region in run.invokes)


def test_ttl_above_route53_guidance_is_rejected():
    with pytest.raises(ConfigError) as err:
        _run({**CONFIG, "recordTtlSeconds": 61})
    assert err.value.key == "recordTtlSeconds"


# ------------------------------------------------------------------ health checks and alarms


def test_canary_check_follows_the_canary_alarm_and_fails_closed(run):
    check = _check(run, "db-primary-health")
    alarm = run.one(ALARM, "db-canary-errors")
    assert check.inputs["type"] == "CLOUDWATCH_METRIC"
    # A whole-region outage leaves the alarm without data: unhealthy (FIELD-NOTES 3).
    assert check.inputs["insufficientDataHealthStatus"] == "Unhealthy"
    assert check.inputs["cloudwatchAlarmName"] == alarm.inputs["name"]
    assert check.inputs["cloudwatchAlarmRegion"] == PRIMARY == alarm.region


def test_fence_check_follows_the_fence_alarm_and_keeps_its_last_status(run):
    check = _check(run, "db-writer-fence")
    alarm = run.one(ALARM, "db-failover-fenced")
    assert check.inputs["type"] == "CLOUDWATCH_METRIC"
    assert check.inputs["cloudwatchAlarmName"] == alarm.inputs["name"]
    assert check.inputs["cloudwatchAlarmRegion"] == SECONDARY == alarm.region
    # No data (a silent promoter) must neither lift a fence nor raise one.
    assert check.inputs["insufficientDataHealthStatus"] == "LastKnownStatus"


def test_fence_alarm_reads_exactly_what_the_promoter_publishes(run):
    alarm = run.one(ALARM, "db-failover-fenced").inputs
    env = _function(run, "db-promoter").inputs["environment"]["variables"]
    assert (alarm["namespace"], alarm["metricName"]) == (env["FENCE_NAMESPACE"], env["FENCE_METRIC"])
    assert not alarm.get("dimensions")  # the promoter publishes none
    # One fenced minute is a failover: Maximum >= 1 over one standard-resolution period.
    assert (alarm["statistic"], alarm["period"], alarm["evaluationPeriods"]) == ("Maximum", 60, 1)
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["treatMissingData"] == "missing"
    assert not alarm.get("extendedStatistic") and not alarm.get("metricQueries")
    topic = run.one(TOPIC, "db-failover-events")
    assert alarm["alarmActions"] == [topic.id] and alarm["okActions"] == [topic.id]


@pytest.mark.parametrize("check_name,alarm_name", [("db-primary-health", "db-canary-errors"),
                                                   ("db-writer-fence", "db-failover-fenced")])
def test_health_checks_resynchronize_when_their_alarm_settings_change(run, check_name, alarm_name):
    # Route 53 copies the alarm's settings at creation and ignores later alarm changes
    # until an UpdateHealthCheck (Route 53 Developer Guide, "Updating health checks when you
    # change CloudWatch alarm settings"); pulumi-aws sends one when `triggers` changes.
    check = _check(run, check_name).inputs
    alarm = run.one(ALARM, alarm_name).outputs
    synced = json.loads(check["triggers"]["alarmConfiguration"])
    assert (synced["namespace"], synced["metric_name"], synced["statistic"], synced["period"]) == (
        alarm["namespace"], alarm["metricName"], alarm["statistic"], alarm["period"])
    assert (synced["evaluation_periods"], synced["threshold"]) == (alarm["evaluationPeriods"],
                                                                   alarm["threshold"])


def test_the_canary_check_follows_a_new_m_of_n():
    synced = json.loads(_check(_run(), "db-primary-health").inputs["triggers"]["alarmConfiguration"])
    assert (synced["evaluation_periods"], synced["datapoints_to_alarm"]) == (4, 3)
    other = _run({**CONFIG, "alarmEvaluationPeriods": 5, "alarmDatapointsToAlarm": 2})
    resynced = json.loads(_check(other, "db-primary-health").inputs["triggers"]["alarmConfiguration"])
    assert (resynced["evaluation_periods"], resynced["datapoints_to_alarm"]) == (5, 2)
    # ...and only then: the same alarm settings keep the same value (no update every run).
    assert json.loads(_check(_run(), "db-primary-health").inputs["triggers"]["alarmConfiguration"]) == synced


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


def test_replica_canary_probes_the_replica_from_the_secondary_probe_group(run):
    canary = _function(run, "db-replica-canary")
    assert canary.region == SECONDARY
    # The secondary region's probe security group (admitted on 5432 by the network layer).
    assert canary.inputs["vpcConfig"] == {"subnetIds": REPLICA_CANARY_SUBNETS,
                                          "securityGroupIds": [REPLICA_PROBE_SG]}
    assert canary.inputs["handler"] == "canary.handler"
    env = canary.inputs["environment"]["variables"]
    assert (env["DB_HOST"], env["DB_PORT"], env["PROBE_TIMEOUT_SECONDS"]) == (REPLICA_ADDRESS, "5433", "7")
    # The probe's budget, the witness lookup's (2 s) and a margin.
    assert 7 + 2 < canary.inputs["timeout"] <= 20
    alarm = run.one(ALARM, "db-replica-canary-errors")
    assert alarm.region == SECONDARY
    assert alarm.inputs["dimensions"] == {"FunctionName": canary.inputs["name"]}
    assert alarm.inputs["treatMissingData"] == "breaching"
    assert alarm.inputs["alarmActions"] == [run.one(TOPIC, "db-failover-events").id]


FUNCTIONS = [("db-canary", PRIMARY), ("db-replica-canary", SECONDARY), ("db-promoter", SECONDARY)]


@pytest.mark.parametrize("base,region", FUNCTIONS)
def test_each_function_is_scheduled_every_minute_in_its_region(run, base, region):
    function = _function(run, base)
    rule = run.one(RULE, f"{base}-schedule-{SUFFIX}")
    target = run.one(TARGET, f"{base}-schedule-target")
    permission = run.one(PERMISSION, f"{base}-schedule-invoke")
    assert rule.region == target.region == permission.region == region == function.region
    assert rule.inputs["scheduleExpression"] == "rate(1 minute)"
    assert target.inputs["rule"] == rule.inputs["name"]
    assert target.inputs["arn"] == function.outputs["arn"]
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]
    assert permission.inputs["function"] == function.inputs["name"]


@pytest.mark.parametrize("base,module", [("db-canary", "canary"), ("db-replica-canary", "canary"),
                                         ("db-promoter", "promoter")])
def test_each_function_ships_only_its_handler_files(run, base, module):
    code = _function(run, base).inputs["code"]
    sources = {path.name: path for path in (LAMBDAS / module).glob("*.py")}
    assert f"{module}.py" in sources
    assert set(code.assets) == set(sources)  # its modules, no tests, no caches
    assert {name: Path(asset.path) for name, asset in code.assets.items()} == sources


@pytest.mark.parametrize("base", [base for base, _region in FUNCTIONS])
def test_log_groups_have_retention_and_exist_before_their_functions(run, base):
    function = _function(run, base)
    group = run.one(LOG_GROUP, f"{base}-logs")
    assert group.inputs["name"] == f"/aws/lambda/{function.inputs['name']}"
    assert group.inputs["retentionInDays"] == 14
    assert group.region == function.region
    assert group.urn in function.dependencies


def test_only_the_primary_canary_and_its_alarm_live_in_the_primary_region(run):
    # Everything else the failover path needs (decision, ledger, fence, DNS, notifications)
    # must survive the primary region.
    primary = sorted({r.type for r in run.resources
                      if r.type.startswith("aws:") and r.region == PRIMARY})
    assert primary == sorted({
        FUNCTION, ROLE, ROLE_POLICY, LOG_GROUP, RULE, TARGET, PERMISSION,
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig",  # the canary
        ALARM, TOPIC, "aws:sns/topicPolicy:TopicPolicy",  # its alarm and the alarm's topic
        SUBSCRIPTION,  # the promoter's subscription belongs to that topic's region
    })
    assert [r.inputs["name"] for r in run.of_type(FUNCTION) if r.region == PRIMARY] == [
        f"db-canary-{SUFFIX}"]


# ------------------------------------------------------------------ promoter


def test_promoter_runs_in_the_secondary_region_outside_any_vpc(run):
    promoter = _function(run, "db-promoter")
    assert promoter.region == SECONDARY
    assert not promoter.inputs.get("vpcConfig")
    assert promoter.inputs["handler"] == "promoter.handler"
    assert promoter.inputs["runtime"] == "python3.13"
    # Covers eight worst-case calls (evidence, arm, claim, promote, settle, fence metric,
    # stop, publish) of 2 attempts x (4 s connect + 4 s read), as the promoter documents.
    assert 8 * 2 * (4 + 4) <= promoter.inputs["timeout"] <= 900


def test_promoter_environment_is_the_fixed_interface(run):
    env = _function(run, "db-promoter").inputs["environment"]["variables"]
    timeout = _function(run, "db-promoter").inputs["timeout"]
    assert env == {
        "REPLICA_IDENTIFIER": REPLICA_ID,
        "REPLICA_REGION": SECONDARY,
        "PRIMARY_IDENTIFIER": PRIMARY_ID,
        "PRIMARY_REGION": PRIMARY,
        "CANARY_ALARM_NAME": f"db-canary-errors-{SUFFIX}",
        "EVENTS_TOPIC_ARN": run.one(TOPIC, "db-failover-events").id,
        "ARMING_PARAMETER_NAME": f"db-failover-armed-{SUFFIX}",
        "LEDGER_TABLE_NAME": f"db-failover-ledger-{SUFFIX}",
        "FENCE_NAMESPACE": f"RdsFailover/{SUFFIX}",
        "FENCE_METRIC": "FailoverFenced",
        "WITNESS_LOG_GROUP": f"/aws/lambda/db-replica-canary-{SUFFIX}",
        "AUTOMATION_MODE": "manual",
        "API_TIMEOUT_SECONDS": "4",
        "MAX_ATTEMPTS": "2",
        # From the secondary-db layer's exports, not settings of this layer.
        "BACKUP_RETENTION_DAYS": "12",
        "MAX_PROMOTION_LAG_SECONDS": "240",
        "RECOVERY_GRACE_SECONDS": "600",
        # A claim outlives the run that holds it: the Lambda timeout and a minute.
        "CLAIM_LEASE_SECONDS": str(int(timeout) + 60),
    }


def test_the_promotion_lag_guard_can_be_set_here():
    run = _run({**CONFIG, "maxAutomaticPromotionLagSeconds": 45})
    env = _function(run, "db-promoter").inputs["environment"]["variables"]
    assert env["MAX_PROMOTION_LAG_SECONDS"] == "45"
    assert run.exports[FailoverOutputs.MAX_PROMOTION_LAG_SECONDS] == 45


def test_ledger_is_an_encrypted_table_the_promoter_keys_like_the_layer(run):
    table = run.one(TABLE, "db-failover-ledger")
    assert table.region == SECONDARY
    assert table.inputs["name"] == f"db-failover-ledger-{SUFFIX}"
    promoter_ledger = load_lambda("promoter").promoter_ledger
    assert table.inputs["hashKey"] == promoter_ledger.KEY
    assert table.inputs["attributes"] == [{"name": promoter_ledger.KEY, "type": "S"}]
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert table.inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": SECONDARY_KEY}
    assert table.inputs["pointInTimeRecovery"] == {"enabled": True}
    assert table.inputs["deletionProtectionEnabled"] is False


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


def test_promoter_runs_one_invocation_at_a_time_when_the_account_allows(run):
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


def test_canary_alarm_is_topic_encrypted_in_the_primary_region(run):
    topic = run.one(TOPIC, "db-canary-alarm")
    assert topic.region == PRIMARY
    assert topic.inputs["kmsMasterKeyId"] == PRIMARY_KEY
    policy = json.loads(run.one("aws:sns/topicPolicy:TopicPolicy", "db-canary-alarm").inputs["policy"])
    assert [st["Principal"] for st in policy["Statement"]] == [{"Service": ["cloudwatch.amazonaws.com"]}]
    assert [st["Condition"] for st in policy["Statement"]] == [
        {"StringEquals": {"aws:SourceAccount": ACCOUNT}}]


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


STUCK = ("retry-later", "signals-disagree", "unconfirmed", "rpo-hold", "blocked", "not-armed")
STUCK_PATTERN = ('{ ($.event = "failover-decision") && ('
                 + " || ".join(f'($.action = "{action}")' for action in STUCK) + ") }")


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
    # No grace, 2 of 3: Route 53's view of a dead region turns after (3 + 1) x 60 + 60 + 30 s
    # and is relayed within 60 s: 390 s, 7 minutes of "signals-disagree": the 10-minute
    # floor wins: 10 of 12.
    ({"recoveryGraceMinutes": 0, "alarmEvaluationPeriods": 3, "alarmDatapointsToAlarm": 2},
     (10, 12)),
    # No grace, 6 of 6: the witness turns after 7 x 60 + 150 s = 570 s, 10 minutes: 12 of 14.
    ({"recoveryGraceMinutes": 0, "alarmEvaluationPeriods": 6, "alarmDatapointsToAlarm": 6},
     (12, 14)),
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
    rules = load_lambda("promoter").decision_rules
    assert set(STUCK) <= set(rules.ACTIONS)
    down = rules.Evidence(
        alarm_state="ALARM", alarm_state_seconds=900.0, primary_status="failed", witness="unhealthy",
        replica_status="available", replica_is_replica=True, replica_source=PRIMARY_ARN,
        replica_address=REPLICA_ADDRESS, replica_resource_id="db-R",
        lag_points=(rules.LagPoint(0, 1.0),), arming="armed", arming_value=PRIMARY_ID,
        ledger_readable=True,
    )
    policy = rules.Policy(mode="automatic", max_promotion_lag_seconds=300)
    stuck = {
        "never armed": replace(down, arming="unarmed"),
        "replica failed": replace(down, replica_status="failed"),
        "replica backing up": replace(down, replica_status="backing-up"),
        "replica unreadable": replace(down, replica_status="error", replica_is_replica=None),
        "replica deleted": replace(down, replica_status="missing", replica_is_replica=None),
        "signals disagree": replace(down, primary_status="available"),
        "one source only": replace(down, alarm_state="unreachable", primary_status="unreachable",
                                   witness="unknown"),
        "rpo above the guard": replace(down, lag_points=(rules.LagPoint(0, 900.0),)),
        "recovering in place": replace(down, primary_status="rebooting", alarm_state_seconds=60),
    }
    for case, evidence in stuck.items():
        assert rules.decide(evidence, policy).action in STUCK, case
    moving = {
        "healthy": replace(down, alarm_state="OK", primary_status="available"),
        "promotes": down,
        "already promoted": replace(down, replica_is_replica=False),
    }
    for case, evidence in moving.items():
        assert rules.decide(evidence, policy).action not in STUCK, case


def test_no_email_subscription_without_an_address():
    config = {k: v for k, v in CONFIG.items() if k != "alarmEmail"}
    run = _run(config)
    assert [s.inputs["protocol"] for s in run.of_type(SUBSCRIPTION)] == ["lambda"]


# ------------------------------------------------------------------ IAM


def test_no_wildcard_resource_grants_anything_that_changes_state(run):
    for base in ("db-canary", "db-replica-canary", "db-promoter"):
        for st in _statements(run, base):
            assert not any(a == "*" or a.endswith(":*") for a in st["Action"]), st
            if "*" in st["Resource"]:
                assert not any(a.startswith(("rds:", "route53:", "sns:", "kms:", "dynamodb:", "ssm:"))
                               for a in st["Action"]), st


def _by_action(run, base: str) -> dict[str, list[str]]:
    by_action: dict[str, list[str]] = {}
    for st in _statements(run, base):
        for action in st["Action"]:
            by_action.setdefault(action, []).extend(st["Resource"])
    return by_action


def test_promoter_may_promote_only_the_replica_and_stop_only_the_primary(run):
    by_action = _by_action(run, "db-promoter")
    assert by_action["rds:PromoteReadReplica"] == [REPLICA_ARN]
    assert by_action["rds:StopDBInstance"] == [PRIMARY_ARN]
    assert sorted(by_action["rds:DescribeDBInstances"]) == sorted([REPLICA_ARN, PRIMARY_ARN])
    assert by_action["cloudwatch:DescribeAlarms"] == [run.one(ALARM, "db-canary-errors").outputs["arn"]]
    arming_arn = run.one(PARAMETER, "db-failover-armed").outputs["arn"]
    assert arming_arn == f"arn:aws:ssm:{SECONDARY}:{ACCOUNT}:parameter/db-failover-armed-{SUFFIX}"
    assert by_action["ssm:GetParameter"] == by_action["ssm:PutParameter"] == [arming_arn]
    ledger_arn = run.one(TABLE, "db-failover-ledger").outputs["arn"]
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        assert by_action[action] == [ledger_arn]
    witness_group = run.one(LOG_GROUP, "db-replica-canary-logs").outputs["arn"]
    assert by_action["logs:FilterLogEvents"] == [witness_group, f"{witness_group}:*"]


def test_promoter_needs_nothing_from_route53(run):
    # The decision, the promotion and the fence work with Route 53's control plane (us-east-1)
    # gone: the promoter is not even allowed to call it.
    assert not [a for a in _by_action(run, "db-promoter") if a.startswith("route53:")]


def test_promoter_writes_metrics_only_in_its_own_namespace(run):
    put = [st for st in _statements(run, "db-promoter") if "cloudwatch:PutMetricData" in st["Action"]]
    assert len(put) == 1 and put[0]["Action"] == ["cloudwatch:PutMetricData"]
    # PutMetricData has no resource-level permission; the condition key scopes it.
    assert put[0]["Resource"] == ["*"]
    assert put[0]["Condition"] == {"StringEquals": {"cloudwatch:namespace": f"RdsFailover/{SUFFIX}"}}


def test_promoter_is_granted_exactly_the_api_calls_it_makes(run):
    # Least privilege both ways: every AWS API the handler calls is granted (or it fails in
    # AWS, not here), and nothing it never calls is.
    source = "\n".join(path.read_text() for path in (LAMBDAS / "promoter").glob("*.py"))
    calls = {
        f"{service}:{method.replace('_', '')}".lower()
        for service, method in re.findall(
            r"\b(route53|cloudwatch|ssm|rds|sns|logs|dynamodb)(?:_[a-z]+)?\.([a-z_]+)\(", source)
    }
    assert {"cloudwatch:getmetricstatistics", "rds:promotereadreplica", "dynamodb:putitem",
            "logs:filterlogevents", "rds:stopdbinstance"} <= calls
    own_logging = {"logs:CreateLogStream", "logs:PutLogEvents"}
    granted = {a.lower() for st in _statements(run, "db-promoter") for a in st["Action"]
               if a not in own_logging and not a.startswith("kms:")}
    assert granted == calls
    wildcard = sorted(a for st in _statements(run, "db-promoter") if "*" in st["Resource"]
                      for a in st["Action"])
    assert wildcard == ["cloudwatch:GetMetricStatistics", "cloudwatch:PutMetricData"]


def test_promoter_uses_only_the_secondary_key(run):
    topic = run.one(TOPIC, "db-failover-events")
    publish = [st for st in _statements(run, "db-promoter") if "sns:Publish" in st["Action"]]
    assert [st["Resource"] for st in publish] == [[topic.id]]
    kms = [st for st in _statements(run, "db-promoter") if any(a.startswith("kms:") for a in st["Action"])]
    assert [st["Resource"] for st in kms] == [[SECONDARY_KEY]]
    assert run.one(TABLE, "db-failover-ledger").inputs["serverSideEncryption"]["kmsKeyArn"] == SECONDARY_KEY


@pytest.mark.parametrize("base", ["db-canary", "db-replica-canary"])
def test_canaries_may_only_write_their_logs_and_manage_their_interfaces(run, base):
    actions = {a for st in _statements(run, base) for a in st["Action"]}
    assert {a.split(":")[0] for a in actions} == {"logs", "ec2"}
    assert "logs:CreateLogGroup" not in actions  # the group is declared, with retention
    logs = [st for st in _statements(run, base) if "logs:PutLogEvents" in st["Action"]]
    group_arn = run.one(LOG_GROUP, f"{base}-logs").outputs["arn"]
    assert all(r.startswith(group_arn) for st in logs for r in st["Resource"])


# ------------------------------------------------------------------ dashboard, placement, outputs


def test_dashboard_reads_each_metric_in_its_own_region(run):
    dashboard = run.one(DASHBOARD)
    assert dashboard.inputs["dashboardName"] == f"db-failover-{SUFFIX}"
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    regions: dict[tuple, str] = {}
    for widget in widgets:
        for metric in widget["properties"].get("metrics", []):
            if isinstance(metric[0], str):
                key = (metric[0], metric[1], metric[3] if len(metric) > 3 else None)
                regions[key] = widget["properties"]["region"]
    assert regions[("AWS/RDS", "ReplicaLag", REPLICA_ID)] == SECONDARY
    assert regions[("AWS/Lambda", "Errors", f"db-canary-{SUFFIX}")] == PRIMARY
    assert regions[("AWS/Lambda", "Errors", f"db-replica-canary-{SUFFIX}")] == SECONDARY
    assert regions[("AWS/Lambda", "Errors", f"db-promoter-{SUFFIX}")] == SECONDARY
    assert regions[(f"RdsFailover/{SUFFIX}", "FailoverFenced", None)] == SECONDARY
    assert any("PromoterDecisions" in json.dumps(w) for w in widgets)


def test_dashboard_shows_the_secondary_regions_failover_alarms_first(run):
    dashboard = run.one(DASHBOARD)
    assert dashboard.region == SECONDARY
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    alarms = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarms) == 1
    # Alarm status widget: properties.alarms holds 1 to 100 alarm ARNs (CloudWatch API
    # Reference, dashboard body structure); all of them live in the dashboard's region.
    assert alarms[0]["properties"]["alarms"] == [
        run.one(ALARM, name).outputs["arn"] for name in (
            "db-failover-stuck", "db-promoter-errors", "db-failover-fenced", "db-replica-canary-errors")
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
    assert run.exports[FailoverOutputs.WITNESS_NAME] == f"witness.{ZONE}"
    assert run.exports[FailoverOutputs.ZONE_NAME] == ZONE
    assert run.exports[FailoverOutputs.AUTOMATION_MODE] == "manual"
    assert run.exports[FailoverOutputs.CANARY_HEALTH_CHECK_ID] == _check(run, "db-primary-health").id
    assert run.exports[FailoverOutputs.WRITER_FENCE_HEALTH_CHECK_ID] == _check(run, "db-writer-fence").id
    assert run.exports[FailoverOutputs.LEDGER_TABLE_NAME] == f"db-failover-ledger-{SUFFIX}"
    assert run.exports[FailoverOutputs.MAX_PROMOTION_LAG_SECONDS] == 240  # the replica layer's
    # Operators read (or set, to promote by hand) the arming parameter by this name.
    assert run.exports[FailoverOutputs.ARMING_PARAMETER_NAME] == f"db-failover-armed-{SUFFIX}"


def test_exported_worst_cases_follow_the_config(run):
    # Promoter run: its one-minute schedule, then one bounded call of 2 attempts x 2 x 4 s + 1 s.
    promoter_run = 60 + 17
    # Instance failure: M=3 failing minutes after a still-good one (240 s), the alarm's
    # evaluation (60 s), the promoter run.
    assert run.exports[FailoverOutputs.INSTANCE_FAILURE_WORST_CASE_SECONDS] == 240 + 60 + promoter_run
    # Region outage: Route 53 keeps N=4 (not M) periods: (4 + 1) x 60 s, evaluation 60 s,
    # Route 53 pick-up 30 s, the replica canary's relay 60 s, the promoter run.
    assert run.exports[FailoverOutputs.REGION_OUTAGE_WORST_CASE_SECONDS] == 300 + 60 + 30 + 60 + promoter_run


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
    ({"maxAutomaticPromotionLagSeconds": -1}, "maxAutomaticPromotionLagSeconds"),
    ({"maxAutomaticPromotionLagSeconds": 86401}, "maxAutomaticPromotionLagSeconds"),
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
               if r.inputs.get("setIdentifier") and r.inputs["name"].startswith("writer.")}
    replica = secondary[SecondaryDbOutputs.ADDRESS]
    # The secondary-db layer's own switch decides where the PRIMARY writer record points.
    assert secondary[SecondaryDbOutputs.PROMOTED] is promoted
    assert writers == {"primary": [replica if promoted else primary[PrimaryDbOutputs.ADDRESS]],
                       "secondary": [replica]}
    # The lag guard is the replica layer's threshold unless this layer sets its own.
    assert promoter.inputs["environment"]["variables"]["MAX_PROMOTION_LAG_SECONDS"] == str(
        secondary[SecondaryDbOutputs.LAG_THRESHOLD_SECONDS])
    assert set(dns.exports) == set(FailoverOutputs.all())


# ------------------------------------------------------------------ IAM database authentication

POLICY = "aws:iam/policy:Policy"


def _connect_resources(run) -> list[str]:
    policy = run.one(POLICY, f"db-connect-{SUFFIX}")
    (only,) = json.loads(policy.inputs["policy"])["Statement"]
    assert only["Effect"] == "Allow" and only["Action"] == ["rds-db:connect"]
    return only["Resource"]


def test_the_connect_policy_grants_each_user_on_both_instances_in_their_regions(run):
    # rds-db:connect names region, account and DbiResourceId (RDS User Guide): a grant on the
    # primary alone would let nobody into the promoted replica.
    assert sorted(_connect_resources(run)) == sorted([
        f"arn:aws:rds-db:{PRIMARY}:{OFFLINE_ACCOUNT_ID}:dbuser:{PRIMARY_RESOURCE_ID}/app",
        f"arn:aws:rds-db:{SECONDARY}:{OFFLINE_ACCOUNT_ID}:dbuser:{REPLICA_RESOURCE_ID}/app",
    ])
    policy = run.one(POLICY, f"db-connect-{SUFFIX}")
    assert policy.inputs["name"] == f"db-connect-{SUFFIX}"
    # IAM is global; the policy sits on the secondary region's provider like Route 53.
    assert policy.region == SECONDARY
    assert run.exports[FailoverOutputs.DATABASE_CONNECT_POLICY_ARN] == policy.outputs["arn"]


def test_the_connect_policy_names_every_configured_user_and_no_wildcard():
    custom = _run({**CONFIG, "iamDatabaseUsers": "orders_rw, reporting_ro"},
                  backend=SyntheticBackend(account_id=ACCOUNT))
    resources = _connect_resources(custom)
    assert len(resources) == 4
    # The account is the caller identity's, as the backend answers it.
    assert {arn.split(":")[4] for arn in resources} == {ACCOUNT}
    assert {arn.rsplit("/", 1)[1] for arn in resources} == {"orders_rw", "reporting_ro"}
    assert not any("*" in arn for arn in resources)


@pytest.mark.parametrize("users, rule", [
    (" , ", "at least one database user"),
    ("app,*", "no wildcards"),
    ("App", "lower-case"),
    ("app,app", "twice"),
    (",".join(f"u{i}" for i in range(21)), "at most 20"),
])
def test_bad_database_user_lists_are_refused_naming_the_setting(users, rule):
    with pytest.raises(ConfigError, match=rule) as failure:
        _run({**CONFIG, "iamDatabaseUsers": users})
    assert "iamDatabaseUsers" in str(failure.value)
