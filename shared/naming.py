"""Physical and logical names for every resource, in one place.

Every physical name is ``<base>-<suffix>`` (Cloud Posse null-label style: one
label, one delimiter, the environment suffix last), or embeds that label where
AWS prescribes a shape (``alias/<base>-<suffix>`` for KMS aliases,
``/aws/lambda/<function>`` for log groups). Logical Pulumi names are the same
label, so auto-named resources carry the suffix too.

The catalog below records, for every physical name the project builds, the
tightest AWS limit it must fit. Config validation derives the longest
acceptable suffix from it, so an over-long suffix is rejected before any
resource is registered instead of failing half-way through a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class NameKind(Enum):
    """AWS name families: (length limit, what AWS calls the name) from the API references.

    Each value carries its label so that families sharing a limit stay distinct
    members (an Enum with equal plain values would alias them).
    """

    RDS_IDENTIFIER = (63, "RDS identifier")  # DBInstanceIdentifier, DBSubnetGroupName...
    IAM_ROLE = (64, "IAM role name")
    LAMBDA_FUNCTION = (64, "Lambda function name")
    EVENTBRIDGE_RULE = (64, "EventBridge rule name")
    SECURITY_GROUP = (255, "security group name")
    SNS_TOPIC = (256, "SNS topic name")
    CLOUDWATCH_ALARM = (255, "CloudWatch alarm name")
    CLOUDWATCH_DASHBOARD = (255, "CloudWatch dashboard name")
    KMS_ALIAS = (256, "KMS alias name")  # including "alias/"
    RDS_EVENT_SUBSCRIPTION = (255, "RDS event subscription name")
    DNS_LABEL = (63, "DNS label")
    # PutParameter Name: 1011 characters counted over the whole parameter ARN, not the bare name
    SSM_PARAMETER = (1011, "SSM parameter name")
    DYNAMODB_TABLE = (255, "DynamoDB table name")
    IAM_POLICY = (128, "IAM policy name")
    TAG_VALUE = (256, "tag value")
    GENERIC = (255, "Name tag")  # names AWS only stores as a Name tag or description

    @property
    def limit(self) -> int:
        return self.value[0]

    @property
    def label(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class NameSpec:
    """A base name and the AWS name family its physical name belongs to.

    ``overhead`` counts characters AWS or the project adds around the label
    (for example ``alias/`` in a KMS alias, whose limit counts it).
    """

    base: str
    kind: NameKind
    overhead: int = 0

    def max_suffix_length(self) -> int:
        # "<base>-<suffix>" plus any prescribed prefix must fit the limit.
        return self.kind.limit - self.overhead - len(self.base) - 1


# An upper bound of "arn:<partition>:ssm:<region>:<account>:parameter/" (long partition and
# region names), the part of an SSM parameter ARN that counts against the name's limit.
SSM_ARN_PREFIX_BOUND = "arn:aws-iso-b:ssm:ap-southeast-7:123456789012:parameter/"


# Major versions whose TLS parameter group names are catalogued. A version added to
# shared.config.SUPPORTED_PG_MAJOR_VERSIONS must be added here too (a unit test checks it).
PARAMETER_GROUP_MAJOR_VERSIONS = ("15", "16", "17", "18")

# The dns-failover layer's functions, by the region (role) they run in. Their log groups are
# encrypted with the database key of that region, whose key policy names exactly these groups.
FAILOVER_FUNCTION_BASES = {
    "primary": ("db-canary",),
    "secondary": ("db-promoter", "db-replica-canary"),
}


def tls_parameter_group_base(role: str, major: str) -> str:
    """``pg17-tls-primary``: a parameter group's name base carries its major version.

    A new major version needs a group of a new family, and the family cannot be changed in
    place: the provider replaces the group, creating the new one before deleting the old.
    With the version in the name the two never collide, and the instance moves from one to
    the other in the upgrade's own modify call.
    """
    return f"pg{major}-tls-{role}"


# Every base name the layers use, with the family that constrains it. Layers
# must take their names from here (through ``Namer``), so the suffix-length
# rule in config validation stays exact. Add a name here before using it.
CATALOG: dict[str, NameSpec] = {
    spec.base: spec
    for spec in [
        # network
        NameSpec("vpc-primary", NameKind.GENERIC),
        NameSpec("vpc-secondary", NameKind.GENERIC),
        NameSpec("flow-logs-role", NameKind.IAM_ROLE),
        NameSpec("db-access-primary", NameKind.SECURITY_GROUP),
        NameSpec("db-access-secondary", NameKind.SECURITY_GROUP),
        NameSpec("db-clients-primary", NameKind.SECURITY_GROUP),
        NameSpec("db-clients-secondary", NameKind.SECURITY_GROUP),
        NameSpec("db-probe-primary", NameKind.SECURITY_GROUP),
        NameSpec("db-probe-secondary", NameKind.SECURITY_GROUP),
        # The key each region's flow-log group is encrypted with: the network layer deploys
        # before any database key exists.
        NameSpec("flow-logs-primary", NameKind.KMS_ALIAS, overhead=len("alias/")),
        NameSpec("flow-logs-secondary", NameKind.KMS_ALIAS, overhead=len("alias/")),
        # databases
        NameSpec("pg-primary", NameKind.RDS_IDENTIFIER),
        NameSpec("pg-replica", NameKind.RDS_IDENTIFIER),
        NameSpec("pg-subnets-primary", NameKind.RDS_IDENTIFIER),
        NameSpec("pg-subnets-secondary", NameKind.RDS_IDENTIFIER),
        # Logical names of the TLS parameter groups; their physical names carry the major
        # version (tls_parameter_group_base) and are catalogued below.
        NameSpec("pg-tls-primary", NameKind.RDS_IDENTIFIER),
        NameSpec("pg-tls-secondary", NameKind.RDS_IDENTIFIER),
        *(NameSpec(tls_parameter_group_base(role, major), NameKind.RDS_IDENTIFIER)
          for role in ("primary", "secondary") for major in PARAMETER_GROUP_MAJOR_VERSIONS),
        NameSpec("rds-monitoring-primary", NameKind.IAM_ROLE),
        NameSpec("rds-monitoring-secondary", NameKind.IAM_ROLE),
        NameSpec("rds-primary", NameKind.KMS_ALIAS, overhead=len("alias/")),
        NameSpec("rds-secondary", NameKind.KMS_ALIAS, overhead=len("alias/")),
        NameSpec("db-alerts-primary", NameKind.SNS_TOPIC),
        NameSpec("db-alerts-secondary", NameKind.SNS_TOPIC),
        NameSpec("pg-events-primary", NameKind.RDS_EVENT_SUBSCRIPTION),
        NameSpec("pg-events-secondary", NameKind.RDS_EVENT_SUBSCRIPTION),
        NameSpec("pg-primary-cpu", NameKind.CLOUDWATCH_ALARM),
        NameSpec("pg-primary-free-storage", NameKind.CLOUDWATCH_ALARM),
        NameSpec("pg-primary-freeable-memory", NameKind.CLOUDWATCH_ALARM),
        NameSpec("pg-primary-connections", NameKind.CLOUDWATCH_ALARM),
        NameSpec("pg-replica-cpu", NameKind.CLOUDWATCH_ALARM),
        NameSpec("pg-replica-free-storage", NameKind.CLOUDWATCH_ALARM),
        NameSpec("pg-replica-lag", NameKind.CLOUDWATCH_ALARM),
        # dns-failover
        # FunctionName is limited to 64 characters on its own (CreateFunction); the log
        # group "/aws/lambda/<function>" may have 512 (CreateLogGroup), so it never binds.
        NameSpec("db-canary", NameKind.LAMBDA_FUNCTION),
        # The second canary, probing the replica from the secondary VPC.
        NameSpec("db-replica-canary", NameKind.LAMBDA_FUNCTION),
        NameSpec("db-promoter", NameKind.LAMBDA_FUNCTION),
        NameSpec("db-canary-role", NameKind.IAM_ROLE),
        NameSpec("db-replica-canary-role", NameKind.IAM_ROLE),
        NameSpec("db-promoter-role", NameKind.IAM_ROLE),
        NameSpec("db-canary-schedule", NameKind.EVENTBRIDGE_RULE),
        NameSpec("db-replica-canary-schedule", NameKind.EVENTBRIDGE_RULE),
        NameSpec("db-promoter-schedule", NameKind.EVENTBRIDGE_RULE),
        NameSpec("db-canary-alarm", NameKind.SNS_TOPIC),
        NameSpec("db-failover-events", NameKind.SNS_TOPIC),
        NameSpec("db-failover", NameKind.CLOUDWATCH_DASHBOARD),
        NameSpec("db", NameKind.DNS_LABEL),
        NameSpec("db-canary-errors", NameKind.CLOUDWATCH_ALARM),
        NameSpec("db-replica-canary-errors", NameKind.CLOUDWATCH_ALARM),
        # Writers fenced onto the replica (the promoter's FailoverFenced metric), and the
        # Route 53 health check of the writer's PRIMARY member that follows it.
        NameSpec("db-failover-fenced", NameKind.CLOUDWATCH_ALARM),
        NameSpec("db-writer-fence", NameKind.GENERIC),  # Route 53 health check Name tag
        # The promoter's failover ledger (DynamoDB, secondary region).
        NameSpec("db-failover-ledger", NameKind.DYNAMODB_TABLE),
        NameSpec("db-promoter-errors", NameKind.CLOUDWATCH_ALARM),
        NameSpec("db-primary-health", NameKind.GENERIC),  # Route 53 health check Name tag
        NameSpec("db-promoter-decisions", NameKind.GENERIC),  # log metric filter (512)
        NameSpec("db-promoter-stuck", NameKind.GENERIC),  # log metric filter (512)
        NameSpec("db-failover-stuck", NameKind.CLOUDWATCH_ALARM),
        # The promoter's arming record (SSM Parameter Store, secondary region). AWS counts the
        # name's limit over its ARN: leave room for the longest ARN prefix.
        NameSpec("db-failover-armed", NameKind.SSM_PARAMETER, overhead=len(SSM_ARN_PREFIX_BOUND)),
        # The managed policy applications attach for IAM database authentication (IAM, global).
        NameSpec("db-connect", NameKind.IAM_POLICY),
    ]
}


def max_suffix_length() -> int:
    """The longest suffix every catalogued name still fits with."""
    return min(spec.max_suffix_length() for spec in CATALOG.values())


def tightest_name() -> NameSpec:
    """The catalogued name that limits the suffix length (for error messages)."""
    return min(CATALOG.values(), key=NameSpec.max_suffix_length)


@dataclass(frozen=True)
class Namer:
    """Builds names that carry the environment suffix.

    ``namer.name("pg-primary")`` -> ``"pg-primary-<suffix>"``. Only catalogued
    bases are accepted for physical names, so the suffix-length validation
    covers every name that reaches AWS.
    """

    suffix: str

    def name(self, base: str) -> str:
        """Physical (and logical) name of a catalogued resource."""
        if base not in CATALOG:
            raise KeyError(
                f"name base {base!r} is not in shared.naming.CATALOG; add it with its AWS "
                "name family so the suffix-length rule covers it"
            )
        return f"{base}-{self.suffix}"

    def logical(self, *parts: str) -> str:
        """Logical name for a resource AWS names itself (attachments, rules...)."""
        return "-".join([*parts, self.suffix])

    def kms_alias(self, base: str) -> str:
        return f"alias/{self.name(base)}"

    def lambda_log_group(self, function_base: str) -> str:
        return f"/aws/lambda/{self.name(function_base)}"
