"""The failover drill. DESTRUCTIVE: it promotes the replica of the deployment under test.

Promotion is one-way (FIELD-NOTES 14): afterwards the replica is a standalone writable
instance, writers are fenced onto it, and the old primary no longer has a replica. To get
back to active-passive, follow RUNBOOK.md (failback), or destroy the deployment
(``make destroy``). Never run it against a deployment that serves anything.

* Real AWS: opt-in with ``RUN_FAILOVER_DRILL=1``. The primary is made unhealthy the way
  a real outage looks to the health signal: the canary's schedule is disabled (no runs =
  missing data = breaching) and the canary alarm is set to ALARM at once; the drill then
  waits for Route 53 to report the health check unhealthy. (Stopping the primary is not
  possible: RDS cannot stop an instance that has a read replica, RDS User Guide,
  USER_StopInstance, Limitations.) The schedule is re-enabled at the end.
* Rehearsal (emulator): always on. The alarm is set to ALARM, and the health-check status
  and the promoted instance's description are corrected openly where moto departs from
  AWS (see ``tests.support.integration.EmulatorCorrections``).

Phases: let the promoter see the primary healthy (it arms itself on a healthy observation),
make the primary unhealthy, run the promoter, see the replica promoted, writers
fenced (the writer PRIMARY record names the replica), the notification delivered (an SQS
queue subscribed to the failover events topic for the drill), and a second run after the
old primary "recovers" that does nothing (no second promotion, no failback). The time of
each phase is printed and, with ``DRILL_REPORT_PATH``, written as JSON; none is asserted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.integration import (
    DRILL_REPORT_ENV,
    EmulatorCorrections,
    Phases,
    PromoterRunner,
    client,
    describe_instance,
    drill_requested,
    record_sets,
    values_of,
    wait_for,
)

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.skipif(not drill_requested(),
                       reason="the failover drill promotes the replica (one-way): opt in with "
                              "RUN_FAILOVER_DRILL=1 on a deployment that serves nothing"),
]


@dataclass(frozen=True)
class Waits:
    """How long to wait for AWS to act; the emulator acts at once."""

    health_check: float
    promotion: float
    notification: float
    interval: float


AWS_WAITS = Waits(health_check=600, promotion=3600, notification=120, interval=15)
EMULATOR_WAITS = Waits(health_check=10, promotion=10, notification=10, interval=0.2)


def health_status(route53: Any, health_check_id: str) -> str:
    """Route 53's verdict: a majority of checkers reporting "Failure" means unhealthy."""
    observations = route53.get_health_check_status(HealthCheckId=health_check_id)["HealthCheckObservations"]
    statuses = [o.get("StatusReport", {}).get("Status", "") for o in observations]
    failures = sum(s.startswith("Failure") for s in statuses)
    return "unhealthy" if statuses and failures * 2 > len(statuses) else "healthy"


def subscribe_queue(sqs: Any, sns: Any, name: str, topic_arn: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={"SqsManagedSseEnabled": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    })})
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn,
                                 ReturnSubscriptionArn=True)["SubscriptionArn"]
    return url, subscription


def drain(sqs: Any, url: str, into: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Read what arrived; each body is the SNS envelope around the promoter's JSON."""
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=1).get("Messages", []):
        envelope = json.loads(message["Body"])
        into.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return into


def set_canary_schedules(events: Any, canary_arn: str, enabled: bool) -> list[str]:
    rules = events.list_rule_names_by_target(TargetArn=canary_arn)["RuleNames"]
    for rule in rules:
        (events.enable_rule if enabled else events.disable_rule)(Name=rule)
    return rules


