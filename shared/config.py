"""Typed, validated settings for every layer, read once from Pulumi config.

Each layer calls ``load_<layer>_settings()`` first thing in its ``__main__.py``.
All validation happens there, before any resource is registered: a bad value
raises ``ConfigError`` naming the key and the rule it broke, and nothing is
created. The rules are plain functions over a ``ConfigSource`` so tests can
exercise every rule with a dictionary and no Pulumi runtime.

Keys live in each project's own namespace (``pulumi config set <key> ...``),
except the primary region, which is the provider's ``aws:region``. Defaults are
documented in each layer's ``Pulumi.yaml`` and in the README; an empty string
means "derive the default" for keys whose default depends on the suffix. A key
of the project's namespace that its ``Pulumi.yaml`` does not declare, and any
``aws:*`` key but ``aws:region``, is refused (``check_declared``).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol, TypeVar

from shared import naming, project_files

try:
    # Under `pulumi up` the program's entry point (pulumi-language-python-exec) logs a
    # pulumi.RunError as its message alone and any other exception as "Program failed with
    # an unhandled exception" plus a traceback. Config errors are RunErrors, as Pulumi's own
    # (pulumi.config.ConfigTypeError), so a bad value reads as one line.
    from pulumi import RunError as _ProgramError
except ImportError:  # offline.preflight runs on the standard library alone
    _ProgramError = Exception  # type: ignore[assignment,misc]

T = TypeVar("T")

DEFAULT_PRIMARY_REGION = "us-east-1"
DEFAULT_SECONDARY_REGION = "us-west-2"
DEFAULT_PROJECT_TAG = "rds-multi-region-failover"

# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
    2192, 2557, 2922, 3288, 3653,
)
# RDS enhanced monitoring intervals (MonitoringInterval); 0 would turn it off.
MONITORING_INTERVALS = (1, 5, 10, 15, 30, 60)
# Major versions RDS for PostgreSQL offers under standard support (release calendar),
# from 15 on: RDS refuses a parameter group when it creates a cross-region replica, so
# the replica starts on the engine's default group until its own group applies at a
# reboot, and only from 15 on does the default group force TLS (rds.force_ssl = 1).
SUPPORTED_PG_MAJOR_VERSIONS = ("15", "16", "17", "18")
# CloudWatch Database Insights modes (CreateDBInstance DatabaseInsightsMode). Advanced
# needs Performance Insights kept 465 days and is billed; standard keeps the free 7 days.
DATABASE_INSIGHTS_MODES = ("standard", "advanced")
PERFORMANCE_INSIGHTS_RETENTION_DAYS = {"standard": 7, "advanced": 465}
AUTOMATION_MODES = ("automatic", "manual", "dry-run")
# Failover timing. Route 53 alarm-based health checks accept standard-resolution metrics
# only (Route 53 API Reference, AlarmIdentifier), so one minute is the finest period.
ALARM_PERIOD_SECONDS = 60
ALARM_EVALUATION_DELAY_SECONDS = 60
# An estimate: AWS publishes no figure for how soon an alarm-based check follows its alarm.
ROUTE53_ALARM_PICKUP_SECONDS = 30
PROMOTER_SCHEDULE_SECONDS = 60
# The replica canary resolves witness.<zone> once a minute (its schedule).
WITNESS_RELAY_SECONDS = 60
# A promoter run reads its evidence in parallel, then may arm, claim the ledger, promote,
# settle the ledger, publish the fence metric, stop the old primary and notify: its Lambda
# timeout covers this many worst-case AWS calls (see the promoter's docstring).
PROMOTER_CALLS_PER_RUN = 8
PROMOTER_MIN_TIMEOUT_SECONDS = 60
# Each promoter call may try for at most this long in total before giving up.
PROMOTER_MAX_CALL_SECONDS = 60
# A run's claim on the failover ledger outlives the run by this much before another run
# may take it over (the run may still be waiting for RDS's answer at its timeout).
CLAIM_LEASE_MARGIN_SECONDS = 60
# "witness." is the longest label the failover layer puts in front of the zone name.
_RECORD_PREFIX_LENGTH = len("witness.")

_SUFFIX_RE = re.compile(r"^[a-z0-9-]+\Z")  # \Z: "$" would let a trailing newline through
# Key policies and service principals name <service>.<region>.amazonaws.com: only partitions
# with that DNS suffix are supported (not China, amazonaws.com.cn, nor the ISO partitions).
_SUPPORTED_DNS_SUFFIX = "amazonaws.com"
# The private address ranges of RFC 1918; ipaddress's is_private also admits loopback,
# link-local, benchmarking and other special-purpose ranges.
RFC1918_NETWORKS = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
_INSTANCE_CLASS_RE = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DAY_TIME = r"(mon|tue|wed|thu|fri|sat|sun):([01]\d|2[0-3]):[0-5]\d"
_TIME = r"([01]\d|2[0-3]):[0-5]\d"
_BACKUP_WINDOW_RE = re.compile(rf"^{_TIME}-{_TIME}$")
_MAINTENANCE_WINDOW_RE = re.compile(rf"^{_DAY_TIME}-{_DAY_TIME}$")
_SECRET_ARN_RE = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:.+$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(_ProgramError):
    """A config value broke a rule; the message names the key and the rule.

    Not a ValueError: the Pulumi SDK rewraps a ValueError raised while it resolves a
    resource input (an ``apply`` over an upstream stack's output, as in
    ``replica_storage_ceiling``) into a plain ValueError, which `pulumi up` then reports
    with a traceback (pulumi/runtime/rpc.py, serialize_properties).
    """

    def __init__(self, key: str, rule: str, value: object = None):
        self.key = key
        self.rule = rule
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"config '{key}': {rule}{shown}")


class ConfigSource(Protocol):
    """Where raw values come from: Pulumi config in a program, a dict in tests."""

    def get(self, key: str) -> str | None:
        """The raw value of ``key`` (``aws:region`` style keys for other namespaces)."""

    @property
    def stack(self) -> str: ...

    @property
    def organization(self) -> str: ...


@dataclass(frozen=True)
class DictSource:
    """A ConfigSource over a plain mapping; used by tests and the offline plan."""

    values: Mapping[str, object] = field(default_factory=dict)
    stack: str = "dev"
    organization: str = "organization"

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


class PulumiSource:
    """A ConfigSource over the running program's Pulumi config.

    Before any value is read it refuses stack config its layer's Pulumi.yaml does not
    declare (``check_declared``). The keys are those the language host hands the program
    in PULUMI_CONFIG (``pulumi.runtime.get_config_env``), which the program's entry point
    also loads into ``pulumi.Config`` with ``set_all_config``; the offline harness hands
    config over the same way.
    """

    def __init__(self) -> None:
        import pulumi

        self._project = pulumi.Config()
        self._pulumi = pulumi
        self._namespaces: dict[str, pulumi.Config] = {}
        layer = project_files.layer_of_project(pulumi.get_project())
        for key in sorted(pulumi.runtime.get_config_env()):
            check_declared(layer, key)

    def get(self, key: str) -> str | None:
        if ":" in key:
            namespace, _, name = key.partition(":")
            cfg = self._namespaces.setdefault(namespace, self._pulumi.Config(namespace))
            return cfg.get(name)
        return self._project.get(key)

    @property
    def stack(self) -> str:
        return self._pulumi.get_stack()

    @property
    def organization(self) -> str:
        return self._pulumi.get_organization()


# --------------------------------------------------------------------------- readers


def _raw(source: ConfigSource, key: str) -> str | None:
    value = source.get(key)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _string(source: ConfigSource, key: str, default: str) -> str:
    value = _raw(source, key)
    return default if value is None else value


def _integer(source: ConfigSource, key: str, default: int, low: int, high: int) -> int:
    raw = _raw(source, key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(key, "must be a whole number", raw) from None
    if not low <= value <= high:
        raise ConfigError(key, f"must be between {low} and {high}", value)
    return value


def _boolean(source: ConfigSource, key: str, default: bool) -> bool:
    raw = _raw(source, key)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ConfigError(key, "must be true or false", raw)


def _choice(source: ConfigSource, key: str, default: T, choices: tuple[T, ...],
            convert: Callable[[str], T] = str) -> T:  # type: ignore[assignment]
    raw = _raw(source, key)
    if raw is None:
        return default
    try:
        value = convert(raw)
    except ValueError:
        value = None  # type: ignore[assignment]
    if value not in choices:
        raise ConfigError(key, f"must be one of {', '.join(map(str, choices))}", raw)
    return value


# --------------------------------------------------------------------------- rules


def validate_suffix(key: str, suffix: str) -> str:
    if not suffix:
        raise ConfigError(key, "must not be empty")
    if not _SUFFIX_RE.match(suffix):
        raise ConfigError(
            key, "may contain only lower-case letters, digits and hyphens", suffix
        )
    if suffix.startswith("-") or suffix.endswith("-") or "--" in suffix:
        # RDS identifiers may not end with a hyphen or contain two in a row.
        raise ConfigError(
            key, "must not start or end with a hyphen or contain two hyphens in a row", suffix
        )
    limit = naming.max_suffix_length()
    if len(suffix) > limit:
        tight = naming.tightest_name()
        raise ConfigError(
            key,
            f"must be at most {limit} characters so '{tight.base}-<suffix>' fits the "
            f"{tight.kind.limit}-character limit of an AWS {tight.kind.label}",
            suffix,
        )
    return suffix


@dataclass(frozen=True)
class Partition:
    """An AWS partition as botocore's endpoint data describes it."""

    id: str
    name: str
    dns_suffix: str
    region_pattern: re.Pattern[str]
    regions: frozenset[str]

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})"


