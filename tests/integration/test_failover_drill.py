"""The failover drills. DESTRUCTIVE: each promotes the replica of the deployment under test.

Promotion is one-way (FIELD-NOTES 14): afterwards the replica is a standalone writable
instance, writers are fenced onto it and the old primary is stopped. To get back to
active-passive, follow RUNBOOK.md (failback), or destroy the deployment (``make destroy``).
Never run a drill against a deployment that serves anything.

* ``test_failover_drill``. Real AWS (opt-in, ``RUN_FAILOVER_DRILL=1``): a person decides
  the primary is gone and asks the promoter to fail over (``operatorFailover``), the path
  RUNBOOK.md gives on-call; a healthy primary cannot be made to look failed to RDS, and
  the automatic decision refuses, by design, to promote on the canary alone. On the
  emulator: the primary fails as RDS would report it (played), its canary fails, and the
  promoter decides by itself.
* ``test_regional_outage_drill`` (emulator only: no one can switch a real region off): the
  emulator refuses every call to the primary region and to Route 53's control plane; the
  promoter waits for Route 53's global view (the witness), promotes, fences; the region
  comes back and writers stay on the new primary without any Route 53 API call.

Both then check: the replica promoted (stands alone, available), writers fenced (the
ledger, the writer answer), exactly one "promote" notification, and the old primary
stopped once it answers again. Each phase's time is printed and, with
``DRILL_REPORT_PATH``, written as JSON; none is asserted.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

from offline.emulator import EmulatorCorrections
from tests.support.integration import (
    DRILL_REPORT_ENV,
    Phases,
    PlayedCanaries,
    PlayedPrimaryFailure,
    PromoterRunner,
    RegionOutage,
    client,
    describe_instance,
    drill_requested,
    wait_for,
)

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.skipif(not drill_requested(),
                       reason="the failover drills promote the replica (one-way): opt in with "
                              "RUN_FAILOVER_DRILL=1 on a deployment that serves nothing"),
]

ROUTE53_CONTROL_PLANE = {"GetHealthCheckStatus", "ChangeResourceRecordSets", "ListResourceRecordSets"}


@dataclass(frozen=True)
class Waits:
    """How long to wait for AWS to act; the emulator acts at once."""

    route53: float
    promotion: float
    notification: float
    interval: float


AWS_WAITS = Waits(route53=600, promotion=3600, notification=120, interval=15)
EMULATOR_WAITS = Waits(route53=10, promotion=10, notification=10, interval=0.2)


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


class Notifications:
    """An SQS queue subscribed to the failover events topic for the drill."""

    def __init__(self, deployment: Any, waits: Waits):
        region = deployment["replicaRegion"]
        self.sqs, self.sns, self.waits = client("sqs", region), client("sns", region), waits
        self.received: list[dict[str, Any]] = []
        self.url, self.subscription = subscribe_queue(
            self.sqs, self.sns, f"{deployment['replicaInstanceIdentifier']}-drill",
            deployment["failoverEventsTopicArn"])

    def drain(self) -> list[dict[str, Any]]:
        """Read what arrived; each body is the SNS envelope around the promoter's JSON."""
        for message in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=1).get("Messages", []):
            envelope = json.loads(message["Body"])
            self.received.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return self.received

    def wait_for(self, action: str) -> dict[str, Any]:
        wait_for(f"the {action} notice on the failover events topic",
                 lambda: [m for m in self.drain() if m.get("action") == action],
                 self.waits.notification, self.waits.interval)
        return next(m for m in self.received if m.get("action") == action)

    def actions(self) -> list[str]:
        return [m["action"] for m in self.drain()]

    def close(self) -> None:
        self.sns.unsubscribe(SubscriptionArn=self.subscription)
        self.sqs.delete_queue(QueueUrl=self.url)


def play_replica_lag(deployment: Any, seconds: float = 1.0) -> None:
    """RDS publishes AWS/RDS ReplicaLag for the replica every minute; moto does not, and AWS
    refuses customer data in AWS/ namespaces while moto accepts it: the drill plays RDS."""
    now = datetime.datetime.now(datetime.timezone.utc)
    client("cloudwatch", deployment["replicaRegion"]).put_metric_data(Namespace="AWS/RDS", MetricData=[
        {"MetricName": "ReplicaLag", "Value": seconds, "Unit": "Seconds",
         "Timestamp": now - datetime.timedelta(minutes=minutes),
         "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": deployment["replicaInstanceIdentifier"]}]}
        for minutes in (3, 2)
    ])


