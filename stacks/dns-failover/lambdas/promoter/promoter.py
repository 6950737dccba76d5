"""Promoter: promote the cross-region replica when independent evidence says the primary is gone.

Runs in the SECONDARY region, outside any VPC, so a dead primary region cannot silence it,
and calls nothing that lives only in the primary region or in us-east-1 to decide,
promote or fence: Route 53's control plane is never called. Every AWS call is bounded by
a short timeout and a small number of attempts, because calls into a failed region hang.

Interface (kept in step with the Pulumi layer that deploys it, automated_promotion.py):
    handler  ``promoter.handler`` (runtime python3.13; standard library + boto3); the
             archive holds this file and its ``promoter_*.py`` siblings.
    triggers 1. the canary alarm's SNS notifications (``{"Records": [...]}``): a wake-up only;
             2. the one-minute EventBridge schedule (a "Scheduled Event" from aws.events);
             3. a direct invoke, a JSON object with only these keys:
                ``dryRun`` (true|false), ``note`` (a string up to 256 characters, logged),
                ``operatorFailover`` (the replica's identifier: promote and fence now,
                whatever the evidence and the mode; see RUNBOOK.md).
             Any other key or value is REFUSED: nothing is done, the refusal is logged and
             notified. Whatever the trigger, however malformed, the run reads its own
             evidence and logs exactly one decision line.
    env      see promoter_settings.Settings.from_env.
    returns  {"action", "reasons", "evidence", "mode", "outcome", "trigger", "elapsed_ms"};
             action is one of promoter_decision.ACTIONS. Raises PromoterError (after
             logging and notifying) only when an action it decided on failed, so the
             Errors metric and the promoter-errors alarm show it.
    IAM      rds:DescribeDBInstances on both instances; rds:PromoteReadReplica on the replica;
             rds:StopDBInstance on the primary (database fence); cloudwatch:DescribeAlarms on
             the canary alarm; cloudwatch:GetMetricStatistics ("*", no resource-level
             permissions); cloudwatch:PutMetricData ("*", condition cloudwatch:namespace);
             logs:FilterLogEvents on the replica canary's log group; ssm:GetParameter and
             ssm:PutParameter on the arming parameter; dynamodb:GetItem, PutItem, UpdateItem
             on the ledger table; sns:Publish on the events topic and its key; its own logs.

What a run does (the decision itself is promoter_decision's, a pure function):
  1. Reads the evidence in parallel (promoter_evidence: which region serves each read).
  2. Decides. Automatic promotion needs two independent sources that agree the primary is
     gone and none that says it is up, the promoter ARMED (it has seen this primary healthy
     since deployment), the replica in a state RDS may promote, and an RPO estimate within
     MAX_PROMOTION_LAG_SECONDS. manual mode notifies "would-promote"; dry-run only logs.
  3. Promotes exactly once: it claims the failover in the ledger (a conditional DynamoDB
     write); only the run whose claim succeeds calls PromoteReadReplica and sends the
     "promote" notification. RDS's answer is written back; a refused or failed attempt is
     taken over by a later run (promoter_ledger).
  4. Fences writers. Every run publishes FailoverFenced (1 while a failover is recorded for
     this replica, else 0) in the secondary region. The writer record's PRIMARY member
     carries a health check on the alarm that follows this metric, so once the replica is
     promoted Route 53 answers with the replica and keeps doing so with no API call at all,
     whatever the old primary does when its region returns (no automatic failback).
  5. Fences the database: once a failover is recorded and the primary region answers, the
     old primary is stopped (StopDBInstance; possible once it no longer has the replica),
     and stopped again on a later run if RDS restarted it (RDS starts a stopped instance
     after 7 days), so pooled connections that bypass DNS cannot keep writing to it.
  6. Notifies the events topic (promote, would-promote, fences and failures from any run;
     the rest only when the alarm or a person started the run: the schedule only logs,
     the layer's stuck-failover alarm speaks for lasting conditions) and logs one JSON line.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import promoter_decision as decision_rules
import promoter_evidence as evidence_reads
import promoter_ledger
from botocore.config import Config
from botocore.exceptions import ClientError
from promoter_decision import Decision, Evidence, Policy, decide
from promoter_ledger import CLAIMED, FAILED, RECORDED, REFUSED, REQUESTED, Ledger, LedgerConflict
from promoter_settings import ConfigError, Settings

SUBJECT_PREFIX = "DB failover"
DECISION_EVENT = "failover-decision"
NOTE_MAX_CHARACTERS = 256
DIRECT_KEYS = ("dryRun", "note", "operatorFailover")
# The envelope of an EventBridge scheduled event (EventBridge User Guide, "Amazon
# EventBridge events": the top-level fields of every event).
SCHEDULE_KEYS = frozenset({"version", "id", "detail-type", "source", "account", "time", "region",
                           "resources", "detail"})
INVALID_STATE_CODES = ("InvalidDBInstanceState", "InvalidDBInstanceStateFault")

__all__ = ["ConfigError", "PromoterError", "decision_rules", "evidence_reads", "handler",
           "promoter_ledger", "run"]


class PromoterError(RuntimeError):
    """An action the promoter decided on failed (raised after logging and notifying)."""


# --- triggers ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Trigger:
    source: str  # schedule | sns | direct
    details: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    operator_failover: bool = False
    refused: str | None = None  # why a direct payload was refused


def parse_trigger(event: Any, replica_identifier: str) -> Trigger:
    """What started this run. Only a direct payload can change what the run may do, so only
    a direct payload is refused; SNS and schedule events are wake-ups, however malformed."""
    if isinstance(event, Mapping):
        if (event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"
                and set(event) <= SCHEDULE_KEYS):
            return Trigger("schedule", {"time": event.get("time")})
        if set(event) == {"Records"}:
            return Trigger("sns", _sns_details(event["Records"]))
    return _direct(event, replica_identifier)


def _sns_details(records: Any) -> dict[str, Any]:
    if not isinstance(records, list) or not records or not isinstance(records[0], Mapping):
        return {"malformed": "Records is not a list of objects"}
    envelope = records[0].get("Sns")
    if not isinstance(envelope, Mapping):
        return {"malformed": f"Records[0].Sns is {type(envelope).__name__}, not an object"}
    topic = envelope.get("TopicArn")
    details: dict[str, Any] = {"topic": topic if isinstance(topic, str) else None}
    message = envelope.get("Message")
    if not isinstance(message, str):
        return {**details, "malformed": f"Sns.Message is {type(message).__name__}, not a string"}
    try:
        parsed = json.loads(message)
    except ValueError:
        return {**details, "malformed": "Sns.Message is not JSON"}
    if isinstance(parsed, Mapping):
        details.update(alarm=str(parsed.get("AlarmName")), state=str(parsed.get("NewStateValue")))
    return details


def _direct(event: Any, replica_identifier: str) -> Trigger:
    def refuse(why: str) -> Trigger:
        return Trigger("direct", {}, refused=why)

    if not isinstance(event, Mapping):
        return refuse(f"the payload is a JSON {type(event).__name__}, not an object with the keys "
                      f"{', '.join(DIRECT_KEYS)}")
    unknown = sorted(str(key) for key in event if key not in DIRECT_KEYS)
    if unknown:
        return refuse(f"unknown key(s) {', '.join(map(repr, unknown))}; a direct invoke may carry only "
                      f"{', '.join(DIRECT_KEYS)}")
    dry_run = event.get("dryRun", False)
    if not isinstance(dry_run, bool):
        return refuse(f"dryRun must be true or false (JSON booleans), got {dry_run!r}")
    note = event.get("note", "")
    if not isinstance(note, str) or len(note) > NOTE_MAX_CHARACTERS:
        return refuse(f"note must be a string of at most {NOTE_MAX_CHARACTERS} characters")
    operator = "operatorFailover" in event
    if operator and event["operatorFailover"] != replica_identifier:
        return refuse(f"operatorFailover must name this promoter's replica exactly "
                      f"({replica_identifier!r}), got {event['operatorFailover']!r}")
    if operator and dry_run:
        return refuse("operatorFailover cannot be combined with dryRun: true")
    details = {"note": note} if note else {}
    return Trigger("direct", details, dry_run=dry_run, operator_failover=operator)


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
    rds_primary: Any
    rds_replica: Any
    cloudwatch_primary: Any
    cloudwatch_replica: Any
    logs_replica: Any
    sns: Any
    ssm: Any
    dynamodb: Any


def build_clients(settings: Settings) -> Clients:
    # Made per invocation (cheap with the shared session): a connection left hanging
    # towards a failed region does not outlive the invocation.
    session = shared_session()
    primary, replica = settings.primary_region, settings.replica_region
    return Clients(
        rds_primary=make_client("rds", primary, settings, session),
        rds_replica=make_client("rds", replica, settings, session),
        cloudwatch_primary=make_client("cloudwatch", primary, settings, session),
        cloudwatch_replica=make_client("cloudwatch", replica, settings, session),
        logs_replica=make_client("logs", replica, settings, session),
        sns=make_client("sns", replica, settings, session),
        ssm=make_client("ssm", replica, settings, session),
        dynamodb=make_client("dynamodb", replica, settings, session),
    )


# --- actions ----------------------------------------------------------------------------

def promote(clients: Clients, settings: Settings) -> tuple[str, str]:
    """(ledger state, outcome) of one PromoteReadReplica call; raises on other errors."""
    try:
        clients.rds_replica.promote_read_replica(
            DBInstanceIdentifier=settings.replica_identifier,
            BackupRetentionPeriod=settings.backup_retention_days,
        )
    except ClientError as error:
        if evidence_reads.error_code(error) in INVALID_STATE_CODES:
            message = error.response.get("Error", {}).get("Message", "")
            return REFUSED, (f"refused by RDS (InvalidDBInstanceState: {message}); a later run "
                             "tries again while the replica is still a replica")
        raise
    return REQUESTED, "requested"


def publish_fence(clients: Clients, settings: Settings, fenced: bool) -> str:
    """The metric behind the writer record's health check (secondary region)."""
    clients.cloudwatch_replica.put_metric_data(
        Namespace=settings.fence_namespace,
        MetricData=[{"MetricName": settings.fence_metric, "Value": 1.0 if fenced else 0.0, "Unit": "Count"}],
    )
    return ("writers fenced onto the replica (FailoverFenced 1)" if fenced
            else "not failed over (FailoverFenced 0)")


