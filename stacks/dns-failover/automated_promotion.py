"""The promoter: a Lambda in the SECONDARY region that promotes the replica and fences writers.

It runs where the replica lives, outside any VPC (it only calls AWS APIs), so a dead primary
region cannot silence it (FIELD-NOTES 18). Two triggers: the canary alarm's notification
(SNS delivers from the primary region's topic to this function across regions) and a
one-minute schedule in the secondary region as the fallback. Its IAM policy names every
resource it may touch: promote and describe only the replica, describe the primary, change
only the writer record of this zone, read the health check and the canary alarm, read and
write only its arming parameter, publish only to its own topic. Its decisions go to that
topic and, as one JSON line each, to its log group, where a metric filter counts them per
action for the dashboard, and a second one counts the stuck ones for the stuck-failover alarm.

Arming. A fresh deployment's canary alarm has no data yet, and missing data is breaching:
the alarm starts in ALARM and the health check reads unhealthy before the primary was ever
probed. So the promoter may promote only once it has itself seen the primary healthy: an
SSM parameter in the secondary region starts as "unarmed", and the promoter writes the
primary's identifier into it on a healthy observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from failover_function import FailoverFunction, FailoverFunctionArgs

from shared import iam
from shared.components.alerting import AlertTopic, AlertTopicArgs
from shared.config import ALARM_PERIOD_SECONDS, FailoverSettings

PROMOTER_MEMORY_MB = 256  # CPU scales with memory; boto3 imports slowly at 128 MB
DECISIONS_METRIC = "PromoterDecisions"
# Initial value of the arming parameter: anything but the primary's identifier means "not
# armed", this one says why.
UNARMED = "unarmed"
# One promoter run at a time. The alarm notification and the schedule can fire together;
# two runs deciding on the same evidence would both promote and fence. PromoteReadReplica
# answers the loser with InvalidDBInstanceState, but serializing is the real guarantee (and
# keeps the arming read-then-write race-free). A throttled trigger is an asynchronous event:
# Lambda retries it within its event age (60 s, see FailoverFunction), then the next minute's
# run takes over.
PROMOTER_RESERVED_CONCURRENCY = 1

# Stuck failover. The promoter logs one line per run, {"event": "failover-decision",
# "action": ...}. These actions change nothing while the primary looks down, and the
# one-minute schedule only logs them (publishing them every minute would flood the
# mailbox); evidence that cannot be read while the primary looks down ends in one of them
# too. In a whole-region outage
# the canary alarm's topic is in the dead region, so scheduled runs are all there is: without
# an alarm on these lines nobody would hear that the failover is stuck.
DECISION_EVENT = "failover-decision"
STUCK_ACTIONS = ("retry-later", "blocked", "not-armed")
STUCK_METRIC = "PromoterStuckDecisions"
# Stuck minutes before anyone is told, at the least: clear of the stuck spells a
# deployment produces by design (stuck_alarm_window), and still well inside the minutes
# an RDS promotion takes anyway, so a person told then has lost little.
STUCK_MINUTES_FLOOR = 10
# Minutes in the window without a stuck line that still do not reset the count: a run
# that outlasts its minute (calls into a dead region hang up to their timeouts) makes the
# next scheduled run wait, the schedule's start can drift across a minute boundary, and an
# empty minute is missing data, which this alarm treats as not breaching.
STUCK_SLACK_MINUTES = 2
# After a fresh deployment the canary alarm starts in ALARM (no data is breaching) and
# needs N - M + 1 clean canary minutes to clear. Around them: the canary's first scheduled
# run, the alarm's evaluation, Route 53's pick-up and the promoter's next run, about a
# minute each, before the promoter arms. It answers "not-armed" all that time.
ARMING_AROUND_CLEAN_MINUTES = 4


def decisions_namespace(settings: FailoverSettings) -> str:
    """Custom-metric namespace of this deployment's promoter decisions."""
    return f"RdsFailover/{settings.common.environment_suffix}"


def stuck_pattern() -> str:
    """CloudWatch Logs JSON filter pattern matching the promoter's stuck decision lines."""
    actions = " || ".join(f'($.action = "{action}")' for action in STUCK_ACTIONS)
    return f'{{ ($.event = "{DECISION_EVENT}") && ({actions}) }}'


