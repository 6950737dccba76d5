"""Promoter: decide from evidence whether to promote the cross-region replica, then fence.

Runs in the SECONDARY region, outside any VPC, so a dead primary region cannot
silence it. It only calls AWS APIs, each bounded by a short timeout and a small
number of attempts, because calls into a failed region can hang.

Interface (kept in step with the Pulumi layer that deploys it):
    handler  ``promoter.handler`` (runtime python3.13; standard library + boto3)
    triggers 1. SNS notifications of the canary alarm (event ``Records[].Sns``)
             2. an EventBridge one-minute schedule (event ``source == "aws.events"``)
             3. a direct invoke: any other JSON object; ``{"dryRun": true}`` forces dry-run
    env (required) REPLICA_IDENTIFIER, REPLICA_REGION, PRIMARY_IDENTIFIER, PRIMARY_REGION,
             HEALTH_CHECK_ID, CANARY_ALARM_NAME (the alarm lives in PRIMARY_REGION),
             HOSTED_ZONE_ID, WRITER_RECORD_NAME (fqdn), EVENTS_TOPIC_ARN (SNS, secondary region),
             ARMING_PARAMETER_NAME (SSM String parameter in REPLICA_REGION)
    env (defaults) AUTOMATION_MODE=automatic (automatic | manual | dry-run),
             PRIMARY_SET_IDENTIFIER=primary, RECORD_TTL_SECONDS=30, API_TIMEOUT_SECONDS=5,
             MAX_ATTEMPTS=2 (total attempts per call, first one included),
             BACKUP_RETENTION_DAYS=7 (passed to PromoteReadReplica so backups start),
             RECOVERY_GRACE_SECONDS=600 (0 to 3600; see "self-recovery grace" below)
    returns  {"action", "reasons", "evidence", "mode", "outcome", "trigger", "elapsed_ms"};
             action is one of ACTIONS. Raises PromoterError (after logging, and publishing
             as described under Notifications) only when an action it decided on (arm,
             promote, fence, publish) failed, so the Errors metric shows it.
    IAM      route53:GetHealthCheckStatus on healthcheck/HEALTH_CHECK_ID;
             route53:ListResourceRecordSets, route53:ChangeResourceRecordSets on
             hostedzone/HOSTED_ZONE_ID (changes: UPSERT of the writer CNAME only);
             cloudwatch:DescribeAlarms on the canary alarm's ARN (primary region);
             ssm:GetParameter, ssm:PutParameter on the arming parameter's ARN only;
             cloudwatch:GetMetricStatistics on "*" (it has no resource-level permissions);
             rds:DescribeDBInstances on both instances' db ARNs; rds:PromoteReadReplica on the
             replica's db ARN only; sns:Publish on EVENTS_TOPIC_ARN (plus kms:GenerateDataKey*
             and kms:Decrypt on the topic's key when it is KMS-encrypted); its own log group.
    worst case one call takes MAX_ATTEMPTS x (2 x API_TIMEOUT_SECONDS) plus ~1 s of backoff;
             evidence is read in parallel, then at most three calls follow (promote, fence,
             publish; or arm, publish): give the function a timeout of at least 5 such calls
             (defaults: ~2 min). Run it with reserved concurrency 1: one decision at a time.

Decision (``decide``, a pure function of the evidence, the mode and the recovery grace):
  * The primary is judged DOWN only when the Route 53 health check (fed by the canary
    alarm) reports unhealthy: a majority of checker observations start with "Failure".
    An unreachable primary region is reported, but with a healthy or unknown health
    check it is never enough; if the alarm CAN be read and says OK while the check says
    unhealthy, the signals disagree and the decision waits for the next trigger.
  * The replica must exist, still be a replica (ReadReplicaSourceDBInstanceIdentifier
    set) and be ``available``; transient statuses (backing-up, modifying, rebooting...)
    give "retry-later", anything else (failed, storage-full...) gives "blocked".
  * A missing ReplicaLag metric is "unknown", never a reason not to promote: it is
    missing exactly when the primary region is down.
  * ARMING: it never promotes unless ARMED for the current primary, i.e. the arming
    parameter holds PRIMARY_IDENTIFIER ("not-armed" otherwise). A fresh deployment's canary
    alarm has no data, missing data is breaching, and the health check reads unhealthy
    before the primary was ever probed: without arming, the first `pulumi up` would be
    followed by a promotion. The parameter starts "unarmed"; the promoter writes
    PRIMARY_IDENTIFIER into it (PutParameter, Overwrite) when it observes the primary
    HEALTHY (health check healthy and, where readable, the alarm OK; never from an unhealthy
    or contradictory observation). A failed read counts as not armed (fail safe); an
    operator can still promote by hand (RUNBOOK.md). Dry-run writes nothing, arming included.
  * Self-recovery grace: when the primary region answers and RDS reports the primary in a
    status it leaves by itself (rebooting, Multi-AZ failover or maintenance: see
    SELF_RECOVERY_STATUSES), it waits ("retry-later") until the canary alarm has been out
    of OK for RECOVERY_GRACE_SECONDS (from the alarm's StateTransitionedTimestamp, else its
    StateUpdatedTimestamp), so a 60-120 s Multi-AZ failover does not cause a cross-region
    promotion. An unknown age holds too; a status outside that set never holds.
  * Mode: automatic promotes; manual publishes "would-promote"; dry-run only logs.
  * Idempotent: a replica that stands alone is "already-promoted" (fencing is checked and
    re-applied if needed); a writer record already fenced to the replica means a promotion
    was started earlier; a PromoteReadReplica answered with InvalidDBInstanceState means
    one is already in progress. None of these promote again.

Fencing: right after a successful PromoteReadReplica, the writer's PRIMARY failover record
(same set identifier, same health check, as read from ListResourceRecordSets) is UPSERTed
to the replica's endpoint address, so writers stay on the new primary when the old one
recovers and its health check turns healthy again. There is no automatic failback.

Notifications go to EVENTS_TOPIC_ARN for promote, would-promote, fencing and failed
promotions or fences, whatever the trigger. Outcomes that change nothing (retry-later,
blocked, not-armed, evidence that could not be read, a failed arming write) are published
only when the alarm notification or a direct invoke triggered the run: on the one-minute
schedule they are logged only, or a stuck condition would mail every minute; the layer's
stuck-failover alarm (a metric filter on those log lines) tells the events topic once
when they persist, which covers a dead primary region whose alarm topic went silent with
it. Never published: "healthy, nothing to do". Every invocation logs exactly one JSON line with the
decision, reasons, evidence, mode and elapsed time.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

MODES = ("automatic", "manual", "dry-run")
ACTIONS = ("none", "promote", "would-promote", "dry-run", "retry-later", "already-promoted", "blocked",
           "not-armed")

PROMOTABLE_STATUSES = frozenset({"available"})
# Statuses an instance leaves on its own; promotion is retried on the next trigger.
TRANSIENT_STATUSES = frozenset({
    "backing-up", "configuring-enhanced-monitoring", "configuring-iam-database-auth",
    "configuring-log-exports", "creating", "maintenance", "modifying", "moving-to-vpc",
    "rebooting", "renaming", "resetting-master-credentials", "starting", "storage-config-upgrade",
    "storage-initialization", "storage-optimization", "upgrading",
})
# Statuses of a reachable primary that RDS brings back by itself within minutes: a reboot
# (with or without Multi-AZ failover), maintenance, an in-place modification (RDS User Guide,
# "Viewing Amazon RDS DB instance status"). Not here, on purpose: failed, storage-full,
# stopped, stopping, inaccessible-encryption-credentials*, incompatible-*, restore-error,
# insufficient-capacity (an operator must act) and available (nothing is being recovered).
SELF_RECOVERY_STATUSES = frozenset({
    "configuring-enhanced-monitoring", "configuring-iam-database-auth", "configuring-log-exports",
    "converting-to-vpc", "maintenance", "modifying", "moving-to-vpc", "rebooting", "renaming",
    "resetting-master-credentials", "starting", "upgrading",
})
DEFAULT_RECOVERY_GRACE_SECONDS = 600
# Alarm states a health check reads as unhealthy (this check treats no data as Unhealthy).
FAILING_ALARM_STATES = frozenset({"ALARM", "INSUFFICIENT_DATA"})
LAG_WINDOW_SECONDS = 300
SUBJECT_PREFIX = "DB failover"
UNARMED = "unarmed"  # the arming parameter's value as deployed
# Reads that fail this way mean "could not reach the endpoint", not "the API said no".
UNREACHABLE_ERRORS = (BotoConnectionError, HTTPClientError)


class ConfigError(ValueError):
    """An environment variable is missing or invalid."""


class PromoterError(RuntimeError):
    """An action the promoter decided on failed (raised after logging and notifying)."""


# --- settings ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    replica_identifier: str
    replica_region: str
    primary_identifier: str
    primary_region: str
    health_check_id: str
    canary_alarm_name: str
    hosted_zone_id: str
    writer_record_name: str
    events_topic_arn: str
    arming_parameter_name: str
    automation_mode: str = "automatic"
    primary_set_identifier: str = "primary"
    record_ttl_seconds: int = 30
    api_timeout_seconds: float = 5.0
    max_attempts: int = 2
    backup_retention_days: int = 7
    recovery_grace_seconds: int = DEFAULT_RECOVERY_GRACE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        def required(key: str) -> str:
            value = (environ.get(key) or "").strip()
            if not value:
                raise ConfigError(f"{key} is required")
            return value

        def number(key: str, default: float, low: float, high: float, kind: type) -> Any:
            raw = (environ.get(key) or "").strip()
            try:
                value = kind(raw) if raw else kind(default)
            except ValueError as bad:
                raise ConfigError(f"{key} must be a number, got {raw!r}") from bad
            if not low <= value <= high:
                raise ConfigError(f"{key} must be between {low} and {high}, got {value}")
            return value

        mode = (environ.get("AUTOMATION_MODE") or "automatic").strip()
        if mode not in MODES:
            raise ConfigError(f"AUTOMATION_MODE must be one of {', '.join(MODES)}, got {mode!r}")
        zone = required("HOSTED_ZONE_ID")
        return cls(
            replica_identifier=required("REPLICA_IDENTIFIER"),
            replica_region=required("REPLICA_REGION"),
            primary_identifier=required("PRIMARY_IDENTIFIER"),
            primary_region=required("PRIMARY_REGION"),
            health_check_id=required("HEALTH_CHECK_ID"),
            canary_alarm_name=required("CANARY_ALARM_NAME"),
            hosted_zone_id=zone.rsplit("/", 1)[-1],  # accept "/hostedzone/Z..." too
            writer_record_name=required("WRITER_RECORD_NAME"),
            events_topic_arn=required("EVENTS_TOPIC_ARN"),
            arming_parameter_name=required("ARMING_PARAMETER_NAME"),
            automation_mode=mode,
            primary_set_identifier=(environ.get("PRIMARY_SET_IDENTIFIER") or "primary").strip(),
            record_ttl_seconds=number("RECORD_TTL_SECONDS", 30, 1, 86400, int),
            api_timeout_seconds=number("API_TIMEOUT_SECONDS", 5, 0.1, 60, float),
            max_attempts=number("MAX_ATTEMPTS", 2, 1, 10, int),
            backup_retention_days=number("BACKUP_RETENTION_DAYS", 7, 1, 35, int),
            recovery_grace_seconds=number("RECOVERY_GRACE_SECONDS", DEFAULT_RECOVERY_GRACE_SECONDS,
                                          0, 3600, int),
        )


# --- AWS clients ------------------------------------------------------------------------

def client_config(settings: Settings) -> Config:
    # total_max_attempts counts the first attempt (botocore's max_attempts counts retries).
    return Config(
        connect_timeout=settings.api_timeout_seconds,
        read_timeout=settings.api_timeout_seconds,
        retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
    )


@functools.lru_cache(maxsize=1)
def shared_session() -> Any:
    """One session per execution environment: warm invocations reuse its loaded API models."""
    return boto3.session.Session()


def make_client(service: str, region: str, settings: Settings, session: Any = None) -> Any:
    """The one place clients are made; endpoints come from the environment as usual."""
    session = session or shared_session()
    return session.client(service, region_name=region, config=client_config(settings))


@dataclass(frozen=True)
class Clients:
    route53: Any
    rds_primary: Any
    rds_replica: Any
    cloudwatch_primary: Any
    cloudwatch_replica: Any
    sns: Any
    ssm: Any


def build_clients(settings: Settings) -> Clients:
    # Clients are made per invocation (cheap with the shared session): a connection
    # left hanging towards a failed region does not outlive the invocation.
    session = shared_session()
    primary, replica = settings.primary_region, settings.replica_region
    return Clients(
        # Route 53 is global; any region signs for it. Use the one we run in.
        route53=make_client("route53", replica, settings, session),
        rds_primary=make_client("rds", primary, settings, session),
        rds_replica=make_client("rds", replica, settings, session),
        cloudwatch_primary=make_client("cloudwatch", primary, settings, session),
        cloudwatch_replica=make_client("cloudwatch", replica, settings, session),
        sns=make_client("sns", replica, settings, session),
        ssm=make_client("ssm", replica, settings, session),
    )


# --- evidence ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    health_check: str = "unknown"  # healthy | unhealthy | unknown
    health_check_detail: str = ""
    alarm_state: str = "unknown"  # OK | ALARM | INSUFFICIENT_DATA | missing | unreachable | error
    alarm_state_seconds: float | None = None  # how long the alarm has been in alarm_state
    primary_status: str = "unknown"  # an RDS status, or missing | unreachable | error
    replica_status: str = "unknown"  # an RDS status, or missing | unreachable | error
    replica_is_replica: bool | None = None
    replica_source: str | None = None
    replica_address: str | None = None
    replica_lag_seconds: float | None = None
    replica_lag_detail: str = ""
    fence_state: str = "unknown"  # fenced | not-fenced | absent | unknown
    writer_record: Mapping[str, Any] | None = None
    # armed (holds PRIMARY_IDENTIFIER) | unarmed | other-primary | missing | unknown (unreadable).
    # The default is the fail-safe one: evidence that says nothing about arming is not armed.
    arming: str = "unknown"
    arming_value: str | None = None
    errors: tuple[str, ...] = ()

    @property
    def primary_region_reachable(self) -> bool | None:
        answers = (self.alarm_state, self.primary_status)
        if all(answer == "unreachable" for answer in answers):
            return False
        if any(answer not in ("unreachable", "error", "unknown") for answer in answers):
            return True
        return None

    def to_dict(self) -> dict[str, Any]:
        record = self.writer_record or {}
        return {
            "health_check": self.health_check,
            "health_check_detail": self.health_check_detail,
            "alarm_state": self.alarm_state,
            "alarm_state_seconds": self.alarm_state_seconds if self.alarm_state_seconds is not None
            else "unknown",
            "primary_status": self.primary_status,
            "primary_region_reachable": self.primary_region_reachable,
            "replica_status": self.replica_status,
            "replica_is_replica": self.replica_is_replica,
            "replica_source": self.replica_source,
            "replica_address": self.replica_address,
            "replica_lag_seconds": self.replica_lag_seconds if self.replica_lag_seconds is not None
            else "unknown",
            "replica_lag_detail": self.replica_lag_detail,
            "fence_state": self.fence_state,
            "writer_primary_values": _record_values(record) if record else None,
            "writer_primary_health_check_id": record.get("HealthCheckId"),
            "arming": self.arming,
            "arming_value": self.arming_value,
            "errors": list(self.errors),
        }


def _failure(what: str, error: BaseException) -> tuple[str, str]:
    """(kind, message) for a failed read: kind is "unreachable" or "error"."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return "error", f"{what}: {info.get('Code', 'ClientError')}: {info.get('Message', '')}".rstrip(": ")
    kind = "unreachable" if isinstance(error, UNREACHABLE_ERRORS) else "error"
    return kind, f"{what}: {type(error).__name__}: {error}"


