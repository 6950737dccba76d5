"""One region's private network: VPC, private subnets, security groups, flow logs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared.components.postgres import POSTGRES_PORT
from shared.naming import Namer


def flow_log_group_name(namer: Namer, role: str) -> str:
    """The flow-log group of one region; known before it exists, so IAM can name it first."""
    return f"/vpc/flow-logs/{namer.name(f'vpc-{role}')}"


@dataclass
class RegionalNetworkArgs:
    role: str  # "primary" or "secondary"
    region: str
    cidr: str
    subnet_count: int
    flow_log_retention_days: int
    flow_logs_role_arn: pulumi.Input[str]
    # This region's key; its policy lets CloudWatch Logs use it for the flow-log group only.
    flow_logs_kms_key_arn: pulumi.Input[str]
    namer: Namer
    # The role's permissions: a flow log created before them fails its first deliveries.
    flow_logs_permissions: pulumi.Resource


class RegionalNetwork(pulumi.ComponentResource):
    """A VPC with private subnets only and the three security groups of the data tier.

    No internet gateway and no NAT: nothing in the data tier needs egress to the
    internet (RDS replication between regions runs on AWS's network, not through
    the VPC). See the README for adding egress if an application needs it.
    """

    vpc: aws.ec2.Vpc
    subnets: list[aws.ec2.Subnet]
    db_security_group: aws.ec2.SecurityGroup
    client_security_group: aws.ec2.SecurityGroup
    probe_security_group: aws.ec2.SecurityGroup
    flow_log_group: aws.cloudwatch.LogGroup

    def __init__(self, name: str, args: RegionalNetworkArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:network:RegionalNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role, namer = args.role, args.namer

        self.vpc = aws.ec2.Vpc(
            namer.name(f"vpc-{role}"),
            cidr_block=args.cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # private hosted zones and RDS endpoints need both
            tags={"Name": namer.name(f"vpc-{role}")},
            opts=child,
        )

        # Lock the default security group down: no rules at all (FSBP EC2.2).
        aws.ec2.DefaultSecurityGroup(
            namer.logical("default-sg", role),
            vpc_id=self.vpc.id,
            ingress=[],
            egress=[],
            opts=child,
        )

        zones = aws.get_availability_zones_output(
            state="available",
            # Local Zones and Wavelength Zones cannot hold RDS subnets.
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=pulumi.InvokeOptions(parent=self),
        )
        blocks = list(ipaddress.IPv4Network(args.cidr).subnets(prefixlen_diff=3))
        self.subnets = []
        for index in range(args.subnet_count):
            name = namer.logical("private", role, str(index + 1))
            self.subnets.append(aws.ec2.Subnet(
                name,
                vpc_id=self.vpc.id,
                cidr_block=str(blocks[index]),
                availability_zone=zones.names.apply(
                    lambda names, i=index: _pick_zone(names, i, args.region, args.subnet_count)
                ),
                map_public_ip_on_launch=False,
                tags={"Name": name, "Tier": "private"},
                opts=child,
            ))

        self.db_security_group = self._security_group(
            namer, f"db-access-{role}", "PostgreSQL instances; admits only the client and probe groups"
        )
        self.client_security_group = self._security_group(
            namer, f"db-clients-{role}", "Applications that connect to PostgreSQL"
        )
        self.probe_security_group = self._security_group(
            namer, f"db-probe-{role}", "Health probe (failover canary) that checks PostgreSQL liveness"
        )
        for source, label in ((self.client_security_group, "clients"),
                              (self.probe_security_group, "probe")):
            aws.vpc.SecurityGroupIngressRule(
                namer.logical("db-from", label, role),
                security_group_id=self.db_security_group.id,
                referenced_security_group_id=source.id,
                ip_protocol="tcp", from_port=POSTGRES_PORT, to_port=POSTGRES_PORT,
                description=f"PostgreSQL from the {label} security group",
                opts=child,
            )
            aws.vpc.SecurityGroupEgressRule(
                namer.logical(label, "to-db", role),
                security_group_id=source.id,
                referenced_security_group_id=self.db_security_group.id,
                ip_protocol="tcp", from_port=POSTGRES_PORT, to_port=POSTGRES_PORT,
                description="PostgreSQL to the database security group",
                opts=child,
            )

        self.flow_log_group = aws.cloudwatch.LogGroup(
            namer.logical("flow-logs", role),
            name=flow_log_group_name(namer, role),
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=args.flow_logs_kms_key_arn,
            opts=child,
        )
        aws.ec2.FlowLog(
            namer.logical("flow-log", role),
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=args.flow_logs_role_arn,
            max_aggregation_interval=60,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[args.flow_logs_permissions],
            ),
        )

        self.register_outputs({
            "vpcId": self.vpc.id,
            "subnetIds": [s.id for s in self.subnets],
            "dbSecurityGroupId": self.db_security_group.id,
        })

    def _security_group(self, namer: Namer, base: str, description: str
                        ) -> aws.ec2.SecurityGroup:
        # Rules are separate resources, one per rule and each with a description. The
        # provider revokes the allow-all egress rule AWS adds to a new group, so a group
        # admits and emits exactly what its rule resources say.
        name = namer.name(base)
        return aws.ec2.SecurityGroup(
            name,
            name=name,
            description=description,
            vpc_id=self.vpc.id,
            tags={"Name": name},
            opts=pulumi.ResourceOptions(parent=self),
        )


def _pick_zone(names: list[str], index: int, region: str, wanted: int) -> str:
    if len(names) < wanted:
        raise ValueError(
            f"config 'subnetsPerRegion': {region} offers {len(names)} availability zones "
            f"for RDS subnets, fewer than the {wanted} requested"
        )
    return names[index]
