"""Secondary-database layer: the encrypted cross-region read replica of the primary.

Everything here lives in the secondary region. The replica stands on the
network layer's secondary subnets and database group and replicates from the
primary-db layer's instance. ``replicaPromoted: true`` is the switch to flip
after a promotion (see RUNBOOK.md). It also exports where applications in this
region read the master credentials: the master secret's Secrets Manager replica.
"""

import pulumi
from replica import ReplicaDatabase, ReplicaDatabaseArgs
from secret_replica import replicated_master_secret_arn

from shared.components import (
    REPLICA_EVENT_CATEGORIES,
    DatabaseAlarms,
    DatabaseAlarmsArgs,
    DatabaseFoundation,
    DatabaseFoundationArgs,
    InstanceBaseline,
    account_context,
    cpu_alarm,
    free_storage_alarm,
    gated,
    network_inputs,
    replica_lag_alarm,
)
from shared.config import load_secondary_db_settings, replica_storage_ceiling
from shared.contract import LayerReference, NetworkOutputs, PrimaryDbOutputs, SecondaryDbOutputs
from shared.providers import regional_providers

ROLE = "secondary"

settings = load_secondary_db_settings()
common, alerting = settings.common, settings.alerting
namer = common.namer
network_ref = LayerReference(common, "network")
providers = regional_providers(common, layer="secondary-db", roles=[ROLE],
                               deployment_id=network_ref.require(NetworkOutputs.DEPLOYMENT_ID))
region = providers.region(ROLE)
in_region = pulumi.ResourceOptions(providers=[providers.for_role(ROLE)])

network = network_inputs(network_ref, ROLE, region)
primary = LayerReference(common, "primary-db")
primary_region = primary.require_matching(PrimaryDbOutputs.REGION, common.primary_region)
account = account_context(providers, ROLE)
identifier = namer.name("pg-replica")

foundation = DatabaseFoundation(
    namer.logical("foundation", ROLE),
    DatabaseFoundationArgs(
        namer=namer,
        role=ROLE,
        region=region,
        identifier=identifier,
        account_id=account.account_id,
        partition=account.partition,
        private_subnet_ids=network.private_subnet_ids,
        # Same major version as the source: a replica runs the source's engine.
        parameter_group_family=primary.require(PrimaryDbOutputs.PARAMETER_GROUP_FAMILY),
        log_retention_days=alerting.log_retention_days,
        log_min_duration_statement_ms=settings.tuning.log_min_duration_statement_ms,
        alarm_email=alerting.alarm_email,
    ),
    opts=in_region,
)

database = ReplicaDatabase(
    namer.logical("database", ROLE),
    ReplicaDatabaseArgs(
        baseline=InstanceBaseline(
            identifier=identifier,
            instance_class=settings.instance_class
            or primary.require(PrimaryDbOutputs.INSTANCE_CLASS),
            kms_key_arn=foundation.key.arn,
            subnet_group_name=foundation.subnet_group.name,
            security_group_ids=[network.db_security_group_id],
            parameter_group_name=foundation.parameter_group.name,
            monitoring_role_arn=foundation.monitoring_role.arn,
            monitoring_interval_seconds=settings.monitoring_interval_seconds,
            max_allocated_storage_gib=primary.require(
                PrimaryDbOutputs.MAX_ALLOCATED_STORAGE_GIB
            ).apply(lambda ceiling: replica_storage_ceiling(
                settings.max_allocated_storage_gib, int(ceiling))),
            # Off by default for cost: the replica is already the cross-region copy.
            multi_az=settings.multi_az,
            maintenance_window=settings.maintenance_window,
            tuning=settings.tuning,
        ),
        source_instance_arn=gated(primary_region, primary.require(PrimaryDbOutputs.INSTANCE_ARN)),
        promoted=settings.replica_promoted,
        backup_retention_days_after_promotion=settings.backup_retention_days_after_promotion,
        backup_window=settings.backup_window,
        log_groups=foundation.log_groups,
    ),
    opts=in_region,
)
instance = database.instance

alarms = [
    cpu_alarm("pg-replica-cpu", alerting.cpu_threshold_percent),
    free_storage_alarm("pg-replica-free-storage", alerting.free_storage_threshold_gib),
]
if not settings.replica_promoted:
    # A promoted instance replicates from nothing: no lag to watch.
    alarms.append(replica_lag_alarm("pg-replica-lag", settings.replica_lag_threshold_seconds))

DatabaseAlarms(
    namer.logical("alarms", ROLE),
    DatabaseAlarmsArgs(
        namer=namer,
        instance_identifier=instance.identifier,
        topic_arn=foundation.alerts.arn,
        alarms=alarms,
        event_subscription_base="pg-events-secondary",
        event_categories=REPLICA_EVENT_CATEGORIES,
    ),
    opts=in_region,
)

pulumi.export(SecondaryDbOutputs.INSTANCE_ARN, instance.arn)
pulumi.export(SecondaryDbOutputs.INSTANCE_IDENTIFIER, instance.identifier)
pulumi.export(SecondaryDbOutputs.ADDRESS, instance.address)
pulumi.export(SecondaryDbOutputs.PORT, instance.port)
pulumi.export(SecondaryDbOutputs.RESOURCE_ID, instance.resource_id)
pulumi.export(SecondaryDbOutputs.REGION, region)
pulumi.export(SecondaryDbOutputs.KMS_KEY_ARN, foundation.key.arn)
pulumi.export(SecondaryDbOutputs.SNS_TOPIC_ARN, foundation.alerts.arn)
pulumi.export(SecondaryDbOutputs.PARAMETER_GROUP_NAME, foundation.parameter_group.name)
pulumi.export(SecondaryDbOutputs.PROMOTED, settings.replica_promoted)
pulumi.export(SecondaryDbOutputs.LAG_THRESHOLD_SECONDS, settings.replica_lag_threshold_seconds)
pulumi.export(SecondaryDbOutputs.MASTER_SECRET_ARN, replicated_master_secret_arn(
    primary.require(PrimaryDbOutputs.MASTER_SECRET_ARN), region, providers.invoke_opts(ROLE)))
# The promoter (dns-failover) turns on the same retention when it promotes: one setting.
pulumi.export(SecondaryDbOutputs.BACKUP_RETENTION_DAYS_AFTER_PROMOTION,
              settings.backup_retention_days_after_promotion)