def stuck_alarm_window(settings: FailoverSettings) -> tuple[int, int]:
    """(datapoints to alarm, evaluation periods) of the stuck-failover alarm, in minutes.

    Always more stuck minutes than the stuck spells the design produces on purpose, so
    the alarm means "the failover is stuck", not "the failover waits as intended":
    - after a fresh deployment, "not-armed" until the promoter has seen the primary healthy
      (N - M + 1 clean canary minutes and ARMING_AROUND_CLEAN_MINUTES);
    - during the recovery grace, "retry-later" while RDS recovers a reachable primary in
      place; it ends by itself within the grace (the primary is back, or it is promoted).
    A spell of D minutes can touch D + 1 one-minute periods, so the alarm needs D + 2.
    With the defaults (M = 2 of N = 3, 10 minutes of grace): 12 stuck minutes of 14.
    """
    after_deployment = (settings.alarm_periods - settings.alarm_datapoints + 1
                        + ARMING_AROUND_CLEAN_MINUTES)
    longest_intended = max(after_deployment, settings.recovery_grace_minutes)
    datapoints = max(STUCK_MINUTES_FLOOR, longest_intended + 2)
    return datapoints, datapoints + STUCK_SLACK_MINUTES


@dataclass
class PromoterArgs:
    settings: FailoverSettings
    primary_identifier: pulumi.Input[str]
    primary_arn: pulumi.Input[str]
    primary_region: pulumi.Input[str]
    replica_identifier: pulumi.Input[str]
    replica_arn: pulumi.Input[str]
    replica_region: pulumi.Input[str]
    # The secondary-db layer's backupRetentionDaysAfterPromotion, through its stack output.
    backup_retention_days: pulumi.Input[int]
    kms_key_arn: pulumi.Input[str]  # the secondary region's key: events topic, promoter logs
    zone_id: pulumi.Input[str]
    writer_name: str
    primary_set_identifier: str
    health_check_id: pulumi.Input[str]
    canary_alarm_name: pulumi.Input[str]
    canary_alarm_arn: pulumi.Input[str]
    canary_alarm_topic_arn: pulumi.Input[str]
    canary_alarm_topic_provider: aws.Provider  # the topic's (primary) region signs its subscription


class Promoter(pulumi.ComponentResource):
    """Events topic, promoter function and its triggers, its error and stuck alarms, its metrics."""

    events_topic: aws.sns.Topic
    arming: aws.ssm.Parameter
    promoter: FailoverFunction
    errors_alarm: aws.cloudwatch.MetricAlarm
    stuck_alarm: aws.cloudwatch.MetricAlarm

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

        arming_name = namer.name("db-failover-armed")
        self.arming = aws.ssm.Parameter(
            arming_name,
            name=arming_name,
            type="String",
            tier="Standard",  # explicit: the account's default tier could be a billed one
            value=UNARMED,
            description=(
                "Identifier of the primary the failover promoter has seen healthy; until it "
                "names the current primary, the promoter does not promote (written by the promoter)"
            ),
            # The promoter owns the value once deployed: `pulumi up` must never reset an armed
            # promoter to "unarmed" (nor re-arm one). Should an update of another property still
            # write the stored value back, that can only disarm, and the next healthy
            # observation re-arms within a minute.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
        )

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
                    "BACKUP_RETENTION_DAYS": pulumi.Output.from_input(args.backup_retention_days).apply(
                        lambda days: str(int(days))),
                    "ARMING_PARAMETER_NAME": self.arming.name,
                    "RECOVERY_GRACE_SECONDS": str(settings.recovery_grace_seconds),
                },
                timeout_seconds=settings.promoter_timeout_seconds,
                memory_mb=PROMOTER_MEMORY_MB,
                log_retention_days=settings.log_retention_days,
                log_group_kms_key_arn=args.kms_key_arn,
                namer=namer,
                policy_statements=_promoter_statements(
                    args, self.events_topic.arn, zone_arn, health_check_arn, self.arming.arn
                ),
                reserved_concurrency=(
                    PROMOTER_RESERVED_CONCURRENCY if settings.serialize_promoter_runs else None
                ),
            ),
            opts=child,
        )

        # The alarm topic lives in the primary region; the subscription belongs to the
        # topic's region, the permission to the function's (SNS Developer Guide, "Sending
        # Amazon SNS messages to an Amazon SQS queue or AWS Lambda function in a different
        # Region"). That guide's limits hold for the region pair: a topic in an opt-in
        # region needs the principal sns.<region>.amazonaws.com, and delivery from a
        # default region to a function in an opt-in region is not supported at all; the
        # one-minute schedule then remains the promoter's only trigger.
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

        # Stuck decisions: 1 per stuck line and nothing otherwise, so a healthy promoter
        # leaves this metric empty.
        aws.cloudwatch.LogMetricFilter(
            namer.logical("promoter-stuck-decisions"),
            name=namer.name("db-promoter-stuck"),
            log_group_name=self.promoter.log_group.name,
            pattern=stuck_pattern(),
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=STUCK_METRIC,
                namespace=decisions_namespace(settings),
                value="1",
                unit="Count",
            ),
            opts=child,
        )
        stuck_name = namer.name("db-failover-stuck")
        datapoints, periods = stuck_alarm_window(settings)
        self.stuck_alarm = aws.cloudwatch.MetricAlarm(
            stuck_name,
            name=stuck_name,
            alarm_description=(
                f"Failover stuck: in {datapoints} of the last {periods} minutes the promoter "
                f"decided {' or '.join(STUCK_ACTIONS)} and promoted nothing. Its log group says "
                f"why; RUNBOOK.md ('When the failover is stuck') says what to do."
            ),
            namespace=decisions_namespace(settings),
            metric_name=STUCK_METRIC,
            statistic="Sum",
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            # No stuck line is the normal case. A promoter that logs no decision at all is not
            # running, or fails before deciding: the promoter-errors alarm above catches both
            # (Errors > 0, and no Errors datapoint at all is breaching there).
            treat_missing_data="notBreaching",
            alarm_actions=[self.events_topic.arn],
            ok_actions=[self.events_topic.arn],
            opts=child,
        )

        self.register_outputs({
            "promoterFunctionName": self.promoter.function.name,
            "eventsTopicArn": self.events_topic.arn,
            "armingParameterName": self.arming.name,
            "stuckAlarmName": self.stuck_alarm.name,
        })


