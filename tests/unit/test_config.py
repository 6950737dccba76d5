"""Every validation rule of shared/config.py rejects its bad value and names the key."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path

import botocore
import pytest

from shared import config as cfg
from shared import naming

REPO = Path(__file__).resolve().parents[2]
LOADERS = cfg.LOADERS
TOO_LONG_SUFFIX = "a" * (naming.max_suffix_length() + 1)
SECRET_ARN = "arn:aws:secretsmanager:{region}:111122223333:secret:rds-master-qa7-AbCdEf"
# Four 61-character labels: a valid zone name (247 characters) that "writer." pushes past 253.
LONG_ZONE = ".".join(["z" * 61] * 4)

# (case id, layer whose loader runs, config values, stack name, key the error must name)
CASES = [
    # environmentSuffix
    ("suffix-empty", "network", {}, "", "environmentSuffix"),
    ("suffix-upper-case", "network", {"environmentSuffix": "QA7"}, "dev", "environmentSuffix"),
    ("suffix-underscore", "network", {"environmentSuffix": "qa_7"}, "dev", "environmentSuffix"),
    ("suffix-dot", "network", {"environmentSuffix": "qa.7"}, "dev", "environmentSuffix"),
    ("suffix-leading-hyphen", "network", {"environmentSuffix": "-qa7"}, "dev", "environmentSuffix"),
    ("suffix-trailing-hyphen", "network", {"environmentSuffix": "qa7-"}, "dev", "environmentSuffix"),
    ("suffix-double-hyphen", "network", {"environmentSuffix": "qa--7"}, "dev", "environmentSuffix"),
    ("suffix-too-long", "network", {"environmentSuffix": TOO_LONG_SUFFIX}, "dev",
     "environmentSuffix"),
    ("suffix-from-a-bad-stack-name", "network", {}, "Feature_X", "environmentSuffix"),
    # regions
    ("regions-equal", "network", {"aws:region": "eu-west-1", "secondaryRegion": "eu-west-1"}, "dev",
     "secondaryRegion"),
    ("regions-equal-by-default", "network", {"secondaryRegion": cfg.DEFAULT_PRIMARY_REGION}, "dev",
     "secondaryRegion"),
    ("primary-region-malformed", "network", {"aws:region": "eu-west"}, "dev", "aws:region"),
    # Key policies name <service>.<region>.amazonaws.com, which China regions do not use.
    ("primary-region-china", "network", {"aws:region": "cn-north-1"}, "dev", "aws:region"),
    ("secondary-region-iso", "network", {"secondaryRegion": "us-iso-east-1"}, "dev",
     "secondaryRegion"),
    ("primary-region-upper-case", "network", {"aws:region": "EU-WEST-1"}, "dev", "aws:region"),
    ("secondary-region-malformed", "network", {"secondaryRegion": "westeurope"}, "dev",
     "secondaryRegion"),
    # Region-shaped, but no region of botocore's endpoint data.
    ("primary-region-unknown", "network", {"aws:region": "us-east-9"}, "dev", "aws:region"),
    ("secondary-region-unknown", "network", {"secondaryRegion": "eu-west-7"}, "dev",
     "secondaryRegion"),
    # The European Sovereign Cloud's endpoints are <service>.<region>.amazonaws.eu.
    ("primary-region-sovereign-cloud", "network", {"aws:region": "eusc-de-east-1"}, "dev",
     "aws:region"),
    ("regions-in-two-partitions", "network",
     {"aws:region": "us-gov-west-1", "secondaryRegion": "us-west-2"}, "dev", "secondaryRegion"),
    ("project-tag-too-long", "network", {"projectTag": "p" * 257}, "dev", "projectTag"),
    # network
    ("cidrs-overlap", "network", {"primaryVpcCidr": "10.10.0.0/16",
                                  "secondaryVpcCidr": "10.10.128.0/17"}, "dev", "secondaryVpcCidr"),
    ("cidr-malformed", "network", {"primaryVpcCidr": "10.10.0.0/33"}, "dev", "primaryVpcCidr"),
    ("cidr-host-bits-set", "network", {"primaryVpcCidr": "10.10.0.1/16"}, "dev", "primaryVpcCidr"),
    ("cidr-not-an-address", "network", {"secondaryVpcCidr": "ten/16"}, "dev", "secondaryVpcCidr"),
    ("cidr-public", "network", {"primaryVpcCidr": "8.8.0.0/16"}, "dev", "primaryVpcCidr"),
    # Special-purpose ranges ipaddress counts as private, outside RFC 1918.
    ("cidr-loopback", "network", {"primaryVpcCidr": "127.0.0.0/16"}, "dev", "primaryVpcCidr"),
    ("cidr-link-local", "network", {"secondaryVpcCidr": "169.254.0.0/16"}, "dev",
     "secondaryVpcCidr"),
    ("cidr-benchmarking", "network", {"primaryVpcCidr": "198.18.0.0/16"}, "dev", "primaryVpcCidr"),
    ("cidr-just-past-172-16-12", "network", {"primaryVpcCidr": "172.32.0.0/16"}, "dev",
     "primaryVpcCidr"),
    ("cidr-too-small", "network", {"secondaryVpcCidr": "10.20.0.0/24"}, "dev", "secondaryVpcCidr"),
    ("cidr-too-large", "network", {"primaryVpcCidr": "10.0.0.0/8"}, "dev", "primaryVpcCidr"),
    ("subnets-too-few", "network", {"subnetsPerRegion": 1}, "dev", "subnetsPerRegion"),
    ("subnets-not-a-number", "network", {"subnetsPerRegion": "two"}, "dev", "subnetsPerRegion"),
    ("flow-log-retention-not-allowed", "network", {"flowLogRetentionDays": 31}, "dev",
     "flowLogRetentionDays"),
    # primary-db
    ("windows-overlap", "primary-db", {"backupWindow": "05:30-06:30",
                                       "maintenanceWindow": "sun:05:00-sun:06:00"}, "dev",
     "maintenanceWindow"),
    ("windows-overlap-across-midnight", "primary-db", {"backupWindow": "23:30-00:30",
                                                       "maintenanceWindow": "mon:00:00-mon:01:00"},
     "dev", "maintenanceWindow"),
    ("backup-window-malformed", "primary-db", {"backupWindow": "3:00-4:00"}, "dev", "backupWindow"),
    ("backup-window-hour-24", "primary-db", {"backupWindow": "23:00-24:00"}, "dev", "backupWindow"),
    ("maintenance-window-malformed", "primary-db", {"maintenanceWindow": "sunday:05:00-sunday:06:00"},
     "dev", "maintenanceWindow"),
    ("backup-window-under-30-minutes", "primary-db", {"backupWindow": "03:00-03:29"}, "dev",
     "backupWindow"),
    ("maintenance-window-under-30-minutes", "primary-db",
     {"maintenanceWindow": "sun:05:00-sun:05:20"}, "dev", "maintenanceWindow"),
    ("secondary-windows-overlap", "secondary-db", {"backupWindow": "07:00-08:00"}, "dev",
     "maintenanceWindow"),
    ("storage-ceiling-under-110-percent", "primary-db",
     {"allocatedStorageGiB": 100, "maxAllocatedStorageGiB": 109}, "dev", "maxAllocatedStorageGiB"),
    ("storage-below-minimum", "primary-db", {"allocatedStorageGiB": 10}, "dev",
     "allocatedStorageGiB"),
    ("secret-arn-in-another-region", "primary-db",
     {"masterSecretId": SECRET_ARN.format(region=cfg.DEFAULT_SECONDARY_REGION)}, "dev",
     "masterSecretId"),
    ("secret-arn-of-another-service", "primary-db",
     {"masterSecretId": "arn:aws:ssm:us-east-1:111122223333:parameter/x"}, "dev", "masterSecretId"),
    ("email-malformed", "primary-db", {"alarmEmail": "ops.example.com"}, "dev", "alarmEmail"),
    ("email-with-spaces", "secondary-db", {"alarmEmail": "ops team@example.com"}, "dev",
     "alarmEmail"),
    ("log-retention-not-allowed", "primary-db", {"logRetentionDays": 10}, "dev", "logRetentionDays"),
    ("engine-version-unsupported", "primary-db", {"engineMajorVersion": "12"}, "dev",
     "engineMajorVersion"),
    # 14's default parameter group (a new cross-region replica's first) does not force TLS.
    ("engine-version-without-default-tls", "primary-db", {"engineMajorVersion": "14"}, "dev",
     "engineMajorVersion"),
    ("instance-class-malformed", "primary-db", {"instanceClass": "m6g.large"}, "dev",
     "instanceClass"),
    ("instance-class-previous-generation", "primary-db", {"instanceClass": "db.t2.micro"}, "dev",
     "instanceClass"),
    ("database-name-reserved", "primary-db", {"databaseName": "postgres"}, "dev", "databaseName"),
    ("database-name-upper-case", "primary-db", {"databaseName": "AppDb"}, "dev", "databaseName"),
    ("monitoring-interval-not-allowed", "primary-db", {"monitoringIntervalSeconds": 7}, "dev",
     "monitoringIntervalSeconds"),
    ("boolean-malformed", "primary-db", {"multiAz": "maybe"}, "dev", "multiAz"),
    ("integer-malformed", "primary-db", {"backupRetentionDays": "seven"}, "dev",
     "backupRetentionDays"),
    ("integer-below-range", "primary-db", {"backupRetentionDays": 0}, "dev", "backupRetentionDays"),
    ("integer-above-range", "primary-db", {"backupRetentionDays": 36}, "dev", "backupRetentionDays"),
    ("insights-mode-unknown", "primary-db", {"databaseInsightsMode": "premium"}, "dev",
     "databaseInsightsMode"),
    # secondary-db
    ("replica-promoted-not-boolean", "secondary-db", {"replicaPromoted": "perhaps"}, "dev",
     "replicaPromoted"),
    ("replica-instance-class-malformed", "secondary-db", {"instanceClass": "large"}, "dev",
     "instanceClass"),
    ("lag-threshold-not-a-number", "secondary-db", {"replicaLagThresholdSeconds": "5m"}, "dev",
     "replicaLagThresholdSeconds"),
    # dns-failover
    ("ttl-over-60", "dns-failover", {"recordTtlSeconds": 61}, "dev", "recordTtlSeconds"),
    ("datapoints-over-periods", "dns-failover",
     {"alarmEvaluationPeriods": 3, "alarmDatapointsToAlarm": 4}, "dev", "alarmDatapointsToAlarm"),
    ("automation-mode-unknown", "dns-failover", {"automationMode": "yolo"}, "dev", "automationMode"),
    ("zone-single-label", "dns-failover", {"zoneName": "internal"}, "dev", "zoneName"),
    ("zone-bad-label", "dns-failover", {"zoneName": "db_qa7.internal"}, "dev", "zoneName"),
    ("zone-label-too-long", "dns-failover", {"zoneName": "z" * 64 + ".internal"}, "dev", "zoneName"),
    ("zone-too-long-for-the-writer-record", "dns-failover", {"zoneName": LONG_ZONE}, "dev",
     "zoneName"),
    # Names carry the suffix: two deployments must not both claim one private zone name.
    ("zone-without-the-suffix", "dns-failover", {"zoneName": "db.example.internal"}, "qa7",
     "zoneName"),
    ("zone-with-the-suffix-only-inside-a-word", "dns-failover", {"zoneName": "dbqa7.internal"}, "qa7",
     "zoneName"),
    ("recovery-grace-over-an-hour", "dns-failover", {"recoveryGraceMinutes": 61}, "dev",
     "recoveryGraceMinutes"),
    ("recovery-grace-negative", "dns-failover", {"recoveryGraceMinutes": -1}, "dev",
     "recoveryGraceMinutes"),
    ("failover-email-malformed", "dns-failover", {"alarmEmail": "@example.com"}, "dev", "alarmEmail"),
    ("failover-log-retention-not-allowed", "dns-failover", {"logRetentionDays": 2}, "dev",
     "logRetentionDays"),
    ("promoter-calls-exceed-its-budget", "dns-failover",
     {"promoterApiTimeoutSeconds": 20, "promoterMaxAttempts": 2}, "dev", "promoterMaxAttempts"),
]


@pytest.mark.parametrize("layer,values,stack,key",
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_invalid_value_is_rejected_naming_the_key(layer, values, stack, key):
    with pytest.raises(cfg.ConfigError) as caught:
        LOADERS[layer](cfg.DictSource(values, stack=stack))
    assert caught.value.key == key
    assert f"config '{key}'" in str(caught.value)


def test_the_suffix_limit_comes_from_the_name_catalog_and_is_exact():
    limit = naming.max_suffix_length()
    settings = cfg.load_network_settings(cfg.DictSource({"environmentSuffix": "a" * limit}))
    assert settings.common.environment_suffix == "a" * limit
    # The longest accepted suffix makes the tightest catalogued name exactly fill its limit.
    tight = naming.tightest_name()
    assert len(tight.base) + tight.overhead + 1 + limit == tight.kind.limit
    message = str(_error("network", {"environmentSuffix": TOO_LONG_SUFFIX}))
    assert str(limit) in message and tight.base in message


def test_boundary_values_are_accepted():
    cfg.load_primary_db_settings(cfg.DictSource(
        {"allocatedStorageGiB": 100, "maxAllocatedStorageGiB": 110,  # exactly 10% above
         "backupWindow": "03:00-03:30", "maintenanceWindow": "sun:03:30-sun:04:00"}))
    cfg.load_failover_settings(cfg.DictSource(
        {"recordTtlSeconds": 60, "alarmEvaluationPeriods": 3, "alarmDatapointsToAlarm": 3}))
    for zone in ("qa7.example.internal", "db-qa7.corp.internal", "pg.db-qa7-blue.internal"):
        settings = cfg.load_failover_settings(cfg.DictSource({"zoneName": zone}, stack="qa7"))
        assert settings.zone_name == zone
    for minutes in (0, 60):
        settings = cfg.load_failover_settings(cfg.DictSource({"recoveryGraceMinutes": minutes}))
        assert settings.recovery_grace_seconds == minutes * 60
    cfg.load_network_settings(cfg.DictSource({"primaryVpcCidr": "10.0.0.0/16",
                                              "secondaryVpcCidr": "10.1.0.0/22"}))


@pytest.mark.parametrize("cidr", ["127.0.0.0/16", "169.254.0.0/16", "198.18.0.0/16"])
def test_the_cidr_rule_is_rfc_1918_not_pythons_idea_of_private(cidr):
    # The rule it replaces, is_private, accepted these.
    assert ipaddress.IPv4Network(cidr).is_private
    error = _error("network", {"primaryVpcCidr": cidr})
    assert "RFC 1918" in str(error)


@pytest.mark.parametrize("primary,secondary", [
    ("10.255.0.0/16", "10.0.0.0/16"),
    ("172.16.0.0/16", "172.31.252.0/22"),  # both ends of 172.16.0.0/12
    ("192.168.0.0/16", "10.20.0.0/16"),
])
def test_every_rfc_1918_range_is_accepted(primary, secondary):
    settings = cfg.load_network_settings(cfg.DictSource(
        {"primaryVpcCidr": primary, "secondaryVpcCidr": secondary}))
    assert (settings.primary_cidr, settings.secondary_cidr) == (primary, secondary)


@pytest.mark.parametrize("primary,secondary", [
    ("eu-central-2", "il-central-1"),
    ("ca-west-1", "ap-southeast-4"),
    ("us-gov-west-1", "us-gov-east-1"),  # both in GovCloud (US): one partition
])
def test_regions_of_one_supported_partition_are_accepted(primary, secondary):
    common = cfg.load_common(cfg.DictSource({"aws:region": primary, "secondaryRegion": secondary}))
    assert (common.primary_region, common.secondary_region) == (primary, secondary)


def test_an_unknown_region_names_botocore_its_version_and_the_upgrade():
    message = str(_error("network", {"aws:region": "us-east-9"}))
    assert f"botocore {botocore.__version__}" in message
    assert "upgrade" in message and "us-east-1" in message  # the nearest known ones


def test_the_known_regions_are_botocores_endpoint_data(monkeypatch):
    """Not a list of our own: a region botocore's data gains is accepted (as after an upgrade)."""
    from botocore.loaders import Loader

    real = Loader.load_data

    def newer_botocore(self, name, *args, **kwargs):
        data = copy.deepcopy(real(self, name, *args, **kwargs))
        if name == "endpoints":
            aws = next(p for p in data["partitions"] if p["partition"] == "aws")
            aws["regions"]["us-east-9"] = {"description": "a region newer than this botocore"}
        return data

    _error("network", {"aws:region": "us-east-9"})
    monkeypatch.setattr(Loader, "load_data", newer_botocore)
    cfg.aws_partitions.cache_clear()
    try:
        common = cfg.load_common(cfg.DictSource({"aws:region": "us-east-9"}))
        assert common.primary_region == "us-east-9"
    finally:
        cfg.aws_partitions.cache_clear()


