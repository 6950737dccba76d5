"""The promoter: a Lambda in the SECONDARY region that promotes the replica and fences writers.

It runs where the replica lives, outside any VPC (it only calls AWS APIs), so a dead primary
region cannot silence it (FIELD-NOTES 18). Two triggers: the canary alarm's notification
(SNS delivers from the primary region's topic to this function across regions) and a
one-minute schedule in the secondary region as the fallback. Its IAM policy names every
resource it may touch: promote and describe only the replica, describe the primary, change
only the writer record of this zone, read the health check and the canary alarm, publish
only to its own topic. Its decisions go to that topic and, as one JSON line each, to its
log group, where a metric filter counts them per action for the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from failover_function import FailoverFunction, FailoverFunctionArgs

from shared import iam
from shared.components.alerting import AlertTopic, AlertTopicArgs
from shared.config import FailoverSettings

PROMOTER_MEMORY_MB = 256  # CPU scales with memory; boto3 imports slowly at 128 MB
DECISIONS_METRIC = "PromoterDecisions"


def decisions_namespace(settings: FailoverSettings) -> str:
    """Custom-metric namespace of this deployment's promoter decisions."""
    return f"RdsFailover/{settings.common.environment_suffix}"


@dataclass
class PromoterArgs:
    settings: FailoverSettings
    primary_identifier: pulumi.Input[str]
    primary_arn: pulumi.Input[str]
    primary_region: pulumi.Input[str]
    replica_identifier: pulumi.Input[str]
    replica_arn: pulumi.Input[str]
    replica_region: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]  # the secondary region's key, for the events topic
    zone_id: pulumi.Input[str]
    writer_name: str
    primary_set_identifier: str
    health_check_id: pulumi.Input[str]
    canary_alarm_name: pulumi.Input[str]
    canary_alarm_arn: pulumi.Input[str]
    canary_alarm_topic_arn: pulumi.Input[str]
    canary_alarm_topic_provider: aws.Provider  # the topic's (primary) region signs its subscription


class Promoter(pulumi.ComponentResource):
    """Events topic, promoter function and its triggers, its error alarm and decision metric."""

    events_topic: aws.sns.Topic
    promoter: FailoverFunction
    errors_alarm: aws.cloudwatch.MetricAlarm

    def __init__(self, name: str, args: PromoterArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:dns:Promoter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        namer = settings.common.namer

        # SNS.1: encrypted with the secondary region's customer key. CloudWatch (the
        # promoter's error alarm) publishes through the topic policy, the promoter through
        # its role's policy.
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        self.events_topic = AlertTopic(
            namer.logical("failover-events-topic"),
            AlertTopicArgs(namer=namer, topic_base="db-failover-events", kms_key_arn=args.kms_key_arn,
                           account_id=account, email=settings.alarm_email,
                           publishers=["cloudwatch.amazonaws.com"]),
            opts=child,
        ).topic

        partition = aws.get_partition_output(opts=pulumi.InvokeOptions(parent=self)).partition
        zone_arn = pulumi.Output.concat("arn:", partition, ":route53:::hostedzone/", args.zone_id)
        health_check_arn = pulumi.Output.concat(
            "arn:", partition, ":route53:::healthcheck/", args.health_check_id
        )
        self.promoter = FailoverFunction(
            namer.logical("promoter"),
            FailoverFunctionArgs(
                base="db-promoter",
                module="promoter",
                description=("Promotes the replica when the primary is down, fences writers "
                             "onto it, reports why"),
                environment={
                    "REPLICA_IDENTIFIER": args.replica_identifier,
                    "REPLICA_REGION": args.replica_region,
                    "PRIMARY_IDENTIFIER": args.primary_identifier,
                    "PRIMARY_REGION": args.primary_region,
                    "HEALTH_CHECK_ID": args.health_check_id,
                    "CANARY_ALARM_NAME": args.canary_alarm_name,
                    "HOSTED_ZONE_ID": args.zone_id,
                    "WRITER_RECORD_NAME": args.writer_name,
                    "PRIMARY_SET_IDENTIFIER": args.primary_set_identifier,
                    "RECORD_TTL_SECONDS": str(settings.record_ttl_seconds),
                    "EVENTS_TOPIC_ARN": self.events_topic.arn,
                    "AUTOMATION_MODE": settings.automation_mode,
                    "API_TIMEOUT_SECONDS": str(settings.promoter_api_timeout_seconds),
                    "MAX_ATTEMPTS": str(settings.promoter_max_attempts),
                    "BACKUP_RETENTION_DAYS": str(settings.backup_retention_days_after_promotion),
                },
                timeout_seconds=settings.promoter_timeout_seconds,
                memory_mb=PROMOTER_MEMORY_MB,
                log_retention_days=settings.log_retention_days,
                namer=namer,
                policy_statements=_promoter_statements(
                    args, self.events_topic.arn, zone_arn, health_check_arn
                ),
            ),
            opts=child,
        )

        # The alarm topic lives in the primary region; the subscription belongs to the
        # topic's region, the permission to the function's.
        permission = self.promoter.allow_invoke(
            "alarm", "sns.amazonaws.com", args.canary_alarm_topic_arn,
        )
        aws.sns.TopicSubscription(
            namer.logical("canary-alarm-to-promoter"),
            topic=args.canary_alarm_topic_arn,
            protocol="lambda",
            endpoint=self.promoter.function.arn,
            opts=pulumi.ResourceOptions(parent=self, provider=args.canary_alarm_topic_provider,
                                        depends_on=[permission]),
        )

        errors_name = namer.name("db-promoter-errors")
        self.errors_alarm = aws.cloudwatch.MetricAlarm(
            errors_name,
            name=errors_name,
            alarm_description=(
                "The failover promoter failed, or did not run, in the last 5 minutes: automated "
                "promotion may not happen. Check its log group."
            ),
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": self.promoter.function.name},
            statistic="Sum",
            period=300,
            evaluation_periods=1,
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            # The promoter runs every minute; silence means its schedule or Lambda is broken.
            treat_missing_data="breaching",
            alarm_actions=[self.events_topic.arn],
            ok_actions=[self.events_topic.arn],
            opts=child,
        )

        # One JSON line per decision, e.g. {"action": "promote", ...}; counted per action.
        aws.cloudwatch.LogMetricFilter(
            namer.logical("promoter-decisions"),
            name=namer.name("db-promoter-decisions"),
            log_group_name=self.promoter.log_group.name,
            pattern="{ $.action = * }",
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=DECISIONS_METRIC,
                namespace=decisions_namespace(settings),
                value="1",
                dimensions={"Action": "$.action"},
                unit="Count",
            ),
            opts=child,
        )

        self.register_outputs({
            "promoterFunctionName": self.promoter.function.name,
            "eventsTopicArn": self.events_topic.arn,
        })


