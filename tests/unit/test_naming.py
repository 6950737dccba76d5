"""Names: every physical name carries the suffix, and the catalog bounds the suffix."""

from __future__ import annotations

import pytest

from shared import naming
from shared.config import ConfigError, validate_suffix


def test_name_families_are_distinct_members():
    # Families sharing a length limit must not collapse into Enum aliases, or error
    # messages would name the wrong AWS name family.
    assert len(naming.NameKind.__members__) == len(list(naming.NameKind))


def test_physical_names_end_with_the_suffix_and_unknown_bases_are_refused():
    namer = naming.Namer("qa7")
    assert namer.name("pg-primary") == "pg-primary-qa7"
    assert namer.kms_alias("rds-primary") == "alias/rds-primary-qa7"
    assert namer.lambda_log_group("db-canary") == "/aws/lambda/db-canary-qa7"
    assert namer.logical("flow-log", "primary") == "flow-log-primary-qa7"
    with pytest.raises(KeyError, match="CATALOG"):
        namer.name("not-catalogued")


def test_the_longest_accepted_suffix_fits_every_catalogued_name():
    suffix = "a" * naming.max_suffix_length()
    validate_suffix("environmentSuffix", suffix)
    namer = naming.Namer(suffix)
    for spec in naming.CATALOG.values():
        assert len(namer.name(spec.base)) + spec.overhead <= spec.kind.limit, spec.base
    with pytest.raises(ConfigError, match=naming.tightest_name().kind.label):
        validate_suffix("environmentSuffix", suffix + "a")
