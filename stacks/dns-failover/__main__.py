"""DNS-failover layer: the names clients use, the evidence that decides, the hand that promotes.

A canary in the primary VPC feeds an alarm that wakes the promoter and that Route 53 follows
from outside both regions; a canary in the secondary VPC probes the replica and relays what
Route 53 answers for the witness name; a promoter in the secondary region promotes the
replica once independent evidence agrees the primary is gone, exactly once, and fences
writers onto it through a health check on its own metric; a managed policy lets applications
log in to either instance with IAM authentication. Nothing here needs the primary region, or
Route 53's control plane, to fail over. RUNBOOK.md has the decision table, the
timings per failure path, the drills and the failback.
"""

import pulumi
from automated_promotion import DECISIONS_METRIC, Promoter, PromoterArgs
from database_access import DatabaseInstanceRef, database_connect_policy
from failover_dashboard import FailoverDashboardArgs, failover_dashboard
from failover_dns import FailoverDns, FailoverDnsArgs
from failover_function import VpcPlacement
from health_signal import HealthSignal, HealthSignalArgs
from replica_canary import ReplicaCanary, ReplicaCanaryArgs
from upstream import read_upstream, replica_stands_alone
from writer_fence import FENCE_METRIC, WriterFence, WriterFenceArgs

from shared.components import account_context
from shared.components.alerting import AlertTopic, AlertTopicArgs
from shared.config import load_failover_settings
from shared.contract import FailoverOutputs
from shared.providers import regional_providers

settings = load_failover_settings()
common = settings.common
namer = common.namer
upstream = read_upstream(common)
providers = regional_providers(common, layer="dns-failover", deployment_id=upstream.deployment_id)
in_primary = pulumi.ResourceOptions(providers=[providers.primary])
in_secondary = pulumi.ResourceOptions(providers=[providers.secondary])
# Global (Route 53) resources and the account lookup go through the secondary region's
# provider, so nothing this layer must change during a primary-region outage needs it.
account = account_context(providers, "secondary")


def probe_placement(role: str, subnet_ids, security_group_id) -> VpcPlacement:
    """Where a canary's network interfaces go: a region's private subnets and probe group."""
    return VpcPlacement(region=providers.region(role), account_id=account.account_id,
                        partition=account.partition, subnet_ids=subnet_ids,
                        security_group_ids=[security_group_id])


# Secondary region: where every failover message goes (SNS.1: the region's own key).
events = AlertTopic(
    namer.logical("failover-events-topic"),
    AlertTopicArgs(namer=namer, topic_base="db-failover-events",
                   kms_key_arn=upstream.secondary_kms_key_arn, account_id=account.account_id,
                   email=settings.alarm_email, publishers=["cloudwatch.amazonaws.com"]),
    opts=in_secondary,
)

# Primary region: is the primary database alive, as seen from its own VPC?
signal = HealthSignal(
    namer.logical("health-signal"),
    HealthSignalArgs(
        settings=settings,
        vpc=probe_placement("primary", upstream.canary_subnet_ids, upstream.canary_security_group_id),
        db_host=upstream.primary_address,
        db_port=upstream.primary_port,
        kms_key_arn=upstream.primary_kms_key_arn,
    ),
    opts=in_primary,
)

# Secondary region: the alarm that fences writers once a failover is recorded.
fence = WriterFence(
    namer.logical("writer-fence"),
    WriterFenceArgs(settings=settings, events_topic_arn=events.arn),
    opts=in_secondary,
)

# Route 53 (global): writer follows the fence, witness follows the canary, reader the replica.
dns = FailoverDns(
    namer.logical("failover-dns"),
    FailoverDnsArgs(
        settings=settings,
        primary_vpc_id=upstream.primary_vpc_id,
        secondary_vpc_id=upstream.secondary_vpc_id,
        writer_primary_target=upstream.writer_primary_target(
            replica_stands_alone(upstream.replica_identifier, providers.invoke_opts("secondary"))),
        replica_address=upstream.replica_address,
        canary_alarm=signal.alarm,
        fence_alarm=fence.alarm,
    ),
    opts=in_secondary,
)

# Secondary region: is the replica alive, and what does Route 53 say about the canary?
replica_canary = ReplicaCanary(
    namer.logical("replica-canary"),
    ReplicaCanaryArgs(
        settings=settings,
        vpc=probe_placement("secondary", upstream.replica_canary_subnet_ids,
                            upstream.replica_canary_security_group_id),
        db_host=upstream.replica_address,
        db_port=upstream.replica_port,
        witness_name=dns.witness_name,
        events_topic_arn=events.arn,
        kms_key_arn=upstream.secondary_kms_key_arn,
    ),
    opts=in_secondary,
)