@cache
def aws_partitions() -> tuple[Partition, ...]:
    """The partitions and regions of the endpoint data the installed botocore ships.

    Frozen at that botocore release: a region AWS opens later is unknown here until
    botocore is upgraded. Imported on first use: offline.preflight may run without it.
    """
    from botocore.loaders import create_loader

    data = create_loader().load_data("endpoints")
    return tuple(
        Partition(id=p["partition"], name=p.get("partitionName", p["partition"]),
                  dns_suffix=p["dnsSuffix"], region_pattern=re.compile(p["regionRegex"]),
                  regions=frozenset(p["regions"]))
        for p in data["partitions"]
    )


def region_partition(key: str, region: str) -> Partition:
    """The partition of a region this project can deploy to; ConfigError otherwise."""
    partitions = aws_partitions()
    partition = next((p for p in partitions if region in p.regions), None) or next(
        (p for p in partitions if p.region_pattern.match(region)), None)
    if partition is None:
        raise ConfigError(key, "must be an AWS region code such as eu-west-1", region)
    if partition.dns_suffix != _SUPPORTED_DNS_SUFFIX:
        raise ConfigError(
            key, f"is in the {partition.label} partition, which this project does not support "
            "(its service endpoints differ from <service>.<region>.amazonaws.com)", region,
        )
    if region not in partition.regions:
        import botocore

        nearest = difflib.get_close_matches(region, sorted(partition.regions), n=2, cutoff=0)
        raise ConfigError(
            key, f"is not a region of the {partition.label} partition in the endpoint data of "
            f"the installed botocore {botocore.__version__} (nearest: {', '.join(nearest)}); a "
            "region AWS opened after that botocore release is refused until botocore is "
            "upgraded (pip install --upgrade boto3 botocore)", region,
        )
    return partition


