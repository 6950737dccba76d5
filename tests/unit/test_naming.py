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


def test_every_supported_major_version_has_catalogued_parameter_group_names():
    # The group's physical name carries the major version; a version config accepts but the
    # catalog lacks would fail half-way through a deployment instead of at validation.
    from shared.config import SUPPORTED_PG_MAJOR_VERSIONS

    assert set(SUPPORTED_PG_MAJOR_VERSIONS) <= set(naming.PARAMETER_GROUP_MAJOR_VERSIONS)
    namer = naming.Namer("a" * naming.max_suffix_length())
    for major in SUPPORTED_PG_MAJOR_VERSIONS:
        for role in ("primary", "secondary"):
            name = namer.name(naming.tls_parameter_group_base(role, major))
            assert name.startswith(f"pg{major}-") and len(name) <= 63
    with pytest.raises(KeyError):
        namer.name(naming.tls_parameter_group_base("primary", "14"))


def test_every_failover_function_name_and_its_role_and_schedule_are_catalogued():
    # FailoverFunction derives "<base>-role" and "<base>-schedule"; the replica canary that
    # is being wired in must fit the suffix rule before its first deployment.
    bases = [b for role_bases in naming.FAILOVER_FUNCTION_BASES.values() for b in role_bases]
    assert "db-replica-canary" in naming.FAILOVER_FUNCTION_BASES["secondary"]
    for base in bases:
        for name in (base, f"{base}-role", f"{base}-schedule"):
            assert name in naming.CATALOG, name
    assert naming.CATALOG["db-replica-canary-schedule"].max_suffix_length() >= naming.max_suffix_length()