# Secondary region: decide, promote exactly once, fence, report.
max_promotion_lag = (pulumi.Output.from_input(settings.max_promotion_lag_seconds)
                     if settings.max_promotion_lag_seconds else upstream.replica_lag_threshold_seconds)
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
        max_promotion_lag_seconds=max_promotion_lag,
        kms_key_arn=upstream.secondary_kms_key_arn,
        events_topic_arn=events.arn,
        canary_alarm_name=signal.alarm.name,
        canary_alarm_arn=signal.alarm.arn,
        canary_alarm_topic_arn=signal.alarm_topic.arn,
        canary_alarm_topic_provider=providers.primary,
        witness_log_group_name=replica_canary.canary.log_group.name,
        witness_log_group_arn=replica_canary.canary.log_group.arn,
        metrics_namespace=fence.namespace,
        fence_metric=FENCE_METRIC,
    ),
    opts=in_secondary,
)

# IAM (global): applications' rds-db:connect on both instances, so a failover keeps it.
connect_policy = database_connect_policy(
    namer, settings.iam_database_users,
    [DatabaseInstanceRef(upstream.primary_region, upstream.primary_resource_id),
     DatabaseInstanceRef(upstream.secondary_region, upstream.replica_resource_id)],
    account_id=account.account_id, partition=account.partition,
    opts=providers.opts("secondary"),
)

failover_dashboard(
    FailoverDashboardArgs(
        name=namer.name("db-failover"),
        primary_region=common.primary_region,
        secondary_region=common.secondary_region,
        canary_function_name=signal.canary.function.name,
        replica_canary_function_name=replica_canary.canary.function.name,
        promoter_function_name=promotion.promoter.function.name,
        replica_identifier=upstream.replica_identifier,
        metrics_namespace=fence.namespace,
        decisions_metric=DECISIONS_METRIC,
        fence_metric=FENCE_METRIC,
        secondary_alarm_arns=[promotion.stuck_alarm.arn, promotion.errors_alarm.arn,
                              fence.alarm.arn, replica_canary.alarm.arn],
    ),
    opts=providers.opts("secondary"),
)

pulumi.export(FailoverOutputs.ZONE_ID, dns.zone.zone_id)
pulumi.export(FailoverOutputs.ZONE_NAME, settings.zone_name)
pulumi.export(FailoverOutputs.WRITER_NAME, dns.writer_name)
pulumi.export(FailoverOutputs.READER_NAME, dns.reader_name)
pulumi.export(FailoverOutputs.WITNESS_NAME, dns.witness_name)
pulumi.export(FailoverOutputs.CANARY_HEALTH_CHECK_ID, dns.canary_check.id)
pulumi.export(FailoverOutputs.WRITER_FENCE_HEALTH_CHECK_ID, dns.fence_check.id)
pulumi.export(FailoverOutputs.CANARY_ALARM_NAME, signal.alarm.name)
pulumi.export(FailoverOutputs.FENCE_ALARM_NAME, fence.alarm.name)
pulumi.export(FailoverOutputs.CANARY_FUNCTION_NAME, signal.canary.function.name)
pulumi.export(FailoverOutputs.CANARY_FUNCTION_ARN, signal.canary.function.arn)
pulumi.export(FailoverOutputs.REPLICA_CANARY_FUNCTION_NAME, replica_canary.canary.function.name)
pulumi.export(FailoverOutputs.REPLICA_CANARY_LOG_GROUP, replica_canary.canary.log_group.name)
pulumi.export(FailoverOutputs.PROMOTER_FUNCTION_NAME, promotion.promoter.function.name)
pulumi.export(FailoverOutputs.PROMOTER_FUNCTION_ARN, promotion.promoter.function.arn)
pulumi.export(FailoverOutputs.CANARY_ALARM_TOPIC_ARN, signal.alarm_topic.arn)
pulumi.export(FailoverOutputs.FAILOVER_EVENTS_TOPIC_ARN, events.arn)
pulumi.export(FailoverOutputs.ARMING_PARAMETER_NAME, promotion.arming.name)
pulumi.export(FailoverOutputs.LEDGER_TABLE_NAME, promotion.ledger.name)
pulumi.export(FailoverOutputs.FENCE_METRIC_NAMESPACE, fence.namespace)
pulumi.export(FailoverOutputs.DATABASE_CONNECT_POLICY_ARN, connect_policy.arn)
pulumi.export(FailoverOutputs.AUTOMATION_MODE, settings.automation_mode)
pulumi.export(FailoverOutputs.MAX_PROMOTION_LAG_SECONDS, max_promotion_lag)
pulumi.export(FailoverOutputs.INSTANCE_FAILURE_WORST_CASE_SECONDS,
              settings.instance_failure_worst_case_seconds)
pulumi.export(FailoverOutputs.REGION_OUTAGE_WORST_CASE_SECONDS, settings.region_outage_worst_case_seconds)
