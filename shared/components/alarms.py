"""CloudWatch alarms and the RDS event subscription of one database instance.

Every alarm notifies the topic when it fires and again when it clears, so the
on-call sees both edges. Alarm definitions are plain data (``AlarmSpec``) built
by the small functions below, so each layer picks the alarms that apply to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared.naming import Namer

GIB = 1024**3
MIB = 1024**2

# RDS event categories for a DB instance source (RDS User Guide, "Amazon RDS event
# categories and event messages").
# "configuration change" too: FSBP RDS.20 expects it next to maintenance and failure.
PRIMARY_EVENT_CATEGORIES = (
    "availability", "configuration change", "failover", "failure", "low storage",
    "maintenance", "notification", "recovery",
)
REPLICA_EVENT_CATEGORIES = (*PRIMARY_EVENT_CATEGORIES, "read replica")


@dataclass(frozen=True)
class AlarmSpec:
    name_base: str  # catalogued alarm base, e.g. "pg-primary-cpu"
    metric_name: str  # AWS/RDS metric
    statistic: str
    comparison: str
    threshold: float
    description: str
    period_seconds: int = 300
    evaluation_periods: int = 2
    datapoints_to_alarm: int | None = None
    treat_missing_data: str = "missing"


def cpu_alarm(base: str, percent: int) -> AlarmSpec:
    return AlarmSpec(
        name_base=base, metric_name="CPUUtilization", statistic="Average",
        comparison="GreaterThanOrEqualToThreshold", threshold=percent,
        description=f"CPU at or above {percent}% for 10 minutes",
    )


def free_storage_alarm(base: str, gib: int) -> AlarmSpec:
    # Storage autoscaling grows the volume only when free space is low for a while;
    # this alarm says it is happening (or that the ceiling has been reached).
    return AlarmSpec(
        name_base=base, metric_name="FreeStorageSpace", statistic="Minimum",
        comparison="LessThanOrEqualToThreshold", threshold=gib * GIB,
        description=f"Free storage at or below {gib} GiB", evaluation_periods=1,
    )


def freeable_memory_alarm(base: str, mib: int) -> AlarmSpec:
    return AlarmSpec(
        name_base=base, metric_name="FreeableMemory", statistic="Minimum",
        comparison="LessThanOrEqualToThreshold", threshold=mib * MIB,
        description=f"Freeable memory at or below {mib} MiB for 10 minutes",
    )


def connections_alarm(base: str, connections: int) -> AlarmSpec:
    return AlarmSpec(
        name_base=base, metric_name="DatabaseConnections", statistic="Maximum",
        comparison="GreaterThanOrEqualToThreshold", threshold=connections,
        description=f"{connections} or more client connections for 10 minutes",
    )


def replica_lag_alarm(base: str, seconds: int) -> AlarmSpec:
    # The lag is the data a promotion would lose (the RPO). A replica that stops
    # reporting lag is not replicating, so missing data counts as breaching.
    return AlarmSpec(
        name_base=base, metric_name="ReplicaLag", statistic="Maximum",
        comparison="GreaterThanThreshold", threshold=seconds,
        description=f"Replica more than {seconds} s behind its source (the accepted RPO)",
        period_seconds=60, evaluation_periods=5, datapoints_to_alarm=3,
        treat_missing_data="breaching",
    )


@dataclass
class DatabaseAlarmsArgs:
    namer: Namer
    instance_identifier: pulumi.Input[str]
    topic_arn: pulumi.Input[str]
    alarms: Sequence[AlarmSpec]
    event_subscription_base: str  # catalogued base, e.g. "pg-events-primary"
    event_categories: Sequence[str]


class DatabaseAlarms(pulumi.ComponentResource):
    """Metric alarms with alarm and OK actions, plus an RDS event subscription."""

    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    event_subscription: aws.rds.EventSubscription

    def __init__(self, name: str, args: DatabaseAlarmsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:shared:DatabaseAlarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = args.namer
        self.alarms = {}
        for spec in args.alarms:
            alarm_name = namer.name(spec.name_base)
            self.alarms[spec.name_base] = aws.cloudwatch.MetricAlarm(
                alarm_name,
                name=alarm_name,
                alarm_description=pulumi.Output.concat(
                    spec.description, " on ", args.instance_identifier
                ),
                namespace="AWS/RDS",
                metric_name=spec.metric_name,
                dimensions={"DBInstanceIdentifier": args.instance_identifier},
                statistic=spec.statistic,
                period=spec.period_seconds,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                comparison_operator=spec.comparison,
                threshold=spec.threshold,
                treat_missing_data=spec.treat_missing_data,
                actions_enabled=True,
                alarm_actions=[args.topic_arn],
                ok_actions=[args.topic_arn],
                opts=child,
            )
        subscription_name = namer.name(args.event_subscription_base)
        self.event_subscription = aws.rds.EventSubscription(
            subscription_name,
            name=subscription_name,
            sns_topic=args.topic_arn,
            source_type="db-instance",
            source_ids=[args.instance_identifier],
            event_categories=list(args.event_categories),
            enabled=True,
            opts=child,
        )
        self.register_outputs({
            "alarmNames": [alarm.name for alarm in self.alarms.values()],
            "eventSubscription": self.event_subscription.name,
        })
