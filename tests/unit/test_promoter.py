"""The promoter's handler against a two-region moto world, and the failure matrix.

The handler runs in-process with its own boto3 clients pointed at moto (``mock_aws``);
``tests/support/moto_failover.py`` builds the world, plays the canaries and Route 53's
data plane (``tests/support/route53_model.py``), and documents, with the AWS references,
where it corrects moto.

The world starts as a fresh deployment does: the arming parameter reads "unarmed". A
scenario that expects a promotion first runs the promoter while the primary is healthy
(``arm``), as a deployment gets armed, and only then breaks something.

Each row of the failure matrix asserts four things: the promoter's decision, what the
writer name answers (through the Route 53 model, from the records and the alarms' data),
the fence (ledger, FailoverFenced, the old primary) and the notifications.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from moto import mock_aws

from tests.support.lambdas import load_lambda
from tests.support.moto_failover import (
    ARMING_PARAMETER,
    PRIMARY_ID,
    REPLICA_ID,
    FailoverWorld,
    SilentPort,
)

promoter = load_lambda("promoter")
SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-01-01T00:00:00Z"}
ALARM = {"Records": [{"EventSource": "aws:sns", "Sns": {
    "TopicArn": "arn:aws:sns:eu-west-1:111122223333:db-canary-alarm-qa",
    "Message": json.dumps({"AlarmName": "db-canary-errors-qa", "NewStateValue": "ALARM"})}}]}


def make_world(monkeypatch, **fields) -> FailoverWorld:
    built = FailoverWorld(**fields).build()
    for key, value in built.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(promoter, "make_client", built.client_factory(promoter))
    return built


@pytest.fixture()
def world(monkeypatch):
    # The world needs one VPC, not moto's catalogue of public AMIs (most of its setup time).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield make_world(monkeypatch)


def invoke(capsys, event=SCHEDULE) -> dict:
    """Run the handler; return its answer, checking it logged exactly one decision line."""
    answer = promoter.handler(event, None)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    assert json.loads(lines[0])["action"] == answer["action"]
    return answer


def arm(world, capsys) -> None:
    """One scheduled run while the primary is healthy: how a deployment gets armed."""
    answer = invoke(capsys)
    assert answer["action"] == "none", answer["reasons"]
    assert world.arming_value() == PRIMARY_ID


# --- the failure matrix ------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One scenario: what breaks, the runs, and what must hold afterwards."""

    setup: Callable[[FailoverWorld], None]
    actions: tuple[str, ...]  # the decision of each run, in order
    writer: str  # "primary" | "replica": what writer.<zone> answers after the runs
    ledger: str | None  # the failover's ledger state, or None when nothing is recorded
    published: tuple[str, ...]  # the actions the events topic received
    promote_calls: int = 0
    triggers: tuple[dict, ...] = (SCHEDULE,)
    old_primary: str | None = None  # the primary's status afterwards, when it matters
    world: dict = field(default_factory=dict)  # FailoverWorld fields


def canary_dead(world):  # the canary cannot run (throttled, broken deployment, ENI trouble)
    world.set_canary("silent")
    world.relay_witness()


def metrics_delayed(world):  # the primary region's CloudWatch is late: the alarm has no data
    world.set_alarm("INSUFFICIENT_DATA")
    world.relay_witness()


def instance(status, lag=(1.0, 2.0)):
    def setup(world):
        world.publish_replica_lag(*lag)
        world.set_canary("failing", alarm_for_seconds=180)
        world.set_primary_status(status)
        world.relay_witness()
    return setup


def multi_az_failover(world):
    world.publish_replica_lag(1.0)
    world.set_canary("failing", alarm_for_seconds=90)
    world.set_primary_status("rebooting")
    world.relay_witness()


def region_down(world):
    world.publish_replica_lag(0.5, 1.0, minutes_ago=4)  # datapoints from before the outage
    world.region_down()
    world.set_canary("silent")
    world.relay_witness()


def api_partition(world):
    world.publish_replica_lag(0.5, 1.0)
    world.api_partition()
    world.relay_witness()


def replica_broken(world):
    world.set_replication("error", False, "Replication has stopped")
    world.relay_witness()


def lag_above_guard(world):
    instance("failed", lag=(240.0, 600.0, 900.0))(world)


def lag_unknown(world):
    world.set_canary("failing", alarm_for_seconds=180)
    world.set_primary_status("failed")
    world.relay_witness()