def _error_code(error: BaseException) -> str:
    return error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""


def summarize_health_check(observations: list[Mapping[str, Any]]) -> tuple[str, str]:
    """Route 53 GetHealthCheckStatus: each checker's StatusReport.Status starts with
    "Success" or "Failure"; a majority of failures is unhealthy."""
    statuses = [str((obs.get("StatusReport") or {}).get("Status", "")) for obs in observations]
    if not statuses:
        return "unknown", "no checker observations"
    failures = sum(status.startswith("Failure") for status in statuses)
    successes = sum(status.startswith("Success") for status in statuses)
    detail = f"{failures} of {len(statuses)} checkers report failure"
    if failures * 2 > len(statuses):
        return "unhealthy", detail
    if successes * 2 > len(statuses):
        return "healthy", detail
    return "unknown", detail


def read_health_check(route53: Any, health_check_id: str) -> tuple[str, str, str | None]:
    try:
        answer = route53.get_health_check_status(HealthCheckId=health_check_id)
    except Exception as error:
        _kind, message = _failure("route53 GetHealthCheckStatus", error)
        return "unknown", message, message
    status, detail = summarize_health_check(answer.get("HealthCheckObservations", []))
    return status, detail, None


def read_alarm_state(cloudwatch: Any, alarm_name: str
                     ) -> tuple[str, datetime.datetime | None, str | None]:
    """(state, since when, error). StateTransitionedTimestamp is when StateValue last changed;
    StateUpdatedTimestamp also moves on EvaluationState changes (CloudWatch API Reference,
    MetricAlarm), so it is only the fallback: it can make the state look younger, never older."""
    try:
        answer = cloudwatch.describe_alarms(AlarmNames=[alarm_name], AlarmTypes=["MetricAlarm"])
    except Exception as error:
        kind, message = _failure("cloudwatch DescribeAlarms (primary region)", error)
        return kind, None, message
    alarms = answer.get("MetricAlarms", [])
    if not alarms:
        return "missing", None, f"alarm {alarm_name} not found"
    alarm = alarms[0]
    since = alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")
    if not isinstance(since, datetime.datetime):
        return alarm["StateValue"], None, None
    if since.tzinfo is None:  # CloudWatch time stamps are UTC
        since = since.replace(tzinfo=datetime.timezone.utc)
    return alarm["StateValue"], since, None