def _promoter_statements(args: PromoterArgs, topic_arn: pulumi.Output[str],
                         zone_arn: pulumi.Output[str], health_check_arn: pulumi.Output[str]
                         ) -> list[pulumi.Output[dict]]:
    """The promoter's permissions, each on the one resource it concerns."""
    writer = args.writer_name.rstrip(".").lower()  # the normalized form IAM compares
    return [
        pulumi.Output.from_input(args.replica_arn).apply(lambda arn: iam.statement(
            ["rds:DescribeDBInstances", "rds:PromoteReadReplica"], [arn],
            sid="DescribeAndPromoteTheReplica",
        )),
        pulumi.Output.from_input(args.primary_arn).apply(lambda arn: iam.statement(
            ["rds:DescribeDBInstances"], [arn], sid="DescribeThePrimary",
        )),
        zone_arn.apply(lambda arn: iam.statement(
            ["route53:ChangeResourceRecordSets"], [arn], sid="FenceTheWriterRecord",
            condition={"ForAllValues:StringEquals": {
                "route53:ChangeResourceRecordSetsNormalizedRecordNames": [writer],
                "route53:ChangeResourceRecordSetsRecordTypes": ["CNAME"],
                "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
            }},
        )),
        zone_arn.apply(lambda arn: iam.statement(
            ["route53:ListResourceRecordSets"], [arn], sid="ReadTheZone",
        )),
        health_check_arn.apply(lambda arn: iam.statement(
            ["route53:GetHealthCheckStatus"], [arn], sid="ReadTheHealthCheck",
        )),
        pulumi.Output.from_input(args.canary_alarm_arn).apply(lambda arn: iam.statement(
            ["cloudwatch:DescribeAlarms"], [arn], sid="ReadTheCanaryAlarm",
        )),
        # Reading metric data (replica lag) supports no resource-level permissions
        # (Service Authorization Reference, Amazon CloudWatch), so it takes "*".
        iam.statement(["cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics"], ["*"],
                      sid="ReadReplicaLag"),
        topic_arn.apply(lambda arn: iam.statement(["sns:Publish"], [arn],
                                                  sid="PublishDecisions")),
        # The events topic is encrypted: publishing needs a data key from its key.
        pulumi.Output.from_input(args.kms_key_arn).apply(lambda arn: iam.statement(
            ["kms:GenerateDataKey*", "kms:Decrypt"], [arn], sid="UseTheEventsTopicKey",
        )),
    ]
