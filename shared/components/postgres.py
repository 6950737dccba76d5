"""RDS for PostgreSQL pieces both database layers build the same way.

- ``TlsParameterGroup``: forces TLS and turns on connection and slow-statement
  logging. Each region needs its own: a cross-region replica does not inherit
  its source's parameter group.
- ``DbLogGroups``: the log groups RDS exports to, declared before the instance
  so they carry a retention and a key and are deleted with the stack (otherwise
  RDS creates them on first export, unencrypted and kept forever).
- ``hardened_instance_args``: the instance settings every copy of the database
  shares (encryption, no public access, IAM auth, monitoring, log exports...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from shared.config import DatabaseTuning
from shared.naming import Namer, tls_parameter_group_base

ENGINE = "postgres"
POSTGRES_PORT = 5432
# The RSA 2048 CA RDS uses for new instances, valid until 2061 (RDS User Guide,
# "Certificate authorities"). Clients trust it through the global bundle.
CA_CERTIFICATE_IDENTIFIER = "rds-ca-rsa2048-g1"
# The exports FSBP RDS.9 asks for, plus iam-db-auth-error: IAM database authentication is
# on, and its failures are logged only there (RDS User Guide, "Troubleshooting for IAM DB
# authentication"; CreateDBInstance EnableCloudwatchLogsExports lists all three for RDS for
# PostgreSQL). Each export gets its own declared log group.
LOG_EXPORTS = ("postgresql", "upgrade", "iam-db-auth-error")


def log_group_name(identifier: str, log_type: str) -> str:
    """The log group RDS writes an exported log to (RDS User Guide, "Publishing logs")."""
    return f"/aws/rds/instance/{identifier}/{log_type}"


def log_group_pattern(identifier: str) -> str:
    """Every log group RDS may export this instance's logs to (for the key policy)."""
    return f"/aws/rds/instance/{identifier}/*"


@dataclass
class TlsParameterGroupArgs:
    namer: Namer
    role: str  # "primary" or "secondary": selects the catalogued names
    family: pulumi.Input[str]  # e.g. "postgres17"
    log_min_duration_statement_ms: int


def tls_parameter_group_name(namer: Namer, role: str, family: str) -> str:
    """``pg17-tls-primary-<suffix>``: one name per major version (see the naming catalog)."""
    return namer.name(tls_parameter_group_base(role, str(family_major_version(family))))