def read_arming(ssm: Any, name: str, primary_identifier: str) -> tuple[str, str | None, str | None]:
    """(arming, the parameter's value, error). Any failure reads as not armed."""
    try:
        answer = ssm.get_parameter(Name=name)
    except Exception as error:
        if _error_code(error) == "ParameterNotFound":
            return "missing", None, f"ssm GetParameter: arming parameter {name} not found"
        return "unknown", None, _failure("ssm GetParameter (arming)", error)[1]
    value = str((answer.get("Parameter") or {}).get("Value", ""))
    if value == primary_identifier:
        return "armed", value, None
    return ("unarmed" if value == UNARMED else "other-primary"), value, None


@dataclass(frozen=True)
class InstanceFacts:
    status: str
    source: str | None = None
    address: str | None = None
    error: str | None = None


def read_instance(rds: Any, identifier: str, what: str) -> InstanceFacts:
    try:
        answer = rds.describe_db_instances(DBInstanceIdentifier=identifier)
    except Exception as error:
        if _error_code(error) in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
            return InstanceFacts("missing", error=f"{what}: {identifier} not found")
        kind, message = _failure(f"rds DescribeDBInstances ({what})", error)
        return InstanceFacts(kind, error=message)
    instance = answer["DBInstances"][0]
    return InstanceFacts(
        status=instance.get("DBInstanceStatus", "unknown"),
        source=instance.get("ReadReplicaSourceDBInstanceIdentifier") or None,
        address=(instance.get("Endpoint") or {}).get("Address"),
    )


