"""The primary-db layer, run for real under the Pulumi mock runtime on a real network run."""

from __future__ import annotations

import json

import pytest

import shared.components
import shared.components.postgres
from offline.harness import OFFLINE_ACCOUNT_ID, SyntheticBackend
from shared.contract import MissingOutputError, NetworkOutputs, PrimaryDbOutputs
from tests.support.db_layers import (
    ALARM,
    ALIAS,
    ATTACHMENT,
    BASE_CONFIG,
    EVENT_SUBSCRIPTION,
    INSTANCE,
    KEY,
    LOG_GROUP,
    PARAMETER_GROUP,
    PRIMARY,
    ROLE,
    SECRET_INVOKE,
    SUBNET_GROUP,
    SUBSCRIPTION,
    SUFFIX,
    TOPIC,
    TOPIC_POLICY,
    all_strings,
    arn_region,
    as_list,
    assert_encrypted_with_own_key,
    assert_tls_forced,
    aws_resources,
    document,
    is_secret,
    mentions_default_region,
    run_expecting_failure,
    run_upstream,
    run_with_upstream,
    statements_by_sid,
)

CONFIG = {
    **BASE_CONFIG,
    "alarmEmail": "oncall@example.com",
    "cpuAlarmThresholdPercent": 70,
    "freeStorageAlarmThresholdGiB": 10,
    "freeableMemoryAlarmThresholdMiB": 512,
    "connectionsAlarmThreshold": 250,
    "logRetentionDays": 90,
    "backupRetentionDays": 5,
}
# Another shape of the same layer: the newest engine (whose log_connections differs), no
# standby, secret by ARN, no e-mail.
SECRET_ARN = f"arn:aws:secretsmanager:{PRIMARY}:{OFFLINE_ACCOUNT_ID}:secret:team/pg-AbCdEf"
VARIANT = {
    **BASE_CONFIG,
    "engineMajorVersion": "18",
    "multiAz": False,
    "masterSecretId": SECRET_ARN,
    "databaseInsightsMode": "advanced",
    "instanceClass": "db.r7g.large",
}
IDENTIFIER = f"pg-primary-{SUFFIX}"
GIB, MIB = 1024**3, 1024**2


@pytest.fixture(scope="module")
def network():
    # The network reads only the common keys; run_all refuses keys no layer it runs declares.
    return run_upstream(BASE_CONFIG, "network")["network"]


@pytest.fixture(scope="module")
def run(network):
    return run_with_upstream("primary-db", CONFIG, {"network": network})


@pytest.fixture(scope="module")
def variant(network):
    return run_with_upstream("primary-db", VARIANT, {"network": network})


@pytest.fixture(scope="module")
def instance(run):
    return run.one(INSTANCE)


# ---------------------------------------------------------------- region and providers


def test_everything_is_in_the_primary_region_through_an_explicit_provider(run):
    resources = aws_resources(run)
    assert resources
    for r in resources:
        assert r.provider_urn, f"{r.type} {r.name} has no explicit provider"
        assert r.region == PRIMARY, f"{r.type} {r.name} is in {r.region}"


def test_a_layer_configured_for_another_region_than_the_network_stops(network):
    other = {**CONFIG, "aws:region": "eu-west-3"}
    failure = run_expecting_failure("primary-db", other, {"network": network})
    assert isinstance(failure, MissingOutputError)
    assert "primaryRegion" in str(failure)


# ---------------------------------------------------------------- encryption and TLS


def test_storage_insights_logs_and_alerts_are_encrypted_with_the_layers_key(run):
    assert_encrypted_with_own_key(run, PRIMARY)


def test_tls_is_forced_through_the_attached_parameter_group(run):
    assert_tls_forced(run, PRIMARY)
    group = run.one(PARAMETER_GROUP)
    assert group.inputs["family"] == "postgres17"
    assert group.inputs["name"] == f"pg17-tls-primary-{SUFFIX}"
    params = {p["name"]: p["value"] for p in group.inputs["parameters"]}
    assert params["log_connections"] == "1"
    assert params["log_disconnections"] == "1"
    assert int(params["log_min_duration_statement"]) > 0


def test_postgres_18_group_logs_connections_with_a_value_its_family_accepts(variant):
    # PostgreSQL 18 turned log_connections from a boolean into a list of connection
    # stages; RDS rejects "1" for the postgres18 family ("Invalid parameter value: 1 for:
    # log_connections allowed values are: receipt, authentication, authorization,
    # setup_durations, all"), which would fail the whole layer at ModifyDBParameterGroup.
    group = variant.one(PARAMETER_GROUP)
    params = {p["name"]: p["value"] for p in group.inputs["parameters"]}
    assert group.inputs["family"] == "postgres18"
    assert params["log_connections"] == "all"
    assert params["log_disconnections"] == "1"  # still a boolean in 18
    assert params["rds.force_ssl"] == "1"


