"""The primary's health signal: a canary Lambda in the primary VPC and its CloudWatch alarm.

Route 53 health checkers live outside every VPC and cannot reach a private database, so the
signal is built inside the primary region (Route 53 Developer Guide, "Configuring failover
in a private hosted zone"): a canary in the primary VPC probes PostgreSQL every minute and
raises on failure; an alarm on the canary's own AWS/Lambda Errors metric turns failures, or
no runs at all, into ALARM. The promoter reads the alarm directly, and Route 53 follows it
with an alarm-based health check (failover_dns.py) whose verdict the replica canary relays.

Alarm shape. An alarm-based health check accepts standard-resolution metrics and the
statistics Average, Minimum, Maximum, Sum and SampleCount only (Route 53 API Reference,
AlarmIdentifier), and Route 53 describes the alarm it follows by one metric name, namespace,
statistic and dimension set (CloudWatchAlarmConfiguration), which a metric-math alarm does
not have. So: one metric, Sum of Errors over 60-second periods, no math. Invocation
metrics are binary per run (Lambda Developer Guide, "Types of metrics for Lambda
functions"): a clean run reports Errors = 0 and a raise or a timeout reports 1, so a
missing datapoint means the canary did not run at all (its region, its schedule or Lambda
itself is down), and missing data is treated as breaching.

What Route 53 evaluates. A CLOUDWATCH_METRIC check follows the alarm's data stream, not its
state (Route 53 Developer Guide, "How Route 53 determines the status of health checks that
monitor CloudWatch alarms"; SetAlarmState does not move it), and the alarm settings it
keeps (CloudWatchAlarmConfiguration) carry no DatapointsToAlarm and no TreatMissingData.
With no data at all the check takes insufficient_data_health_status (Unhealthy for this
one), which matches "missing is breaching".
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from failover_function import FailoverFunction, FailoverFunctionArgs, VpcPlacement, errors_alarm

from shared.components.alerting import AlertTopic, AlertTopicArgs
from shared.config import ALARM_PERIOD_SECONDS, FailoverSettings

# Seconds the canary function may run beyond the probe's own deadline (cold start, ENI
# attach, interpreter start). A run that hits the Lambda timeout counts as an error too.
CANARY_TIMEOUT_MARGIN_SECONDS = 5
CANARY_MEMORY_MB = 128


@dataclass
class HealthSignalArgs:
    settings: FailoverSettings
    vpc: VpcPlacement  # the primary VPC's subnets and probe security group
    db_host: pulumi.Input[str]
    db_port: pulumi.Input[int]
    kms_key_arn: pulumi.Input[str]  # the primary region's key: alarm topic, canary log group


class HealthSignal(pulumi.ComponentResource):
    """Canary, alarm and alarm topic; all in the primary region."""

    canary: FailoverFunction
    alarm: aws.cloudwatch.MetricAlarm
    alarm_topic: aws.sns.Topic

    def __init__(self, name: str, args: HealthSignalArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:dns:HealthSignal", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        namer = settings.common.namer

        self.canary = FailoverFunction(
            namer.logical("canary"),
            FailoverFunctionArgs(
                base="db-canary",
                module="canary",
                description="Probes the primary PostgreSQL over TLS every minute; fails when it is down",
                environment={
                    "DB_HOST": args.db_host,
                    # Stack outputs carry numbers as JSON (protobuf) doubles: 5432.0.
                    "DB_PORT": pulumi.Output.from_input(args.db_port).apply(lambda p: str(int(p))),
                    "PROBE_TIMEOUT_SECONDS": str(settings.probe_timeout_seconds),
                },
                timeout_seconds=settings.probe_timeout_seconds + CANARY_TIMEOUT_MARGIN_SECONDS,
                memory_mb=CANARY_MEMORY_MB,
                log_retention_days=settings.log_retention_days,
                namer=namer,
                log_group_kms_key_arn=args.kms_key_arn,
                vpc=args.vpc,
            ),
            opts=child,
        )

        # SNS.1: encrypted with the primary region's customer key; only CloudWatch alarms of
        # this account may publish (the promoter subscribes).
        self.alarm_topic = AlertTopic(
            namer.logical("canary-alarm-topic"),
            AlertTopicArgs(namer=namer, topic_base="db-canary-alarm", kms_key_arn=args.kms_key_arn,
                           account_id=args.vpc.account_id, publishers=["cloudwatch.amazonaws.com"]),
            opts=child,
        ).topic

        m, n = settings.alarm_datapoints, settings.alarm_periods
        self.alarm = errors_alarm(
            self.canary, namer.name("db-canary-errors"),
            f"Primary PostgreSQL is down or unprobed: the canary failed or did not run in "
            f"{m} of the last {n} minutes. Wakes the promoter and drives the Route 53 health "
            f"check behind witness.<zone>.",
            period=ALARM_PERIOD_SECONDS, evaluation_periods=n, datapoints_to_alarm=m,
            topic_arn=self.alarm_topic.arn, opts=child,
        )

        self.register_outputs({
            "alarmName": self.alarm.name,
            "canaryFunctionName": self.canary.function.name,
        })