def read_replica_lag(cloudwatch: Any, identifier: str, now: datetime.datetime) -> tuple[float | None, str]:
    """Latest ReplicaLag (seconds) of the last few minutes; None = unknown, never an error."""
    try:
        answer = cloudwatch.get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName="ReplicaLag",
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
            StartTime=now - datetime.timedelta(seconds=LAG_WINDOW_SECONDS),
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )
    except Exception as error:
        return None, _failure("cloudwatch GetMetricStatistics", error)[1]
    points = sorted(answer.get("Datapoints", []), key=lambda point: point["Timestamp"])
    if not points:
        return None, f"no ReplicaLag datapoint in the last {LAG_WINDOW_SECONDS // 60} minutes"
    latest = points[-1]
    return float(latest["Maximum"]), f"maximum of the minute at {latest['Timestamp'].isoformat()}"


def _normalize_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _record_values(record: Mapping[str, Any]) -> list[str]:
    values = [item["Value"] for item in record.get("ResourceRecords", [])]
    if "AliasTarget" in record:
        values.append(record["AliasTarget"].get("DNSName", ""))
    return [_normalize_name(value) for value in values]


def read_writer_primary_record(
    route53: Any, zone_id: str, record_name: str, set_identifier: str
) -> Mapping[str, Any] | None:
    """The writer's PRIMARY failover record, or None if there is none. Raises on API errors."""
    target = _normalize_name(record_name)
    request: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": target + ".", "MaxItems": "100"}
    seen_target = False
    for _page in range(10):
        answer = route53.list_resource_record_sets(**request)
        for record in answer.get("ResourceRecordSets", []):
            if _normalize_name(record["Name"]) != target:
                if seen_target:
                    return None
                continue
            seen_target = True
            if record.get("SetIdentifier") == set_identifier and record.get("Failover") == "PRIMARY":
                return record
        if not answer.get("IsTruncated"):
            return None
        request.update(StartRecordName=answer["NextRecordName"], StartRecordType=answer["NextRecordType"])
        request.pop("StartRecordIdentifier", None)
        if answer.get("NextRecordIdentifier"):
            request["StartRecordIdentifier"] = answer["NextRecordIdentifier"]
    return None


