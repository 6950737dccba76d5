"""The passive copy: an encrypted cross-region read replica that can be promoted in place.

While ``promoted`` is false the instance replicates from the primary's ARN
(a cross-region source must be named by ARN) and has no automated backups,
which RDS for PostgreSQL does not support on read replicas. Setting it to true
drops ``replicate_source_db``: the provider then promotes the SAME instance
(pulumi-aws ``rds.Instance`` docs: "Removing the replicate_source_db attribute
from an existing RDS Replicate database managed by the provider will promote
the database to a fully standalone database") and turns automated backups on.
After a promotion done outside Pulumi (by the promoter or an operator), the
switch makes the program agree with AWS instead of fighting it; the project
refreshes before every update (``options.refresh`` in Pulumi.yaml), so the
provider sees the instance already standing alone and does not promote it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from shared.components import DbLogGroups, InstanceBaseline, hardened_instance_args


@dataclass
class ReplicaDatabaseArgs:
    baseline: InstanceBaseline
    source_instance_arn: pulumi.Input[str]
    promoted: bool
    backup_retention_days_after_promotion: int
    backup_window: str
    log_groups: DbLogGroups


def lifecycle_args(args: ReplicaDatabaseArgs) -> dict[str, Any]:
    """The arguments that differ between the replica and the promoted instance."""
    if args.promoted:
        return {
            "backup_retention_period": args.backup_retention_days_after_promotion,
            "backup_window": args.backup_window,
        }
    return {
        "replicate_source_db": args.source_instance_arn,
        "backup_retention_period": 0,
    }


class ReplicaDatabase(pulumi.ComponentResource):
    instance: aws.rds.Instance

    def __init__(self, name: str, args: ReplicaDatabaseArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:secondary-db:ReplicaDatabase", name, None, opts)
        # No username, password, db_name or managed master password: a PostgreSQL replica
        # inherits them through physical replication, and setting them makes RDS reject
        # the request or the provider diff forever. The KMS key in the baseline is this
        # region's key: an encrypted source needs one to replicate across regions. Its
        # parameter group is this region's own TLS group (not inherited across regions).
        # RDS refuses a group when it creates a cross-region PostgreSQL replica, so the
        # provider attaches it with a modify call right after and reboots the replica before
        # the create completes. Until that reboot the engine default group is in force (it
        # sets rds.force_ssl=1 itself from PostgreSQL 15 on).
        self.instance = aws.rds.Instance(
            args.baseline.identifier,
            **hardened_instance_args(args.baseline),
            **lifecycle_args(args),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.log_groups.groups.values()),
            ),
        )
        self.register_outputs({
            "arn": self.instance.arn,
            "address": self.instance.address,
        })