def _promoter_statements(args: PromoterArgs, topic_arn: pulumi.Output[str],
                         zone_arn: pulumi.Output[str], health_check_arn: pulumi.Output[str],
                         arming_arn: pulumi.Output[str]) -> list[pulumi.Input[dict]]:
    """The promoter's permissions, each on the one resource it concerns."""
    writer = args.writer_name.rstrip(".").lower()  # the normalized form IAM compares
    return [
        iam.statement_on(["rds:DescribeDBInstances", "rds:PromoteReadReplica"], args.replica_arn,
                         sid="DescribeAndPromoteTheReplica"),
        iam.statement_on(["rds:DescribeDBInstances"], args.primary_arn, sid="DescribeThePrimary"),
        iam.statement_on(
            ["route53:ChangeResourceRecordSets"], zone_arn, sid="FenceTheWriterRecord",
            condition={"ForAllValues:StringEquals": {
                "route53:ChangeResourceRecordSetsNormalizedRecordNames": [writer],
                "route53:ChangeResourceRecordSetsRecordTypes": ["CNAME"],
                "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
            }},
        ),
        iam.statement_on(["route53:ListResourceRecordSets"], zone_arn, sid="ReadTheZone"),
        iam.statement_on(["route53:GetHealthCheckStatus"], health_check_arn,
                         sid="ReadTheHealthCheck"),
        iam.statement_on(["cloudwatch:DescribeAlarms"], args.canary_alarm_arn,
                         sid="ReadTheCanaryAlarm"),
        iam.statement_on(["ssm:GetParameter", "ssm:PutParameter"], arming_arn,
                         sid="ReadAndArmTheArmingParameter"),
        # Reading metric data (replica lag) supports no resource-level permissions
        # (Service Authorization Reference, Amazon CloudWatch), so it takes "*". The
        # promoter calls GetMetricStatistics only; nothing else is granted on "*".
        iam.statement(["cloudwatch:GetMetricStatistics"], ["*"], sid="ReadReplicaLag"),
        iam.statement_on(["sns:Publish"], topic_arn, sid="PublishDecisions"),
        # The events topic is encrypted: publishing needs a data key from its key.
        iam.statement_on(["kms:GenerateDataKey*", "kms:Decrypt"], args.kms_key_arn,
                         sid="UseTheEventsTopicKey"),
    ]