def promoted_and_available(rds: Any, deployment: Any, waits: Waits) -> dict[str, Any]:
    replica_id = deployment["replicaInstanceIdentifier"]

    def standalone() -> dict[str, Any] | None:
        instance = describe_instance(rds, replica_id)
        alone = ("ReadReplicaSourceDBInstanceIdentifier" not in instance
                 and instance["DBInstanceStatus"] == "available")
        return instance if alone else None

    promoted = wait_for(f"{replica_id} to be promoted", standalone, waits.promotion, waits.interval)
    assert promoted["DBInstanceArn"] == deployment["replicaInstanceArn"]
    return promoted


def ledger_state(deployment: Any) -> str | None:
    item = client("dynamodb", deployment["replicaRegion"]).get_item(
        TableName=deployment["failoverLedgerTableName"],
        Key={"pk": {"S": f"failover/{deployment['replicaInstanceIdentifier']}"}}).get("Item")
    return item["state"]["S"] if item else None


def writers_fenced_on_aws(deployment: Any, waits: Waits) -> None:
    """On AWS the zone is private and the drill runs outside it: Route 53's verdict on the
    writer fence check (a control-plane read, fine in a drill; never on the failover path)
    says which member it answers with (PRIMARY unhealthy, SECONDARY unchecked)."""
    route53 = client("route53", "us-east-1")

    def unhealthy() -> bool:
        statuses = [o["StatusReport"]["Status"] for o in route53.get_health_check_status(
            HealthCheckId=deployment["writerFenceHealthCheckId"])["HealthCheckObservations"]]
        return bool(statuses) and sum(s.startswith("Failure") for s in statuses) * 2 > len(statuses)

    wait_for("Route 53 to fence writers onto the replica", unhealthy, waits.route53, waits.interval)


def test_failover_drill(deployment, emulated):
    phases = Phases()
    waits = EMULATOR_WAITS if emulated else AWS_WAITS
    corrections = EmulatorCorrections() if emulated else None
    failure = PlayedPrimaryFailure(deployment["primaryDbInstanceIdentifier"])
    promoter = PromoterRunner(deployment, emulated,
                              hooks=[corrections.hook, failure.hook] if corrections else [])
    make = corrections.client if corrections else client
    rds = make("rds", deployment["replicaRegion"])
    canaries = (PlayedCanaries(deployment, client("route53", deployment["replicaRegion"]))
                if emulated else None)
    replica_id = deployment["replicaInstanceIdentifier"]
    if deployment["automationMode"] != "automatic":
        pytest.skip(f"automationMode is {deployment['automationMode']!r}: the drill needs automatic")

    notifications = None
    try:
        with phases("subscribe a queue to the failover events topic"):
            notifications = Notifications(deployment, waits)
            before = describe_instance(rds, replica_id)
            assert before["ReadReplicaSourceDBInstanceIdentifier"] == deployment["primaryDbInstanceArn"], \
                "the drill needs an active-passive deployment (the replica is not replicating)"
            assert ledger_state(deployment) is None, "a failover is already recorded for this replica"

        with phases("promoter sees the primary healthy (and is armed)"):
            if canaries:
                canaries.primary("ok")
                canaries.relay_witness()
                play_replica_lag(deployment)
            healthy = promoter.invoke({"note": "failover drill: healthy"})
            assert healthy["action"] == "none", healthy["reasons"]

        with phases("the primary fails; the promoter runs"):
            if canaries:
                canaries.primary("failing")
                failure.active = True
                canaries.relay_witness()
                first = promoter.invoke({"note": "failover drill: primary failed"})
            else:
                first = promoter.invoke({"operatorFailover": replica_id, "note": "failover drill"})
        assert first["action"] == "promote", first["reasons"]
        assert first["outcome"]["promote"] == "requested", first["outcome"]
        assert first["outcome"]["ledger"] == "claimed the failover"

        with phases("replica promoted (stands alone, available)"):
            promoted_and_available(rds, deployment, waits)

        with phases("writers fenced on the promoted replica"):
            assert ledger_state(deployment) == "promote-requested"
            if canaries:
                assert canaries.view.writer() == "replica"
            else:
                writers_fenced_on_aws(deployment, waits)

        with phases("promotion notification delivered"):
            notice = notifications.wait_for("promote")
            assert notice["replica"] == replica_id and notice["outcome"]["promote"] == "requested"

        with phases("old primary recovers; promoter run 2 fences it"):
            if canaries:
                failure.active = False
                canaries.primary("ok")
                canaries.relay_witness()
            second = promoter.invoke({"note": "failover drill: old primary back"})
        assert second["action"] == "already-promoted", second["reasons"]
        assert "promote" not in second["outcome"]
        assert second["evidence"]["replica_is_replica"] is False
        assert "fence_database" in second["outcome"]
        if canaries:
            assert second["outcome"]["fence_database"] == "stopping the old primary (StopDBInstance)"
            assert canaries.view.writer() == "replica", "writers failed back"
            assert corrections.count("PromoteReadReplica") == 1
        assert notifications.actions().count("promote") == 1
    finally:
        if notifications:
            notifications.close()
        _report(phases, corrections)