@pytest.mark.parametrize("family, expected", [
    ("postgres15", "1"), ("postgres16", "1"), ("postgres17", "1"), ("postgres18", "all"),
])
def test_log_connections_value_follows_the_parameter_type_of_each_family(family, expected):
    values = {p.name: p.value for p in shared.components.postgres.tls_parameters(1000, family)}
    assert values["log_connections"] == expected


def test_an_unknown_family_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="aurora-postgresql16"):
        shared.components.postgres.tls_parameters(1000, "aurora-postgresql16")


@pytest.mark.parametrize("mutation", ["encryption-off", "force-ssl-off"])
def test_turning_encryption_or_tls_off_fails_the_checks(network, monkeypatch, mutation):
    """The checks above are not vacuous: the real program with the protection removed fails them."""
    if mutation == "encryption-off":
        original = shared.components.hardened_instance_args

        def unencrypted(baseline):
            args = original(baseline)
            args.update(storage_encrypted=False, kms_key_id=None)
            return args

        monkeypatch.setattr(shared.components, "hardened_instance_args", unencrypted)
        check = assert_encrypted_with_own_key
    else:
        original = shared.components.postgres.tls_parameters

        def no_force_ssl(*args):
            return [p for p in original(*args) if p.name != "rds.force_ssl"]

        monkeypatch.setattr(shared.components.postgres, "tls_parameters", no_force_ssl)
        check = assert_tls_forced
    mutated = run_with_upstream("primary-db", CONFIG, {"network": network})
    with pytest.raises(AssertionError):
        check(mutated, PRIMARY)


def test_key_rotates_has_a_seven_day_window_and_a_suffixed_alias(run):
    key, alias = run.one(KEY), run.one(ALIAS)
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 7
    assert key.inputs.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    assert alias.inputs["name"] == f"alias/rds-primary-{SUFFIX}"
    assert alias.inputs["targetKeyId"] == key.outputs["keyId"]