def test_failover_drill(deployment, emulated):
    phases = Phases()
    waits = EMULATOR_WAITS if emulated else AWS_WAITS
    corrections = EmulatorCorrections(deployment) if emulated else None
    make = corrections.client if corrections else client
    promoter = PromoterRunner(deployment, emulated, hooks=[corrections.hook] if corrections else [])

    primary_region, replica_region = deployment["primaryDbRegion"], deployment["replicaRegion"]
    replica_id, replica_address = deployment["replicaInstanceIdentifier"], deployment["replicaAddress"]
    alarm, check_id = deployment["canaryAlarmName"], deployment["primaryHealthCheckId"]
    rds = make("rds", replica_region)
    route53 = make("route53", primary_region)
    cloudwatch = client("cloudwatch", primary_region)
    events = client("events", primary_region)
    sqs, sns = client("sqs", replica_region), client("sns", replica_region)
    if deployment["automationMode"] != "automatic":
        pytest.skip(f"automationMode is {deployment['automationMode']!r}: the promoter only "
                    "promotes in automatic mode")

    queue_url = subscription = None
    paused_rules: list[str] = []
    received: list[dict[str, Any]] = []
    try:
        with phases("subscribe a queue to the failover events topic"):
            queue_url, subscription = subscribe_queue(
                sqs, sns, f"{replica_id}-drill", deployment["failoverEventsTopicArn"])
            before = describe_instance(rds, replica_id)
            assert before["ReadReplicaSourceDBInstanceIdentifier"] == deployment["primaryDbInstanceArn"], \
                "the drill needs an active-passive deployment (the replica is not replicating)"

        # The promoter promotes only after it has itself seen this primary healthy (it arms
        # on a healthy observation): a fresh alarm without data must not fail a new
        # deployment over. On AWS the schedule did this long ago; doing it here is harmless.
        with phases("promoter sees the primary healthy"):
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK",
                                       StateReason="failover drill: primary healthy")
            wait_for("Route 53 to report the primary healthy",
                     lambda: health_status(route53, check_id) == "healthy",
                     waits.health_check, waits.interval)
            healthy = promoter.invoke({"dryRun": False, "drill": "failover"})
            assert healthy["action"] == "none", healthy["reasons"]

        with phases("make the primary unhealthy (alarm -> health check)"):
            if not emulated:
                paused_rules = set_canary_schedules(events, deployment["canaryFunctionArn"], enabled=False)
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM",
                                       StateReason="failover drill: primary made unhealthy")
            wait_for("Route 53 to report the primary unhealthy",
                     lambda: health_status(route53, check_id) == "unhealthy",
                     waits.health_check, waits.interval)

        with phases("promoter run 1"):
            first = promoter.invoke({"dryRun": False, "drill": "failover"})
        if emulated:
            assert first["action"] == "promote", first["reasons"]
        else:
            # The promoter's own schedule or the alarm's notification may have beaten us.
            assert first["action"] in ("promote", "already-promoted"), first["reasons"]
        if first["action"] == "promote":
            assert first["outcome"].get("promote") == "requested", first["outcome"]
            assert str(first["outcome"].get("fence", "")).startswith("applied"), first["outcome"]

        with phases("replica promoted (stands alone, available)"):
            def standalone() -> dict[str, Any] | None:
                instance = describe_instance(rds, replica_id)
                alone = ("ReadReplicaSourceDBInstanceIdentifier" not in instance
                         and instance["DBInstanceStatus"] == "available")
                return instance if alone else None

            promoted = wait_for(f"{replica_id} to be promoted", standalone, waits.promotion, waits.interval)
            assert promoted["DBInstanceArn"] == deployment["replicaInstanceArn"]
            source = describe_instance(make("rds", primary_region), deployment["primaryDbInstanceIdentifier"])
            assert deployment["replicaInstanceArn"] not in source.get("ReadReplicaDBInstanceIdentifiers", [])

        with phases("writers fenced on the promoted replica"):
            pair = {r.get("Failover"): r for r in record_sets(
                route53, deployment["hostedZoneId"], deployment["writerRecordName"]) if r["Type"] == "CNAME"}
            assert values_of(pair["PRIMARY"]) == [replica_address.lower()]
            assert pair["PRIMARY"].get("HealthCheckId") == check_id
            assert values_of(pair["SECONDARY"]) == [replica_address.lower()]

        with phases("promotion notification delivered"):
            wait_for("the promotion notice on the failover events topic",
                     lambda: [m for m in drain(sqs, queue_url, received) if m.get("action") == "promote"],
                     waits.notification, waits.interval)
            notice = next(m for m in received if m.get("action") == "promote")
            assert notice["replica"] == replica_id
            assert notice["outcome"]["promote"] == "requested"

        with phases("old primary recovers; promoter run 2"):
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK",
                                       StateReason="failover drill: old primary back")
            second = promoter.invoke({"dryRun": False, "drill": "failover"})
        assert second["action"] == "already-promoted", second["reasons"]
        assert "promote" not in second["outcome"]
        assert second["evidence"]["replica_is_replica"] is False
        pair = {r.get("Failover"): r for r in record_sets(
            route53, deployment["hostedZoneId"], deployment["writerRecordName"]) if r["Type"] == "CNAME"}
        assert values_of(pair["PRIMARY"]) == [replica_address.lower()], "writers failed back"
        drain(sqs, queue_url, received)
        assert [m["action"] for m in received].count("promote") == 1, [m["action"] for m in received]
        if corrections:
            assert corrections.count("PromoteReadReplica") == 1
    finally:
        if subscription:
            sns.unsubscribe(SubscriptionArn=subscription)
        if queue_url:
            sqs.delete_queue(QueueUrl=queue_url)
        if paused_rules:
            set_canary_schedules(events, deployment["canaryFunctionArn"], enabled=True)
        print("\nfailover drill phases:\n" + phases.render())
        applied = corrections.applied if corrections else []
        if applied:
            print("emulator corrections applied:\n" + "\n".join(f"  - {a}" for a in applied))
        phases.write(os.environ.get(DRILL_REPORT_ENV), corrections=applied)
