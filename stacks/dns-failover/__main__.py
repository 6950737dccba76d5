"""DNS-failover layer: the name writers use, the signal that moves it, the hand that promotes.

A canary in the primary VPC feeds an alarm; a Route 53 health check follows the alarm and
steers ``writer.<zone>`` from the primary to the replica; a promoter in the secondary
region turns the replica into a writable primary and fences writers onto it. RUNBOOK.md
explains the timings, drills and failback.
"""

import pulumi
from automated_promotion import DECISIONS_METRIC, Promoter, PromoterArgs, decisions_namespace
from failover_dashboard import FailoverDashboardArgs, failover_dashboard
from failover_dns import PRIMARY_SET_IDENTIFIER, FailoverDns, FailoverDnsArgs
from health_signal import HealthSignal, HealthSignalArgs
from upstream import read_upstream

from shared.config import load_failover_settings
from shared.contract import FailoverOutputs
from shared.providers import regional_providers

settings = load_failover_settings()
common = settings.common
namer = common.namer
upstream = read_upstream(common)
providers = regional_providers(common, layer="dns-failover", deployment_id=upstream.deployment_id)

# Primary region: is the primary database alive?
signal = HealthSignal(
    namer.logical("health-signal"),
    HealthSignalArgs(
        settings=settings,
        subnet_ids=upstream.canary_subnet_ids,
        security_group_id=upstream.canary_security_group_id,
        db_host=upstream.primary_address,
        db_port=upstream.primary_port,
        kms_key_arn=upstream.primary_kms_key_arn,
    ),
    opts=pulumi.ResourceOptions(providers=[providers.primary]),
)

# Route 53 (global): where do writers and readers connect? Once the replica is promoted,
# both members of the writer pair name it, so a later `pulumi up` keeps the fence.
dns = FailoverDns(
    namer.logical("failover-dns"),
    FailoverDnsArgs(
        settings=settings,
        primary_vpc_id=upstream.primary_vpc_id,
        secondary_vpc_id=upstream.secondary_vpc_id,
        writer_primary_target=upstream.writer_primary_target(),
        replica_address=upstream.replica_address,
        health_check_id=signal.health_check.id,
    ),
    opts=pulumi.ResourceOptions(providers=[providers.primary]),
)

# Secondary region: promote the replica and fence writers when the primary is down.
promotion = Promoter(
    namer.logical("promotion"),
    PromoterArgs(
        settings=settings,
        primary_identifier=upstream.primary_identifier,
        primary_arn=upstream.primary_arn,
        primary_region=upstream.primary_region,
        replica_identifier=upstream.replica_identifier,
        replica_arn=upstream.replica_arn,
        replica_region=upstream.secondary_region,
        backup_retention_days=upstream.backup_retention_days_after_promotion,
        kms_key_arn=upstream.secondary_kms_key_arn,
        zone_id=dns.zone.zone_id,
        writer_name=dns.writer_name,
        primary_set_identifier=PRIMARY_SET_IDENTIFIER,
        health_check_id=signal.health_check.id,
        canary_alarm_name=signal.alarm.name,
        canary_alarm_arn=signal.alarm.arn,
        canary_alarm_topic_arn=signal.alarm_topic.arn,
        canary_alarm_topic_provider=providers.primary,
    ),
    opts=pulumi.ResourceOptions(providers=[providers.secondary]),
)

failover_dashboard(
    FailoverDashboardArgs(
        name=namer.name("db-failover"),
        primary_region=common.primary_region,
        secondary_region=common.secondary_region,
        canary_function_name=signal.canary.function.name,
        promoter_function_name=promotion.promoter.function.name,
        health_check_id=signal.health_check.id,
        replica_identifier=upstream.replica_identifier,
        decisions_namespace=decisions_namespace(settings),
        decisions_metric=DECISIONS_METRIC,
        secondary_alarm_arns=[promotion.stuck_alarm.arn, promotion.errors_alarm.arn],
    ),
    opts=providers.opts("secondary"),
)

pulumi.export(FailoverOutputs.ZONE_ID, dns.zone.zone_id)
pulumi.export(FailoverOutputs.ZONE_NAME, settings.zone_name)
pulumi.export(FailoverOutputs.WRITER_NAME, dns.writer_name)
pulumi.export(FailoverOutputs.READER_NAME, dns.reader_name)
pulumi.export(FailoverOutputs.HEALTH_CHECK_ID, signal.health_check.id)
pulumi.export(FailoverOutputs.CANARY_ALARM_NAME, signal.alarm.name)
pulumi.export(FailoverOutputs.CANARY_FUNCTION_NAME, signal.canary.function.name)
pulumi.export(FailoverOutputs.CANARY_FUNCTION_ARN, signal.canary.function.arn)
pulumi.export(FailoverOutputs.PROMOTER_FUNCTION_NAME, promotion.promoter.function.name)
pulumi.export(FailoverOutputs.PROMOTER_FUNCTION_ARN, promotion.promoter.function.arn)
pulumi.export(FailoverOutputs.CANARY_ALARM_TOPIC_ARN, signal.alarm_topic.arn)
pulumi.export(FailoverOutputs.FAILOVER_EVENTS_TOPIC_ARN, promotion.events_topic.arn)
pulumi.export(FailoverOutputs.ARMING_PARAMETER_NAME, promotion.arming.name)
pulumi.export(FailoverOutputs.AUTOMATION_MODE, settings.automation_mode)
pulumi.export(FailoverOutputs.DETECTION_BUDGET_SECONDS, settings.detection_budget_seconds)
