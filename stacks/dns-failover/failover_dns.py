"""The private hosted zone and the names applications connect to.

``writer.<zone>`` is a failover pair: PRIMARY (with the canary's health check) names the
primary instance and SECONDARY (no check, so always eligible) names the replica; Route 53
answers with SECONDARY while the check is unhealthy. ``reader.<zone>`` names the replica.
Both are CNAMEs to the RDS endpoint names, so clients keep resolving the instances' own
addresses (which RDS moves during a Multi-AZ failover).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared.config import FailoverSettings

WRITER_LABEL = "writer"
READER_LABEL = "reader"
# The promoter rewrites the PRIMARY member by this set identifier when it fences.
PRIMARY_SET_IDENTIFIER = "primary"
SECONDARY_SET_IDENTIFIER = "secondary"


@dataclass
class FailoverDnsArgs:
    settings: FailoverSettings
    primary_vpc_id: pulumi.Input[str]
    secondary_vpc_id: pulumi.Input[str]
    writer_primary_target: pulumi.Input[str]  # primary address, or the replica's once promoted
    replica_address: pulumi.Input[str]
    health_check_id: pulumi.Input[str]


class FailoverDns(pulumi.ComponentResource):
    zone: aws.route53.Zone
    writer_name: str
    reader_name: str

    def __init__(self, name: str, args: FailoverDnsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:dns:FailoverDns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        common, namer = settings.common, settings.common.namer
        self.writer_name = f"{WRITER_LABEL}.{settings.zone_name}"
        self.reader_name = f"{READER_LABEL}.{settings.zone_name}"

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

        ttl = settings.record_ttl_seconds
        aws.route53.Record(
            namer.logical("writer-primary"),
            zone_id=self.zone.zone_id,
            name=self.writer_name,
            type="CNAME",
            ttl=ttl,
            records=[args.writer_primary_target],
            set_identifier=PRIMARY_SET_IDENTIFIER,
            failover_routing_policies=[
                aws.route53.RecordFailoverRoutingPolicyArgs(type="PRIMARY"),
            ],
            health_check_id=args.health_check_id,
            opts=child,
        )
        aws.route53.Record(
            namer.logical("writer-secondary"),
            zone_id=self.zone.zone_id,
            name=self.writer_name,
            type="CNAME",
            ttl=ttl,
            records=[args.replica_address],
            set_identifier=SECONDARY_SET_IDENTIFIER,
            failover_routing_policies=[
                aws.route53.RecordFailoverRoutingPolicyArgs(type="SECONDARY"),
            ],
            opts=child,
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
        })
