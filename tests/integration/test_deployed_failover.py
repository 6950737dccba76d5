"""The deployed failover path: private zone, writer failover pair, health signal, promoter.

Read-only: nothing here changes the deployment (the drill does, and is opt-in).
"""

from __future__ import annotations

import pytest

from tests.support.integration import record_sets, region_of, values_of

# Route 53 FAQ: failover records should keep TTLs at 60 s or less (FIELD-NOTES 4).
MAX_FAILOVER_TTL = 60
# Alarm-based health checks accept these statistics only (Route 53 API, AlarmIdentifier).
HEALTH_CHECK_STATISTICS = {"Average", "Minimum", "Maximum", "Sum", "SampleCount"}


@pytest.fixture(scope="module")
def route53(aws, primary_region):
    return aws("route53", primary_region)


@pytest.fixture(scope="module")
def canary_alarm(deployment, aws, primary_region):
    alarms = aws("cloudwatch", primary_region).describe_alarms(
        AlarmNames=[deployment["canaryAlarmName"]])["MetricAlarms"]
    assert len(alarms) == 1, f"canary alarm {deployment['canaryAlarmName']} not found in {primary_region}"
    return alarms[0]


def test_private_zone_is_associated_with_both_vpcs(deployment, route53):
    zone = route53.get_hosted_zone(Id=deployment["hostedZoneId"])
    assert zone["HostedZone"]["Config"]["PrivateZone"] is True
    assert zone["HostedZone"]["Name"].rstrip(".") == deployment["hostedZoneName"]
    associated = {(v["VPCRegion"], v["VPCId"]) for v in zone["VPCs"]}
    assert associated == {
        (deployment["primaryRegion"], deployment["primaryVpcId"]),
        (deployment["secondaryRegion"], deployment["secondaryVpcId"]),
    }


def test_writer_failover_pair_targets_the_right_endpoints(deployment, route53):
    records = [r for r in record_sets(route53, deployment["hostedZoneId"], deployment["writerRecordName"])
               if r["Type"] == "CNAME"]
    by_role = {r.get("Failover"): r for r in records}
    assert set(by_role) == {"PRIMARY", "SECONDARY"}, records
    primary, secondary = by_role["PRIMARY"], by_role["SECONDARY"]
    # Once promoted, the layer keeps writers fenced on the replica (FIELD-NOTES 15).
    expected_primary = (deployment["replicaAddress"] if deployment["replicaPromoted"]
                        else deployment["primaryDbAddress"])
    assert values_of(primary) == [expected_primary.lower()]
    assert values_of(secondary) == [deployment["replicaAddress"].lower()]
    # Only the PRIMARY member is health-checked: SECONDARY must always be eligible.
    assert primary.get("HealthCheckId") == deployment["primaryHealthCheckId"]
    assert not secondary.get("HealthCheckId")
    assert primary.get("SetIdentifier") != secondary.get("SetIdentifier")
    for record in (primary, secondary):
        assert record["TTL"] <= MAX_FAILOVER_TTL


def test_reader_name_targets_the_replica(deployment, route53):
    records = record_sets(route53, deployment["hostedZoneId"], deployment["readerRecordName"])
    assert [(r["Type"], values_of(r)) for r in records] == [
        ("CNAME", [deployment["replicaAddress"].lower()])]


def test_health_check_is_a_cloudwatch_metric_check(deployment, route53):
    check = route53.get_health_check(HealthCheckId=deployment["primaryHealthCheckId"])["HealthCheck"]
    # Route 53 checkers cannot reach a private database (FIELD-NOTES 1).
    assert check["HealthCheckConfig"]["Type"] == "CLOUDWATCH_METRIC"


@pytest.mark.real_aws_only(reason="moto drops a health check's AlarmIdentifier and "
                                  "InsufficientDataHealthStatus (get_health_check), so only AWS "
                                  "can show the binding to the canary alarm")
def test_health_check_follows_the_canary_alarm(deployment, route53, primary_region):
    check = route53.get_health_check(HealthCheckId=deployment["primaryHealthCheckId"])["HealthCheck"]
    config = check["HealthCheckConfig"]
    assert config["AlarmIdentifier"] == {"Region": primary_region, "Name": deployment["canaryAlarmName"]}
    # A region-wide outage leaves the alarm without data (FIELD-NOTES 3).
    assert config["InsufficientDataHealthStatus"] == "Unhealthy"