MATRIX = {
    "canary dead or throttled, primary fine": Row(
        canary_dead, ("signals-disagree",), "primary", None, ("signals-disagree",), triggers=(ALARM,)),
    "metrics delayed in the primary region": Row(
        metrics_delayed, ("signals-disagree",), "primary", None, ()),
    "primary instance failed": Row(
        instance("failed"), ("promote",), "replica", "promote-requested", ("promote",), promote_calls=1),
    "primary storage-full": Row(
        instance("storage-full"), ("promote",), "replica", "promote-requested", ("promote",),
        promote_calls=1),
    "primary incompatible-parameters": Row(
        instance("incompatible-parameters"), ("promote",), "replica", "promote-requested", ("promote",),
        promote_calls=1),
    "Multi-AZ failover in progress": Row(
        multi_az_failover, ("retry-later",), "primary", None, ("retry-later",), triggers=(ALARM,)),
    "whole primary region (us-east-1) down, Route 53 control plane unreachable": Row(
        region_down, ("promote",), "replica", "promote-requested", ("promote",), promote_calls=1,
        world={"primary_region": "us-east-1"}),
    "API-only partition, replication healthy": Row(
        api_partition, ("signals-disagree",), "primary", None, ("signals-disagree",), triggers=(ALARM,)),
    "replica broken, primary fine": Row(
        replica_broken, ("signals-disagree",), "primary", None, ()),
    "lag above the guard": Row(
        lag_above_guard, ("rpo-hold",), "primary", None, ("rpo-hold",), triggers=(ALARM,)),
    "lag unknown": Row(lag_unknown, ("rpo-hold",), "primary", None, ()),
}


@pytest.mark.parametrize("row", MATRIX.values(), ids=MATRIX.keys())
def test_failure_matrix(monkeypatch, capsys, row):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        world = make_world(monkeypatch, **row.world)
        world.relay_witness()
        arm(world, capsys)
        assert world.writer_answer() == "primary"

        row.setup(world)
        actions = tuple(invoke(capsys, trigger)["action"] for trigger in row.triggers)

        assert actions == row.actions
        assert world.writer_answer() == row.writer
        item = world.ledger_item()
        assert (item and item["state"]["S"]) == row.ledger
        assert world.fence_published()[-1] == (1.0 if row.ledger else 0.0)
        assert tuple(n["action"] for n in world.notifications()) == row.published
        assert world.count("PromoteReadReplica") == row.promote_calls
        # Nothing on the failover path calls Route 53's control plane (us-east-1).
        assert not [op for op in world.calls if op in ROUTE53_CONTROL_PLANE]


ROUTE53_CONTROL_PLANE = {"GetHealthCheckStatus", "ChangeResourceRecordSets", "ListResourceRecordSets",
                         "GetHealthCheck", "UpdateHealthCheck"}


