"""Primary-database layer: the writer PostgreSQL instance in the primary region.

It stands on the network layer's primary subnets and database security group,
and the secondary-db layer replicates from it across regions.
"""

import pulumi
from credentials import read_master_credentials
from primary_database import PrimaryDatabase, PrimaryDatabaseArgs

from shared.components import (
    PRIMARY_EVENT_CATEGORIES,
    DatabaseAlarms,
    DatabaseAlarmsArgs,
    DatabaseFoundation,
    DatabaseFoundationArgs,
    InstanceBaseline,
    account_context,
    connections_alarm,
    cpu_alarm,
    free_storage_alarm,
    freeable_memory_alarm,
    network_inputs,
)
from shared.config import load_primary_db_settings
from shared.contract import LayerReference, NetworkOutputs, PrimaryDbOutputs
from shared.providers import regional_providers

ROLE = "primary"

settings = load_primary_db_settings()
common, alerting = settings.common, settings.alerting
namer = common.namer
network_ref = LayerReference(common, "network")
providers = regional_providers(common, layer="primary-db", roles=[ROLE],
                               deployment_id=network_ref.require(NetworkOutputs.DEPLOYMENT_ID))
region = providers.region(ROLE)
in_region = pulumi.ResourceOptions(providers=[providers.for_role(ROLE)])

network = network_inputs(network_ref, ROLE, region)
account = account_context(providers, ROLE)
identifier = namer.name("pg-primary")
credentials = read_master_credentials(settings.master_secret_id, providers.invoke_opts(ROLE))

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
        parameter_group_family=settings.parameter_group_family,
        log_retention_days=alerting.log_retention_days,
        log_min_duration_statement_ms=settings.tuning.log_min_duration_statement_ms,
        alarm_email=alerting.alarm_email,
    ),
    opts=in_region,
)

database = PrimaryDatabase(
    namer.logical("database", ROLE),
    PrimaryDatabaseArgs(
        baseline=InstanceBaseline(
            identifier=identifier,
            instance_class=settings.instance_class,
            kms_key_arn=foundation.key.arn,
            subnet_group_name=foundation.subnet_group.name,
            security_group_ids=[network.db_security_group_id],
            parameter_group_name=foundation.parameter_group.name,
            monitoring_role_arn=foundation.monitoring_role.arn,
            monitoring_interval_seconds=settings.monitoring_interval_seconds,
            max_allocated_storage_gib=settings.max_allocated_storage_gib,
            multi_az=settings.multi_az,
            maintenance_window=settings.maintenance_window,
            tuning=settings.tuning,
        ),
        engine_major_version=settings.engine_major_version,
        allocated_storage_gib=settings.allocated_storage_gib,
        database_name=settings.database_name,
        credentials=credentials,
        backup_retention_days=settings.backup_retention_days,
        backup_window=settings.backup_window,
        log_groups=foundation.log_groups,
    ),
    opts=in_region,
)
instance = database.instance

DatabaseAlarms(
    namer.logical("alarms", ROLE),
    DatabaseAlarmsArgs(
        namer=namer,
        instance_identifier=instance.identifier,
        topic_arn=foundation.alerts.arn,
        alarms=[
            cpu_alarm("pg-primary-cpu", alerting.cpu_threshold_percent),
            free_storage_alarm("pg-primary-free-storage", alerting.free_storage_threshold_gib),
            freeable_memory_alarm("pg-primary-freeable-memory",
                                  settings.freeable_memory_threshold_mib),
            connections_alarm("pg-primary-connections", settings.max_connections_alarm_threshold),
        ],
        event_subscription_base="pg-events-primary",
        event_categories=PRIMARY_EVENT_CATEGORIES,
    ),
    opts=in_region,
)

pulumi.export(PrimaryDbOutputs.INSTANCE_ARN, instance.arn)
pulumi.export(PrimaryDbOutputs.INSTANCE_IDENTIFIER, instance.identifier)
pulumi.export(PrimaryDbOutputs.ADDRESS, instance.address)
pulumi.export(PrimaryDbOutputs.PORT, instance.port)
pulumi.export(PrimaryDbOutputs.RESOURCE_ID, instance.resource_id)
pulumi.export(PrimaryDbOutputs.REGION, region)
pulumi.export(PrimaryDbOutputs.INSTANCE_CLASS, instance.instance_class)
pulumi.export(PrimaryDbOutputs.MAX_ALLOCATED_STORAGE_GIB, settings.max_allocated_storage_gib)
pulumi.export(PrimaryDbOutputs.KMS_KEY_ARN, foundation.key.arn)
pulumi.export(PrimaryDbOutputs.SNS_TOPIC_ARN, foundation.alerts.arn)
pulumi.export(PrimaryDbOutputs.PARAMETER_GROUP_NAME, foundation.parameter_group.name)
pulumi.export(PrimaryDbOutputs.ENGINE, instance.engine)
pulumi.export(PrimaryDbOutputs.ENGINE_MAJOR_VERSION, settings.engine_major_version)
pulumi.export(PrimaryDbOutputs.PARAMETER_GROUP_FAMILY, settings.parameter_group_family)
pulumi.export(PrimaryDbOutputs.MASTER_SECRET_ARN, credentials.secret_arn)
