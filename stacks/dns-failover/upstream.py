"""What the dns-failover layer reads from the layers below it, and the replica's live state.

Every value comes through the output contract (``shared.contract``): the network's VPCs,
subnets and probe groups, the primary's and the replica's endpoints, ARNs, resource ids and KMS keys,
whether the replica has been promoted, the backup retention a promotion turns on and the
replica's lag threshold. Regions are checked against this layer's own config, so a layer
configured for other regions than the stacks it stands on stops at once.

One value also comes from AWS itself: whether the replica still replicates (a lookup of
the instance in the SECONDARY region, so it works while the primary region is down). A
promotion by the promoter or by hand happens outside Pulumi, before anyone flips the
secondary-db layer's ``replicaPromoted``; reading the live state keeps an update of this
layer in between from pointing the writer record back at the old primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from shared.components import gated
from shared.config import CommonSettings
from shared.contract import (
    LayerReference,
    MissingOutputError,
    NetworkOutputs,
    PrimaryDbOutputs,
    SecondaryDbOutputs,
)


@dataclass(frozen=True)
class UpstreamOutputs:
    deployment_id: pulumi.Output[str]
    primary_region: pulumi.Output[str]
    secondary_region: pulumi.Output[str]
    primary_vpc_id: pulumi.Output[str]
    secondary_vpc_id: pulumi.Output[str]
    canary_subnet_ids: pulumi.Output[list[str]]
    canary_security_group_id: pulumi.Output[str]
    replica_canary_subnet_ids: pulumi.Output[list[str]]
    replica_canary_security_group_id: pulumi.Output[str]
    primary_identifier: pulumi.Output[str]
    primary_arn: pulumi.Output[str]
    primary_address: pulumi.Output[str]
    primary_port: pulumi.Output[int]
    primary_kms_key_arn: pulumi.Output[str]
    primary_resource_id: pulumi.Output[str]
    replica_identifier: pulumi.Output[str]
    replica_arn: pulumi.Output[str]
    replica_address: pulumi.Output[str]
    replica_port: pulumi.Output[int]
    secondary_kms_key_arn: pulumi.Output[str]
    replica_resource_id: pulumi.Output[str]
    replica_promoted: pulumi.Output[bool]
    backup_retention_days_after_promotion: pulumi.Output[int]
    replica_lag_threshold_seconds: pulumi.Output[int]

    def writer_primary_target(self, replica_stands_alone: pulumi.Input[bool]) -> pulumi.Output[str]:
        """Where the PRIMARY writer record points.

        Once the replica has been promoted (AWS says it stands alone, or the secondary-db
        layer says so), the promoted instance is the only writer and the PRIMARY record
        names it too. The fence itself is the record's health check (failover_dns.py) and
        holds either way; this keeps the declared record true to it, so no update ever
        names the old primary again (split brain, FIELD-NOTES 15 and 16).
        """
        return pulumi.Output.all(self.replica_promoted, replica_stands_alone,
                                 self.primary_address, self.replica_address).apply(
            lambda v: v[3] if v[0] or v[1] else v[2]
        )


def replica_stands_alone(replica_identifier: pulumi.Input[str],
                         secondary_invoke: pulumi.InvokeOptions) -> pulumi.Output[bool]:
    """From AWS, in the replica's region: its replicate_source_db is empty once promoted."""
    return aws.rds.get_instance_output(
        db_instance_identifier=replica_identifier, opts=secondary_invoke,
    ).replicate_source_db.apply(lambda source: not source)


def read_upstream(common: CommonSettings) -> UpstreamOutputs:
    network = LayerReference(common, "network")
    primary = LayerReference(common, "primary-db")
    secondary = LayerReference(common, "secondary-db")
    primary_net, secondary_net = NetworkOutputs.PRIMARY, NetworkOutputs.SECONDARY

    # The checked regions feed the VPC associations and the promoter's environment, so no
    # resource can be built from an upstream stack of other regions.
    replica_identifier = secondary.require(SecondaryDbOutputs.INSTANCE_IDENTIFIER)
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
        replica_canary_subnet_ids=network.require(secondary_net.private_subnet_ids),
        replica_canary_security_group_id=network.require(secondary_net.probe_security_group_id),
        primary_identifier=primary.require(PrimaryDbOutputs.INSTANCE_IDENTIFIER),
        primary_arn=primary.require(PrimaryDbOutputs.INSTANCE_ARN),
        primary_address=primary.require(PrimaryDbOutputs.ADDRESS),
        primary_port=primary.require(PrimaryDbOutputs.PORT),
        primary_kms_key_arn=primary.require(PrimaryDbOutputs.KMS_KEY_ARN),
        primary_resource_id=primary.require(PrimaryDbOutputs.RESOURCE_ID),
        replica_identifier=replica_identifier,
        replica_arn=secondary.require(SecondaryDbOutputs.INSTANCE_ARN),
        replica_address=secondary.require(SecondaryDbOutputs.ADDRESS),
        replica_port=secondary.require(SecondaryDbOutputs.PORT),
        secondary_kms_key_arn=secondary.require(SecondaryDbOutputs.KMS_KEY_ARN),
        replica_resource_id=secondary.require(SecondaryDbOutputs.RESOURCE_ID),
        replica_promoted=secondary.require(SecondaryDbOutputs.PROMOTED).apply(_flag),
        # Stack outputs carry numbers as JSON (protobuf) doubles: 7.0.
        backup_retention_days_after_promotion=secondary.require(
            SecondaryDbOutputs.BACKUP_RETENTION_DAYS_AFTER_PROMOTION).apply(int),
        replica_lag_threshold_seconds=secondary.require(
            SecondaryDbOutputs.LAG_THRESHOLD_SECONDS).apply(int),
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
    raise MissingOutputError(
        f"secondary-db output '{SecondaryDbOutputs.PROMOTED}' must be true or false, got {value!r}"
    )
