"""The contract between layers: project names, output names, stack references.

Output names are a stable interface: the producing layer exports them, the
consuming layer reads them through ``LayerReference``, the integration tests
read them from ``cfn-outputs/flat-outputs.json``, and all three use these
constants. Names are unique across layers so the four layers' outputs flatten
into one JSON object without prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from shared.config import CommonSettings

# Layers in dependency order: deploy left to right, destroy right to left.
LAYERS = ("network", "primary-db", "secondary-db", "dns-failover")

# Pulumi project name of each layer (the ``name`` in its Pulumi.yaml).
PROJECTS = {
    "network": "rds-network",
    "primary-db": "rds-primary-db",
    "secondary-db": "rds-secondary-db",
    "dns-failover": "rds-dns-failover",
}


@dataclass(frozen=True)
class RegionalNetworkOutputs:
    """Output names the network layer exports for one region role."""

    role: str

    def _key(self, field: str) -> str:
        return f"{self.role}{field}"

    @property
    def region(self) -> str:
        return self._key("Region")

    @property
    def vpc_id(self) -> str:
        return self._key("VpcId")

    @property
    def vpc_cidr(self) -> str:
        return self._key("VpcCidr")

    @property
    def private_subnet_ids(self) -> str:
        return self._key("PrivateSubnetIds")

    @property
    def db_security_group_id(self) -> str:
        return self._key("DbSecurityGroupId")

    @property
    def client_security_group_id(self) -> str:
        return self._key("ClientSecurityGroupId")

    @property
    def probe_security_group_id(self) -> str:
        return self._key("ProbeSecurityGroupId")

    def all(self) -> tuple[str, ...]:
        return (
            self.region, self.vpc_id, self.vpc_cidr, self.private_subnet_ids,
            self.db_security_group_id, self.client_security_group_id,
            self.probe_security_group_id,
        )


class NetworkOutputs:
    PRIMARY = RegionalNetworkOutputs("primary")
    SECONDARY = RegionalNetworkOutputs("secondary")
    # Stable random id of this deployment, tagged on every resource of every layer.
    DEPLOYMENT_ID = "deploymentId"

    @classmethod
    def for_role(cls, role: str) -> RegionalNetworkOutputs:
        return {"primary": cls.PRIMARY, "secondary": cls.SECONDARY}[role]

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (*cls.PRIMARY.all(), *cls.SECONDARY.all(), cls.DEPLOYMENT_ID)


class PrimaryDbOutputs:
    INSTANCE_ARN = "primaryDbInstanceArn"
    INSTANCE_IDENTIFIER = "primaryDbInstanceIdentifier"
    ADDRESS = "primaryDbAddress"
    PORT = "primaryDbPort"
    RESOURCE_ID = "primaryDbResourceId"
    REGION = "primaryDbRegion"
    INSTANCE_CLASS = "primaryDbInstanceClass"
    MAX_ALLOCATED_STORAGE_GIB = "primaryDbMaxAllocatedStorageGiB"
    KMS_KEY_ARN = "primaryKmsKeyArn"
    SNS_TOPIC_ARN = "primaryAlertsTopicArn"
    PARAMETER_GROUP_NAME = "primaryDbParameterGroupName"
    ENGINE = "dbEngine"
    ENGINE_MAJOR_VERSION = "dbEngineMajorVersion"
    PARAMETER_GROUP_FAMILY = "dbParameterGroupFamily"
    # The existing master secret (never created here) in the primary region: what
    # applications there read. Its replica in the secondary region is SecondaryDbOutputs'.
    MASTER_SECRET_ARN = "primaryMasterSecretArn"

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return _constants(cls)


class SecondaryDbOutputs:
    INSTANCE_ARN = "replicaInstanceArn"
    INSTANCE_IDENTIFIER = "replicaInstanceIdentifier"
    ADDRESS = "replicaAddress"
    PORT = "replicaPort"
    RESOURCE_ID = "replicaResourceId"
    REGION = "replicaRegion"
    KMS_KEY_ARN = "secondaryKmsKeyArn"
    SNS_TOPIC_ARN = "secondaryAlertsTopicArn"
    PARAMETER_GROUP_NAME = "replicaParameterGroupName"
    PROMOTED = "replicaPromoted"
    # Automated-backup retention a promotion turns on; the promoter passes the same value,
    # so a promotion by the program and one by the promoter end up alike.
    BACKUP_RETENTION_DAYS_AFTER_PROMOTION = "replicaBackupRetentionDaysAfterPromotion"
    # The RPO the layer's lag alarm guards; the promoter's automatic-promotion lag guard
    # defaults to it.
    LAG_THRESHOLD_SECONDS = "replicaLagThresholdSeconds"
    # The master secret's Secrets Manager replica in this region: what applications read
    # here, and the only copy left while the primary region is down.
    MASTER_SECRET_ARN = "secondaryMasterSecretArn"

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return _constants(cls)


class FailoverOutputs:
    ZONE_ID = "hostedZoneId"
    ZONE_NAME = "hostedZoneName"
    WRITER_NAME = "writerRecordName"
    READER_NAME = "readerRecordName"
    # witness.<zone>: Route 53's global verdict on the primary's canary, as a DNS answer.
    WITNESS_NAME = "witnessRecordName"
    CANARY_HEALTH_CHECK_ID = "canaryHealthCheckId"
    WRITER_FENCE_HEALTH_CHECK_ID = "writerFenceHealthCheckId"
    CANARY_ALARM_NAME = "canaryAlarmName"
    FENCE_ALARM_NAME = "fenceAlarmName"
    CANARY_FUNCTION_NAME = "canaryFunctionName"
    CANARY_FUNCTION_ARN = "canaryFunctionArn"
    REPLICA_CANARY_FUNCTION_NAME = "replicaCanaryFunctionName"
    REPLICA_CANARY_LOG_GROUP = "replicaCanaryLogGroupName"
    PROMOTER_FUNCTION_NAME = "promoterFunctionName"
    PROMOTER_FUNCTION_ARN = "promoterFunctionArn"
    CANARY_ALARM_TOPIC_ARN = "canaryAlarmTopicArn"
    FAILOVER_EVENTS_TOPIC_ARN = "failoverEventsTopicArn"
    # The SSM parameter the promoter arms itself with (secondary region); operators read it,
    # or set it to promote by hand (RUNBOOK.md).
    ARMING_PARAMETER_NAME = "armingParameterName"
    # The promoter's failover ledger (DynamoDB, secondary region): one item per failover.
    LEDGER_TABLE_NAME = "failoverLedgerTableName"
    FENCE_METRIC_NAMESPACE = "fenceMetricNamespace"
    # The managed policy applications attach for IAM database authentication on either
    # instance (rds-db:connect names each instance's region and resource id).
    DATABASE_CONNECT_POLICY_ARN = "databaseConnectPolicyArn"
    AUTOMATION_MODE = "automationMode"
    MAX_PROMOTION_LAG_SECONDS = "maxAutomaticPromotionLagSeconds"
    # Worst cases, from config, of the two failure paths (RUNBOOK.md, "Timings").
    INSTANCE_FAILURE_WORST_CASE_SECONDS = "instanceFailureWorstCaseSeconds"
    REGION_OUTAGE_WORST_CASE_SECONDS = "regionOutageWorstCaseSeconds"

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return _constants(cls)


def _constants(cls: type) -> tuple[str, ...]:
    return tuple(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))


# What each layer promises to export; the offline plan and tests check it.
EXPORTS: dict[str, tuple[str, ...]] = {
    "network": NetworkOutputs.all(),
    "primary-db": PrimaryDbOutputs.all(),
    "secondary-db": SecondaryDbOutputs.all(),
    "dns-failover": FailoverOutputs.all(),
}


def stack_reference_name(common: CommonSettings, layer: str) -> str:
    """``<org>/<project>/<stack>``: the same stack name in every layer."""
    return f"{common.organization}/{PROJECTS[layer]}/{common.stack}"


class MissingOutputError(pulumi.RunError):
    """An upstream stack lacks an output this layer needs, or exports one that contradicts
    this layer's config. Raised inside an apply: as a RunError, `pulumi up` reports it as
    its one-line message instead of a traceback (pulumi-language-python-exec)."""


# The config key each exported region answers to, so a mismatch names what to fix.
_REGION_CONFIG_KEYS = {
    NetworkOutputs.PRIMARY.region: "aws:region",
    PrimaryDbOutputs.REGION: "aws:region",
    NetworkOutputs.SECONDARY.region: "secondaryRegion",
    SecondaryDbOutputs.REGION: "secondaryRegion",
}


class LayerReference:
    """A StackReference to an upstream layer that fails clearly on missing outputs."""

    def __init__(self, common: CommonSettings, layer: str):
        if layer not in PROJECTS:
            raise ValueError(f"unknown layer {layer!r}; expected one of {', '.join(LAYERS)}")
        self.layer = layer
        self.name = stack_reference_name(common, layer)
        self._ref = pulumi.StackReference(self.name)

    def require(self, key: str) -> pulumi.Output[Any]:
        if key not in EXPORTS[self.layer]:
            raise KeyError(f"{key!r} is not part of the {self.layer} layer's output contract")
        return self._ref.get_output(key).apply(lambda value: self._check(key, value))

    def _check(self, key: str, value: Any) -> Any:
        if value is None:
            raise MissingOutputError(
                f"stack {self.name} has no output '{key}': deploy the {self.layer} layer "
                f"for this stack first (make up-{self.layer} ENV_SUFFIX=<suffix>)"
            )
        return value

    def require_matching(self, key: str, expected: str) -> pulumi.Output[Any]:
        """Like ``require``, and fail if the upstream value differs from ``expected``.

        Used for the regions: every layer reads them from its own config, and a
        layer configured for other regions than the network it stands on must
        stop instead of building in the wrong place.
        """

        config_key = _REGION_CONFIG_KEYS.get(key, "aws:region/secondaryRegion")

        def check(value: Any) -> Any:
            if value != expected:
                raise MissingOutputError(
                    f"config '{config_key}': stack {self.name} exports {key}={value!r} but this "
                    f"layer is configured for {expected!r}: set the same {config_key} in every layer"
                )
            return value

        return self.require(key).apply(check)