def fence_old_primary(clients: Clients, settings: Settings, ev: Evidence) -> tuple[str, bool]:
    """(outcome, failed): stop the old primary once it can be stopped; idempotent."""
    status = ev.primary_status
    if status in ("stopped", "stopping", "deleting", "missing"):
        return f"old primary {status}: fenced", False
    if ev.primary_region_reachable is not True or status in ("unreachable", "error", "unknown"):
        return "pending: the primary region does not answer; retried every run", False
    if status != "available":
        return f"pending: old primary '{status}'; stopped once it is available", False
    try:
        clients.rds_primary.stop_db_instance(DBInstanceIdentifier=settings.primary_identifier)
    except ClientError as error:
        if evidence_reads.error_code(error) in INVALID_STATE_CODES:
            message = error.response.get("Error", {}).get("Message", "")
            return f"pending: RDS refused to stop the old primary yet ({message}); retried every run", False
        return f"failed: {evidence_reads.failure('rds StopDBInstance', error)[1]}", True
    except Exception as error:
        return f"failed: {evidence_reads.failure('rds StopDBInstance', error)[1]}", True
    return "stopping the old primary (StopDBInstance)", False


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


def publish(clients: Clients, settings: Settings, result: Mapping[str, Any]) -> None:
    subject = f"{SUBJECT_PREFIX} {result['action']}: {settings.replica_identifier}"
    clients.sns.publish(
        TopicArn=settings.events_topic_arn,
        Subject=subject.encode("ascii", "replace").decode()[:100],
        Message=json.dumps(result, default=str, sort_keys=True),
    )