def validate_region(key: str, region: str) -> str:
    region_partition(key, region)
    return region


def validate_region_pair(primary: str, secondary: str, primary_key: str = "aws:region",
                         secondary_key: str = "secondaryRegion") -> None:
    """Both regions in one partition: partitions are separate IAM worlds, and cross-region
    features (here the replica, its KMS grant, the cross-region alarm subscription) work
    only within one (AWS whitepaper "AWS Fault Isolation Boundaries", Partitions)."""
    first = region_partition(primary_key, primary)
    second = region_partition(secondary_key, secondary)
    if first != second:
        raise ConfigError(
            secondary_key, f"is in the {second.label} partition but {primary_key} ({primary}) "
            f"is in {first.label}: both regions must be in one partition, since credentials "
            "and cross-region replication do not cross partitions", secondary,
        )


def validate_cidr(key: str, cidr: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        raise ConfigError(key, f"must be an IPv4 network in CIDR notation ({exc})", cidr) from None
    # A VPC block must be /16 to /28; this project carves at least two /24-sized
    # (or smaller) subnets, which needs a /22 or larger block to be useful.
    if not 16 <= network.prefixlen <= 22:
        raise ConfigError(key, "must have a prefix length between /16 and /22", cidr)
    if not any(network.subnet_of(private) for private in RFC1918_NETWORKS):
        raise ConfigError(
            key, "must be a private (RFC 1918) range: within 10.0.0.0/8, 172.16.0.0/12 or "
            "192.168.0.0/16", cidr,
        )
    return network


def _parse_minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _window_minutes(key: str, window: str, weekly: bool) -> list[tuple[int, int]]:
    """Minute intervals (within a week) covered by a window, wrapping split in two."""
    start, end = window.split("-")
    if weekly:
        sd, st = start.split(":", 1)
        ed, et = end.split(":", 1)
        begin = _DAYS.index(sd) * 1440 + _parse_minutes(st)
        finish = _DAYS.index(ed) * 1440 + _parse_minutes(et)
        period = 7 * 1440
    else:
        begin, finish = _parse_minutes(start), _parse_minutes(end)
        period = 1440
    length = (finish - begin) % period
    if length < 30:
        # Both RDS windows must be at least 30 minutes long.
        raise ConfigError(key, "must be at least 30 minutes long", window)
    if weekly:
        return _split(begin, length, period)
    # A daily window recurs on every day of the week.
    return [iv for day in range(7) for iv in _split(day * 1440 + begin, length, 7 * 1440)]


def _split(begin: int, length: int, period: int) -> list[tuple[int, int]]:
    begin %= period
    end = begin + length
    if end <= period:
        return [(begin, end)]
    return [(begin, period), (0, end - period)]


def validate_windows(backup_window: str, maintenance_window: str) -> None:
    if not _BACKUP_WINDOW_RE.match(backup_window):
        raise ConfigError("backupWindow", "must look like hh24:mi-hh24:mi in UTC", backup_window)
    if not _MAINTENANCE_WINDOW_RE.match(maintenance_window):
        raise ConfigError(
            "maintenanceWindow", "must look like ddd:hh24:mi-ddd:hh24:mi in UTC",
            maintenance_window,
        )
    backup = _window_minutes("backupWindow", backup_window, weekly=False)
    maintenance = _window_minutes("maintenanceWindow", maintenance_window, weekly=True)
    for b0, b1 in backup:
        for m0, m1 in maintenance:
            if b0 < m1 and m0 < b1:
                # RDS rejects overlapping windows at CreateDBInstance time.
                raise ConfigError(
                    "maintenanceWindow",
                    f"must not overlap backupWindow ({backup_window})",
                    maintenance_window,
                )


def validate_log_retention(key: str, days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            key, f"must be a CloudWatch Logs retention value ({', '.join(map(str, LOG_RETENTION_DAYS))})",
            days,
        )
    return days


def _log_retention(source: ConfigSource, key: str) -> int:
    return validate_log_retention(key, _integer(source, key, 30, 1, 3653))


def validate_instance_class(key: str, value: str) -> str:
    if not _INSTANCE_CLASS_RE.match(value):
        raise ConfigError(key, "must be an RDS instance class such as db.m6g.large", value)
    if value.startswith(("db.t2.", "db.m1.", "db.m2.", "db.m3.", "db.r3.")):
        raise ConfigError(key, "is a previous-generation class RDS PostgreSQL no longer offers", value)
    return value


def validate_email(key: str, value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise ConfigError(key, "must be an e-mail address", value)
    return value


def _alarm_email(source: ConfigSource) -> str | None:
    email = _raw(source, "alarmEmail")
    return validate_email("alarmEmail", email) if email else None


def validate_dns_name(key: str, value: str) -> str:
    name = value.rstrip(".").lower()
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_DNS_LABEL_RE.match(lb) for lb in labels):
        raise ConfigError(
            key, "must be a DNS name of at least two labels (letters, digits, hyphens, "
            "at most 63 characters each)", value,
        )
    return name


# --------------------------------------------------------------------------- declared keys

# The only aws:* stack config a layer reads (load_common). The layers' AWS providers are
# explicit (shared/providers.py), and an explicit pulumi-aws provider takes no aws:* stack
# config by design (pulumi-aws issues 1307 and 3259): aws:profile or aws:assumeRoles would
# be ignored and the layer would deploy with whatever credentials the environment holds.
_AWS_KEYS_READ = frozenset({"aws:region"})


def _split_key(layer: str, key: str) -> tuple[str, str]:
    """(namespace, name) of a stack-config key; a bare name is in the layer's own namespace."""
    namespace, sep, name = key.partition(":")
    return (namespace, name) if sep else (project_files.project_name(layer), key)


def check_declared(layer: str, key: str, shown: str | None = None) -> None:
    """Refuse stack-config ``key`` unless ``layer`` reads it.

    ``key`` is written as in a stack's config (``rds-network:subnetsPerRegion``,
    ``aws:region``) or as a bare name of the layer's own namespace. The layer's own keys
    are exactly those its Pulumi.yaml declares; of aws:* only aws:region is read; other
    namespaces configure nothing the layers read and pass, as Pulumi lets them. The error
    names the key as ``shown`` (the caller's spelling), never its value: it may be a secret.
    """
    namespace, name = _split_key(layer, key)
    shown = shown or key
    if namespace == "aws":
        if f"aws:{name}" not in _AWS_KEYS_READ:
            raise ConfigError(
                shown, "is not read: every AWS provider of this project is explicit and takes "
                "only aws:region from stack config; give credentials through the environment "
                "(AWS_PROFILE, aws sso login, AWS_ACCESS_KEY_ID...) and remove this key",
            )
        return
    if namespace == project_files.project_name(layer) and (
            name not in project_files.declared_keys(layer)):
        raise _undeclared(shown, name, [layer])


def accepting_layers(key: str, layers: Iterable[str]) -> list[str]:
    """The layers among ``layers`` that read ``key`` (see ``check_declared``), in order.

    For config given to several layers at once (``make plan --config key=value``): a bare
    name goes to the layers that declare it. ConfigError if no layer reads the key.
    """
    layers = list(layers)
    namespace, sep, name = key.partition(":")
    owner = next((layer for layer in project_files.layers()
                  if sep and project_files.project_name(layer) == namespace), None)
    if owner is not None:
        # Written in one layer's namespace (rds-primary-db:multiAz): that layer's key alone.
        check_declared(owner, key)
        if owner in layers:
            return [owner]
        raise _undeclared(key, name, layers)
    accepting = []
    for layer in layers:
        try:
            check_declared(layer, key)
        except ConfigError:
            continue
        accepting.append(layer)
    if accepting or not layers:
        return accepting
    namespace, name = _split_key(layers[0], key)
    if namespace == "aws":
        check_declared(layers[0], key)  # raises the aws:* refusal
    raise _undeclared(key, name, layers)


def _undeclared(shown: str, name: str, layers: list[str]) -> ConfigError:
    declared = sorted(set().union(*(project_files.declared_keys(layer) for layer in layers)))
    nearest = difflib.get_close_matches(name, declared, n=1, cutoff=0)
    where = (f"stacks/{layers[0]}/Pulumi.yaml" if len(layers) == 1
             else f"the Pulumi.yaml of any of {', '.join(layers)}")
    rule = f"is not declared in {where}, so it would be ignored"
    elsewhere = [layer for layer in project_files.layers()
                 if layer not in layers and name in project_files.declared_keys(layer)]
    if elsewhere:
        # Right key, wrong layer: the layers that read it say more than a look-alike.
        rule += f"; only {', '.join(elsewhere)} declare it"
    elif nearest:
        rule += f"; the nearest declared key is '{nearest[0]}'"
    return ConfigError(shown, rule)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CommonSettings:
    """What every layer shares: the suffix, both regions, tags and stack references."""

    environment_suffix: str
    primary_region: str
    secondary_region: str
    project_tag: str
    organization: str
    stack: str
    owner: str | None = None

    @property
    def namer(self) -> naming.Namer:
        return naming.Namer(self.environment_suffix)


def load_common(source: ConfigSource) -> CommonSettings:
    suffix = validate_suffix(
        "environmentSuffix", _string(source, "environmentSuffix", source.stack)
    )
    primary = validate_region(
        "aws:region", _string(source, "aws:region", DEFAULT_PRIMARY_REGION)
    )
    secondary = validate_region(
        "secondaryRegion", _string(source, "secondaryRegion", DEFAULT_SECONDARY_REGION)
    )
    if primary == secondary:
        raise ConfigError(
            "secondaryRegion", f"must differ from the primary region aws:region ({primary})",
            secondary,
        )
    validate_region_pair(primary, secondary)
    project_tag = _string(source, "projectTag", DEFAULT_PROJECT_TAG)
    if len(project_tag) > naming.NameKind.TAG_VALUE.limit:
        raise ConfigError("projectTag", "must be at most 256 characters", project_tag)
    owner = _raw(source, "owner")
    return CommonSettings(
        environment_suffix=suffix,
        primary_region=primary,
        secondary_region=secondary,
        project_tag=project_tag,
        organization=_string(source, "organization", source.organization),
        stack=source.stack,
        owner=owner,
    )


@dataclass(frozen=True)
class NetworkSettings:
    common: CommonSettings
    primary_cidr: str
    secondary_cidr: str
    subnets_per_region: int
    flow_log_retention_days: int


def load_network_settings(source: ConfigSource | None = None) -> NetworkSettings:
    source = source or PulumiSource()
    common = load_common(source)
    primary_key, secondary_key = "primaryVpcCidr", "secondaryVpcCidr"
    primary = validate_cidr(primary_key, _string(source, primary_key, "10.10.0.0/16"))
    secondary = validate_cidr(secondary_key, _string(source, secondary_key, "10.20.0.0/16"))
    if primary.overlaps(secondary):
        raise ConfigError(
            secondary_key, f"must not overlap primaryVpcCidr ({primary})", str(secondary)
        )
    # Two is the default because some regions offer only two availability zones;
    # each subnet gets 1/8 of the VPC block (see the network layer).
    subnets = _integer(source, "subnetsPerRegion", 2, 2, 6)
    retention = _log_retention(source, "flowLogRetentionDays")
    return NetworkSettings(common, str(primary), str(secondary), subnets, retention)


@dataclass(frozen=True)
class DatabaseAlerting:
    """Alarm thresholds and the optional e-mail subscriber of a database layer."""

    alarm_email: str | None
    cpu_threshold_percent: int
    free_storage_threshold_gib: int
    log_retention_days: int


def _load_alerting(source: ConfigSource) -> DatabaseAlerting:
    return DatabaseAlerting(
        alarm_email=_alarm_email(source),
        cpu_threshold_percent=_integer(source, "cpuAlarmThresholdPercent", 80, 1, 100),
        free_storage_threshold_gib=_integer(source, "freeStorageAlarmThresholdGiB", 5, 1, 1000),
        log_retention_days=_log_retention(source, "logRetentionDays"),
    )


@dataclass(frozen=True)
class DatabaseTuning:
    """Observability and change-handling settings both database layers share."""

    database_insights_mode: str
    log_min_duration_statement_ms: int
    apply_immediately: bool

    @property
    def performance_insights_retention_days(self) -> int:
        return PERFORMANCE_INSIGHTS_RETENTION_DAYS[self.database_insights_mode]


def _load_tuning(source: ConfigSource, apply_immediately_default: bool) -> DatabaseTuning:
    return DatabaseTuning(
        database_insights_mode=_choice(
            source, "databaseInsightsMode", "standard", DATABASE_INSIGHTS_MODES
        ),
        # -1 turns statement-duration logging off (PostgreSQL log_min_duration_statement).
        log_min_duration_statement_ms=_integer(
            source, "logMinDurationStatementMs", 1000, -1, 3_600_000
        ),
        apply_immediately=_boolean(source, "applyImmediately", apply_immediately_default),
    )


@dataclass(frozen=True)
class PrimaryDbSettings:
    common: CommonSettings
    engine_major_version: str
    instance_class: str
    multi_az: bool
    allocated_storage_gib: int
    max_allocated_storage_gib: int
    backup_retention_days: int
    backup_window: str
    maintenance_window: str
    master_secret_id: str
    database_name: str
    monitoring_interval_seconds: int
    max_connections_alarm_threshold: int
    freeable_memory_threshold_mib: int
    alerting: DatabaseAlerting
    tuning: DatabaseTuning

    @property
    def parameter_group_family(self) -> str:
        return f"postgres{self.engine_major_version}"


def _validate_storage(allocated: int, maximum: int) -> None:
    # RDS requires the autoscaling ceiling to be at least 10% above the allocation.
    if maximum * 10 < allocated * 11:  # integers: 100 * 1.1 is 110.00000000000001
        raise ConfigError(
            "maxAllocatedStorageGiB", f"must be at least 10% above allocatedStorageGiB ({allocated})",
            maximum,
        )


def load_primary_db_settings(source: ConfigSource | None = None) -> PrimaryDbSettings:
    source = source or PulumiSource()
    common = load_common(source)
    version = _choice(source, "engineMajorVersion", "17", SUPPORTED_PG_MAJOR_VERSIONS)
    instance_class = validate_instance_class(
        "instanceClass", _string(source, "instanceClass", "db.m6g.large")
    )
    allocated = _integer(source, "allocatedStorageGiB", 50, 20, 65536)
    maximum = _integer(source, "maxAllocatedStorageGiB", 200, 22, 65536)
    _validate_storage(allocated, maximum)
    backup_window = _string(source, "backupWindow", "03:00-04:00")
    maintenance_window = _string(source, "maintenanceWindow", "sun:05:00-sun:06:00")
    validate_windows(backup_window, maintenance_window)
    secret_id = _string(source, "masterSecretId", f"rds-master-{common.environment_suffix}")
    arn = _SECRET_ARN_RE.match(secret_id)
    if secret_id.startswith("arn:") and not arn:
        raise ConfigError("masterSecretId", "must be a secret name or a Secrets Manager ARN",
                          secret_id)
    if arn and arn.group(1) != common.primary_region:
        # The secret is read through the primary region's provider.
        raise ConfigError(
            "masterSecretId",
            f"must be a secret in the primary region {common.primary_region}", secret_id,
        )
    db_name = _string(source, "databaseName", "appdb")
    if not re.match(r"^[a-z][a-z0-9_]{0,62}$", db_name) or db_name in ("postgres", "template0",
                                                                       "template1"):
        raise ConfigError(
            "databaseName", "must start with a letter, use lower-case letters, digits or "
            "underscores, be at most 63 characters and not be a reserved database name", db_name,
        )
    return PrimaryDbSettings(
        common=common,
        engine_major_version=version,
        instance_class=instance_class,
        multi_az=_boolean(source, "multiAz", True),
        allocated_storage_gib=allocated,
        max_allocated_storage_gib=maximum,
        backup_retention_days=_integer(source, "backupRetentionDays", 7, 1, 35),
        backup_window=backup_window,
        maintenance_window=maintenance_window,
        master_secret_id=secret_id,
        database_name=db_name,
        monitoring_interval_seconds=_choice(
            source, "monitoringIntervalSeconds", 60, MONITORING_INTERVALS, int
        ),
        max_connections_alarm_threshold=_integer(
            source, "connectionsAlarmThreshold", 400, 1, 100000
        ),
        freeable_memory_threshold_mib=_integer(source, "freeableMemoryAlarmThresholdMiB", 256,
                                               16, 1048576),
        alerting=_load_alerting(source),
        # The writer defers disruptive modifications to its maintenance window.
        tuning=_load_tuning(source, apply_immediately_default=False),
    )


@dataclass(frozen=True)
class SecondaryDbSettings:
    common: CommonSettings
    instance_class: str | None  # None: use the primary's class (read from its stack)
    multi_az: bool
    max_allocated_storage_gib: int | None  # None: the primary's ceiling (read from its stack)
    replica_promoted: bool
    backup_retention_days_after_promotion: int
    replica_lag_threshold_seconds: int
    monitoring_interval_seconds: int
    alerting: DatabaseAlerting
    backup_window: str
    maintenance_window: str
    tuning: DatabaseTuning


def replica_storage_ceiling(configured: int | None, primary_ceiling: int) -> int:
    """The replica's autoscaling ceiling: never below the primary's.

    The replica starts with the primary's storage and receives every write; if the primary
    may grow past the replica's ceiling, the replica fills up and replication stops.
    """
    if configured is None:
        return primary_ceiling
    if configured < primary_ceiling:
        raise ConfigError(
            "maxAllocatedStorageGiB",
            f"must be at least the primary's ceiling ({primary_ceiling} GiB, primary-db "
            "maxAllocatedStorageGiB) so the replica can hold everything the primary may store",
            configured,
        )
    return configured


def load_secondary_db_settings(source: ConfigSource | None = None) -> SecondaryDbSettings:
    source = source or PulumiSource()
    common = load_common(source)
    instance_class = _raw(source, "instanceClass")
    # Maintenance defaults to a different hour than the primary's so both copies are
    # never in maintenance at once; the backup window only matters after promotion.
    backup_window = _string(source, "backupWindow", "03:00-04:00")
    maintenance_window = _string(source, "maintenanceWindow", "sun:07:00-sun:08:00")
    validate_windows(backup_window, maintenance_window)
    return SecondaryDbSettings(
        common=common,
        instance_class=(
            validate_instance_class("instanceClass", instance_class) if instance_class else None
        ),
        multi_az=_boolean(source, "multiAz", False),
        # 0: follow the primary's ceiling (the replica only grows as the primary does).
        max_allocated_storage_gib=_integer(source, "maxAllocatedStorageGiB", 0, 0, 65536) or None,
        replica_promoted=_boolean(source, "replicaPromoted", False),
        backup_retention_days_after_promotion=_integer(
            source, "backupRetentionDaysAfterPromotion", 7, 1, 35
        ),
        replica_lag_threshold_seconds=_integer(source, "replicaLagThresholdSeconds", 300, 1,
                                               86400),
        monitoring_interval_seconds=_choice(
            source, "monitoringIntervalSeconds", 60, MONITORING_INTERVALS, int
        ),
        alerting=_load_alerting(source),
        backup_window=backup_window,
        maintenance_window=maintenance_window,
        # The replica serves no writes, and after promotion backups must start now.
        tuning=_load_tuning(source, apply_immediately_default=True),
    )


def _promoter_call_seconds(max_attempts: int, api_timeout_seconds: int) -> int:
    """Worst case of one promoter AWS call: each attempt may spend the timeout on the
    connection and again on the read, plus about a second of retry backoff."""
    return max_attempts * 2 * api_timeout_seconds + 1


@dataclass(frozen=True)
class TimingStep:
    """One step of a failover path: its worst case and why (RUNBOOK.md's timing tables)."""

    step: str
    seconds: int
    why: str


@dataclass(frozen=True)
class FailoverSettings:
    common: CommonSettings
    zone_name: str
    record_ttl_seconds: int
    alarm_datapoints: int  # M: failing one-minute periods that raise the alarm
    alarm_periods: int  # N: the window of one-minute periods M is counted in
    automation_mode: str
    probe_timeout_seconds: int
    log_retention_days: int
    alarm_email: str | None
    promoter_api_timeout_seconds: int
    promoter_max_attempts: int
    # How long the promoter waits for a primary that RDS reports as recovering in place
    # (rebooting, Multi-AZ failover, maintenance...) before promoting across regions anyway.
    recovery_grace_minutes: int
    # Reserve one concurrent execution for the promoter so its triggers take turns. Lambda
    # keeps at least 10 executions unreserved per account, so an account whose concurrency
    # quota is still 10 (new accounts) cannot reserve any: turn this off there. Exactly one
    # promotion per failover does not depend on it (the promoter's ledger guarantees that).
    serialize_promoter_runs: bool
    # Above this RPO estimate (seconds) automatic mode waits for a person; None: the
    # secondary-db layer's replicaLagThresholdSeconds (read from its stack).
    max_promotion_lag_seconds: int | None
    # PostgreSQL users applications log in as with IAM database authentication; the
    # layer's managed policy grants rds-db:connect for them on both instances.
    iam_database_users: tuple[str, ...]

    @property
    def recovery_grace_seconds(self) -> int:
        return self.recovery_grace_minutes * 60

    @property
    def promoter_call_seconds(self) -> int:
        """Worst case of one promoter AWS call (see ``_promoter_call_seconds``)."""
        return _promoter_call_seconds(self.promoter_max_attempts, self.promoter_api_timeout_seconds)

    @property
    def promoter_timeout_seconds(self) -> int:
        """Lambda timeout of the promoter: its worst-case calls plus start-up time."""
        return max(PROMOTER_MIN_TIMEOUT_SECONDS,
                   PROMOTER_CALLS_PER_RUN * self.promoter_call_seconds + 10)

    @property
    def claim_lease_seconds(self) -> int:
        """How long a promoter run's claim on a failover stands before another may take it."""
        return self.promoter_timeout_seconds + CLAIM_LEASE_MARGIN_SECONDS

    def _promoter_run(self) -> TimingStep:
        return TimingStep(
            "promoter run",
            PROMOTER_SCHEDULE_SECONDS + self.promoter_call_seconds,
            f"its one-minute schedule (the alarm notification usually comes sooner), then its "
            f"parallel reads: one bounded call, {self.promoter_max_attempts} x 2 x "
            f"{self.promoter_api_timeout_seconds} s + 1 s, when the primary region hangs",
        )

    @property
    def instance_failure_path(self) -> tuple[TimingStep, ...]:
        """Worst case from an instance failure (region reachable) to the promotion call.

        Two sources: the canary alarm, read in the primary region, and RDS reporting the
        instance failed (status failed, storage-full, incompatible-*...), which RDS does
        while the canary counts its failing minutes.
        """
        return (
            TimingStep("canary failing minutes", (self.alarm_datapoints + 1) * ALARM_PERIOD_SECONDS,
                       "the failure can start just after a good probe, which still counts; the "
                       "alarm needs M failing minutes (alarmDatapointsToAlarm)"),
            TimingStep("alarm evaluation", ALARM_EVALUATION_DELAY_SECONDS,
                       "Lambda sends its metrics every minute and CloudWatch evaluates the alarm "
                       "about once a minute"),
            self._promoter_run(),
        )

    @property
    def region_outage_path(self) -> tuple[TimingStep, ...]:
        """Worst case from a whole-region outage to the promotion call.

        The first promoter run after the outage sees that no primary-region API answers
        (link). The second source is the canary as Route 53 sees it from outside both
        regions (the witness): the canary's data stops, the alarm-based health check turns
        unhealthy (no data counts as unhealthy), the replica canary sees Route 53 answer
        witness.<zone> with its SECONDARY member and logs it in the secondary region.
        """
        return (
            TimingStep("canary data missing", (self.alarm_periods + 1) * ALARM_PERIOD_SECONDS,
                       "Route 53 keeps the alarm's N periods (alarmEvaluationPeriods), not M, and "
                       "the minute of the last good probe still counts"),
            TimingStep("alarm evaluation", ALARM_EVALUATION_DELAY_SECONDS,
                       "metrics land and are evaluated about once a minute"),
            TimingStep("Route 53 takes up the alarm", ROUTE53_ALARM_PICKUP_SECONDS,
                       "an estimate: AWS publishes no figure for alarm-based health checks"),
            TimingStep("replica canary relays the witness", WITNESS_RELAY_SECONDS,
                       "it resolves witness.<zone> once a minute and logs the answer in the "
                       "secondary region"),
            self._promoter_run(),
        )

    @property
    def instance_failure_worst_case_seconds(self) -> int:
        return sum(step.seconds for step in self.instance_failure_path)

    @property
    def region_outage_worst_case_seconds(self) -> int:
        return sum(step.seconds for step in self.region_outage_path)

    @property
    def witness_delay_seconds(self) -> int:
        """How long after a regional outage Route 53's view still reads "healthy"."""
        return sum(step.seconds for step in self.region_outage_path[:-1])


def load_failover_settings(source: ConfigSource | None = None) -> FailoverSettings:
    source = source or PulumiSource()
    common = load_common(source)
    zone = validate_dns_name(
        "zoneName", _string(source, "zoneName", f"db-{common.environment_suffix}.internal")
    )
    ttl = _integer(source, "recordTtlSeconds", 30, 1, 60)
    periods = _integer(source, "alarmEvaluationPeriods", 2, 1, 10)
    datapoints = _integer(source, "alarmDatapointsToAlarm", 2, 1, 10)
    if datapoints > periods:
        raise ConfigError(
            "alarmDatapointsToAlarm", f"must not exceed alarmEvaluationPeriods ({periods})",
            datapoints,
        )
    if len(zone) + _RECORD_PREFIX_LENGTH > 253:
        raise ConfigError(
            "zoneName", f"must be at most {253 - _RECORD_PREFIX_LENGTH} characters so "
            "'witness.<zone>' stays a valid DNS name", zone,
        )
    if not _carries_suffix(zone, common.environment_suffix):
        # Names carry the suffix: two deployments in one account must not both claim a
        # private zone of the same name on their VPCs.
        raise ConfigError(
            "zoneName", f"must contain the environment suffix '{common.environment_suffix}' as a "
            f"whole label or hyphen-separated part, like the default db-{common.environment_suffix}.internal",
            zone,
        )
    api_timeout = _integer(source, "promoterApiTimeoutSeconds", 5, 1, 30)
    attempts = _integer(source, "promoterMaxAttempts", 2, 1, 10)
    if _promoter_call_seconds(attempts, api_timeout) > PROMOTER_MAX_CALL_SECONDS:
        # A call into the failed region can hang: bounded this way, a hung call costs
        # at most about one schedule period and a whole run a few minutes.
        raise ConfigError(
            "promoterMaxAttempts",
            f"x 2 x promoterApiTimeoutSeconds ({api_timeout}) + 1 must be at most "
            f"{PROMOTER_MAX_CALL_SECONDS} seconds (the worst case of one promoter call)", attempts,
        )
    return FailoverSettings(
        common=common,
        zone_name=zone,
        record_ttl_seconds=ttl,
        alarm_datapoints=datapoints,
        alarm_periods=periods,
        automation_mode=_choice(source, "automationMode", "automatic", AUTOMATION_MODES),
        probe_timeout_seconds=_integer(source, "probeTimeoutSeconds", 5, 1, 20),
        log_retention_days=_log_retention(source, "logRetentionDays"),
        alarm_email=_alarm_email(source),
        promoter_api_timeout_seconds=api_timeout,
        promoter_max_attempts=attempts,
        recovery_grace_minutes=_integer(source, "recoveryGraceMinutes", 10, 0, 60),
        serialize_promoter_runs=_boolean(source, "serializePromoterRuns", True),
        # 0: the replica's lag threshold, the RPO the secondary-db layer says is accepted.
        max_promotion_lag_seconds=_integer(source, "maxAutomaticPromotionLagSeconds", 0, 0, 86400) or None,
        iam_database_users=validate_database_users(
            "iamDatabaseUsers", _string(source, "iamDatabaseUsers", "app")),
    )


# PostgreSQL role names as RDS IAM authentication takes them: unquoted identifiers (lower
# case; an IAM policy's dbuser name must match the role name exactly), at most 63 bytes.
_DB_USER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MAX_IAM_DATABASE_USERS = 20


def validate_database_users(key: str, value: str) -> tuple[str, ...]:
    """A comma-separated list of PostgreSQL user names, each granted on by name.

    No wildcard: ``dbuser:<id>/*`` would let an IAM principal log in as any user that has
    the rds_iam role, the master user included if someone grants it.
    """
    users = tuple(part.strip() for part in value.split(",") if part.strip())
    if not users:
        raise ConfigError(key, "must name at least one database user (comma-separated)", value)
    for user in users:
        if not _DB_USER_RE.match(user):
            raise ConfigError(key, f"user {user!r} must be 1-63 lower-case letters, digits or "
                              "underscores, starting with a letter or underscore (no wildcards)",
                              value)
    if len(set(users)) != len(users):
        raise ConfigError(key, "must not name a user twice", value)
    if len(users) > MAX_IAM_DATABASE_USERS:
        raise ConfigError(key, f"must name at most {MAX_IAM_DATABASE_USERS} users (the policy "
                          "stays well inside IAM's 6,144-character managed-policy limit)", value)
    return users


def _carries_suffix(name: str, suffix: str) -> bool:
    """``suffix`` is a whole label of ``name`` or a hyphen-delimited part of one."""
    return re.search(rf"(^|[.-]){re.escape(suffix)}($|[.-])", name) is not None


# Which loader reads which layer's settings (layer names as in shared.contract.LAYERS).
LOADERS: dict[str, Callable[[ConfigSource | None], object]] = {
    "network": load_network_settings,
    "primary-db": load_primary_db_settings,
    "secondary-db": load_secondary_db_settings,
    "dns-failover": load_failover_settings,
}


# --------------------------------------------------------------------------- across layers


def validate_across_layers(settings: Mapping[str, Any]) -> None:
    """Rules between layers, for when every layer's settings are known before any runs.

    ``settings`` maps layer names to what their loaders returned (``make plan``). In a
    deployment each layer learns its upstream's values only from stack outputs at run
    time and checks the same rules there (``LayerReference.require_matching``,
    ``replica_storage_ceiling``), failing with the same one-line ConfigError-style message.
    """
    if not settings:
        return
    first_layer, first = next(iter(settings.items()))
    for layer, own in settings.items():
        for key, attribute in (("aws:region", "primary_region"),
                               ("secondaryRegion", "secondary_region"),
                               ("organization", "organization")):
            mine, theirs = getattr(own.common, attribute), getattr(first.common, attribute)
            if mine != theirs:
                # Stack references would find another deployment's outputs, or none.
                raise ConfigError(
                    key, f"must be the same in every layer: {layer} has {mine!r} but "
                    f"{first_layer} has {theirs!r}",
                )
    primary, replica = settings.get("primary-db"), settings.get("secondary-db")
    if primary is not None and replica is not None:
        try:
            replica_storage_ceiling(replica.max_allocated_storage_gib,
                                    primary.max_allocated_storage_gib)
        except ConfigError as exc:
            raise ConfigError(f"secondary-db/{exc.key}", exc.rule,
                              replica.max_allocated_storage_gib) from None


def secret_replica_arn(secret_arn: str, region: str) -> str:
    """The ARN of ``secret_arn``'s Secrets Manager replica in ``region``.

    Secrets Manager documents a replica's ARN as the primary secret's with only the
    Region changed (User Guide, "Replicate AWS Secrets Manager secrets across Regions").
    """
    match = _SECRET_ARN_RE.match(secret_arn)
    if not match:
        raise ValueError(f"{secret_arn!r} is not a Secrets Manager secret ARN")
    return f"{secret_arn[:match.start(1)]}{region}{secret_arn[match.end(1):]}"
