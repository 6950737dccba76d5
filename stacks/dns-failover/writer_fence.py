"""The writer fence: an alarm, in the secondary region, on the promoter's FailoverFenced metric.

The promoter publishes FailoverFenced every minute: 1 while a failover of the current
replica is recorded in its ledger, 0 otherwise. This alarm goes to ALARM on a 1, and the
Route 53 health check of the writer record's PRIMARY member follows it (failover_dns.py):
once the replica is promoted, Route 53 answers ``writer.<zone>`` with the replica. The
metric, the alarm and the ledger all live in the secondary region and Route 53 evaluates
the alarm in its data plane, so the fence needs neither the primary region nor Route 53's
control plane (us-east-1), and nothing the old primary does when its region comes back
can lift it. Only a person lifts it, by removing the failover from the ledger during a
failback (RUNBOOK.md, section 3).

Alarm shape: the same constraints as the canary's (one standard-resolution metric, a
statistic Route 53 accepts, no math). Missing data is left "missing": Route 53 keeps the
alarm's period, periods, statistic and threshold only, and the health check takes its last
known status when there is no data (``insufficient_data_health_status``); the alarm's own
state then reads INSUFFICIENT_DATA, which notifies nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared.config import ALARM_PERIOD_SECONDS, FailoverSettings

FENCE_METRIC = "FailoverFenced"


def metrics_namespace(settings: FailoverSettings) -> str:
    """Custom-metric namespace of this deployment's failover metrics (fence and decisions)."""
    return f"RdsFailover/{settings.common.environment_suffix}"


@dataclass
class WriterFenceArgs:
    settings: FailoverSettings
    events_topic_arn: pulumi.Input[str]


class WriterFence(pulumi.ComponentResource):
    alarm: aws.cloudwatch.MetricAlarm
    namespace: str

    def __init__(self, name: str, args: WriterFenceArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:dns:WriterFence", name, None, opts)
        settings = args.settings
        self.namespace = metrics_namespace(settings)
        alarm_name = settings.common.namer.name("db-failover-fenced")
        self.alarm = aws.cloudwatch.MetricAlarm(
            alarm_name,
            name=alarm_name,
            alarm_description=(
                "Writers are fenced onto the promoted replica: the promoter recorded a failover "
                "(writer.<zone> answers with the replica). OK again only after a failback "
                "removed the failover from the ledger (RUNBOOK.md)."
            ),
            namespace=self.namespace,
            metric_name=FENCE_METRIC,
            statistic="Maximum",
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            treat_missing_data="missing",
            alarm_actions=[args.events_topic_arn],
            ok_actions=[args.events_topic_arn],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"alarmName": self.alarm.name, "namespace": self.namespace})
