"""Everything a PostgreSQL instance stands on in one region, built the same in both.

Key, alert topic, Enhanced Monitoring role, TLS parameter group, subnet group
and the log groups of the instance that will use them. The layer then adds the
instance itself (primary or replica) and its alarms.

The key also encrypts the log groups of the dns-failover functions that run in
its region (``shared.naming.FAILOVER_FUNCTION_BASES``): that layer deploys after
this one, so the key policy names those groups before they are created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared.components.alerting import AlertTopic, AlertTopicArgs
from shared.components.encryption_key import EncryptionKey, EncryptionKeyArgs
from shared.components.monitoring_role import EnhancedMonitoringRole, EnhancedMonitoringRoleArgs
from shared.components.postgres import (
    DbLogGroups,
    DbLogGroupsArgs,
    TlsParameterGroup,
    TlsParameterGroupArgs,
    log_group_pattern,
)
from shared.naming import FAILOVER_FUNCTION_BASES, Namer


@dataclass
class DatabaseFoundationArgs:
    namer: Namer
    role: str  # "primary" or "secondary": selects the catalogued names
    region: str
    identifier: str  # the DB instance identifier these pieces are for
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    parameter_group_family: pulumi.Input[str]
    log_retention_days: int
    log_min_duration_statement_ms: int
    alarm_email: str | None = None


class DatabaseFoundation(pulumi.ComponentResource):
    key: EncryptionKey
    alerts: AlertTopic
    monitoring_role: EnhancedMonitoringRole
    parameter_group: TlsParameterGroup
    subnet_group: aws.rds.SubnetGroup
    log_groups: DbLogGroups

    def __init__(self, name: str, args: DatabaseFoundationArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:shared:DatabaseFoundation", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer, role = args.namer, args.role

        self.key = EncryptionKey(
            namer.logical("key", role),
            EncryptionKeyArgs(
                namer=namer,
                alias_base=f"rds-{role}",
                region=args.region,
                account_id=args.account_id,
                partition=args.partition,
                description=f"PostgreSQL {args.identifier}: storage, snapshots, Performance "
                            "Insights, log groups and alert topic; failover function logs",
                log_group_patterns=[
                    log_group_pattern(args.identifier),
                    *(namer.lambda_log_group(base) for base in FAILOVER_FUNCTION_BASES[role]),
                ],
            ),
            opts=child,
        )
        self.alerts = AlertTopic(
            namer.logical("alerts", role),
            AlertTopicArgs(
                namer=namer,
                topic_base=f"db-alerts-{role}",
                kms_key_arn=self.key.arn,
                account_id=args.account_id,
                email=args.alarm_email,
            ),
            opts=child,
        )
        self.monitoring_role = EnhancedMonitoringRole(
            namer.logical("monitoring", role),
            EnhancedMonitoringRoleArgs(
                namer=namer,
                role_base=f"rds-monitoring-{role}",
                account_id=args.account_id,
                partition=args.partition,
            ),
            opts=child,
        )
        self.parameter_group = TlsParameterGroup(
            namer.logical("parameters", role),
            TlsParameterGroupArgs(
                namer=namer,
                role=role,
                family=args.parameter_group_family,
                log_min_duration_statement_ms=args.log_min_duration_statement_ms,
            ),
            opts=child,
        )
        subnet_group_name = namer.name(f"pg-subnets-{role}")
        self.subnet_group = aws.rds.SubnetGroup(
            subnet_group_name,
            name=subnet_group_name,
            description=f"Private subnets for {args.identifier}",
            subnet_ids=args.private_subnet_ids,
            opts=child,
        )
        self.log_groups = DbLogGroups(
            namer.logical("logs", role),
            DbLogGroupsArgs(
                namer=namer,
                role=role,
                identifier=args.identifier,
                retention_days=args.log_retention_days,
                kms_key_arn=self.key.arn,
            ),
            opts=child,
        )
        self.register_outputs({
            "keyArn": self.key.arn,
            "topicArn": self.alerts.arn,
            "parameterGroupName": self.parameter_group.name,
            "subnetGroupName": self.subnet_group.name,
        })
