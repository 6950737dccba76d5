"""What a layer reads before it builds: the account, and upstream network outputs.

Upstream values are gated on the region check: a layer configured for other
regions than the network it stands on fails at the first use of a subnet or
security group instead of building in the wrong place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from shared.contract import LayerReference, NetworkOutputs
from shared.providers import RegionalProviders


@dataclass(frozen=True)
class AccountContext:
    account_id: pulumi.Output[str]
    partition: pulumi.Output[str]


def account_context(providers: RegionalProviders, role: str) -> AccountContext:
    """Account ID and partition as the ``role`` region's provider sees them."""
    opts = providers.invoke_opts(role)
    return AccountContext(
        account_id=aws.get_caller_identity_output(opts=opts).account_id,
        partition=aws.get_partition_output(opts=opts).partition,
    )


@dataclass(frozen=True)
class RegionalNetworkInputs:
    private_subnet_ids: pulumi.Output[list[str]]
    db_security_group_id: pulumi.Output[str]


def gated(check: pulumi.Output[Any], value: pulumi.Output[Any]) -> pulumi.Output[Any]:
    """``value``, available only once ``check`` has resolved without raising."""
    return pulumi.Output.all(check, value).apply(lambda resolved: resolved[1])


def network_inputs(network: LayerReference, role: str, expected_region: str
                   ) -> RegionalNetworkInputs:
    """The ``role`` region's subnets and database group, if that region is ours."""
    keys = NetworkOutputs.for_role(role)
    region = network.require_matching(keys.region, expected_region)
    return RegionalNetworkInputs(
        private_subnet_ids=gated(region, network.require(keys.private_subnet_ids)),
        db_security_group_id=gated(region, network.require(keys.db_security_group_id)),
    )
