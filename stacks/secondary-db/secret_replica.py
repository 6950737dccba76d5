"""The master secret's replica in this region: where applications here read the credentials.

The primary-db layer reads the existing master secret in the primary region; Secrets
Manager replicates it to this region (the operator adds the replica once, README step 1;
this project never creates, replicates or rotates the secret). A read replica is a
physical copy of its source, so promotion keeps the master user and password: the replica
secret holds valid credentials for the promoted database, and it is the only copy left
while the primary region is down. The lookup runs in this region only, so a deployment
whose secret was never replicated stops here, at deploy time, not on the day it matters.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from shared.config import secret_replica_arn


def replicated_master_secret_arn(primary_secret_arn: pulumi.Input[str], region: str,
                                 opts: pulumi.InvokeOptions) -> pulumi.Output[str]:
    """The ARN of the master secret's replica in ``region``, once Secrets Manager there has it."""
    expected = pulumi.Output.from_input(primary_secret_arn).apply(
        lambda arn: secret_replica_arn(arn, region))
    return aws.secretsmanager.get_secret_output(arn=expected, opts=opts).arn
