"""What the dns-failover layer reads from the layers below it.

Every value comes through the output contract (``shared.contract``): the network's VPCs,
subnets and probe group, the primary's and the replica's endpoints, ARNs and KMS keys,
whether the replica has been promoted, and the backup retention a promotion turns on.
Regions are checked against this layer's own config, so a layer configured for other
regions than the stacks it stands on stops at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from shared.components import gated
from shared.config import CommonSettings
from shared.contract import LayerReference, NetworkOutputs, PrimaryDbOutputs, SecondaryDbOutputs


@dataclass(frozen=True)
class UpstreamOutputs:
    deployment_id: pulumi.Output[str]
    primary_region: pulumi.Output[str]
    secondary_region: pulumi.Output[str]
    primary_vpc_id: pulumi.Output[str]
    secondary_vpc_id: pulumi.Output[str]
    canary_subnet_ids: pulumi.Output[list[str]]
    canary_security_group_id: pulumi.Output[str]
    primary_identifier: pulumi.Output[str]
    primary_arn: pulumi.Output[str]
    primary_address: pulumi.Output[str]
    primary_port: pulumi.Output[int]
    primary_kms_key_arn: pulumi.Output[str]
    replica_identifier: pulumi.Output[str]
    replica_arn: pulumi.Output[str]
    replica_address: pulumi.Output[str]
    secondary_kms_key_arn: pulumi.Output[str]
    replica_promoted: pulumi.Output[bool]
    backup_retention_days_after_promotion: pulumi.Output[int]

    def writer_primary_target(self) -> pulumi.Output[str]:
        """Where the PRIMARY writer record points.

        Once the replica has been promoted (the secondary-db layer says so), the promoted
        instance is the only writer: the PRIMARY record must name it too, or the next
        ``pulumi up`` would undo the promoter's fence and send writers back to the old
        primary when it recovers (split brain, FIELD-NOTES 15 and 16).
        """
        return pulumi.Output.all(self.replica_promoted, self.primary_address,
                                 self.replica_address).apply(
            lambda v: v[2] if v[0] else v[1]
        )


def read_upstream(common: CommonSettings) -> UpstreamOutputs:
    network = LayerReference(common, "network")
    primary = LayerReference(common, "primary-db")
    secondary = LayerReference(common, "secondary-db")
    primary_net, secondary_net = NetworkOutputs.PRIMARY, NetworkOutputs.SECONDARY

    # The checked regions feed the VPC associations and the promoter's environment, so no
    # resource can be built from an upstream stack of other regions.
    return UpstreamOutputs(
        deployment_id=network.require(NetworkOutputs.DEPLOYMENT_ID),
        primary_region=primary.require_matching(PrimaryDbOutputs.REGION, common.primary_region),
        secondary_region=secondary.require_matching(SecondaryDbOutputs.REGION,
                                                    common.secondary_region),
        primary_vpc_id=_in_region(network, primary_net.vpc_id, primary_net.region,
                                  common.primary_region),
        secondary_vpc_id=_in_region(network, secondary_net.vpc_id, secondary_net.region,
                                    common.secondary_region),
        canary_subnet_ids=network.require(primary_net.private_subnet_ids),
        canary_security_group_id=network.require(primary_net.probe_security_group_id),
        primary_identifier=primary.require(PrimaryDbOutputs.INSTANCE_IDENTIFIER),
        primary_arn=primary.require(PrimaryDbOutputs.INSTANCE_ARN),
        primary_address=primary.require(PrimaryDbOutputs.ADDRESS),
        primary_port=primary.require(PrimaryDbOutputs.PORT),
        primary_kms_key_arn=primary.require(PrimaryDbOutputs.KMS_KEY_ARN),
        replica_identifier=secondary.require(SecondaryDbOutputs.INSTANCE_IDENTIFIER),
        replica_arn=secondary.require(SecondaryDbOutputs.INSTANCE_ARN),
        replica_address=secondary.require(SecondaryDbOutputs.ADDRESS),
        secondary_kms_key_arn=secondary.require(SecondaryDbOutputs.KMS_KEY_ARN),
        replica_promoted=secondary.require(SecondaryDbOutputs.PROMOTED).apply(_flag),
        # Stack outputs carry numbers as JSON (protobuf) doubles: 7.0.
        backup_retention_days_after_promotion=secondary.require(
            SecondaryDbOutputs.BACKUP_RETENTION_DAYS_AFTER_PROMOTION).apply(int),
    )


def _in_region(ref: LayerReference, key: str, region_key: str, region: str) -> pulumi.Output[Any]:
    """``key`` from ``ref``, available only once ``region_key`` matched ``region``."""
    return gated(ref.require_matching(region_key, region), ref.require(key))


def _flag(value: Any) -> bool:
    # Stack outputs keep JSON types, but a hand-edited or older stack may export a string.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(
        f"secondary-db output '{SecondaryDbOutputs.PROMOTED}' must be true or false, got {value!r}"
    )
