"""The IAM role RDS assumes to publish Enhanced Monitoring metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared import iam
from shared.components.inputs import gated
from shared.naming import Namer


@dataclass
class EnhancedMonitoringRoleArgs:
    namer: Namer
    role_base: str  # catalogued IAM role base, e.g. "rds-monitoring-primary"
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]


class EnhancedMonitoringRole(pulumi.ComponentResource):
    """Trusts monitoring.rds.amazonaws.com (this account only) with AWS's managed policy.

    ``arn`` resolves only after the policy is attached: RDS checks the role's
    permissions when monitoring is turned on, so the instance must not see the
    role before then.
    """

    role: aws.iam.Role
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: EnhancedMonitoringRoleArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:shared:EnhancedMonitoringRole", name, None, opts)
        role_name = args.namer.name(args.role_base)
        self.role = aws.iam.Role(
            role_name,
            name=role_name,
            description="RDS Enhanced Monitoring publishes OS metrics to CloudWatch Logs",
            assume_role_policy=iam.assume_role_policy("monitoring.rds.amazonaws.com",
                                                      args.account_id),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # AWS's managed policy is scoped to the RDSOSMetrics log group; writing our own
        # copy would only drift from it.
        attachment = aws.iam.RolePolicyAttachment(
            role_name,
            role=self.role.name,
            policy_arn=pulumi.Output.from_input(args.partition).apply(
                lambda partition: f"arn:{partition}:iam::aws:policy/service-role/"
                "AmazonRDSEnhancedMonitoringRole"
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = gated(attachment.id, self.role.arn)
        self.register_outputs({"roleArn": self.role.arn})
