"""The deployed failover path: zone, writer and witness pairs, health checks, canaries, promoter.

Read-only: nothing here changes the deployment (the drills do, and are opt-in).
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


def _pair(route53, deployment, name_key: str, record_type: str) -> dict[str, dict]:
    records = [r for r in record_sets(route53, deployment["hostedZoneId"], deployment[name_key])
               if r["Type"] == record_type]
    by_role = {r.get("Failover"): r for r in records}
    assert set(by_role) == {"PRIMARY", "SECONDARY"}, records
    assert by_role["PRIMARY"].get("SetIdentifier") != by_role["SECONDARY"].get("SetIdentifier")
    return by_role


def test_writer_failover_pair_targets_the_right_endpoints(deployment, route53):
    pair = _pair(route53, deployment, "writerRecordName", "CNAME")
    primary, secondary = pair["PRIMARY"], pair["SECONDARY"]
    # Once promoted, the layer keeps writers on the replica (FIELD-NOTES 15).
    expected_primary = (deployment["replicaAddress"] if deployment["replicaPromoted"]
                        else deployment["primaryDbAddress"])
    assert values_of(primary) == [expected_primary.lower()]
    assert values_of(secondary) == [deployment["replicaAddress"].lower()]
    # PRIMARY follows the writer fence (a recorded failover), never the canary alone;
    # SECONDARY is unchecked, so it is answered as soon as the fence turns.
    assert primary.get("HealthCheckId") == deployment["writerFenceHealthCheckId"]
    assert not secondary.get("HealthCheckId")
    for record in (primary, secondary):
        assert record["TTL"] <= MAX_FAILOVER_TTL


def test_witness_pair_answers_route53s_view_of_the_canary(deployment, route53, aws, replica_region):
    pair = _pair(route53, deployment, "witnessRecordName", "A")
    assert pair["PRIMARY"].get("HealthCheckId") == deployment["canaryHealthCheckId"]
    assert not pair["SECONDARY"].get("HealthCheckId")
    variables = aws("lambda", replica_region).get_function_configuration(
        FunctionName=deployment["replicaCanaryFunctionName"])["Environment"]["Variables"]
    # The replica canary compares its lookup with exactly these two addresses.
    assert variables["WITNESS_NAME"] == deployment["witnessRecordName"]
    assert values_of(pair["PRIMARY"]) == [variables["WITNESS_HEALTHY_ADDRESS"]]
    assert values_of(pair["SECONDARY"]) == [variables["WITNESS_FAILING_ADDRESS"]]


def test_reader_name_targets_the_replica(deployment, route53):
    records = record_sets(route53, deployment["hostedZoneId"], deployment["readerRecordName"])
    assert [(r["Type"], values_of(r)) for r in records] == [
        ("CNAME", [deployment["replicaAddress"].lower()])]


@pytest.mark.parametrize("output", ["canaryHealthCheckId", "writerFenceHealthCheckId"])
def test_health_checks_are_cloudwatch_metric_checks(deployment, route53, output):
    check = route53.get_health_check(HealthCheckId=deployment[output])["HealthCheck"]
    # Route 53 checkers cannot reach a private database (FIELD-NOTES 1).
    assert check["HealthCheckConfig"]["Type"] == "CLOUDWATCH_METRIC"


@pytest.mark.real_aws_only(reason="moto drops a health check's AlarmIdentifier and "
                                  "InsufficientDataHealthStatus (get_health_check), so only AWS "
                                  "can show the binding to the alarms")
def test_health_checks_follow_their_alarms(deployment, route53, primary_region, replica_region):
    canary = route53.get_health_check(HealthCheckId=deployment["canaryHealthCheckId"])["HealthCheck"]
    assert canary["HealthCheckConfig"]["AlarmIdentifier"] == {
        "Region": primary_region, "Name": deployment["canaryAlarmName"]}
    # A region-wide outage leaves the alarm without data (FIELD-NOTES 3).
    assert canary["HealthCheckConfig"]["InsufficientDataHealthStatus"] == "Unhealthy"
    fence = route53.get_health_check(HealthCheckId=deployment["writerFenceHealthCheckId"])["HealthCheck"]
    assert fence["HealthCheckConfig"]["AlarmIdentifier"] == {
        "Region": replica_region, "Name": deployment["fenceAlarmName"]}
    assert fence["HealthCheckConfig"]["InsufficientDataHealthStatus"] == "LastKnownStatus"


def test_fence_alarm_follows_the_promoters_metric_in_the_secondary_region(deployment, aws, replica_region):
    alarms = aws("cloudwatch", replica_region).describe_alarms(
        AlarmNames=[deployment["fenceAlarmName"]])["MetricAlarms"]
    assert len(alarms) == 1, f"fence alarm {deployment['fenceAlarmName']} not found in {replica_region}"
    alarm = alarms[0]
    assert (alarm["Namespace"], alarm["MetricName"]) == (deployment["fenceMetricNamespace"], "FailoverFenced")
    assert alarm["Statistic"] in HEALTH_CHECK_STATISTICS and alarm["Period"] == 60
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
    assert deployment["failoverEventsTopicArn"] in alarm["AlarmActions"]


def test_failover_ledger_is_an_encrypted_table_in_the_secondary_region(deployment, aws, replica_region):
    table = aws("dynamodb", replica_region).describe_table(
        TableName=deployment["failoverLedgerTableName"])["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk"]
    assert table["SSEDescription"]["SSEType"] == "KMS"
    assert table["SSEDescription"]["KMSMasterKeyArn"] == deployment["secondaryKmsKeyArn"]


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


def test_replica_canary_runs_in_the_secondary_vpc_probe_group(deployment, aws, replica_region):
    config = aws("lambda", replica_region).get_function_configuration(
        FunctionName=deployment["replicaCanaryFunctionName"])
    vpc = config.get("VpcConfig") or {}
    assert set(vpc.get("SubnetIds", [])) == set(deployment["secondaryPrivateSubnetIds"])
    assert vpc.get("SecurityGroupIds") == [deployment["secondaryProbeSecurityGroupId"]]
    assert config["Environment"]["Variables"]["DB_HOST"] == deployment["replicaAddress"]


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
    assert variables["EVENTS_TOPIC_ARN"] == deployment["failoverEventsTopicArn"]
    assert variables["LEDGER_TABLE_NAME"] == deployment["failoverLedgerTableName"]
    assert variables["FENCE_NAMESPACE"] == deployment["fenceMetricNamespace"]
    assert variables["WITNESS_LOG_GROUP"] == deployment["replicaCanaryLogGroupName"]


def test_promoter_dry_run_reports_healthy_and_no_action(deployment, promoter):
    """On AWS a real invoke; on the emulator the same handler in-process with the
    deployed configuration (the rehearsal plays the canaries' first healthy runs)."""
    result = promoter.invoke({"dryRun": True, "note": "integration test"})
    assert result["mode"] == "dry-run"
    assert result["action"] == "none", result["reasons"]
    evidence = result["evidence"]
    assert evidence["alarm_state"] == "OK", evidence
    assert evidence["primary_status"] == "available", evidence
    assert evidence["witness"] == "healthy", evidence
    assert evidence["replica_is_replica"] is True
    assert evidence["replica_source"] == deployment["primaryDbInstanceArn"]
    assert evidence["replica_address"] == deployment["replicaAddress"]
    assert evidence["ledger"] is None and evidence["ledger_readable"] is True
    assert not result["outcome"], "a dry run must not act"


def test_promoter_refuses_a_payload_it_does_not_know(promoter):
    result = promoter.invoke({"DryRun": True})  # a misspelled key must never mean "automatic"
    assert result["action"] == "refused", result["reasons"]
    assert not set(result["outcome"]) - {"notify"}, result["outcome"]


@pytest.mark.real_aws_only(reason="invoking the canary needs Lambda's runtime inside the primary "
                                  "VPC, which the emulator cannot run (no Docker, no VPC networking)")
def test_canary_reaches_the_primary_from_inside_the_vpc(deployment, aws, primary_region):
    answer = aws("lambda", primary_region).invoke(
        FunctionName=deployment["canaryFunctionArn"], InvocationType="RequestResponse", Payload=b"{}")
    payload = answer["Payload"].read().decode()
    assert not answer.get("FunctionError"), f"the canary reports the primary down: {payload}"
