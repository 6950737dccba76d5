"""What the promoter reads before it decides: every read bounded, all of them in parallel.

Which region serves each read, and what an unanswered read becomes:

| read | API (region) | when it does not answer |
|---|---|---|
| canary alarm | CloudWatch DescribeAlarms (primary) | "unreachable"/"error": the witness stands in |
| primary instance | RDS DescribeDBInstances (primary) | "unreachable"/"error": RDS's view is unknown |
| replica instance, StatusInfos | RDS DescribeDBInstances (secondary) | no decision this run |
| ReplicaLag series | CloudWatch GetMetricStatistics (secondary) | RPO unknown |
| witness (replica canary's log) | CloudWatch Logs FilterLogEvents (secondary) | witness unknown |
| arming | SSM GetParameter (secondary) | not armed |
| ledger | DynamoDB GetItem (secondary) | no promotion, no fence change this run |

Nothing here calls Route 53's control plane (us-east-1) or any global API: with the
primary region gone, every read the decision needs is served by the secondary region.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from promoter_decision import Evidence, LagPoint, LedgerRecord
from promoter_ledger import Ledger
from promoter_settings import WITNESS_MAX_AGE_SECONDS, Settings

# Reads that fail this way mean "could not reach the endpoint", not "the API said no".
UNREACHABLE_ERRORS = (BotoConnectionError, HTTPClientError)
READ_REPLICATION = "read replication"
WITNESS_VALUES = ("healthy", "unhealthy", "unresolved")
# The replica canary's probe line (lambdas/canary/canary.py).
PROBE_EVENT = "canary-probe"


def failure(what: str, error: BaseException) -> tuple[str, str]:
    """(kind, message) for a failed call: kind is "unreachable" or "error"."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return "error", f"{what}: {info.get('Code', 'ClientError')}: {info.get('Message', '')}".rstrip(": ")
    kind = "unreachable" if isinstance(error, UNREACHABLE_ERRORS) else "error"
    return kind, f"{what}: {type(error).__name__}: {error}"


def error_code(error: BaseException) -> str:
    return error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""


def read_alarm_state(cloudwatch: Any, alarm_name: str
                     ) -> tuple[str, datetime.datetime | None, str | None]:
    """(state, since when, error). StateTransitionedTimestamp is when StateValue last changed;
    StateUpdatedTimestamp also moves on EvaluationState changes (CloudWatch API Reference,
    MetricAlarm), so it is only the fallback: it can make the state look younger, never older."""
    try:
        answer = cloudwatch.describe_alarms(AlarmNames=[alarm_name], AlarmTypes=["MetricAlarm"])
    except Exception as error:
        kind, message = failure("cloudwatch DescribeAlarms (primary region)", error)
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
        if error_code(error) == "ParameterNotFound":
            return "missing", None, f"ssm GetParameter: arming parameter {name} not found"
        return "unknown", None, failure("ssm GetParameter (arming)", error)[1]
    value = str((answer.get("Parameter") or {}).get("Value", ""))
    if value == primary_identifier:
        return "armed", value, None
    return ("unarmed" if value == "unarmed" else "other-primary"), value, None


@dataclass(frozen=True)
class InstanceFacts:
    status: str
    source: str | None = None
    address: str | None = None
    resource_id: str | None = None
    replication_status: str | None = None
    replication_normal: bool | None = None
    replication_message: str = ""
    error: str | None = None


def read_instance(rds: Any, identifier: str, what: str) -> InstanceFacts:
    try:
        answer = rds.describe_db_instances(DBInstanceIdentifier=identifier)
    except Exception as error:
        if error_code(error) in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
            return InstanceFacts("missing", error=f"{what}: {identifier} not found")
        kind, message = failure(f"rds DescribeDBInstances ({what})", error)
        return InstanceFacts(kind, error=message)
    instance = answer["DBInstances"][0]
    replication = next((info for info in instance.get("StatusInfos") or []
                        if info.get("StatusType") == READ_REPLICATION), {})
    return InstanceFacts(
        status=instance.get("DBInstanceStatus", "unknown"),
        source=instance.get("ReadReplicaSourceDBInstanceIdentifier") or None,
        address=(instance.get("Endpoint") or {}).get("Address"),
        resource_id=instance.get("DbiResourceId"),
        replication_status=replication.get("Status"),
        replication_normal=replication.get("Normal"),
        replication_message=replication.get("Message", ""),
    )


def read_lag_points(cloudwatch: Any, identifier: str, now: datetime.datetime, lookback_seconds: int
                    ) -> tuple[tuple[LagPoint, ...], str]:
    """ReplicaLag (Maximum per minute) of the lookback window, oldest first; never raises."""
    try:
        answer = cloudwatch.get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName="ReplicaLag",
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
            StartTime=now - datetime.timedelta(seconds=lookback_seconds),
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )
    except Exception as error:
        return (), failure("cloudwatch GetMetricStatistics (ReplicaLag)", error)[1]
    points = tuple(sorted(
        (LagPoint(point["Timestamp"].timestamp(), float(point["Maximum"]))
         for point in answer.get("Datapoints", [])),
        key=lambda point: point.at,
    ))
    return points, f"{len(points)} ReplicaLag datapoint(s) in the last {lookback_seconds // 60} minutes"


