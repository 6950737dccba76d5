"""The promoter: a Lambda in the SECONDARY region that promotes the replica and fences writers.

It runs where the replica lives, outside any VPC (it only calls AWS APIs), so a dead primary
region cannot silence it (FIELD-NOTES 18). Two triggers: the canary alarm's notification
(SNS delivers from the primary region's topic to this function across regions) and a
one-minute schedule in the secondary region, the one that works when the primary region
is gone. Its IAM policy names every resource it may touch: describe and promote only the
replica, describe and stop only the primary, read the canary alarm and the replica canary's
log group, write only its own metric namespace, its arming parameter and its ledger table,
publish only to the events topic. Its decisions go to that topic and, as one JSON line
each, to its log group, where a metric filter counts them per action for the dashboard,
and a second one counts the stuck ones for the stuck-failover alarm.

Arming. A fresh deployment's canary alarm has no data yet, and missing data is breaching:
the alarm starts in ALARM before the primary was ever probed. So the promoter may promote
only once it has itself seen the primary healthy: an SSM parameter in the secondary region
starts as "unarmed", and the promoter writes the primary's identifier into it on a healthy
observation.

Exactly once. The ledger (DynamoDB, secondary region, encrypted with the secondary
region's key) records each failover; a promotion starts only with a conditional write that
one run can win (lambdas/promoter/promoter_ledger.py). Reserved concurrency
(serializePromoterRuns) only keeps runs from overlapping; correctness does not need it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from failover_function import FailoverFunction, FailoverFunctionArgs, errors_alarm

from shared import iam
from shared.config import ALARM_PERIOD_SECONDS, FailoverSettings

PROMOTER_MEMORY_MB = 256  # CPU scales with memory; boto3 imports slowly at 128 MB
DECISIONS_METRIC = "PromoterDecisions"
# Initial value of the arming parameter: anything but the primary's identifier means "not
# armed", this one says why.
UNARMED = "unarmed"
# The ledger's partition key (lambdas/promoter/promoter_ledger.py, KEY).
LEDGER_KEY = "pk"
# One promoter run at a time when the account can reserve it. The alarm notification and
# the schedule can fire together; the ledger keeps two runs from promoting twice either way,
# this only saves the loser its reads. A throttled trigger is an asynchronous event: Lambda
# retries it within its event age (60 s, see FailoverFunction), then the next minute's run
# takes over.
PROMOTER_RESERVED_CONCURRENCY = 1

# Stuck failover. The promoter logs one line per run, {"event": "failover-decision",
# "action": ...}. These actions change nothing while something says the primary is down,
# and the one-minute schedule only logs them (publishing them every minute would flood the
# mailbox). In a whole-region outage the canary alarm's topic is in the dead region, so
# scheduled runs are all there is: without an alarm on these lines nobody would hear that
# the failover is stuck.
DECISION_EVENT = "failover-decision"
STUCK_ACTIONS = ("retry-later", "signals-disagree", "unconfirmed", "rpo-hold", "blocked", "not-armed")
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
# run, the alarm's evaluation and the promoter's next run, about a minute each, and one
# more, before the promoter arms. It answers "not-armed" all that time.
ARMING_AROUND_CLEAN_MINUTES = 4


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
      place; it ends by itself within the grace (the primary is back, or it is promoted);
    - in a regional outage, "signals-disagree" while Route 53 still sees the canary healthy:
      until its view has turned and been relayed (FailoverSettings.witness_delay_seconds).
    A spell of D minutes can touch D + 1 one-minute periods, so the alarm needs D + 2.
    With the defaults (M = N = 2, 10 minutes of grace): 12 stuck minutes of 14.
    """
    after_deployment = (settings.alarm_periods - settings.alarm_datapoints + 1
                        + ARMING_AROUND_CLEAN_MINUTES)
    witness_minutes = -(-settings.witness_delay_seconds // 60)
    longest_intended = max(after_deployment, settings.recovery_grace_minutes, witness_minutes)
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
    # maxAutomaticPromotionLagSeconds, or the secondary-db layer's replicaLagThresholdSeconds.
    max_promotion_lag_seconds: pulumi.Input[int]
    # The secondary region's key: events topic, ledger, promoter logs.
    kms_key_arn: pulumi.Input[str]
    events_topic_arn: pulumi.Input[str]
    canary_alarm_name: pulumi.Input[str]
    canary_alarm_arn: pulumi.Input[str]
    canary_alarm_topic_arn: pulumi.Input[str]
    canary_alarm_topic_provider: aws.Provider  # the topic's (primary) region signs its subscription
    witness_log_group_name: pulumi.Input[str]
    witness_log_group_arn: pulumi.Input[str]
    metrics_namespace: str  # the fence metric's and the decision metrics'
    fence_metric: str


class Promoter(pulumi.ComponentResource):
    """Ledger, arming parameter, promoter function and its triggers, its alarms and metrics."""

    ledger: aws.dynamodb.Table
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

        ledger_name = namer.name("db-failover-ledger")
        self.ledger = aws.dynamodb.Table(
            ledger_name,
            name=ledger_name,
            billing_mode="PAY_PER_REQUEST",  # a few writes per failover, reads every minute
            hash_key=LEDGER_KEY,
            attributes=[aws.dynamodb.TableAttributeArgs(name=LEDGER_KEY, type="S")],
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.kms_key_arn),
            # The record of a failover is evidence worth a restore point (FSBP DynamoDB.2).
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            deletion_protection_enabled=False,
            opts=child,
        )

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

        self.promoter = FailoverFunction(
            namer.logical("promoter"),
            FailoverFunctionArgs(
                base="db-promoter",
                module="promoter",
                description=("Promotes the replica when independent evidence says the primary is "
                             "gone, fences writers onto it, reports why"),
                environment={
                    "REPLICA_IDENTIFIER": args.replica_identifier,
                    "REPLICA_REGION": args.replica_region,
                    "PRIMARY_IDENTIFIER": args.primary_identifier,
                    "PRIMARY_REGION": args.primary_region,
                    "CANARY_ALARM_NAME": args.canary_alarm_name,
                    "EVENTS_TOPIC_ARN": args.events_topic_arn,
                    "ARMING_PARAMETER_NAME": self.arming.name,
                    "LEDGER_TABLE_NAME": self.ledger.name,
                    "FENCE_NAMESPACE": args.metrics_namespace,
                    "FENCE_METRIC": args.fence_metric,
                    "WITNESS_LOG_GROUP": args.witness_log_group_name,
                    "AUTOMATION_MODE": settings.automation_mode,
                    "API_TIMEOUT_SECONDS": str(settings.promoter_api_timeout_seconds),
                    "MAX_ATTEMPTS": str(settings.promoter_max_attempts),
                    "BACKUP_RETENTION_DAYS": _whole_number(args.backup_retention_days),
                    "RECOVERY_GRACE_SECONDS": str(settings.recovery_grace_seconds),
                    "MAX_PROMOTION_LAG_SECONDS": _whole_number(args.max_promotion_lag_seconds),
                    "CLAIM_LEASE_SECONDS": str(settings.claim_lease_seconds),
                },
                timeout_seconds=settings.promoter_timeout_seconds,
                memory_mb=PROMOTER_MEMORY_MB,
                log_retention_days=settings.log_retention_days,
                log_group_kms_key_arn=args.kms_key_arn,
                namer=namer,
                policy_statements=_promoter_statements(args, self.ledger.arn, self.arming.arn),
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

        self.errors_alarm = errors_alarm(
            self.promoter, namer.name("db-promoter-errors"),
            "The failover promoter failed, or did not run, in the last 5 minutes: automated "
            "promotion may not happen. Check its log group.",
            period=300, evaluation_periods=1, datapoints_to_alarm=None,
            topic_arn=args.events_topic_arn, opts=child,
        )

        # One JSON line per decision, e.g. {"action": "promote", ...}; counted per action.
        aws.cloudwatch.LogMetricFilter(
            namer.logical("promoter-decisions"),
            name=namer.name("db-promoter-decisions"),
            log_group_name=self.promoter.log_group.name,
            pattern="{ $.action = * }",
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=DECISIONS_METRIC,
                namespace=args.metrics_namespace,
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
                namespace=args.metrics_namespace,
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
            namespace=args.metrics_namespace,
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
            alarm_actions=[args.events_topic_arn],
            ok_actions=[args.events_topic_arn],
            opts=child,
        )

        self.register_outputs({
            "promoterFunctionName": self.promoter.function.name,
            "ledgerTableName": self.ledger.name,
            "armingParameterName": self.arming.name,
            "stuckAlarmName": self.stuck_alarm.name,
        })


def _whole_number(value: pulumi.Input[int]) -> pulumi.Output[str]:
    # Stack outputs carry numbers as JSON (protobuf) doubles: 7.0.
    return pulumi.Output.from_input(value).apply(lambda number: str(int(number)))


def _promoter_statements(args: PromoterArgs, ledger_arn: pulumi.Output[str],
                         arming_arn: pulumi.Output[str]) -> list[pulumi.Input[dict]]:
    """The promoter's permissions, each on the one resource it concerns."""
    return [
        iam.statement_on(["rds:DescribeDBInstances", "rds:PromoteReadReplica"], args.replica_arn,
                         sid="DescribeAndPromoteTheReplica"),
        # The database fence: stop the old primary once a failover is recorded.
        iam.statement_on(["rds:DescribeDBInstances", "rds:StopDBInstance"], args.primary_arn,
                         sid="DescribeAndFenceThePrimary"),
        iam.statement_on(["cloudwatch:DescribeAlarms"], args.canary_alarm_arn,
                         sid="ReadTheCanaryAlarm"),
        pulumi.Output.from_input(args.witness_log_group_arn).apply(lambda arn: iam.statement(
            ["logs:FilterLogEvents"], [arn, f"{arn}:*"], sid="ReadTheWitnessRelay")),
        iam.statement_on(["ssm:GetParameter", "ssm:PutParameter"], arming_arn,
                         sid="ReadAndArmTheArmingParameter"),
        iam.statement_on(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], ledger_arn,
                         sid="KeepTheFailoverLedger"),
        # Reading metric data (replica lag) supports no resource-level permissions
        # (Service Authorization Reference, Amazon CloudWatch), so it takes "*".
        iam.statement(["cloudwatch:GetMetricStatistics"], ["*"], sid="ReadReplicaLag"),
        # PutMetricData has no resource either; the cloudwatch:namespace condition key keeps
        # the promoter to its own namespace (the fence metric the writer record follows).
        iam.statement(["cloudwatch:PutMetricData"], ["*"], sid="PublishTheFence",
                      condition={"StringEquals": {"cloudwatch:namespace": args.metrics_namespace}}),
        iam.statement_on(["sns:Publish"], args.events_topic_arn, sid="PublishDecisions"),
        # The events topic and the ledger are encrypted with the secondary region's key.
        iam.statement_on(["kms:GenerateDataKey*", "kms:Decrypt"], args.kms_key_arn,
                         sid="UseTheSecondaryKey"),
    ]