def gather_evidence(clients: Clients, settings: Settings, now: datetime.datetime | None = None) -> Evidence:
    """All reads at once: the slowest (a hanging primary region) bounds the total."""
    now = now or datetime.datetime.now(datetime.timezone.utc)

    def writer_record() -> tuple[Mapping[str, Any] | None, str | None]:
        try:
            record = read_writer_primary_record(
                clients.route53, settings.hosted_zone_id, settings.writer_record_name,
                settings.primary_set_identifier,
            )
            return record, None
        except Exception as error:
            return None, _failure("route53 ListResourceRecordSets", error)[1]

    with ThreadPoolExecutor(max_workers=7, thread_name_prefix="evidence") as pool:
        health = pool.submit(read_health_check, clients.route53, settings.health_check_id)
        arming = pool.submit(read_arming, clients.ssm, settings.arming_parameter_name,
                             settings.primary_identifier)
        alarm = pool.submit(read_alarm_state, clients.cloudwatch_primary, settings.canary_alarm_name)
        primary = pool.submit(read_instance, clients.rds_primary, settings.primary_identifier, "primary")
        replica = pool.submit(read_instance, clients.rds_replica, settings.replica_identifier, "replica")
        lag = pool.submit(read_replica_lag, clients.cloudwatch_replica, settings.replica_identifier, now)
        record = pool.submit(writer_record)

    health_status, health_detail, health_error = health.result()
    alarm_state, alarm_since, alarm_error = alarm.result()
    alarm_seconds = round(max(0.0, (now - alarm_since).total_seconds()), 1) if alarm_since else None
    arming_state, arming_value, arming_error = arming.result()
    primary_facts, replica_facts = primary.result(), replica.result()
    lag_seconds, lag_detail = lag.result()
    writer, record_error = record.result()

    replica_readable = replica_facts.status not in ("missing", "unreachable", "error")
    if record_error:
        fence_state = "unknown"
    elif writer is None:
        fence_state = "absent"
    elif not replica_facts.address:
        fence_state = "unknown"
    else:
        fence_state = "fenced" if _record_values(writer) == [_normalize_name(replica_facts.address)] \
            else "not-fenced"

    errors = tuple(
        message for message in (
            health_error, alarm_error, primary_facts.error, replica_facts.error, record_error,
            arming_error,
        ) if message
    )
    return Evidence(
        health_check=health_status,
        health_check_detail=health_detail,
        alarm_state=alarm_state,
        alarm_state_seconds=alarm_seconds,
        primary_status=primary_facts.status,
        replica_status=replica_facts.status,
        replica_is_replica=(replica_facts.source is not None) if replica_readable else None,
        replica_source=replica_facts.source,
        replica_address=replica_facts.address,
        replica_lag_seconds=lag_seconds,
        replica_lag_detail=lag_detail,
        fence_state=fence_state,
        writer_record=writer,
        arming=arming_state,
        arming_value=arming_value,
        errors=errors,
    )


# --- decision ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    action: str
    reasons: tuple[str, ...]
    promote: bool = False
    fence: bool = False
    notify: bool = False
    arm: bool = False  # record that the current primary was observed healthy

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}")


def _lag_reason(evidence: Evidence) -> str:
    if evidence.replica_lag_seconds is None:
        return f"replica lag unknown ({evidence.replica_lag_detail}); not a reason to hold back"
    return (f"replica lag {evidence.replica_lag_seconds:g} s ({evidence.replica_lag_detail}): "
            "writes of about that window may be lost (RPO)")


