"""The writer: an RDS for PostgreSQL instance built on the shared hardened baseline."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from credentials import MasterCredentials

from shared.components import DbLogGroups, InstanceBaseline, hardened_instance_args


@dataclass
class PrimaryDatabaseArgs:
    baseline: InstanceBaseline
    engine_major_version: str
    allocated_storage_gib: int
    database_name: str
    credentials: MasterCredentials
    backup_retention_days: int
    backup_window: str
    log_groups: DbLogGroups


class PrimaryDatabase(pulumi.ComponentResource):
    instance: aws.rds.Instance

    def __init__(self, name: str, args: PrimaryDatabaseArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:primary-db:PrimaryDatabase", name, None, opts)
        self.instance = aws.rds.Instance(
            args.baseline.identifier,
            **hardened_instance_args(args.baseline),
            # Only the major version: RDS picks its newest minor at creation and auto minor
            # upgrades move it forward; the provider does not diff "17" against "17.x".
            engine_version=args.engine_major_version,
            # RDS refuses a new major version without this flag ("The AllowMajorVersionUpgrade
            # flag must be present when upgrading to a new major version", ModifyDBInstance).
            # It starts nothing by itself: only a new engineMajorVersion upgrades, in the same
            # modify call that attaches the new family's parameter group. RUNBOOK.md has the
            # order with the cross-region replica.
            allow_major_version_upgrade=True,
            allocated_storage=args.allocated_storage_gib,
            db_name=args.database_name,
            username=args.credentials.username,
            password=args.credentials.password,
            # At least one day: a read replica needs automated backups on its source.
            backup_retention_period=args.backup_retention_days,
            backup_window=args.backup_window,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Our log groups must exist before RDS first exports to them, or RDS creates
                # its own without retention or key, and the stack could not delete them.
                depends_on=list(args.log_groups.groups.values()),
            ),
        )
        self.register_outputs({
            "arn": self.instance.arn,
            "address": self.instance.address,
        })