def test_canary_alarm_watches_the_canary_and_notifies_its_topic(deployment, canary_alarm, primary_region):
    assert canary_alarm["Namespace"] == "AWS/Lambda"
    assert {"Name": "FunctionName", "Value": deployment["canaryFunctionName"]} in canary_alarm["Dimensions"]
    # Usable by an alarm-based health check (FIELD-NOTES 2): standard statistic, 60 s periods.
    assert canary_alarm.get("Statistic") in HEALTH_CHECK_STATISTICS
    assert "ExtendedStatistic" not in canary_alarm
    assert canary_alarm["Period"] == 60
    # No runs at all (region or schedule down) must alarm too.
    assert canary_alarm["TreatMissingData"] == "breaching"
    topic = deployment["canaryAlarmTopicArn"]
    assert region_of(topic) == primary_region
    assert topic in canary_alarm["AlarmActions"]


def test_canary_alarm_topic_wakes_the_promoter(deployment, aws, primary_region):
    topic = deployment["canaryAlarmTopicArn"]
    sns = aws("sns", primary_region)
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert {"Protocol": "lambda", "Endpoint": deployment["promoterFunctionArn"]} in [
        {"Protocol": s["Protocol"], "Endpoint": s["Endpoint"]} for s in subscriptions]
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"].get("KmsMasterKeyId")


def test_failover_events_topic_is_encrypted_in_the_secondary_region(deployment, aws, replica_region):
    topic = deployment["failoverEventsTopicArn"]
    assert region_of(topic) == replica_region
    attributes = aws("sns", replica_region).get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes.get("KmsMasterKeyId")


def test_canary_runs_in_the_primary_vpc_probe_group(deployment, aws, primary_region):
    arn = deployment["canaryFunctionArn"]
    assert region_of(arn) == primary_region
    config = aws("lambda", primary_region).get_function_configuration(FunctionName=arn)
    vpc = config.get("VpcConfig") or {}
    assert set(vpc.get("SubnetIds", [])) == set(deployment["primaryPrivateSubnetIds"])
    assert vpc.get("SecurityGroupIds") == [deployment["primaryProbeSecurityGroupId"]]
    assert config["Environment"]["Variables"]["DB_HOST"] == deployment["primaryDbAddress"]


def test_promoter_runs_in_the_secondary_region_outside_any_vpc(deployment, promoter, replica_region):
    assert promoter.region == replica_region
    config = promoter.configuration()
    assert not (config.get("VpcConfig") or {}).get("SubnetIds")
    variables = config["Environment"]["Variables"]
    assert variables["REPLICA_IDENTIFIER"] == deployment["replicaInstanceIdentifier"]
    assert variables["REPLICA_REGION"] == replica_region
    assert variables["PRIMARY_IDENTIFIER"] == deployment["primaryDbInstanceIdentifier"]
    assert variables["HEALTH_CHECK_ID"] == deployment["primaryHealthCheckId"]
    assert variables["EVENTS_TOPIC_ARN"] == deployment["failoverEventsTopicArn"]


def test_promoter_dry_run_reports_healthy_and_no_action(deployment, promoter, emulated):
    """On AWS a real invoke; on the emulator the same handler in-process with the
    deployed configuration. moto's health check always reports success, so
    "healthy" is the right answer there too."""
    result = promoter.invoke({"dryRun": True})
    assert result["mode"] == "dry-run"
    assert result["action"] == "none", result["reasons"]
    evidence = result["evidence"]
    assert evidence["health_check"] == "healthy", evidence
    assert evidence["replica_is_replica"] is True
    assert evidence["replica_source"] == deployment["primaryDbInstanceArn"]
    assert evidence["replica_address"] == deployment["replicaAddress"]
    assert evidence["fence_state"] == "not-fenced"
    assert not result["outcome"], "a dry run must not act"


@pytest.mark.real_aws_only(reason="invoking the canary needs Lambda's runtime inside the primary "
                                  "VPC, which the emulator cannot run (no Docker, no VPC networking)")
def test_canary_reaches_the_primary_from_inside_the_vpc(deployment, aws, primary_region):
    answer = aws("lambda", primary_region).invoke(
        FunctionName=deployment["canaryFunctionArn"], InvocationType="RequestResponse", Payload=b"{}")
    payload = answer["Payload"].read().decode()
    assert not answer.get("FunctionError"), f"the canary reports the primary down: {payload}"
