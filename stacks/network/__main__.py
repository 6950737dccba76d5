"""Network layer: a private VPC in the primary and in the secondary region.

Everything else stands on this layer: the databases use its subnets and
security groups, the failover layer's canary runs in its probe group, and the
private hosted zone is associated with both VPCs.
"""

import pulumi
import pulumi_aws as aws
import pulumi_random as random
from regional_network import RegionalNetwork, RegionalNetworkArgs, flow_log_group_name

from shared import iam
from shared.components.encryption_key import EncryptionKey, EncryptionKeyArgs
from shared.config import load_network_settings
from shared.contract import NetworkOutputs
from shared.providers import regional_providers

settings = load_network_settings()
common = settings.common
namer = common.namer
# Unique per deployment and stable across updates: a redeployment under the same suffix
# (CI re-runs, a rebuilt environment) gets a new id, so its resources never mix with the
# leftovers of the old one in cost reports or cleanup sweeps. All layers tag it.
deployment_id = random.RandomId(
    namer.logical("deployment-id"),
    byte_length=4,
    keepers={"environmentSuffix": common.environment_suffix},
)
providers = regional_providers(common, layer="network", deployment_id=deployment_id.hex)

# IAM is global: one role lets VPC Flow Logs write to the log group of each region.
account = aws.get_caller_identity_output(opts=providers.invoke_opts("primary")).account_id
flow_logs_role = aws.iam.Role(
    namer.name("flow-logs-role"),
    name=namer.name("flow-logs-role"),
    description="VPC Flow Logs delivery to this deployment's flow-log groups",
    assume_role_policy=iam.assume_role_policy("vpc-flow-logs.amazonaws.com", account),
    opts=providers.opts("primary"),
)

# The permissions the VPC User Guide lists as the minimum ("IAM role for publishing flow
# logs to CloudWatch Logs"), scoped down, except logs:CreateLogGroup: the groups are declared
# with a retention, and the service must not recreate one after a destroy. The group names
# are fixed, so the policy exists before any flow log starts delivering.
partition = aws.get_partition_output(opts=providers.invoke_opts("primary")).partition


def log_group_arn(region: str, name: str) -> pulumi.Output[str]:
    return pulumi.Output.all(partition, account).apply(
        lambda v: f"arn:{v[0]}:logs:{region}:{v[1]}:log-group:{name}"
    )


flow_log_groups = {role: log_group_arn(providers.region(role), flow_log_group_name(namer, role))
                   for role in ("primary", "secondary")}
flow_logs_permissions = aws.iam.RolePolicy(
    namer.logical("flow-logs-delivery"),
    role=flow_logs_role.id,
    policy=iam.policy_document([
        iam.statement(
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [arn for group in flow_log_groups.values()
             for arn in (group, group.apply(lambda a: f"{a}:*"))],
            sid="WriteOwnFlowLogGroups",
        ),
        # DescribeLogGroups lists the groups of an account and region; it cannot be scoped
        # to one group, only to the log-group ARNs of each region the flow logs write in.
        iam.statement(
            ["logs:DescribeLogGroups"],
            [log_group_arn(providers.region(role), "*") for role in flow_log_groups],
            sid="FindOwnFlowLogGroups",
        ),
    ]),
    opts=providers.opts("primary"),
)

networks = {}
for role, cidr in (("primary", settings.primary_cidr), ("secondary", settings.secondary_cidr)):
    # The flow logs need a key before any database key exists (this layer deploys first), and
    # one only for them: CloudWatch Logs may use it for this region's flow-log group, nothing
    # else may (no RDS, no topic publishers).
    flow_logs_key = EncryptionKey(
        namer.logical("flow-logs-key", role),
        EncryptionKeyArgs(
            namer=namer,
            alias_base=f"flow-logs-{role}",
            region=providers.region(role),
            account_id=account,
            partition=partition,
            description=f"VPC flow logs of {namer.name(f'vpc-{role}')}",
            log_group_patterns=[flow_log_group_name(namer, role)],
            for_rds=False,
            topic_publishers=(),
        ),
        opts=pulumi.ResourceOptions(providers=[providers.for_role(role)]),
    )
    networks[role] = RegionalNetwork(
        namer.logical("network", role),
        RegionalNetworkArgs(
            role=role,
            region=providers.region(role),
            cidr=cidr,
            subnet_count=settings.subnets_per_region,
            flow_log_retention_days=settings.flow_log_retention_days,
            flow_logs_role_arn=flow_logs_role.arn,
            flow_logs_kms_key_arn=flow_logs_key.arn,
            namer=namer,
            flow_logs_permissions=flow_logs_permissions,
        ),
        opts=pulumi.ResourceOptions(providers=[providers.for_role(role)]),
    )

pulumi.export(NetworkOutputs.DEPLOYMENT_ID, deployment_id.hex)
for role, net in networks.items():
    keys = NetworkOutputs.for_role(role)
    pulumi.export(keys.region, providers.region(role))
    pulumi.export(keys.vpc_id, net.vpc.id)
    pulumi.export(keys.vpc_cidr, net.vpc.cidr_block)
    pulumi.export(keys.private_subnet_ids, [s.id for s in net.subnets])
    pulumi.export(keys.db_security_group_id, net.db_security_group.id)
    pulumi.export(keys.client_security_group_id, net.client_security_group.id)
    pulumi.export(keys.probe_security_group_id, net.probe_security_group.id)
