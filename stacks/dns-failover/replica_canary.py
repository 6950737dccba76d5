"""The replica canary: the same probe as the primary's, in the SECONDARY VPC, plus the witness.

Every minute it probes the replica (SSLRequest, TLS, StartupMessage: is the standby, or
after a failover the new writer, accepting connections?) from the secondary region's probe
security group, and resolves ``witness.<zone>`` through the VPC's resolver, which answers
from Route 53's data plane. Both land in one JSON line in its log group, where the
promoter reads them (logs:FilterLogEvents, secondary region). Neither needs an API call,
a NAT gateway or credentials: the function has no AWS API access at all.

Its own failures (the replica not accepting connections) raise, so its Errors metric feeds
an alarm that tells the failover events topic: a replica that cannot take over, or a new
writer that does not answer, is what on-call needs to hear from the surviving region.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from failover_dns import WITNESS_FAILING_ADDRESS, WITNESS_HEALTHY_ADDRESS
from failover_function import FailoverFunction, FailoverFunctionArgs, VpcPlacement, errors_alarm
from health_signal import CANARY_MEMORY_MB, CANARY_TIMEOUT_MARGIN_SECONDS

from shared.config import ALARM_PERIOD_SECONDS, FailoverSettings

# The witness lookup's own budget (lambdas/canary/canary.py, WITNESS_TIMEOUT_SECONDS).
WITNESS_LOOKUP_SECONDS = 2


@dataclass
class ReplicaCanaryArgs:
    settings: FailoverSettings
    vpc: VpcPlacement  # the secondary VPC's subnets and probe security group
    db_host: pulumi.Input[str]
    db_port: pulumi.Input[int]
    witness_name: pulumi.Input[str]
    events_topic_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]  # the secondary region's key, for the log group


class ReplicaCanary(pulumi.ComponentResource):
    canary: FailoverFunction
    alarm: aws.cloudwatch.MetricAlarm

    def __init__(self, name: str, args: ReplicaCanaryArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:dns:ReplicaCanary", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        namer = settings.common.namer
        self.canary = FailoverFunction(
            namer.logical("replica-canary"),
            FailoverFunctionArgs(
                base="db-replica-canary",
                module="canary",
                description=("Probes the replica over TLS every minute and relays Route 53's "
                             "answer for the witness name"),
                environment={
                    "DB_HOST": args.db_host,
                    # Stack outputs carry numbers as JSON (protobuf) doubles: 5432.0.
                    "DB_PORT": pulumi.Output.from_input(args.db_port).apply(lambda p: str(int(p))),
                    "PROBE_TIMEOUT_SECONDS": str(settings.probe_timeout_seconds),
                    "WITNESS_NAME": args.witness_name,
                    "WITNESS_HEALTHY_ADDRESS": WITNESS_HEALTHY_ADDRESS,
                    "WITNESS_FAILING_ADDRESS": WITNESS_FAILING_ADDRESS,
                },
                timeout_seconds=(settings.probe_timeout_seconds + WITNESS_LOOKUP_SECONDS
                                 + CANARY_TIMEOUT_MARGIN_SECONDS),
                memory_mb=CANARY_MEMORY_MB,
                log_retention_days=settings.log_retention_days,
                log_group_kms_key_arn=args.kms_key_arn,
                namer=namer,
                vpc=args.vpc,
            ),
            opts=child,
        )

        m, n = settings.alarm_datapoints, settings.alarm_periods
        # A canary that does not run also stops relaying the witness: silence alarms too.
        self.alarm = errors_alarm(
            self.canary, namer.name("db-replica-canary-errors"),
            f"The replica (or, after a failover, the new writer) did not accept a TLS "
            f"connection, or was not probed, in {m} of the last {n} minutes. Before a "
            f"failover it could not take over; after one, writers cannot reach it.",
            period=ALARM_PERIOD_SECONDS, evaluation_periods=n, datapoints_to_alarm=m,
            topic_arn=args.events_topic_arn, opts=child,
        )
        self.register_outputs({
            "functionName": self.canary.function.name,
            "logGroupName": self.canary.log_group.name,
            "alarmName": self.alarm.name,
        })