def _primary_reasons(evidence: Evidence) -> list[str]:
    reasons = [
        f"health check {evidence.health_check} ({evidence.health_check_detail})",
        f"canary alarm {evidence.alarm_state}",
        f"primary instance {evidence.primary_status}",
    ]
    if evidence.primary_region_reachable is False:
        confirmed = evidence.health_check == "unhealthy"
        reasons.append(
            "primary region APIs unreachable; the health check "
            + ("confirms the primary is down" if confirmed else
               "does not confirm it, and unreachability alone is not enough")
        )
    return reasons


def observed_healthy(ev: Evidence) -> bool:
    """Evidence that the primary is up, strong enough to arm on.

    The health check says healthy AND the canary alarm reads OK, and the primary instance
    was not reported missing. Both signals are required: a new health check starts
    healthy before it has seen any data (Route 53 Developer Guide, "How Route 53
    determines whether a health check is healthy"), so a healthy check next to an alarm
    that cannot be read proves nothing yet. Nothing unhealthy, unknown or contradictory
    arms. Once the replica stands alone there is nothing left to arm for (the "primary"
    may be a diverged old one).
    """
    return (
        ev.health_check == "healthy"
        and ev.alarm_state == "OK"
        and ev.primary_status != "missing"
        and ev.replica_is_replica is not False
    )


