"""IAM database authentication that survives a failover: one managed policy, both instances.

``rds-db:connect`` grants name the region, the account and the instance's resource id:
``arn:<partition>:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>`` (RDS User Guide,
"Creating and using an IAM policy for IAM database access"). A grant on the primary lets
nobody into the promoted replica, another instance in another region. This policy names
both instances for each configured user, so applications attach it once (its ARN is an
output) and keep their access across a failover. Promotion keeps the replica's resource
id; a failback builds a new replica, with a new id, and the next update of this layer
grants on it (RUNBOOK.md section 3).

IAM is global, with its control plane in us-east-1: while that region is down the policy
cannot be changed, but IAM keeps authorizing with it. Nothing here depends on the primary
region's provider.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared.iam import statement
from shared.naming import Namer


@dataclass(frozen=True)
class DatabaseInstanceRef:
    """What an rds-db:connect grant names of one instance."""

    region: pulumi.Input[str]
    resource_id: pulumi.Input[str]  # DbiResourceId ("db-..."), not the identifier


def connect_arns(partition: str, account_id: str, region: str, resource_id: str,
                 users: Sequence[str]) -> list[str]:
    return [f"arn:{partition}:rds-db:{region}:{account_id}:dbuser:{resource_id}/{user}"
            for user in users]


def database_connect_policy(namer: Namer, users: Sequence[str],
                            instances: Sequence[DatabaseInstanceRef],
                            account_id: pulumi.Input[str], partition: pulumi.Input[str],
                            opts: pulumi.ResourceOptions) -> aws.iam.Policy:
    """The managed policy granting ``users`` rds-db:connect on every one of ``instances``."""
    values = pulumi.Output.all(account_id, partition,
                               *(v for i in instances for v in (i.region, i.resource_id)))

    def document(resolved: list[str]) -> str:
        account, part, *pairs = resolved
        arns = [arn for region, resource_id in zip(pairs[::2], pairs[1::2], strict=True)
                for arn in connect_arns(part, account, region, resource_id, users)]
        return json.dumps({"Version": "2012-10-17", "Statement": [
            statement(["rds-db:connect"], arns, sid="ConnectToEitherInstance")]})

    return aws.iam.Policy(
        namer.name("db-connect"),
        name=namer.name("db-connect"),
        description=("rds-db:connect for the application database users on the primary "
                     "and the replica (valid before and after a failover)"),
        policy=values.apply(document),
        opts=opts,
    )