@dataclass(frozen=True)
class WitnessFacts:
    witness: str = "unknown"
    age_seconds: float | None = None
    replica_alive: bool | None = None
    error: str | None = None


def read_witness(logs: Any, log_group: str, now: datetime.datetime) -> WitnessFacts:
    """The replica canary's newest probe line: what Route 53 answered for witness.<zone>."""
    start_ms = int((now.timestamp() - WITNESS_MAX_AGE_SECONDS) * 1000)
    request: dict[str, Any] = {"logGroupName": log_group, "startTime": start_ms,
                               "endTime": int(now.timestamp() * 1000) + 1}
    newest: tuple[int, dict[str, Any]] | None = None
    try:
        for _page in range(5):
            answer = logs.filter_log_events(**request)
            for event in answer.get("events", []):
                line = _probe_line(event.get("message", ""))
                if line is not None and (newest is None or event["timestamp"] >= newest[0]):
                    newest = (event["timestamp"], line)
            if not answer.get("nextToken"):
                break
            request["nextToken"] = answer["nextToken"]
    except Exception as error:
        return WitnessFacts(error=failure("logs FilterLogEvents (replica canary)", error)[1])
    if newest is None:
        return WitnessFacts(error=f"no replica-canary observation in the last {WITNESS_MAX_AGE_SECONDS} s")
    stamp, line = newest
    alive = line.get("alive")
    return WitnessFacts(witness=line["witness"], age_seconds=round(now.timestamp() - stamp / 1000, 1),
                        replica_alive=alive if isinstance(alive, bool) else None)


def _probe_line(message: str) -> dict[str, Any] | None:
    try:
        line = json.loads(message)
    except ValueError:
        return None  # the runtime's START/END/REPORT lines
    if isinstance(line, dict) and line.get("event") == PROBE_EVENT and line.get("witness") in WITNESS_VALUES:
        return line
    return None


def read_ledger(ledger: Ledger) -> tuple[LedgerRecord | None, bool, str | None]:
    """(record, readable, error)."""
    try:
        return ledger.read(), True, None
    except Exception as error:
        return None, False, failure("dynamodb GetItem (failover ledger)", error)[1]


def gather_evidence(clients: Any, settings: Settings, ledger: Ledger,
                    now: datetime.datetime) -> Evidence:
    """All reads at once: the slowest (a hanging primary region) bounds the total."""
    reads: dict[str, Callable[[], Any]] = {
        "alarm": lambda: read_alarm_state(clients.cloudwatch_primary, settings.canary_alarm_name),
        "primary": lambda: read_instance(clients.rds_primary, settings.primary_identifier, "primary"),
        "replica": lambda: read_instance(clients.rds_replica, settings.replica_identifier, "replica"),
        "lag": lambda: read_lag_points(clients.cloudwatch_replica, settings.replica_identifier, now,
                                       settings.lag_lookback_seconds),
        "witness": lambda: read_witness(clients.logs_replica, settings.witness_log_group, now),
        "arming": lambda: read_arming(clients.ssm, settings.arming_parameter_name,
                                      settings.primary_identifier),
        "ledger": lambda: read_ledger(ledger),
    }
    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="evidence") as pool:
        futures = {name: pool.submit(read) for name, read in reads.items()}
    answers = {name: future.result() for name, future in futures.items()}

    alarm_state, alarm_since, alarm_error = answers["alarm"]
    primary: InstanceFacts = answers["primary"]
    replica: InstanceFacts = answers["replica"]
    lag_points, lag_detail = answers["lag"]
    witness: WitnessFacts = answers["witness"]
    arming, arming_value, arming_error = answers["arming"]
    record, ledger_readable, ledger_error = answers["ledger"]
    replica_readable = replica.status not in ("missing", "unreachable", "error")
    return Evidence(
        alarm_state=alarm_state,
        alarm_state_seconds=round(max(0.0, (now - alarm_since).total_seconds()), 1) if alarm_since else None,
        primary_status=primary.status,
        witness=witness.witness,
        witness_age_seconds=witness.age_seconds,
        replica_alive=witness.replica_alive,
        replica_status=replica.status,
        replica_is_replica=(replica.source is not None) if replica_readable else None,
        replica_source=replica.source,
        replica_address=replica.address,
        replica_resource_id=replica.resource_id,
        replication_status=replica.replication_status,
        replication_normal=replica.replication_normal,
        replication_message=replica.replication_message,
        lag_points=lag_points,
        lag_detail=lag_detail,
        arming=arming,
        arming_value=arming_value,
        ledger=record,
        ledger_readable=ledger_readable,
        errors=tuple(message for message in (
            alarm_error, primary.error, replica.error, witness.error, arming_error, ledger_error,
        ) if message),
    )
