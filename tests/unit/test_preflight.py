"""The preflight's rules on their own: regions (the layers' rules, naming the variable),
secrets provider shapes and where state lives."""

from __future__ import annotations

import json

import pytest

from offline import preflight
from shared import config as cfg


@pytest.mark.parametrize("primary,secondary,named", [
    ("us-east-9", "us-west-2", "PRIMARY_REGION"),  # not in botocore's endpoint data
    ("eu-west-1", "cn-north-1", "SECONDARY_REGION"),
    ("us-gov-west-1", "us-west-2", "SECONDARY_REGION"),  # two partitions
    ("eu-west-1", "eu-west-1", "must differ"),
])
def test_bad_regions_are_refused_naming_the_variable(primary, secondary, named):
    problem = preflight.check_regions(primary, secondary)
    assert problem and named in problem


@pytest.mark.parametrize("primary,secondary", [("eu-west-1", "eu-central-1"),
                                               ("us-gov-west-1", "us-gov-east-1"),
                                               ("ap-southeast-2", None)])
def test_good_regions_pass(primary, secondary):
    assert preflight.check_regions(primary, secondary) is None


def test_without_botocore_only_the_stdlib_checks_run(monkeypatch):
    # The preflight may run on a Python without botocore (before the virtualenv exists);
    # the layers check the region names again with the project's botocore.
    def no_botocore():
        raise ImportError("No module named 'botocore'")

    monkeypatch.setattr(cfg, "aws_partitions", no_botocore)
    assert preflight.check_regions("us-east-9", "us-west-2") is None
    assert "must differ" in preflight.check_regions("eu-west-1", "eu-west-1")


KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize("provider", [
    "", "passphrase", "default",
    "awskms://alias/pulumi-state",
    "awskms://alias/pulumi-state?region=eu-central-1",
    f"awskms:///{KEY_ID}?region=eu-central-1",
    f"awskms:///arn:aws:kms:eu-central-1:111122223333:key/{KEY_ID}",
    "awskms:///arn:aws:kms:eu-central-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    "awskms:///arn:aws:kms:eu-central-1:111122223333:alias/pulumi-state",
    "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k",
    "hashivault://pulumi",
])
def test_secrets_providers_pulumi_accepts_pass(provider):
    assert preflight.check_secrets_provider(provider) is None


@pytest.mark.parametrize("provider", [
    "awskms://", "awskms://pulumi-state", "awskms:///arn:aws:kms:eu-central-1:1:key/x",
    "awskms://alias/x?region=EU", "kms://alias/x", "awskms://alias/x;id", "passphrase\n",
    "awskms://alias/x\n",
])
def test_malformed_secrets_providers_are_refused_with_the_rule(provider):
    problem = preflight.check_secrets_provider(provider)
    assert problem and problem.startswith("SECRETS_PROVIDER")


def _no_lookup(bucket):
    raise AssertionError("the region= parameter must spare the lookup")


@pytest.mark.parametrize(("url", "looked_up", "warned"), [
    ("s3://state", "us-east-1", True),
    ("s3://state/prefix", "eu-central-1", False),
    ("s3://state?region=us-east-1&awssdk=v2", None, True),
    ("s3://state?region=eu-central-1", None, False),
    ("file:///tmp/state", None, False),
    ("https://api.pulumi.com", None, False),
])
def test_state_in_the_primary_region_is_warned_about(url, looked_up, warned):
    lookup = (lambda bucket: looked_up) if looked_up else _no_lookup
    messages = preflight.check_state_backend(url, "", "us-east-1", lookup=lookup)
    assert any(m.startswith("warning: PULUMI_BACKEND_URL") for m in messages) is warned
    assert all(not m.startswith("note") for m in messages)


def test_a_failed_lookup_is_a_note_naming_the_bucket():
    def denied(bucket):
        raise PermissionError("AccessDenied")

    messages = preflight.check_state_backend("s3://team-state", "", "us-east-1", lookup=denied)
    assert len(messages) == 1
    assert messages[0].startswith("note: could not look up the region of state bucket 'team-state'")


@pytest.mark.parametrize(("provider", "warned"), [
    ("awskms://alias/state?region=us-east-1", True),
    (f"awskms:///arn:aws:kms:us-east-1:111122223333:key/{KEY_ID}", True),
    ("awskms://alias/state?region=eu-central-1", False),
    (f"awskms:///arn:aws:kms:eu-central-1:111122223333:key/{KEY_ID}", False),
])
def test_a_kms_key_in_the_primary_region_is_warned_about(provider, warned):
    messages = preflight.check_state_backend("", provider, "us-east-1", lookup=_no_lookup)
    assert any(m.startswith("warning: SECRETS_PROVIDER") for m in messages) is warned


@pytest.mark.parametrize(("constraint", "region"), [(None, "us-east-1"), ("EU", "eu-west-1"),
                                                     ("ap-south-2", "ap-south-2")])
def test_bucket_locations_map_to_regions(monkeypatch, constraint, region):
    class FakeS3:
        def get_bucket_location(self, Bucket):
            return {"LocationConstraint": constraint}

    monkeypatch.setattr("boto3.client", lambda *args, **kwargs: FakeS3())
    assert preflight.bucket_region("state") == region


