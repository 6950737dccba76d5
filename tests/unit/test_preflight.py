"""The Makefile's region preflight applies the layers' region rules, naming the variable."""

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