def test_regional_outage_waits_for_route53_then_promotes_and_the_region_returning_changes_nothing(
        monkeypatch, capsys):
    """The whole story of a us-east-1 outage, with no Route 53 control-plane call anywhere."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        world = make_world(monkeypatch, primary_region="us-east-1")
        world.relay_witness()
        arm(world, capsys)
        world.publish_replica_lag(0.5, 1.0, minutes_ago=4)

        # The region dies. The replica canary last saw Route 53 call the canary healthy.
        world.region_down()
        world.set_canary("silent")
        first = invoke(capsys)
        assert first["action"] == "signals-disagree"
        assert "link" in first["reasons"][2] and "no primary-region API answers" in first["reasons"][2]
        assert world.count("PromoteReadReplica") == 0
        # The outage refused the promoter's calls to us-east-1 (the one outage mechanism of
        # offline/emulator.py), none of them to Route 53, whose API lives there too.
        assert world.outage.refused and {c.region for c in world.outage.refused} == {"us-east-1"}
        assert not [c for c in world.outage.refused if c.service == "route53"]

        # Route 53's checkers find no canary data: the witness turns; the replica canary relays it.
        assert world.relay_witness() == "unhealthy"
        second = invoke(capsys)
        assert second["action"] == "promote"
        assert second["outcome"]["promote"] == "requested"
        assert second["outcome"]["fence_database"].startswith("pending: the primary region does not answer")
        assert world.writer_answer() == "replica"

        # The region comes back, the old primary with it; its canary is healthy again.
        world.region_back()
        world.set_canary("ok")
        assert world.relay_witness() == "healthy"
        third = invoke(capsys)
        assert third["action"] == "already-promoted"
        assert third["outcome"]["fence_database"] == "stopping the old primary (StopDBInstance)"
        assert world.primary_status() == "stopped"
        assert world.writer_answer() == "replica"  # no failback, no API call needed

        fourth = invoke(capsys)
        assert fourth["action"] == "already-promoted"
        assert fourth["outcome"]["fence_database"] == "old primary stopped: fenced"
        assert world.count("StopDBInstance") == 1
        assert world.count("PromoteReadReplica") == 1
        assert [n["action"] for n in world.notifications()] == ["promote", "already-promoted"]
        assert not [op for op in world.calls if op in ROUTE53_CONTROL_PLANE]


def test_a_restarted_old_primary_is_stopped_again(world, capsys):
    # RDS starts a stopped instance again after seven days (RDS User Guide, "Stopping an
    # Amazon RDS DB instance temporarily"): every run re-checks the fence.
    arm(world, capsys)
    instance("failed")(world)
    assert invoke(capsys)["action"] == "promote"
    world.set_primary_status("available")
    world.set_canary("ok")

    answer = invoke(capsys)

    assert answer["outcome"]["fence_database"] == "stopping the old primary (StopDBInstance)"
    assert world.primary_status() == "stopped"
    world.set_primary_status("available")  # seven days later
    invoke(capsys)
    assert world.count("StopDBInstance") == 2


def test_the_database_fence_waits_while_the_old_primary_still_has_its_replica(world, capsys):
    world.promotion_effect = "stale"  # RDS has accepted the promotion but not finished it
    arm(world, capsys)
    instance("failed")(world)
    invoke(capsys)
    world.set_primary_status("available")

    answer = invoke(capsys)

    assert answer["action"] == "already-promoted"
    assert answer["outcome"]["fence_database"].startswith("pending: RDS refused to stop the old primary yet")
    assert world.primary_status() == "available"


# --- exactly once (P4) --------------------------------------------------------------------

def test_concurrent_runs_promote_and_notify_exactly_once_without_reserved_concurrency(world, capsys):
    arm(world, capsys)
    instance("failed")(world)
    # Both runs read the same evidence before either acts: the race reserved concurrency
    # would have prevented. The barrier makes it happen every time.
    barrier = threading.Barrier(2, timeout=30)
    gather = promoter.evidence_reads.gather_evidence

    def gather_then_wait(*args, **kwargs):
        evidence = gather(*args, **kwargs)
        barrier.wait()
        return evidence

    answers: list[dict] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(promoter.evidence_reads, "gather_evidence", gather_then_wait)
        threads = [threading.Thread(target=lambda: answers.append(promoter.handler(SCHEDULE, None)))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    capsys.readouterr()

    assert sorted(a["action"] for a in answers) == ["already-promoted", "promote"]
    loser = next(a for a in answers if a["action"] == "already-promoted")
    assert loser["outcome"]["ledger"] == "claimed by another run"
    assert world.count("PromoteReadReplica") == 1
    assert [n["action"] for n in world.notifications()] == ["promote"]
    assert world.writer_answer() == "replica"


def test_back_to_back_runs_promote_once(world, capsys):
    world.promotion_effect = "stale"  # the second run still sees the replication link
    arm(world, capsys)
    instance("failed")(world)

    first, second = invoke(capsys), invoke(capsys)

    assert (first["action"], second["action"]) == ("promote", "already-promoted")
    assert world.count("PromoteReadReplica") == 1


def test_a_run_that_died_after_claiming_is_taken_over_after_its_lease(world, capsys, monkeypatch):
    arm(world, capsys)
    instance("failed")(world)
    # A run claims, then dies before PromoteReadReplica: play it with the real ledger code.
    ledger = promoter.Ledger(promoter.build_clients(promoter.Settings.from_env(world.env())).dynamodb,
                             "db-failover-ledger-qa", REPLICA_ID)
    resource_id = world._db("eu-central-1", REPLICA_ID).dbi_resource_id
    ledger.claim(resource_id, PRIMARY_ID, "dead-run", time.time(), lease_seconds=180)

    held = invoke(capsys)
    assert held["action"] == "already-promoted" and world.count("PromoteReadReplica") == 0

    monkeypatch.setenv("CLAIM_LEASE_SECONDS", "30")
    later = promoter.run(SCHEDULE, promoter.Settings.from_env(world.env()),
                         promoter.build_clients(promoter.Settings.from_env(world.env())),
                         clock=lambda: time.time() + 181)
    capsys.readouterr()

    assert later["action"] == "promote"
    assert later["outcome"]["ledger"] == "took over the failover: attempt 2"
    assert world.count("PromoteReadReplica") == 1
    assert world.ledger_item()["state"]["S"] == "promote-requested"


# --- replica states RDS may accept (P7) -----------------------------------------------------

def test_a_modifying_replica_is_attempted_and_a_refusal_retried_until_rds_accepts(world, capsys):
    arm(world, capsys)
    instance("failed")(world)
    world.set_replica_status("storage-optimization")
    world.promote_error = "InvalidDBInstanceState"

    first = invoke(capsys)
    assert first["action"] == "promote"
    assert first["outcome"]["promote"].startswith("refused by RDS (InvalidDBInstanceState")
    assert world.ledger_item()["state"]["S"] == "promote-refused"
    assert world.writer_answer() == "replica"  # fenced from the claim on: no writes to lose

    second = invoke(capsys)  # still refused: a hold, logged, not mailed again
    assert second["action"] == "retry-later"
    assert world.ledger_item()["attempt"]["N"] == "2"

    world.promote_error = None
    world.set_replica_status("available")
    third = invoke(capsys)
    assert third["action"] == "promote" and third["outcome"]["promote"] == "requested"
    assert world.count("PromoteReadReplica") == 3
    assert [n["action"] for n in world.notifications()] == ["promote", "promote"]


def test_a_failed_promote_call_raises_after_logging_and_notifying(world, capsys):
    arm(world, capsys)
    instance("failed")(world)
    world.promote_error = "ThrottlingException"

    with pytest.raises(promoter.PromoterError, match="ThrottlingException"):
        promoter.handler(SCHEDULE, None)

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["outcome"]["promote"].startswith("failed")
    assert [n["action"] for n in world.notifications()] == ["promote"]
    assert world.ledger_item()["state"]["S"] == "promote-failed"


# --- fail-safe inputs (P5) --------------------------------------------------------------

@pytest.mark.parametrize("payload", [{"DryRun": True}, {"dryRun": "yes"}, {"dryRun": True, "force": 1},
                                     ["dryRun"]], ids=["misspelled-key", "string-value", "extra-key", "list"])
def test_a_payload_the_promoter_does_not_know_is_refused_logged_and_notified(world, capsys, payload):
    arm(world, capsys)
    instance("failed")(world)

    answer = invoke(capsys, payload)

    assert answer["action"] == "refused"
    assert world.count("PromoteReadReplica") == 0
    assert world.ledger_item() is None
    assert [n["action"] for n in world.notifications()] == ["refused"]
    # The evidence was still read: the refusal says what the promoter would have faced.
    assert answer["evidence"]["primary_status"] == "failed"


@pytest.mark.parametrize("sns", [None, "text", {"TopicArn": "arn:t", "Message": 3}],
                         ids=["sns-null", "sns-string", "message-number"])
def test_a_malformed_notification_still_yields_one_decision_from_the_evidence(world, capsys, sns):
    arm(world, capsys)
    instance("failed")(world)

    answer = invoke(capsys, {"Records": [{"Sns": sns}]})

    assert answer["trigger"]["source"] == "sns" and "malformed" in answer["trigger"]
    assert answer["action"] == "promote"
    assert world.count("PromoteReadReplica") == 1


def test_dry_run_invoke_overrides_automatic_mode(world, capsys):
    arm(world, capsys)
    instance("failed")(world)

    metrics_before = world.count("PutMetricData")

    answer = invoke(capsys, {"dryRun": True, "note": "drill rehearsal"})

    assert answer["action"] == "dry-run" and answer["trigger"]["note"] == "drill rehearsal"
    assert world.count("PromoteReadReplica") == 0
    assert world.count("PutMetricData") == metrics_before and world.count("Publish") == 0


def test_operator_failover_in_manual_mode_promotes_and_fences(world, capsys, monkeypatch):
    monkeypatch.setenv("AUTOMATION_MODE", "manual")
    arm(world, capsys)
    world.set_canary("failing")  # one source only: the promoter alone would not promote

    answer = invoke(capsys, {"operatorFailover": REPLICA_ID, "note": "INC-42"})

    assert answer["action"] == "promote" and answer["outcome"]["promote"] == "requested"
    assert world.writer_answer() == "replica"
    assert [n["action"] for n in world.notifications()] == ["promote"]


# --- modes, arming, external promotions ----------------------------------------------------

def test_healthy_primary_arms_once_and_publishes_nothing(world, capsys):
    world.relay_witness()

    answer = invoke(capsys)

    assert answer["action"] == "none"
    assert answer["outcome"] == {"arm": f"armed for {PRIMARY_ID}",
                                 "fence_dns": "not failed over (FailoverFenced 0)"}
    assert answer["evidence"]["witness"] == "healthy"
    assert world.notifications() == []
    assert invoke(capsys)["outcome"] == {"fence_dns": "not failed over (FailoverFenced 0)"}
    json.dumps(answer)  # a Lambda result must serialize


def test_fresh_deployment_with_a_failing_alarm_never_promotes(world, capsys):
    # Before its first probe the canary's alarm has no data, and missing data is breaching.
    world.set_canary("silent")
    world.set_primary_status("failed")  # even with a second source: not armed

    answer = invoke(capsys, ALARM)

    assert answer["action"] == "not-armed"
    assert world.arming_value() == "unarmed"
    assert world.count("PromoteReadReplica") == 0
    assert [n["action"] for n in world.notifications()] == ["not-armed"]


def test_manual_mode_notifies_would_promote_and_changes_nothing(world, capsys, monkeypatch):
    monkeypatch.setenv("AUTOMATION_MODE", "manual")
    arm(world, capsys)  # manual mode arms too: switching to automatic later is armed already
    instance("failed")(world)

    answer = invoke(capsys)

    assert answer["action"] == "would-promote"
    assert world.count("PromoteReadReplica") == 0 and world.ledger_item() is None
    assert world.writer_answer() == "primary"
    sent = world.notifications()
    assert [n["action"] for n in sent] == ["would-promote"] and sent[0]["mode"] == "manual"


def test_a_promotion_by_hand_is_recorded_and_fences_writers(world, capsys):
    arm(world, capsys)
    world.detach_replica()  # an operator ran `aws rds promote-read-replica`

    first = invoke(capsys)
    second = invoke(capsys)

    assert first["action"] == "already-promoted" and first["outcome"]["ledger"] == "recorded the promotion"
    assert world.ledger_item()["state"]["S"] == "recorded"
    assert world.writer_answer() == "replica"
    assert second["action"] == "already-promoted" and "ledger" not in second["outcome"]
    assert world.count("PromoteReadReplica") == 0
    assert [n["action"] for n in world.notifications()] == ["already-promoted"]


def test_an_unreadable_ledger_promotes_nothing_and_leaves_the_fence_as_it_was(world, capsys):
    arm(world, capsys)
    published_before = world.fence_published()
    instance("failed")(world)
    world.ledger_error = "InternalServerError"

    answer = invoke(capsys, ALARM)

    assert answer["action"] == "retry-later"
    assert world.count("PromoteReadReplica") == 0
    assert "fence_dns" not in answer["outcome"]
    assert world.fence_published() == published_before
    assert world.writer_answer() == "primary"


def test_an_unreadable_arming_parameter_counts_as_not_armed(world, capsys):
    arm(world, capsys)
    instance("failed")(world)
    world.arming_read_error = "AccessDeniedException"

    answer = invoke(capsys)

    assert answer["action"] == "not-armed" and world.count("PromoteReadReplica") == 0


def test_a_failed_arming_write_raises_without_mailing_every_minute(world, capsys):
    world.arming_write_error = "ThrottlingException"

    with pytest.raises(promoter.PromoterError, match="ThrottlingException"):
        promoter.handler(SCHEDULE, None)

    capsys.readouterr()
    assert world.arming_value() == "unarmed"
    assert world.notifications() == []  # a scheduled run: logged, and the error alarm speaks


def test_arming_keeps_the_parameter_in_the_standard_tier(world, capsys):
    invoke(capsys)
    body = world.calls["PutParameter"][0]
    assert json.loads(body) == {"Name": ARMING_PARAMETER, "Value": PRIMARY_ID, "Type": "String",
                                "Tier": "Standard", "Overwrite": True}


def test_configuration_error_is_logged_once_and_raised(world, capsys, monkeypatch):
    monkeypatch.setenv("AUTOMATION_MODE", "sometimes")

    with pytest.raises(promoter.ConfigError, match="AUTOMATION_MODE"):
        promoter.handler(SCHEDULE, None)

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["action"] == "blocked"
    assert world.count("PromoteReadReplica") == 0


# --- bounded time ------------------------------------------------------------------------

def test_a_hanging_primary_region_costs_one_call_timeout(world, capsys):
    arm(world, capsys)
    with SilentPort() as endpoint:
        world.primary_endpoint = endpoint
        started = time.monotonic()
        answer = invoke(capsys)
        wall = time.monotonic() - started

    assert answer["evidence"]["primary_region_reachable"] is False
    # API_TIMEOUT_SECONDS=1, MAX_ATTEMPTS=1, reads in parallel: one hanging read's worth.
    assert wall < 3.5


def test_clients_are_bounded_by_timeout_and_attempts(monkeypatch, world):
    settings = promoter.Settings.from_env(world.env(API_TIMEOUT_SECONDS="4", MAX_ATTEMPTS="3"))
    config = promoter.client_config(settings)

    assert config.connect_timeout == 4 and config.read_timeout == 4
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}
