"""The preflight's rules on their own: regions (the layers' rules, naming the variable),
secrets provider shapes and where state lives."""

from __future__ import annotations

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