def test_key_policy_lets_the_account_rds_logs_and_alarm_publishers_use_it(run):
    statements = statements_by_sid(document(run.one(KEY)))
    admin = statements["AccountAdministersKeyThroughIam"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{OFFLINE_ACCOUNT_ID}:root"}

    rds = statements["RdsInThisRegionForThisAccount"]
    assert rds["Condition"]["StringEquals"] == {
        "kms:ViaService": f"rds.{PRIMARY}.amazonaws.com",
        "kms:CallerAccount": OFFLINE_ACCOUNT_ID,
    }
    assert {"kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKey"} <= set(rds["Action"])

    logs = statements["CloudWatchLogsForOwnLogGroups"]
    assert logs["Principal"] == {"Service": f"logs.{PRIMARY}.amazonaws.com"}
    patterns = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    # The instance's exports, and exactly the one failover function that runs in this
    # region (the canary), whose log group the dns-failover layer encrypts with this key.
    assert patterns == [
        f"arn:aws:logs:{PRIMARY}:{OFFLINE_ACCOUNT_ID}:log-group:/aws/rds/instance/{IDENTIFIER}/*",
        f"arn:aws:logs:{PRIMARY}:{OFFLINE_ACCOUNT_ID}:log-group:/aws/lambda/db-canary-{SUFFIX}",
    ]

    publish = statements["ServicesPublishToEncryptedTopics"]
    assert set(as_list(publish["Principal"]["Service"])) == {
        "cloudwatch.amazonaws.com", "events.rds.amazonaws.com"}
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(as_list(publish["Action"]))
    # Only on behalf of this account's alarms and event subscriptions (confused deputy).
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": OFFLINE_ACCOUNT_ID}}
    # EventBridge's KMS calls for encrypted topics carry no aws:SourceAccount (SNS Developer
    # Guide): a condition would drop its events, so it has a statement of its own.
    eventbridge = statements["EventBridgePublishesToEncryptedTopics"]
    assert as_list(eventbridge["Principal"]["Service"]) == ["events.amazonaws.com"]
    assert "Condition" not in eventbridge
    # Only the account root statement may use a service-wide action.
    for sid, statement in statements.items():
        if sid != "AccountAdministersKeyThroughIam":
            assert all(a != "*" and not a.endswith(":*") for a in as_list(statement["Action"])), sid


# ---------------------------------------------------------------- network exposure


def test_instance_is_private_in_the_networks_primary_subnets_and_db_group(run, network, instance):
    keys = NetworkOutputs.PRIMARY
    assert instance.inputs["publiclyAccessible"] is False
    assert instance.inputs["vpcSecurityGroupIds"] == [network.exports[keys.db_security_group_id]]
    subnet_group = run.one(SUBNET_GROUP)
    assert instance.inputs["dbSubnetGroupName"] == subnet_group.inputs["name"]
    assert subnet_group.inputs["subnetIds"] == network.exports[keys.private_subnet_ids]
    assert instance.inputs["port"] == 5432


def test_layer_opens_nothing_to_the_world(run, network):
    # This layer creates no security groups or rules of its own...
    assert not [r for r in run.resources if r.type.startswith(("aws:ec2/", "aws:vpc/"))]
    # ...and the group the instance joins admits only other security groups.
    db_group_id = network.exports[NetworkOutputs.PRIMARY.db_security_group_id]
    rules = [r for r in network.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
             if r.region == PRIMARY]
    assert rules
    for rule in rules:
        assert not rule.inputs.get("cidrIpv4") and not rule.inputs.get("cidrIpv6")
    db_rules = [r for r in rules if r.outputs.get("securityGroupId") == db_group_id]
    assert db_rules and all(r.inputs.get("referencedSecurityGroupId") for r in db_rules)


# ---------------------------------------------------------------- credentials


def test_master_credentials_come_from_the_existing_secret_and_stay_secret(run, instance):
    assert not [r for r in run.resources if r.type.startswith("aws:secretsmanager/")]
    reads = [(args, region) for token, args, region in run.invokes if token == SECRET_INVOKE]
    assert reads == [({"secretId": f"rds-master-{SUFFIX}"}, PRIMARY)]
    secret = SyntheticBackend().master_secret
    assert instance.inputs["username"] == secret["username"]
    assert is_secret(instance.inputs["password"])
    assert instance.inputs["password"]["value"] == secret["password"]
    assert "manageMasterUserPassword" not in instance.inputs


def test_the_master_secrets_arn_is_exported_for_applications_in_the_primary_region(run, variant):
    exported = run.exports[PrimaryDbOutputs.MASTER_SECRET_ARN]
    assert exported.startswith(f"arn:aws:secretsmanager:{PRIMARY}:{OFFLINE_ACCOUNT_ID}:secret:"
                               f"rds-master-{SUFFIX}-")
    # Named by ARN in config: the ARN the read answered with, not a name made up here.
    assert variant.exports[PrimaryDbOutputs.MASTER_SECRET_ARN] == SECRET_ARN


def test_password_appears_in_no_export(run):
    password = SyntheticBackend().master_secret["password"]
    assert not [s for s in all_strings(run.exports) if password in s]
    assert not run.secret_exports


@pytest.mark.parametrize("secret, problem", [
    ("not json", "must hold JSON"),
    ('{"username": "dbadmin"}', "'password'"),
    ('{"username": "dbadmin", "password": "has@sign-in-it"}', "'password'"),
    ('{"username": "9lives", "password": "long-enough-password"}', "'username'"),
])
def test_a_malformed_secret_stops_the_layer_without_echoing_it(network, secret, problem):
    failure = run_expecting_failure("primary-db", CONFIG, {"network": network},
                                    _RawSecretBackend(secret))
    assert problem in str(failure)
    assert f"rds-master-{SUFFIX}" in str(failure)
    assert "has@sign" not in str(failure) and "long-enough-password" not in str(failure)


class _RawSecretBackend(SyntheticBackend):
    """Answers the secret read with an arbitrary SecretString."""

    def __init__(self, secret_string: str):
        super().__init__()
        self.secret_string = secret_string

    def call(self, token, args, region):
        result = super().call(token, args, region)
        if token == SECRET_INVOKE:
            result["secretString"] = self.secret_string
        return result


def test_secret_can_be_named_by_arn(variant):
    reads = [args for token, args, _ in variant.invokes if token == SECRET_INVOKE]
    assert reads == [{"secretId": SECRET_ARN}]


# ---------------------------------------------------------------- the instance


def test_instance_is_postgres_major_version_from_config_and_lets_rds_pick_the_minor(
        instance, variant):
    assert instance.inputs["engine"] == "postgres"
    assert instance.inputs["engineVersion"] == "17"
    assert instance.inputs["autoMinorVersionUpgrade"] is True
    other = variant.one(INSTANCE)
    assert other.inputs["engineVersion"] == "18"
    assert variant.one(PARAMETER_GROUP).inputs["family"] == "postgres18"


def test_a_new_major_version_gets_a_group_of_its_own_name_under_the_same_resource(run, variant):
    # The family of a parameter group cannot change in place: the provider replaces the
    # group, creating the new one first. Under a fixed name the new group would collide with
    # the old one; with the major version in the name both exist until the instance moved.
    old, new = run.one(PARAMETER_GROUP), variant.one(PARAMETER_GROUP)
    assert (old.inputs["family"], new.inputs["family"]) == ("postgres17", "postgres18")
    assert old.inputs["name"] != new.inputs["name"]
    assert new.inputs["name"] == f"pg18-tls-primary-{SUFFIX}"
    assert old.urn == new.urn  # the same resource: replaced, not deleted and added
    assert all(len(g.inputs["name"]) <= 63 for g in (old, new))
    for instance in (run.one(INSTANCE), variant.one(INSTANCE)):
        # RDS refuses a new major version unless the modify call allows it.
        assert instance.inputs["allowMajorVersionUpgrade"] is True
        assert instance.inputs["parameterGroupName"] in (old.inputs["name"], new.inputs["name"])


def test_instance_storage_availability_and_recovery(instance, variant):
    i = instance.inputs
    assert i["identifier"] == IDENTIFIER
    assert i["instanceClass"] == "db.m6g.large"
    assert i["multiAz"] is True
    assert i["storageType"] == "gp3"
    assert i["allocatedStorage"] == 50
    assert i["maxAllocatedStorage"] == 200
    assert i["backupRetentionPeriod"] == 5
    assert i["backupWindow"] == "03:00-04:00"
    assert i["maintenanceWindow"] == "sun:05:00-sun:06:00"
    assert i["copyTagsToSnapshot"] is True
    assert i["dbName"] == "appdb"
    v = variant.one(INSTANCE).inputs
    assert v["multiAz"] is False
    assert v["instanceClass"] == "db.r7g.large"


def test_instance_is_destroyable(run, instance):
    assert instance.inputs["deletionProtection"] is False
    assert instance.inputs["skipFinalSnapshot"] is True
    assert not [r for r in run.resources if r.protect or r.retain_on_delete]


def test_instance_uses_iam_auth_and_a_current_ca(instance):
    assert instance.inputs["iamDatabaseAuthenticationEnabled"] is True
    assert instance.inputs["caCertIdentifier"] == "rds-ca-rsa2048-g1"


def test_enhanced_monitoring_uses_its_own_least_privilege_role(run, instance):
    role, attachment = run.one(ROLE), run.one(ATTACHMENT)
    assert role.inputs["name"] == f"rds-monitoring-primary-{SUFFIX}"
    trust = document(role, "assumeRolePolicy")["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "monitoring.rds.amazonaws.com"}]
    assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": OFFLINE_ACCOUNT_ID}}
    assert attachment.inputs["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole")
    assert instance.inputs["monitoringInterval"] == 60
    assert instance.inputs["monitoringRoleArn"] == role.outputs["arn"]
    # RDS checks the role's permissions when monitoring starts: the policy comes first.
    assert attachment.urn in instance.dependencies


def test_database_insights_standard_by_default_and_advanced_keeps_fifteen_months(instance, variant):
    assert instance.inputs["databaseInsightsMode"] == "standard"
    assert instance.inputs["performanceInsightsRetentionPeriod"] == 7
    advanced = variant.one(INSTANCE).inputs
    assert advanced["databaseInsightsMode"] == "advanced"
    assert advanced["performanceInsightsRetentionPeriod"] == 465
    assert advanced["performanceInsightsEnabled"] is True


def test_log_exports_go_to_log_groups_declared_first_with_retention(run, instance):
    assert sorted(instance.inputs["enabledCloudwatchLogsExports"]) == [
        "iam-db-auth-error", "postgresql", "upgrade"]
    groups = {g.inputs["name"]: g for g in run.of_type(LOG_GROUP)}
    assert set(groups) == {f"/aws/rds/instance/{IDENTIFIER}/{log}"
                           for log in ("postgresql", "upgrade", "iam-db-auth-error")}
    for group in groups.values():
        assert group.inputs["retentionInDays"] == 90
        assert group.urn in instance.dependencies


# ---------------------------------------------------------------- alerting


def test_topic_is_encrypted_publishable_by_our_services_and_mails_the_operator(run, variant):
    topic = run.one(TOPIC)
    assert topic.inputs["name"] == f"db-alerts-primary-{SUFFIX}"
    [statement] = document(run.one(TOPIC_POLICY))["Statement"]
    assert statement["Action"] == "sns:Publish"
    assert statement["Resource"] == topic.outputs["arn"]
    assert set(as_list(statement["Principal"]["Service"])) == {
        "cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": OFFLINE_ACCOUNT_ID}}
    subscription = run.one(SUBSCRIPTION)
    assert subscription.inputs["protocol"] == "email"
    assert subscription.inputs["endpoint"] == "oncall@example.com"
    assert subscription.inputs["topic"] == topic.outputs["arn"]
    assert not variant.of_type(SUBSCRIPTION)


@pytest.mark.parametrize("metric, name, threshold", [
    ("CPUUtilization", "cpu", 70),
    ("FreeStorageSpace", "free-storage", 10 * GIB),
    ("FreeableMemory", "freeable-memory", 512 * MIB),
    ("DatabaseConnections", "connections", 250),
])
def test_alarm_watches_the_instance_and_notifies_on_alarm_and_ok(run, metric, name, threshold):
    topic_arn = run.one(TOPIC).outputs["arn"]
    alarm = run.one(ALARM, f"pg-primary-{name}-")
    a = alarm.inputs
    assert a["name"] == f"pg-primary-{name}-{SUFFIX}"
    assert a["namespace"] == "AWS/RDS" and a["metricName"] == metric
    assert a["dimensions"] == {"DBInstanceIdentifier": IDENTIFIER}
    assert a["threshold"] == threshold
    assert a["alarmActions"] == [topic_arn] and a["okActions"] == [topic_arn]


def test_exactly_the_four_primary_alarms(run):
    assert len(run.of_type(ALARM)) == 4


def test_rds_events_for_the_instance_reach_the_topic(run):
    subscription = run.one(EVENT_SUBSCRIPTION)
    s = subscription.inputs
    assert s["name"] == f"pg-events-primary-{SUFFIX}"
    assert s["snsTopic"] == run.one(TOPIC).outputs["arn"]
    assert s["sourceType"] == "db-instance"
    assert s["sourceIds"] == [IDENTIFIER]
    assert {"failure", "failover", "low storage", "maintenance"} <= set(s["eventCategories"])


# ---------------------------------------------------------------- outputs


def test_exports_exactly_the_contract(run, instance):
    e = run.exports
    assert set(e) == set(PrimaryDbOutputs.all())
    assert e[PrimaryDbOutputs.INSTANCE_ARN] == instance.outputs["arn"]
    assert e[PrimaryDbOutputs.INSTANCE_IDENTIFIER] == IDENTIFIER
    assert e[PrimaryDbOutputs.ADDRESS] == instance.outputs["address"]
    assert e[PrimaryDbOutputs.PORT] == 5432
    assert e[PrimaryDbOutputs.RESOURCE_ID] == instance.outputs["resourceId"]
    assert e[PrimaryDbOutputs.REGION] == PRIMARY
    assert e[PrimaryDbOutputs.INSTANCE_CLASS] == "db.m6g.large"
    assert e[PrimaryDbOutputs.KMS_KEY_ARN] == run.one(KEY).outputs["arn"]
    assert e[PrimaryDbOutputs.SNS_TOPIC_ARN] == run.one(TOPIC).outputs["arn"]
    assert e[PrimaryDbOutputs.PARAMETER_GROUP_NAME] == run.one(PARAMETER_GROUP).inputs["name"]
    assert e[PrimaryDbOutputs.ENGINE] == "postgres"
    assert e[PrimaryDbOutputs.ENGINE_MAJOR_VERSION] == "17"
    assert e[PrimaryDbOutputs.PARAMETER_GROUP_FAMILY] == "postgres17"
    assert arn_region(e[PrimaryDbOutputs.INSTANCE_ARN]) == PRIMARY


def test_nothing_mentions_a_default_region_under_other_regions(run):
    assert not mentions_default_region(run.exports)
    assert not mentions_default_region([r.inputs for r in run.resources])


def test_every_physical_name_carries_the_suffix(run):
    named = [r for r in aws_resources(run) if isinstance(r.inputs.get("name"), str)]
    assert len(named) >= 10
    for r in named:
        assert SUFFIX in r.inputs["name"], (r.type, r.inputs["name"])
    assert json.dumps(run.one(INSTANCE).inputs["identifier"]).count(SUFFIX) == 1