def should_publish(decision: Decision, trigger_source: str, acted: bool, action_failed: bool) -> bool:
    """Whether this run's result goes to the events topic (dry-run is decided by the caller).

    Promotions, would-promotes, anything this run changed and every failure go out whatever
    the trigger. The rest (holds, disagreements, refusals...) only when the alarm's
    notification or a person started the run: the one-minute schedule only logs them, or a
    condition that lasts an hour would send sixty messages.
    """
    if action_failed or acted or decision.action == "would-promote":
        return True
    return decision.notify and trigger_source != "schedule"


# --- one run ----------------------------------------------------------------------------

@dataclass
class _Outcome:
    values: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # always published
    quiet_failures: list[str] = field(default_factory=list)  # published like non-actions
    acted: bool = False  # this run changed something (promotion, ledger, database fence)

    def fail(self, key: str, what: str, error: BaseException, quiet: bool = False) -> None:
        self.values[key] = f"failed: {evidence_reads.failure(what, error)[1]}"
        (self.quiet_failures if quiet else self.failures).append(self.values[key])


def _log_line(line: str) -> None:
    print(line, flush=True)  # the Lambda runtime ships stdout lines to CloudWatch Logs


def run(
    event: Any,
    settings: Settings,
    clients: Clients,
    run_id: str | None = None,
    log: Callable[[str], None] = _log_line,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    started = time.monotonic()
    run_id = run_id or str(uuid.uuid4())
    trigger = parse_trigger(event, settings.replica_identifier)
    mode = "dry-run" if trigger.dry_run else settings.automation_mode
    now = clock()
    ledger = Ledger(clients.dynamodb, settings.ledger_table_name, settings.replica_identifier)
    evidence = evidence_reads.gather_evidence(
        clients, settings, ledger, datetime.datetime.fromtimestamp(now, datetime.timezone.utc))
    decision = decide(evidence, Policy(
        mode=mode, recovery_grace_seconds=settings.recovery_grace_seconds,
        max_promotion_lag_seconds=settings.max_promotion_lag_seconds,
        operator_failover=trigger.operator_failover, refused=trigger.refused, now=now,
    ))
    reasons = list(decision.reasons)
    out = _Outcome()
    record = evidence.ledger_for_this_replica

    if decision.arm:
        try:
            out.values["arm"] = arm(clients, settings)
        except Exception as error:
            out.fail("arm", "ssm PutParameter (arming)", error, quiet=True)

    owned = None  # the ledger attempt this run holds, if any
    # Whether this run knows the ledger's state; if not, the fence metric is left as it was
    # (Route 53 keeps the last known status), never published from a guess.
    fence_known = evidence.ledger_readable and trigger.refused is None
    if decision.claim or decision.record or decision.retry:
        try:
            if decision.retry and record is not None:
                owned = ledger.take_over(record, run_id, now, settings.claim_lease_seconds)
                out.values["ledger"] = f"took over the failover: attempt {owned.attempt}"
            else:
                owned = ledger.claim(
                    evidence.replica_resource_id or "", settings.primary_identifier, run_id, now,
                    settings.claim_lease_seconds, state=RECORDED if decision.record else CLAIMED,
                    detail="promotion found done outside the promoter" if decision.record else "",
                )
                out.values["ledger"] = "recorded the promotion" if decision.record else "claimed the failover"
                out.acted = True
            record = owned
        except LedgerConflict:
            # Another run got there first: it promotes and notifies; this one does neither.
            reasons.append("another run claimed this failover first: not promoting (exactly once)")
            decision = replace(decision, action="already-promoted", claim=False, retry=False,
                               record=False, notify=False)
            out.values["ledger"] = "claimed by another run"
            try:
                record = _current(ledger.read(), evidence)
            except Exception as error:
                out.fail("ledger", "dynamodb GetItem (failover ledger)", error, quiet=True)
                fence_known = False
        except Exception as error:
            # The write may or may not have landed: neither promote nor touch the fence.
            out.fail("ledger", "dynamodb PutItem/UpdateItem (failover ledger)", error)
            reasons.append("could not write the failover ledger: not promoting (exactly once cannot be "
                           "guaranteed); re-evaluated on the next run")
            fence_known = False

    if owned is not None and decision.promotes:
        try:
            state, out.values["promote"] = promote(clients, settings)
        except Exception as error:
            out.fail("promote", "rds PromoteReadReplica", error)
            state = FAILED
        if decision.retry and state == REFUSED:
            # RDS still refuses: a hold, counted by the stuck-failover alarm, mailed only off
            # the schedule; the first refusal was published by the run that claimed.
            decision = replace(decision, action="retry-later")
        else:
            out.acted = True
        try:
            ledger.settle(owned, state, out.values["promote"], clock())
        except Exception as error:
            out.fail("ledger", "dynamodb UpdateItem (failover ledger)", error)

    fenced = record is not None
    if mode != "dry-run" and fence_known:
        try:
            out.values["fence_dns"] = publish_fence(clients, settings, fenced)
        except Exception as error:
            out.fail("fence_dns", "cloudwatch PutMetricData (FailoverFenced)", error, quiet=not fenced)
    if fenced and decision.fence_database:
        out.values["fence_database"], failed = fence_old_primary(clients, settings, evidence)
        if failed:
            out.failures.append(out.values["fence_database"])
        out.acted |= out.values["fence_database"].startswith("stopping")

    result: dict[str, Any] = {
        "action": decision.action,
        "reasons": reasons,
        "mode": mode,
        "trigger": {"source": trigger.source, **trigger.details},
        "run": run_id,
        "replica": settings.replica_identifier,
        "primary": settings.primary_identifier,
        "evidence": evidence.to_dict(),
        "outcome": out.values,
    }
    noteworthy = replace(decision, notify=decision.notify or bool(out.quiet_failures))
    if mode != "dry-run" and should_publish(noteworthy, trigger.source, out.acted, bool(out.failures)):
        try:
            publish(clients, settings, result)
            out.values["notify"] = "published"
        except Exception as error:
            out.fail("notify", "sns Publish", error)
    elif noteworthy.notify and mode != "dry-run":
        out.values["notify"] = "logged only (scheduled run)"
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000.0, 1)
    log(json.dumps({"event": DECISION_EVENT, **result}, default=str, sort_keys=True))
    # Raised after the log line, so the Errors metric (and the promoter's error alarm) shows it.
    if out.failures or out.quiet_failures:
        raise PromoterError("; ".join(out.failures + out.quiet_failures))
    return result


def _current(record: Any, ev: Evidence) -> Any:
    """``record`` if it belongs to the replica instance the evidence describes."""
    if record is None or record.replica_resource_id != ev.replica_resource_id:
        return None
    return record


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as error:
        # Still one line per invocation, and still an error for the Errors alarm.
        _log_line(json.dumps({"event": DECISION_EVENT, "action": "blocked",
                              "reasons": [f"configuration error: {error}"]}, default=str, sort_keys=True))
        raise
    return run(event, settings, build_clients(settings), run_id=getattr(context, "aws_request_id", None))