def decide(evidence: Evidence, mode: str,
           recovery_grace_seconds: float = DEFAULT_RECOVERY_GRACE_SECONDS) -> Decision:
    """What to do, and why, from the evidence alone (no I/O)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    decision = _decide(evidence, mode, recovery_grace_seconds)
    # Arming is bookkeeping, not a failover action: manual mode records it too (so switching
    # to automatic later is armed already); dry-run changes nothing at all.
    arm = mode != "dry-run" and evidence.arming != "armed" and observed_healthy(evidence)
    if mode != "automatic":
        # manual and dry-run never change the database or DNS; dry-run does not even publish.
        decision = replace(decision, promote=False, fence=False,
                           notify=decision.notify and mode == "manual")
    return replace(decision, arm=arm)


def _not_armed_reason(ev: Evidence) -> str:
    why = {
        "unarmed": "the arming parameter still reads 'unarmed'",
        "other-primary": f"the arming parameter names another primary ({ev.arming_value})",
        "missing": "the arming parameter does not exist",
    }.get(ev.arming, "the arming parameter could not be read (counted as not armed)")
    return (
        f"NOT ARMED: the primary has not been observed healthy since deployment ({why}); "
        "automatic promotion is off until it is. If the primary is really down, promote by "
        "hand (RUNBOOK.md)"
    )


def _recovery_hold(ev: Evidence, grace_seconds: float) -> tuple[bool, str | None]:
    """(hold, reason): wait while RDS recovers a reachable primary in place, within the grace."""
    status = ev.primary_status
    if grace_seconds <= 0 or not ev.primary_region_reachable or status not in SELF_RECOVERY_STATUSES:
        return False, None
    age = ev.alarm_state_seconds if ev.alarm_state in FAILING_ALARM_STATES else None
    if age is None:
        return True, (
            f"primary instance reports '{status}' (RDS recovers it in place) and how long the "
            f"canary alarm has been failing is unknown ({ev.alarm_state}): holding; re-evaluated "
            "on the next trigger"
        )
    if age < grace_seconds:
        return True, (
            f"primary instance reports '{status}': RDS is recovering it in place (reboot, "
            f"Multi-AZ failover, maintenance); canary alarm {ev.alarm_state} for {age:.0f} s, "
            f"within the {grace_seconds:g} s recovery grace: holding; re-evaluated on the next trigger"
        )
    return False, (
        f"primary instance reports '{status}', but the canary alarm has been {ev.alarm_state} "
        f"for {age:.0f} s, beyond the {grace_seconds:g} s recovery grace: not waiting any longer"
    )


def _decide(ev: Evidence, mode: str, grace_seconds: float) -> Decision:
    primary_down = ev.health_check == "unhealthy"
    reasons = _primary_reasons(ev)
    replica = f"replica {ev.replica_status}"

    if ev.replica_status == "missing":
        return Decision("blocked", (*reasons, "the replica does not exist: nothing to promote"), notify=True)
    if ev.replica_is_replica is None:
        reasons.append(f"cannot read the replica ({replica}); re-evaluated on the next trigger")
        return Decision("retry-later" if primary_down else "none", tuple(reasons), notify=True)

    if not ev.replica_is_replica:
        reasons.append(f"{replica} and stands alone: it was already promoted")
        return _check_fence(ev, mode, reasons)

    if ev.fence_state == "fenced":
        reasons.append(
            "the writer PRIMARY record already points at the replica: a promotion was started "
            "earlier and RDS still reports the replication link; not promoting again"
        )
        return Decision("already-promoted", tuple(reasons))

    if not primary_down:
        reasons.append("primary not judged down: no action")
        if ev.health_check == "unknown" and (
            ev.alarm_state == "ALARM" or ev.primary_region_reachable is False
        ):
            reasons.append("cannot confirm through the health check while the primary looks down")
            return Decision("blocked", tuple(reasons), notify=True)
        return Decision("none", tuple(reasons))

    reasons.append(_lag_reason(ev))
    if ev.alarm_state == "OK":
        reasons.append("signals disagree (canary alarm OK, health check unhealthy); "
                       "re-evaluated on the next trigger")
        return Decision("retry-later", tuple(reasons), notify=True)
    if ev.arming != "armed":
        reasons.append(_not_armed_reason(ev))
        return Decision("not-armed", tuple(reasons), notify=True)
    reasons.append(f"armed: the primary was observed healthy since deployment ({ev.arming_value})")
    hold, recovery = _recovery_hold(ev, grace_seconds)
    if recovery:
        reasons.append(recovery)
    if hold:
        return Decision("retry-later", tuple(reasons), notify=True)
    if ev.replica_status in TRANSIENT_STATUSES:
        reasons.append(f"{replica}: not promotable yet; retried on the next trigger")
        return Decision("retry-later", tuple(reasons), notify=True)
    if ev.replica_status not in PROMOTABLE_STATUSES:
        reasons.append(f"{replica}: cannot be promoted in this state; needs an operator")
        return Decision("blocked", tuple(reasons), notify=True)

    if mode == "automatic":
        reasons.append(f"{replica}: promoting it and fencing the writer record")
        return Decision("promote", tuple(reasons), promote=True, fence=True, notify=True)
    if mode == "manual":
        reasons.append(f"{replica}: would promote it (manual mode: an operator decides)")
        return Decision("would-promote", tuple(reasons), notify=True)
    reasons.append(f"{replica}: would promote it (dry-run: logged only)")
    return Decision("dry-run", tuple(reasons))


def _check_fence(ev: Evidence, mode: str, reasons: list[str]) -> Decision:
    if ev.fence_state == "fenced":
        reasons.append("the writer PRIMARY record already points at the replica")
        return Decision("already-promoted", tuple(reasons))
    if ev.fence_state == "absent":
        reasons.append("no writer PRIMARY record: writers resolve to the replica's SECONDARY record")
        return Decision("already-promoted", tuple(reasons))
    if ev.fence_state == "unknown":
        reasons.append("cannot check the writer record; fencing re-checked on the next trigger")
        return Decision("already-promoted", tuple(reasons), notify=True)
    verb = {"automatic": "fencing", "manual": "would fence (manual mode)",
            "dry-run": "would fence (dry-run)"}[mode]
    reasons.append(f"the writer PRIMARY record still points elsewhere: {verb}")
    return Decision("already-promoted", tuple(reasons), fence=True, notify=True)


# --- actions ----------------------------------------------------------------------------

def fence_writer(clients: Clients, settings: Settings, evidence: Evidence) -> str:
    """UPSERT the PRIMARY writer record (same identity and health check) to the replica."""
    record, address = evidence.writer_record, evidence.replica_address
    if not record or not address:
        raise PromoterError("cannot fence: the writer PRIMARY record or the replica address is unknown")
    if record.get("Type") != "CNAME" or "AliasTarget" in record:
        raise PromoterError(f"cannot fence a {record.get('Type')} record with a DNS name")
    fenced: dict[str, Any] = {
        "Name": record["Name"],
        "Type": record["Type"],
        "SetIdentifier": record["SetIdentifier"],
        "Failover": "PRIMARY",
        "TTL": record.get("TTL", settings.record_ttl_seconds),
        "ResourceRecords": [{"Value": address}],
    }
    if record.get("HealthCheckId"):
        fenced["HealthCheckId"] = record["HealthCheckId"]
    clients.route53.change_resource_record_sets(
        HostedZoneId=settings.hosted_zone_id,
        ChangeBatch={
            "Comment": f"fence writers on promoted {settings.replica_identifier} (no automatic failback)",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": fenced}],
        },
    )
    return f"applied: PRIMARY {record['Name']} -> {address}"


def promote(clients: Clients, settings: Settings) -> str:
    """'requested', or 'in-progress' when RDS says the replica is already changing state."""
    try:
        clients.rds_replica.promote_read_replica(
            DBInstanceIdentifier=settings.replica_identifier,
            BackupRetentionPeriod=settings.backup_retention_days,
        )
    except ClientError as error:
        if _error_code(error) in ("InvalidDBInstanceState", "InvalidDBInstanceStateFault"):
            return "in-progress"
        raise
    return "requested"


def arm(clients: Clients, settings: Settings) -> str:
    """Record that PRIMARY_IDENTIFIER was observed healthy: promotion is allowed from now on."""
    clients.ssm.put_parameter(
        Name=settings.arming_parameter_name,
        Value=settings.primary_identifier,
        Type="String",
        # The layer declares the parameter Standard. An update without a tier takes the
        # account's default tier setting (Systems Manager User Guide, "Specifying a default
        # parameter tier"): with Advanced as default, arming would upgrade the parameter
        # (billed), and the next `pulumi up` would replace it to downgrade it, disarming.
        Tier="Standard",
        Overwrite=True,
    )
    return f"armed for {settings.primary_identifier}"


def should_publish(decision: Decision, trigger_source: str, action_failed: bool) -> bool:
    """Whether this run's result goes to the events topic (dry-run is decided by the caller).

    Promotions, would-promotes, fences and their failures go out whatever the trigger. The
    rest (retry-later, blocked, not-armed, unreadable evidence) only when the alarm's
    notification or a person started the run; the one-minute schedule only logs them, or a
    condition that lasts an hour would send sixty messages.
    """
    if action_failed or decision.promote or decision.fence or decision.action == "would-promote":
        return True
    return decision.notify and trigger_source != "schedule"


def publish(clients: Clients, settings: Settings, result: Mapping[str, Any]) -> None:
    subject = f"{SUBJECT_PREFIX} {result['action']}: {settings.replica_identifier}"
    clients.sns.publish(
        TopicArn=settings.events_topic_arn,
        Subject=subject.encode("ascii", "replace").decode()[:100],
        Message=json.dumps(result, default=str, sort_keys=True),
    )


def describe_trigger(event: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        return {"source": "unknown"}
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping) and "Sns" in records[0]:
        trigger: dict[str, Any] = {"source": "sns", "topic": records[0]["Sns"].get("TopicArn")}
        try:
            message = json.loads(records[0]["Sns"].get("Message") or "{}")
            if isinstance(message, Mapping):
                trigger.update(alarm=message.get("AlarmName"), state=message.get("NewStateValue"))
        except ValueError:
            pass
        return trigger
    if event.get("source") == "aws.events":
        return {"source": "schedule", "time": event.get("time")}
    # Neither of the deployed triggers: someone invoked the function.
    return {"source": "direct"}


def dry_run_requested(event: Any) -> bool:
    if not isinstance(event, Mapping):
        return False
    flag = event.get("dryRun")
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def _log_line(line: str) -> None:
    print(line, flush=True)  # the Lambda runtime ships stdout lines to CloudWatch Logs


def run(
    event: Any,
    settings: Settings,
    clients: Clients,
    log: Callable[[str], None] = _log_line,
) -> dict[str, Any]:
    started = time.monotonic()
    mode = "dry-run" if dry_run_requested(event) else settings.automation_mode
    trigger = describe_trigger(event)
    evidence = gather_evidence(clients, settings)
    decision = decide(evidence, mode, settings.recovery_grace_seconds)
    reasons = list(decision.reasons)
    outcome: dict[str, str] = {}
    failures: list[str] = []  # promote and fence: always published
    quiet_failures: list[str] = []  # arming: published like the other non-actions

    if decision.arm:
        try:
            outcome["arm"] = arm(clients, settings)
        except Exception as error:
            outcome["arm"] = f"failed: {_failure('ssm PutParameter (arming)', error)[1]}"
            quiet_failures.append(outcome["arm"])
    if decision.promote:
        try:
            outcome["promote"] = promote(clients, settings)
        except Exception as error:
            outcome["promote"] = f"failed: {_failure('rds PromoteReadReplica', error)[1]}"
            failures.append(outcome["promote"])
        if outcome["promote"] == "in-progress":
            reasons.append("PromoteReadReplica answered InvalidDBInstanceState: a promotion is already "
                           "in progress; fencing waits for the run that sees it complete")
    promoted_now = outcome.get("promote") == "requested"
    if decision.fence and evidence.fence_state == "absent":
        outcome["fence"] = "not needed: no writer PRIMARY record, writers resolve to the replica"
    elif decision.fence and (promoted_now or not decision.promote):
        try:
            outcome["fence"] = fence_writer(clients, settings, evidence)
        except Exception as error:
            outcome["fence"] = f"failed: {_failure('route53 ChangeResourceRecordSets', error)[1]}"
            failures.append(outcome["fence"])

    result: dict[str, Any] = {
        "action": decision.action,
        "reasons": reasons,
        "mode": mode,
        "trigger": trigger,
        "replica": settings.replica_identifier,
        "primary": settings.primary_identifier,
        "evidence": evidence.to_dict(),
        "outcome": outcome,
    }
    noteworthy = replace(decision, notify=decision.notify or bool(quiet_failures))
    if mode != "dry-run" and should_publish(noteworthy, trigger["source"], bool(failures)):
        try:
            publish(clients, settings, result)
            outcome["notify"] = "published"
        except Exception as error:
            outcome["notify"] = f"failed: {_failure('sns Publish', error)[1]}"
            failures.append(outcome["notify"])
    elif decision.notify and mode != "dry-run":
        outcome["notify"] = "logged only (scheduled run)"
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000.0, 1)
    log(json.dumps({"event": "failover-decision", **result}, default=str, sort_keys=True))
    # Raised after the log line, so the Errors metric (and the promoter's error alarm) shows it.
    if failures or quiet_failures:
        raise PromoterError("; ".join(failures + quiet_failures))
    return result


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as error:
        # Still one line per invocation, and still an error for the Errors alarm.
        _log_line(json.dumps({"event": "failover-decision", "action": "blocked",
                              "reasons": [f"configuration error: {error}"],
                              "trigger": describe_trigger(event)}, default=str, sort_keys=True))
        raise
    return run(event, settings, build_clients(settings))