class TlsParameterGroup(pulumi.ComponentResource):
    """A DB parameter group with ``rds.force_ssl = 1`` and sensible logging."""

    group: aws.rds.ParameterGroup
    name: pulumi.Output[str]

    def __init__(self, name: str, args: TlsParameterGroupArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:shared:TlsParameterGroup", name, None, opts)
        family = pulumi.Output.from_input(args.family)
        # The family decides the accepted values (log_connections changed type in 18), and
        # the replica layer only learns it from the primary's stack: resolve it first.
        parameters = family.apply(
            lambda value: tls_parameters(args.log_min_duration_statement_ms, value)
        )
        # The logical name stays the same across versions, the physical one does not: a new
        # family replaces the group (create the new one, move the instance, delete the old).
        self.group = aws.rds.ParameterGroup(
            args.namer.name(f"pg-tls-{args.role}"),
            name=family.apply(lambda value: tls_parameter_group_name(args.namer, args.role, value)),
            family=args.family,
            description="Forces TLS for every connection; logs connections and slow statements",
            parameters=parameters,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = self.group.name
        self.register_outputs({"name": self.group.name})


def family_major_version(family: str) -> int:
    """16 for "postgres16": the PostgreSQL major version a parameter group family is for."""
    match = re.fullmatch(r"postgres(\d+)", family)
    if not match:
        raise ValueError(f"{family!r} is not an RDS for PostgreSQL parameter group family")
    return int(match.group(1))


def log_connections_value(family: str) -> str:
    """The ``log_connections`` setting that logs every connection, as ``family`` accepts it.

    Up to PostgreSQL 17 the parameter is a boolean (RDS accepts 0 or 1). PostgreSQL 18 made
    it a list of connection stages (PostgreSQL 18 release notes, "log_connections"), and RDS
    rejects the old value for the postgres18 family: "InvalidParameterValue: Invalid
    parameter value: 1 for: log_connections allowed values are: receipt, authentication,
    authorization, setup_durations, all". "all" is a single allowed value and a superset of
    what "on" logged before (receipt, authentication, authorization).
    """
    return "all" if family_major_version(family) >= 18 else "1"


def tls_parameters(log_min_duration_statement_ms: int, family: str
                   ) -> list[aws.rds.ParameterGroupParameterArgs]:
    def param(name: str, value: str, apply_method: str) -> aws.rds.ParameterGroupParameterArgs:
        return aws.rds.ParameterGroupParameterArgs(name=name, value=value, apply_method=apply_method)

    return [
        # pending-reboot is accepted whether RDS treats the parameter as static or dynamic.
        # A group given at instance creation is in force from the start; see the replica
        # layer for a group attached later.
        param("rds.force_ssl", "1", "pending-reboot"),
        param("log_connections", log_connections_value(family), "immediate"),
        param("log_disconnections", "1", "immediate"),
        param("log_lock_waits", "1", "immediate"),
        param("log_min_duration_statement", str(log_min_duration_statement_ms), "immediate"),
    ]


@dataclass
class DbLogGroupsArgs:
    namer: Namer
    role: str
    identifier: str
    retention_days: int
    kms_key_arn: pulumi.Input[str]


class DbLogGroups(pulumi.ComponentResource):
    """One encrypted log group with a retention per exported PostgreSQL log."""

    groups: dict[str, aws.cloudwatch.LogGroup]

    def __init__(self, name: str, args: DbLogGroupsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:shared:DbLogGroups", name, None, opts)
        self.groups = {
            log_type: aws.cloudwatch.LogGroup(
                args.namer.logical("pg-logs", args.role, log_type),
                name=log_group_name(args.identifier, log_type),
                retention_in_days=args.retention_days,
                kms_key_id=args.kms_key_arn,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for log_type in LOG_EXPORTS
        }
        self.register_outputs({
            "logGroupNames": [group.name for group in self.groups.values()],
        })


@dataclass
class InstanceBaseline:
    """What every PostgreSQL instance of this project has in common."""

    identifier: str
    instance_class: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    subnet_group_name: pulumi.Input[str]
    security_group_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    parameter_group_name: pulumi.Input[str]
    monitoring_role_arn: pulumi.Input[str]
    monitoring_interval_seconds: int
    max_allocated_storage_gib: pulumi.Input[int]
    multi_az: bool
    maintenance_window: str
    tuning: DatabaseTuning


def hardened_instance_args(baseline: InstanceBaseline) -> dict[str, Any]:
    """Keyword arguments for ``aws.rds.Instance`` shared by the primary and the replica.

    Deletion protection off and no final snapshot are deliberate: every layer must
    be destroyable by CI (the README waives FSBP RDS.8 with that reason).
    """
    tuning = baseline.tuning
    return {
        "identifier": baseline.identifier,
        "engine": ENGINE,
        "instance_class": baseline.instance_class,
        "port": POSTGRES_PORT,
        "storage_type": "gp3",
        "max_allocated_storage": baseline.max_allocated_storage_gib,
        "storage_encrypted": True,
        "kms_key_id": baseline.kms_key_arn,
        "multi_az": baseline.multi_az,
        "db_subnet_group_name": baseline.subnet_group_name,
        "vpc_security_group_ids": baseline.security_group_ids,
        "publicly_accessible": False,
        "parameter_group_name": baseline.parameter_group_name,
        "ca_cert_identifier": CA_CERTIFICATE_IDENTIFIER,
        "iam_database_authentication_enabled": True,
        "auto_minor_version_upgrade": True,
        "maintenance_window": baseline.maintenance_window,
        "copy_tags_to_snapshot": True,
        "enabled_cloudwatch_logs_exports": list(LOG_EXPORTS),
        "monitoring_interval": baseline.monitoring_interval_seconds,
        "monitoring_role_arn": baseline.monitoring_role_arn,
        # Performance Insights now lives in CloudWatch Database Insights; its data is
        # encrypted with our key. Standard mode keeps 7 days free, advanced needs 465.
        "database_insights_mode": tuning.database_insights_mode,
        "performance_insights_enabled": True,
        "performance_insights_kms_key_id": baseline.kms_key_arn,
        "performance_insights_retention_period": tuning.performance_insights_retention_days,
        "apply_immediately": tuning.apply_immediately,
        "deletion_protection": False,
        "skip_final_snapshot": True,
        "delete_automated_backups": True,
    }