@pytest.mark.parametrize(("value", "ok"), [("", True), ("0", True), ("1", True), ("true", False),
                                           ("1 ", False), ("yes", False)])
def test_switches_are_1_0_or_empty(value, ok):
    assert (preflight.check_switches({"REFRESH": value}) is None) is ok


# ---------------------------------------------------------------- the master secret

PRIMARY, SECONDARY = "eu-west-1", "eu-central-1"


@pytest.fixture
def secrets_manager(monkeypatch):
    import boto3
    import moto

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with moto.mock_aws():
        yield lambda region: boto3.client("secretsmanager", region_name=region)


def _create(client_for, name, replicas=()):
    extra = {"AddReplicaRegions": [{"Region": r} for r in replicas]} if replicas else {}
    return client_for(PRIMARY).create_secret(
        Name=name, SecretString=json.dumps({"username": "dbadmin", "password": "pw" * 8}),
        **extra)["ARN"]


def test_a_master_secret_replicated_in_sync_passes(secrets_manager, capsys):
    arn = _create(secrets_manager, "rds-master-qa1", [SECONDARY])
    for secret_id in ("rds-master-qa1", arn):
        assert preflight.check_master_secret(secret_id, PRIMARY, SECONDARY, secrets_manager) is None
    assert f"replicated to {SECONDARY} (InSync)" in capsys.readouterr().out


def test_a_master_secret_without_a_replica_in_the_secondary_region_is_refused(secrets_manager):
    _create(secrets_manager, "rds-master-qa1", ["ap-southeast-2"])  # replicated, but elsewhere
    problem = preflight.check_master_secret("rds-master-qa1", PRIMARY, SECONDARY, secrets_manager)
    assert problem and f"no replica in {SECONDARY}" in problem
    assert (f"replicate-secret-to-regions --region {PRIMARY} --secret-id rds-master-qa1 "
            f"--add-replica-regions Region={SECONDARY}") in problem


def test_a_missing_master_secret_is_refused_pointing_at_the_readme(secrets_manager):
    problem = preflight.check_master_secret("rds-master-qa1", PRIMARY, SECONDARY, secrets_manager)
    assert problem and f"no secret rds-master-qa1 in {PRIMARY}" in problem
    assert "README" in problem and "masterSecretId" in problem


class _Described:
    """A Secrets Manager client answering DescribeSecret with a fixed document."""

    def __init__(self, document):
        self.document = document

    def describe_secret(self, SecretId):  # boto3 names it so
        return self.document


@pytest.mark.parametrize("status", ["InProgress", "Failed"])
def test_a_replica_that_is_not_in_sync_is_refused_with_its_status(status):
    # moto reports every replica InSync at once; Secrets Manager's DescribeSecret
    # ReplicationStatus.Status can also be InProgress or Failed (API Reference).
    document = {"ARN": f"arn:aws:secretsmanager:{PRIMARY}:123456789012:secret:s-AbCdEf",
                "ReplicationStatus": [{"Region": SECONDARY, "Status": status,
                                       "StatusMessage": "Destination secret already exists"}]}
    problem = preflight.check_master_secret("s", PRIMARY, SECONDARY, lambda _: _Described(document))
    assert problem and f"is {status} (Destination secret already exists)" in problem


def test_the_replica_check_asks_only_the_secondary_region(secrets_manager, capsys):
    arn = _create(secrets_manager, "rds-master-qa1", [SECONDARY])
    asked = []

    def client_for(region):
        asked.append(region)
        return secrets_manager(region)

    for secret_id in ("rds-master-qa1", arn):
        assert preflight.check_secret_replica(secret_id, PRIMARY, SECONDARY, client_for) is None
    assert set(asked) == {SECONDARY}
    assert f"arn:aws:secretsmanager:{SECONDARY}:" in capsys.readouterr().out


def test_a_missing_replica_fails_the_replica_check_with_what_to_do(secrets_manager):
    _create(secrets_manager, "rds-master-qa1")
    problem = preflight.check_secret_replica("rds-master-qa1", PRIMARY, SECONDARY, secrets_manager)
    assert problem and f"no secret rds-master-qa1 in {SECONDARY}" in problem
    assert "RUNBOOK" in problem


def test_the_secret_name_and_regions_come_from_the_suffixs_stack_files(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "REPO", tmp_path)
    for layer, config in (("network", {"aws:region": PRIMARY,
                                       "rds-network:secondaryRegion": SECONDARY}),
                          ("primary-db", {"rds-primary-db:masterSecretId": "team/pg"})):
        (tmp_path / "stacks" / layer).mkdir(parents=True)
        (tmp_path / "stacks" / layer / "Pulumi.qa1.yaml").write_text(
            json.dumps({"config": config}))  # JSON is YAML
    assert preflight.configured_primary_region("qa1") == PRIMARY
    assert preflight.configured_secondary_region("qa1") == SECONDARY
    assert preflight.configured_master_secret("qa1") == "team/pg"
    # No stack files for another suffix: the layers' defaults.
    assert preflight.configured_primary_region("qa2") == cfg.DEFAULT_PRIMARY_REGION
    assert preflight.configured_secondary_region("qa2") == cfg.DEFAULT_SECONDARY_REGION
    assert preflight.configured_master_secret("qa2") == "rds-master-qa2"