@pytest.mark.parametrize("region,partition", [
    ("cn-north-1", "aws-cn"), ("cn-northwest-1", "aws-cn"), ("us-iso-east-1", "aws-iso"),
    ("us-isob-east-1", "aws-iso-b"),
])
def test_china_and_iso_regions_are_refused_for_their_endpoints(region, partition):
    message = str(_error("network", {"secondaryRegion": region}))
    assert f"({partition}) partition" in message
    assert "service endpoints differ from <service>.<region>.amazonaws.com" in message


@pytest.mark.parametrize("raw,expected", [("true", True), ("False", False), ("yes", True),
                                          ("0", False), (True, True)])
def test_booleans_accept_the_usual_spellings(raw, expected):
    assert cfg.load_primary_db_settings(cfg.DictSource({"multiAz": raw})).multi_az is expected


def _error(layer: str, values: dict, stack: str = "dev") -> cfg.ConfigError:
    with pytest.raises(cfg.ConfigError) as caught:
        LOADERS[layer](cfg.DictSource(values, stack=stack))
    return caught.value


# --------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("layer", LOADERS)
def test_suffix_defaults_to_the_stack_name_and_regions_to_the_documented_pair(layer):
    settings = LOADERS[layer](cfg.DictSource({}, stack="demo"))
    common = settings.common
    assert common.environment_suffix == "demo"
    assert (common.primary_region, common.secondary_region) == ("us-east-1", "us-west-2")
    assert (cfg.DEFAULT_PRIMARY_REGION, cfg.DEFAULT_SECONDARY_REGION) == ("us-east-1", "us-west-2")


def test_an_empty_suffix_means_the_stack_name():
    source = cfg.DictSource({"environmentSuffix": "  "}, stack="feature-7")
    assert cfg.load_common(source).environment_suffix == "feature-7"


@pytest.mark.parametrize("layer", LOADERS)
def test_defaults_match_what_the_project_file_documents(layer):
    yaml = pytest.importorskip("yaml")
    path = REPO / "stacks" / layer / "Pulumi.yaml"
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    project = yaml.safe_load(path.read_text())
    declared = project.get("config") or {}
    suffix = declared["environmentSuffix"]
    assert suffix.get("default") in ("", None)
    assert "stack name" in suffix["description"]
    assert declared["secondaryRegion"]["default"] == cfg.DEFAULT_SECONDARY_REGION
    # aws:region is the provider's own key: a project file can only describe its default.
    description = project.get("description", "")
    if "aws:region" in description and "default" in description:
        assert f"default {cfg.DEFAULT_PRIMARY_REGION}" in " ".join(description.split())