def test_regional_outage_drill(deployment, emulated):
    if not emulated:
        pytest.skip("the regional outage is played by the emulator: a real region cannot be switched off")
    phases = Phases()
    waits = EMULATOR_WAITS
    primary_region = deployment["primaryDbRegion"]
    corrections = EmulatorCorrections()
    outage = RegionOutage(primary_region, control_plane=True)
    promoter = PromoterRunner(deployment, emulated, hooks=[corrections.hook, outage.hook])
    rds = corrections.client("rds", deployment["replicaRegion"])
    canaries = PlayedCanaries(deployment, client("route53", deployment["replicaRegion"]))
    notifications = None
    try:
        with phases("subscribe a queue; the promoter sees the primary healthy"):
            notifications = Notifications(deployment, waits)
            assert ledger_state(deployment) is None, "a failover is already recorded for this replica"
            canaries.primary("ok")
            canaries.relay_witness()
            play_replica_lag(deployment)  # lag datapoints from before the outage bound the RPO
            healthy = promoter.invoke({"note": "regional outage drill: healthy"})
            assert healthy["action"] == "none", healthy["reasons"]

        with phases("the primary region goes dark; Route 53 has not seen it yet"):
            outage.down = True
            canaries.view.primary_down = True
            waiting = promoter.invoke({"note": "regional outage drill: region down"})
            assert waiting["action"] == "signals-disagree", waiting["reasons"]
            assert waiting["evidence"]["primary_region_reachable"] is False
            assert waiting["evidence"]["witness"] == "healthy"

        with phases("Route 53 sees the canary's data gone; the replica canary relays it"):
            assert canaries.relay_witness() == "unhealthy"
            promoted = promoter.invoke({"note": "regional outage drill: witness turned"})
        assert promoted["action"] == "promote", promoted["reasons"]
        assert promoted["outcome"]["promote"] == "requested"
        assert promoted["outcome"]["fence_database"].startswith("pending: the primary region does not answer")

        with phases("replica promoted, writers fenced, notified"):
            promoted_and_available(rds, deployment, waits)
            assert canaries.view.writer() == "replica"
            assert notifications.wait_for("promote")["replica"] == deployment["replicaInstanceIdentifier"]

        with phases("the region comes back; writers stay; the old primary is stopped"):
            outage.down = False
            canaries.view.primary_down = False
            canaries.primary("ok")
            assert canaries.relay_witness() == "healthy"
            after = promoter.invoke({"note": "regional outage drill: region back"})
        assert after["action"] == "already-promoted", after["reasons"]
        assert after["outcome"]["fence_database"] == "stopping the old primary (StopDBInstance)"
        assert canaries.view.writer() == "replica", "writers failed back"
        old = describe_instance(client("rds", primary_region), deployment["primaryDbInstanceIdentifier"])
        assert old["DBInstanceStatus"] in ("stopping", "stopped")

        # The promoter tried the dead region (and was refused), never Route 53's control plane.
        refused = {call.operation for call in outage.refused}
        assert refused and not ROUTE53_CONTROL_PLANE & refused
        assert not ROUTE53_CONTROL_PLANE & set(corrections.calls)
        assert corrections.count("PromoteReadReplica") == 1
        assert notifications.actions().count("promote") == 1
    finally:
        if notifications:
            notifications.close()
        _report(phases, corrections, refused=sorted({str(call) for call in outage.refused}))


def _report(phases: Phases, corrections: EmulatorCorrections | None, **extra: Any) -> None:
    print("\ndrill phases:\n" + phases.render())
    applied = corrections.applied if corrections else []
    if applied:
        print("emulator corrections applied:\n" + "\n".join(f"  - {a}" for a in applied))
    # What the drill promoted: the rehearsal, in another process, corrects moto's later
    # answers about it the same way (EmulatorCorrections(promoted=...)).
    promoted = sorted(corrections.promoted_ids) if corrections else []
    phases.write(os.environ.get(DRILL_REPORT_ENV), corrections=applied, promoted=promoted, **extra)
