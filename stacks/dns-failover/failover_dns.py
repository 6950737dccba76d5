"""The private hosted zone, its two Route 53 health checks and the names it answers.

Everything here is global (Route 53) and sits on the SECONDARY region's provider, so a
`pulumi up` while the primary region is down never needs that region's APIs (Route 53's
own control plane still answers from us-east-1, whatever provider signs the calls).

``writer.<zone>`` is a failover pair (Route 53 API Reference, ResourceRecordSet, Failover):
PRIMARY names the primary and carries the *writer fence* check; SECONDARY names the
replica and has no check, so Route 53 answers with it whenever PRIMARY is unhealthy. The
fence check follows the alarm on the promoter's FailoverFenced metric (secondary region):
healthy until a failover is recorded, unhealthy from then on. So writers move to the
replica when, and only when, it has been promoted, without any API call (only Route 53's
data plane evaluating an alarm), and stay there when the old primary comes back. With no
data at all the check keeps its last known status ("LastKnownStatus"; a new check with no
history is healthy: Route 53 API Reference, HealthCheckConfig.InsufficientDataHealthStatus),
so neither a silent promoter before a failover nor one after it moves writers.

The canary's health does NOT steer writers: while the replica is read-only, sending writers
to it only trades a dead primary for a read-only one, and a broken canary would move them
off a healthy primary. The canary's check instead answers ``witness.<zone>``, a failover pair
of two reserved TEST-NET-1 addresses (RFC 5737) that nothing connects to: PRIMARY
(WITNESS_HEALTHY_ADDRESS) while Route 53 sees the canary healthy, SECONDARY otherwise. The
replica canary resolves it from the secondary VPC and logs the answer: Route 53's verdict,
formed by health checkers outside both regions, reaches the promoter with no call to the
primary region or to us-east-1. It is the second source that confirms a regional outage and
that a network partition between the two regions cannot fake.

``reader.<zone>`` names the replica. Writer and reader are CNAMEs to the RDS endpoint names,
so clients keep resolving the instances' own addresses (which RDS moves in a Multi-AZ failover).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared.config import FailoverSettings

WRITER_LABEL = "writer"
READER_LABEL = "reader"
WITNESS_LABEL = "witness"
PRIMARY_SET_IDENTIFIER = "primary"
SECONDARY_SET_IDENTIFIER = "secondary"
# RFC 5737 TEST-NET-1: documentation addresses, never routed. Only compared, never dialled.
WITNESS_HEALTHY_ADDRESS = "192.0.2.1"
WITNESS_FAILING_ADDRESS = "192.0.2.2"
# The replica canary looks the witness up once a minute; a short TTL keeps the VPC
# resolver's cache from hiding a change for longer than that.
WITNESS_TTL_SECONDS = 10


@dataclass
class FailoverDnsArgs:
    settings: FailoverSettings
    primary_vpc_id: pulumi.Input[str]
    secondary_vpc_id: pulumi.Input[str]
    writer_primary_target: pulumi.Input[str]  # primary address, or the replica's once promoted
    replica_address: pulumi.Input[str]
    canary_alarm: aws.cloudwatch.MetricAlarm  # primary region
    fence_alarm: aws.cloudwatch.MetricAlarm  # secondary region


class FailoverDns(pulumi.ComponentResource):
    zone: aws.route53.Zone
    canary_check: aws.route53.HealthCheck
    fence_check: aws.route53.HealthCheck
    writer_name: str
    reader_name: str
    witness_name: str

    def __init__(self, name: str, args: FailoverDnsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:dns:FailoverDns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = self._settings = args.settings
        common, namer = settings.common, settings.common.namer
        self.writer_name = f"{WRITER_LABEL}.{settings.zone_name}"
        self.reader_name = f"{READER_LABEL}.{settings.zone_name}"
        self.witness_name = f"{WITNESS_LABEL}.{settings.zone_name}"

        # Private hosted zones are global; each association names its VPC's region.
        self.zone = aws.route53.Zone(
            namer.logical("zone"),
            name=settings.zone_name,
            comment=f"Failover names of the PostgreSQL deployment {common.environment_suffix}",
            vpcs=[
                aws.route53.ZoneVpcArgs(vpc_id=args.primary_vpc_id,
                                        vpc_region=common.primary_region),
                aws.route53.ZoneVpcArgs(vpc_id=args.secondary_vpc_id,
                                        vpc_region=common.secondary_region),
            ],
            # Teardown must not stall on a record someone added by hand during an incident.
            force_destroy=True,
            tags={"Name": settings.zone_name},
            opts=child,
        )

        self.canary_check = alarm_health_check(
            namer.name("db-primary-health"), args.canary_alarm, common.primary_region,
            # A whole-region outage leaves the alarm without data: that must read as
            # unhealthy (FIELD-NOTES 3); the default would keep reporting "healthy".
            insufficient_data="Unhealthy", opts=child,
        )
        self.fence_check = alarm_health_check(
            namer.name("db-writer-fence"), args.fence_alarm, common.secondary_region,
            # The fence holds in both directions when the promoter falls silent.
            insufficient_data="LastKnownStatus", opts=child,
        )

        ttl = settings.record_ttl_seconds
        self._failover_pair(
            "writer", self.writer_name, "CNAME", ttl,
            primary=args.writer_primary_target, secondary=args.replica_address,
            primary_check=self.fence_check.id,
        )
        self._failover_pair(
            "witness", self.witness_name, "A", WITNESS_TTL_SECONDS,
            primary=WITNESS_HEALTHY_ADDRESS, secondary=WITNESS_FAILING_ADDRESS,
            primary_check=self.canary_check.id,
        )
        aws.route53.Record(
            namer.logical("reader"),
            zone_id=self.zone.zone_id,
            name=self.reader_name,
            type="CNAME",
            ttl=ttl,
            records=[args.replica_address],
            opts=child,
        )

        self.register_outputs({
            "zoneId": self.zone.zone_id,
            "writerName": self.writer_name,
            "readerName": self.reader_name,
            "witnessName": self.witness_name,
        })

    def _failover_pair(self, label: str, name: str, record_type: str, ttl: int, *,
                       primary: pulumi.Input[str], secondary: pulumi.Input[str],
                       primary_check: pulumi.Input[str]) -> None:
        """PRIMARY (with its check) and SECONDARY (none: always eligible) of one name."""
        namer = self._settings.common.namer
        for role, value, set_identifier, check in (
            ("primary", primary, PRIMARY_SET_IDENTIFIER, primary_check),
            ("secondary", secondary, SECONDARY_SET_IDENTIFIER, None),
        ):
            aws.route53.Record(
                namer.logical(label, role),
                zone_id=self.zone.zone_id,
                name=name,
                type=record_type,
                ttl=ttl,
                records=[value],
                set_identifier=set_identifier,
                failover_routing_policies=[
                    aws.route53.RecordFailoverRoutingPolicyArgs(type=role.upper()),
                ],
                health_check_id=check,
                opts=pulumi.ResourceOptions(parent=self),
            )


def alarm_health_check(name: str, alarm: aws.cloudwatch.MetricAlarm, alarm_region: str, *,
                       insufficient_data: str, opts: pulumi.ResourceOptions) -> aws.route53.HealthCheck:
    """A CLOUDWATCH_METRIC health check that follows ``alarm``'s data.

    Route 53 copies the alarm's settings when the check is created and does not follow
    later changes to the alarm; an UpdateHealthCheck naming the same alarm makes it read
    them again (Route 53 Developer Guide, "Updating health checks when you change CloudWatch
    alarm settings"). ``triggers`` makes pulumi-aws send that update whenever the alarm's
    evaluation settings change, after the alarm itself has been updated.
    """
    return aws.route53.HealthCheck(
        name,
        type="CLOUDWATCH_METRIC",
        cloudwatch_alarm_name=alarm.name,
        cloudwatch_alarm_region=alarm_region,
        insufficient_data_health_status=insufficient_data,
        triggers={"alarmConfiguration": alarm_configuration(alarm)},
        tags={"Name": name},
        opts=opts,
    )


def alarm_configuration(alarm: aws.cloudwatch.MetricAlarm) -> pulumi.Output[str]:
    """The alarm's evaluation settings as one stable string (a health check's trigger).

    Route 53 keeps the metric, statistic, period, evaluation periods, threshold, comparison
    and dimensions of the alarm (API Reference, CloudWatchAlarmConfiguration); datapoints to
    alarm and missing-data treatment are included too, so any change to how the alarm
    evaluates re-synchronizes the check. Read from the alarm's outputs, so the health
    check is updated only after the alarm.
    """
    return pulumi.Output.all(
        namespace=alarm.namespace, metric_name=alarm.metric_name, dimensions=alarm.dimensions,
        statistic=alarm.statistic, period=alarm.period, evaluation_periods=alarm.evaluation_periods,
        datapoints_to_alarm=alarm.datapoints_to_alarm, threshold=alarm.threshold,
        comparison_operator=alarm.comparison_operator, treat_missing_data=alarm.treat_missing_data,
    ).apply(lambda settings: json.dumps(settings, sort_keys=True, default=str))
