"""The promoter: its pure decision table, and its handler against a two-region moto world.

The handler runs in-process with its own boto3 clients pointed at moto (``mock_aws``);
``tests/support/moto_failover.py`` builds the world and documents, with the AWS
references, the two places where the test corrects moto (health check status, and the
replication link a finished promotion removes).

The world starts as a fresh deployment does: the arming parameter reads "unarmed". A
test that expects a promotion first runs the promoter while the primary is healthy
(``arm``), exactly as a deployment gets armed, and only then fails the primary.
"""

from __future__ import annotations

import datetime
import json
import os
import time

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from tests.support.lambdas import load_lambda
from tests.support.moto_failover import (
    ARMING_PARAMETER,
    HEALTHY,
    PRIMARY_ID,
    REPLICA_ID,
    UNHEALTHY,
    WRITER,
    FailoverWorld,
    SilentPort,
    observations,
    refused_endpoint,
)

promoter = load_lambda("promoter")
SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-01-01T00:00:00Z"}


def alarm_notification(state: str = "ALARM") -> dict:
    message = json.dumps({"AlarmName": "db-qa-canary-failing", "NewStateValue": state})
    sns = {"TopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms", "Message": message}
    return {"Records": [{"EventSource": "aws:sns", "Sns": sns}]}


ALARM_NOTIFICATION = alarm_notification()


@pytest.fixture()
def world(monkeypatch):
    # The world needs one VPC, not moto's catalogue of public AMIs (most of its setup time).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        built = FailoverWorld().build()
        for key, value in built.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(promoter, "make_client", built.client_factory(promoter))
        yield built


def invoke(capsys, event=SCHEDULE):
    """Run the handler; return its answer and the one JSON line it logged."""
    answer = promoter.handler(event, None)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return answer, json.loads(lines[0])


def primary_down(world):
    world.health_check_observations = list(UNHEALTHY)
    world.set_alarm("ALARM")


def arm(world, capsys):
    """One scheduled run while the primary is healthy: how a deployment gets armed."""
    assert world.health_check_observations == HEALTHY
    answer, _ = invoke(capsys)
    assert answer["action"] == "none"
    assert answer["outcome"]["arm"] == f"armed for {PRIMARY_ID}"
    assert world.arming_value() == PRIMARY_ID


def armed_and_down(world, capsys):
    arm(world, capsys)
    primary_down(world)


# --- decisions against the moto world ----------------------------------------------------

def test_healthy_primary_no_action_and_nothing_published(world, capsys):
    before = world.writer_records()

    answer, logged = invoke(capsys)

    assert answer["action"] == "none"
    assert logged["action"] == "none" and logged["mode"] == "automatic"
    assert logged["outcome"] == {"arm": f"armed for {PRIMARY_ID}"}
    assert isinstance(logged["elapsed_ms"], float)
    assert logged["evidence"]["health_check"] == "healthy"
    assert logged["evidence"]["alarm_state"] == "OK"
    assert logged["evidence"]["primary_status"] == "available"
    assert world.count("PromoteReadReplica") == 0
    assert world.notifications() == []
    assert world.writer_records() == before
    json.dumps(answer)  # a Lambda result must serialize


def test_configuration_error_is_logged_once_and_raised(world, capsys, monkeypatch):
    monkeypatch.setenv("AUTOMATION_MODE", "sometimes")

    with pytest.raises(promoter.ConfigError, match="AUTOMATION_MODE"):
        promoter.handler(SCHEDULE, None)

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["action"] == "blocked"
    assert world.count("PromoteReadReplica") == 0


def test_unhealthy_primary_promotes_fences_and_notifies(world, capsys):
    armed_and_down(world, capsys)
    health_check_before = world.writer_records()["primary"]["HealthCheckId"]

    answer, logged = invoke(capsys)

    assert answer["action"] == "promote"
    assert answer["outcome"]["promote"] == "requested"
    assert answer["outcome"]["fence"].startswith("applied")
    assert world.count("PromoteReadReplica") == 1
    request = world.calls["PromoteReadReplica"][0]
    assert request["DBInstanceIdentifier"] == REPLICA_ID
    assert int(request["BackupRetentionPeriod"]) == 7  # backups start once it stands alone

    records = world.writer_records()
    assert records["primary"]["ResourceRecords"] == [{"Value": world.replica_address}]
    assert records["primary"]["Failover"] == "PRIMARY"
    assert records["primary"]["HealthCheckId"] == health_check_before
    assert records["secondary"]["ResourceRecords"] == [{"Value": world.replica_address}]

    sent = world.notifications()
    assert [n["action"] for n in sent] == ["promote"]
    assert sent[0]["subject"] == f"DB failover promote: {REPLICA_ID}"
    assert sent[0]["evidence"]["health_check"] == "unhealthy"
    assert sent[0]["evidence"]["arming"] == "armed"
    assert logged["outcome"]["notify"] == "published"
    assert "arm" not in logged["outcome"]  # never from an unhealthy observation


def test_already_promoted_is_a_no_op_and_fencing_is_idempotent(world, capsys):
    primary_down(world)  # no arming needed: nothing is promoted, only the fence is repaired
    # Promoted earlier (say by an operator); the writer still points at the old primary.
    world.detach_replica()

    first, _ = invoke(capsys)

    assert first["action"] == "already-promoted"
    assert first["outcome"]["fence"].startswith("applied")
    assert world.count("PromoteReadReplica") == 0
    assert world.writer_records()["primary"]["ResourceRecords"] == [{"Value": world.replica_address}]
    assert [n["action"] for n in world.notifications()] == ["already-promoted"]

    # The old primary comes back: still no promotion, no record change, no message.
    world.health_check_observations = list(HEALTHY)
    world.set_alarm("OK")
    changes_before = world.count("ChangeResourceRecordSets")
    second, _ = invoke(capsys)

    assert second["action"] == "already-promoted"
    assert "fence" not in second["outcome"]
    assert world.count("ChangeResourceRecordSets") == changes_before
    assert world.count("PromoteReadReplica") == 0
    assert world.notifications() == []
    assert world.writer_records()["primary"]["ResourceRecords"] == [{"Value": world.replica_address}]
    # The recovered old primary may have diverged: it does not arm anything.
    assert "arm" not in second["outcome"] and world.arming_value() == "unarmed"


def test_replica_backing_up_is_retried_later_without_promoting(world, capsys):
    armed_and_down(world, capsys)
    world.set_replica_status("backing-up")
    before = world.writer_records()

    answer, logged = invoke(capsys)

    assert answer["action"] == "retry-later"
    assert any("backing-up" in reason for reason in answer["reasons"])
    assert world.count("PromoteReadReplica") == 0
    assert world.writer_records() == before
    # Every minute until the backup ends: logged, not mailed.
    assert world.notifications() == []
    assert logged["outcome"]["notify"] == "logged only (scheduled run)"

    answer, _ = invoke(capsys, ALARM_NOTIFICATION)

    assert answer["action"] == "retry-later"
    assert [n["action"] for n in world.notifications()] == ["retry-later"]


def test_manual_mode_notifies_would_promote_and_changes_nothing(world, capsys, monkeypatch):
    monkeypatch.setenv("AUTOMATION_MODE", "manual")
    arm(world, capsys)  # manual mode arms too: switching to automatic later is armed already
    primary_down(world)
    before = world.writer_records()

    answer, _ = invoke(capsys)

    assert answer["action"] == "would-promote"
    assert world.count("PromoteReadReplica") == 0
    assert world.count("ChangeResourceRecordSets") == 0
    assert world.writer_records() == before
    sent = world.notifications()
    assert [n["action"] for n in sent] == ["would-promote"] and sent[0]["mode"] == "manual"


def test_dry_run_mode_only_logs(world, capsys, monkeypatch):
    monkeypatch.setenv("AUTOMATION_MODE", "dry-run")
    healthy, _ = invoke(capsys)
    assert healthy["action"] == "none" and "arm" not in healthy["outcome"]
    assert world.arming_value() == "unarmed" and world.count("PutParameter") == 0

    monkeypatch.setenv("AUTOMATION_MODE", "automatic")
    arm(world, capsys)
    monkeypatch.setenv("AUTOMATION_MODE", "dry-run")
    primary_down(world)
    before = world.writer_records()

    answer, logged = invoke(capsys)

    assert answer["action"] == "dry-run"
    assert logged["mode"] == "dry-run" and logged["action"] == "dry-run"
    assert world.count("PromoteReadReplica") == 0
    assert world.count("ChangeResourceRecordSets") == 0
    assert world.count("Publish") == 0
    assert world.notifications() == []
    assert world.writer_records() == before


def test_direct_dry_run_invoke_overrides_automatic_mode(world, capsys):
    armed_and_down(world, capsys)

    answer, logged = invoke(capsys, {"dryRun": True})

    assert answer["action"] == "dry-run"
    assert logged["trigger"] == {"source": "direct"}
    assert world.count("PromoteReadReplica") == 0
    assert world.count("Publish") == 0


def test_alarm_notification_trigger_is_recorded(world, capsys):
    armed_and_down(world, capsys)

    answer, _ = invoke(capsys, ALARM_NOTIFICATION)

    assert answer["trigger"]["source"] == "sns" and answer["trigger"]["state"] == "ALARM"
    assert answer["action"] == "promote"


def test_unreachable_primary_region_confirmed_by_health_check_promotes_in_bounded_time(world, capsys):
    arm(world, capsys)
    world.health_check_observations = list(UNHEALTHY)
    with SilentPort() as endpoint:
        world.primary_endpoint = endpoint
        started = time.monotonic()
        answer, _ = invoke(capsys)
        wall = time.monotonic() - started

    assert answer["evidence"]["alarm_state"] == "unreachable"
    assert answer["evidence"]["primary_status"] == "unreachable"
    assert answer["evidence"]["primary_region_reachable"] is False
    assert answer["action"] == "promote"
    assert world.count("PromoteReadReplica") == 1
    # API_TIMEOUT_SECONDS=1, MAX_ATTEMPTS=1, reads in parallel: one hanging read's worth.
    assert wall < 3.5


@pytest.mark.parametrize("health", ["healthy", "unknown"])
def test_unreachable_primary_region_alone_does_not_promote(world, capsys, health):
    arm(world, capsys)  # armed, so only the missing confirmation holds it back
    if health == "healthy":
        world.health_check_observations = list(HEALTHY)
    else:
        world.health_check_unreachable = True
    world.primary_endpoint = refused_endpoint()

    answer, _ = invoke(capsys)

    assert answer["evidence"]["primary_region_reachable"] is False
    assert answer["evidence"]["health_check"] == health
    assert answer["action"] in {"none", "blocked"}
    assert world.count("PromoteReadReplica") == 0
    assert world.writer_records()["primary"]["ResourceRecords"] == [{"Value": world.primary_address}]


def test_missing_replica_lag_still_promotes_and_reports_unknown(world, capsys):
    armed_and_down(world, capsys)

    answer, _ = invoke(capsys)

    assert answer["evidence"]["replica_lag_seconds"] == "unknown"
    assert any("lag unknown" in reason for reason in answer["reasons"])
    assert answer["action"] == "promote"
    assert world.count("PromoteReadReplica") == 1


def test_replica_lag_is_reported_when_rds_publishes_it(world, capsys):
    armed_and_down(world, capsys)
    world.publish_replica_lag(3.0)

    answer, _ = invoke(capsys)

    assert answer["evidence"]["replica_lag_seconds"] == 3.0
    assert any("replica lag 3 s" in reason for reason in answer["reasons"])


@pytest.mark.parametrize("effect", ["complete", "stale"])
def test_two_runs_back_to_back_promote_exactly_once(world, capsys, effect):
    # "complete": the second run sees the replica standing alone (as AWS shows it once done);
    # "stale": it still sees the replication link, as a describe right after the call may.
    world.promotion_effect = effect
    armed_and_down(world, capsys)

    first, _ = invoke(capsys)
    second, _ = invoke(capsys)

    assert first["action"] == "promote"
    assert second["action"] == "already-promoted"
    assert world.count("PromoteReadReplica") == 1
    assert world.writer_records()["primary"]["ResourceRecords"] == [{"Value": world.replica_address}]


def test_concurrent_promotion_answered_invalid_state_is_not_an_error(world, capsys):
    armed_and_down(world, capsys)
    world.promote_error = "InvalidDBInstanceState"
    before = world.writer_records()

    answer, _ = invoke(capsys)

    assert answer["action"] == "promote"
    assert answer["outcome"]["promote"] == "in-progress"
    assert "fence" not in answer["outcome"]  # fenced by the run that sees the promotion finish
    assert world.writer_records() == before


def test_failed_fence_raises_after_logging_and_notifying(world, capsys):
    armed_and_down(world, capsys)
    world.change_error = "PriorRequestNotComplete"

    with pytest.raises(promoter.PromoterError, match="PriorRequestNotComplete"):
        promoter.handler(SCHEDULE, None)

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["outcome"]["fence"].startswith("failed")
    sent = world.notifications()
    assert len(sent) == 1 and sent[0]["outcome"]["fence"].startswith("failed")
    assert world.count("PromoteReadReplica") == 1


def test_without_a_primary_writer_record_promotion_needs_no_fence(world, capsys):
    armed_and_down(world, capsys)
    world.delete_writer_primary_record()

    answer, _ = invoke(capsys)

    assert answer["action"] == "promote" and answer["outcome"]["promote"] == "requested"
    assert answer["outcome"]["fence"].startswith("not needed")
    assert world.count("ChangeResourceRecordSets") == 0
    assert "primary" not in world.writer_records()


def test_signals_that_disagree_wait_for_the_next_trigger(world, capsys):
    arm(world, capsys)
    world.health_check_observations = list(UNHEALTHY)
    world.set_alarm("OK")

    answer, _ = invoke(capsys)

    assert answer["action"] == "retry-later"
    assert world.count("PromoteReadReplica") == 0


@pytest.mark.parametrize(("event", "published"), [
    (SCHEDULE, []),
    (ALARM_NOTIFICATION, ["blocked"]),
    ({"reason": "operator check"}, ["blocked"]),  # a direct invoke
], ids=["schedule", "alarm", "direct"])
def test_missing_replica_is_blocked_and_published_only_off_schedule(world, capsys, event, published):
    armed_and_down(world, capsys)
    world.delete_replica()

    answer, logged = invoke(capsys, event)

    assert answer["action"] == "blocked"
    assert world.count("PromoteReadReplica") == 0
    assert [n["action"] for n in world.notifications()] == published
    assert logged["outcome"]["notify"] == ("published" if published else "logged only (scheduled run)")


# --- arming: no promotion before the primary was seen healthy -----------------------------

@pytest.mark.parametrize("alarm", ["ALARM", "INSUFFICIENT_DATA"])
def test_fresh_deployment_with_a_failing_alarm_does_not_promote(world, capsys, alarm):
    # Right after the first `pulumi up`: the canary has no datapoints yet, missing data is
    # breaching, and the health check (insufficient data = Unhealthy) reads unhealthy.
    world.health_check_observations = list(UNHEALTHY)
    world.set_alarm(alarm)
    before = world.writer_records()

    answer, logged = invoke(capsys)

    assert answer["action"] == "not-armed"
    assert answer["evidence"]["arming"] == "unarmed"
    assert any("not been observed healthy since deployment" in r for r in answer["reasons"])
    assert world.count("PromoteReadReplica") == 0
    assert world.count("ChangeResourceRecordSets") == 0
    assert world.writer_records() == before
    # An unhealthy observation never arms, and a scheduled run only logs.
    assert world.count("PutParameter") == 0 and world.arming_value() == "unarmed"
    assert world.notifications() == []
    assert logged["outcome"] == {"notify": "logged only (scheduled run)"}

    # The alarm's own notification is worth one message.
    answer, _ = invoke(capsys, alarm_notification(alarm))

    assert answer["action"] == "not-armed"
    assert [n["action"] for n in world.notifications()] == ["not-armed"]
    assert world.count("PromoteReadReplica") == 0


def test_a_healthy_observation_arms_once_and_then_promotion_is_possible(world, capsys):
    assert world.arming_value() == "unarmed"

    first, _ = invoke(capsys)
    second, _ = invoke(capsys)

    assert first["evidence"]["arming"] == "unarmed"
    assert first["outcome"]["arm"] == f"armed for {PRIMARY_ID}"
    assert world.arming_value() == PRIMARY_ID
    assert second["evidence"]["arming"] == "armed" and "arm" not in second["outcome"]
    assert world.count("PutParameter") == 1
    assert world.notifications() == []

    primary_down(world)
    third, _ = invoke(capsys)

    assert third["action"] == "promote"
    assert world.count("PromoteReadReplica") == 1


def test_arming_keeps_the_parameter_in_the_standard_tier(world, capsys):
    # An update that names no tier takes the account's default tier (Systems Manager User
    # Guide, "Specifying a default parameter tier"). With Advanced as the default, arming
    # would upgrade the parameter and the layer (tier Standard) would replace it, disarmed,
    # on the next deployment. moto has no default-tier setting, so the request is checked.
    arm(world, capsys)

    request = json.loads(world.calls["PutParameter"][-1])
    assert request["Tier"] == "Standard"
    assert (request["Name"], request["Type"], request["Overwrite"]) == (ARMING_PARAMETER, "String", True)


@pytest.mark.parametrize("alarm", ["ALARM", "INSUFFICIENT_DATA"])
def test_a_healthy_check_with_a_failing_alarm_does_not_arm(world, capsys, alarm):
    # Route 53 lags the alarm by up to a minute or so: the readable alarm wins.
    world.set_alarm(alarm)

    answer, _ = invoke(capsys)

    assert answer["evidence"]["health_check"] == "healthy"
    assert "arm" not in answer["outcome"]
    assert world.arming_value() == "unarmed" and world.count("PutParameter") == 0


def test_an_unreadable_arming_parameter_counts_as_not_armed(world, capsys):
    arm(world, capsys)
    world.arming_read_error = "AccessDeniedException"
    primary_down(world)

    answer, _ = invoke(capsys)

    assert answer["action"] == "not-armed"
    assert answer["evidence"]["arming"] == "unknown"
    assert any("AccessDeniedException" in e for e in answer["evidence"]["errors"])
    assert any("could not be read" in r for r in answer["reasons"])
    assert world.count("PromoteReadReplica") == 0


def test_armed_for_a_different_primary_is_not_armed(world, capsys):
    # Armed by an earlier primary (say, before the primary-db layer replaced the instance).
    world.set_arming("db-qa-primary-old")
    primary_down(world)

    answer, _ = invoke(capsys)

    assert answer["action"] == "not-armed"
    assert answer["evidence"]["arming"] == "other-primary"
    assert any("db-qa-primary-old" in r for r in answer["reasons"])
    assert world.count("PromoteReadReplica") == 0
    assert world.arming_value() == "db-qa-primary-old"  # not overwritten from this observation

    # Seen healthy, the current primary takes its place.
    world.health_check_observations = list(HEALTHY)
    world.set_alarm("OK")
    answer, _ = invoke(capsys)

    assert answer["outcome"]["arm"] == f"armed for {PRIMARY_ID}"
    assert world.arming_value() == PRIMARY_ID


def test_a_failed_arming_write_raises_without_mailing_every_minute(world, capsys):
    world.arming_write_error = "ThrottlingException"

    with pytest.raises(promoter.PromoterError, match="ThrottlingException"):
        promoter.handler(SCHEDULE, None)

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["outcome"]["arm"].startswith("failed")
    assert world.notifications() == []  # the promoter's Errors alarm reports it
    assert world.arming_value() == "unarmed"


# --- self-recovery grace: a Multi-AZ failover or reboot is not a regional failure ---------

def test_primary_rebooting_within_the_grace_is_held_then_promoted_beyond_it(world, capsys):
    arm(world, capsys)
    world.health_check_observations = list(UNHEALTHY)
    world.set_primary_status("rebooting")  # e.g. a reboot with Multi-AZ failover
    world.set_alarm("ALARM", for_seconds=120)

    held, logged = invoke(capsys)

    assert held["action"] == "retry-later"
    assert any("'rebooting'" in r and "600 s recovery grace" in r for r in held["reasons"])
    assert 119 <= held["evidence"]["alarm_state_seconds"] < 180
    assert world.count("PromoteReadReplica") == 0
    assert world.notifications() == []  # scheduled run: logged only
    assert logged["outcome"]["notify"] == "logged only (scheduled run)"

    world.set_alarm("ALARM", for_seconds=11 * 60)
    promoted, _ = invoke(capsys)

    assert promoted["action"] == "promote"
    assert any("beyond the 600 s recovery grace" in r for r in promoted["reasons"])
    assert world.count("PromoteReadReplica") == 1


def test_a_failed_primary_gets_no_grace(world, capsys):
    arm(world, capsys)
    world.health_check_observations = list(UNHEALTHY)
    world.set_primary_status("failed")
    world.set_alarm("ALARM", for_seconds=120)

    answer, _ = invoke(capsys)

    assert answer["action"] == "promote"
    assert world.count("PromoteReadReplica") == 1


# --- the pure decision table -------------------------------------------------------------

E = promoter.Evidence
DOWN = {"health_check": "unhealthy", "alarm_state": "ALARM", "primary_status": "available"}
UP = {"health_check": "healthy", "alarm_state": "OK", "primary_status": "available"}
# Armed for the current primary: the only state in which a promotion is possible.
REPLICA = {"replica_status": "available", "replica_is_replica": True, "replica_address": "r.example",
           "fence_state": "not-fenced", "arming": "armed", "arming_value": "db-qa-primary"}
PROMOTED = {**REPLICA, "replica_is_replica": False}
GONE = {"alarm_state": "unreachable", "primary_status": "unreachable"}
FRESH = {**REPLICA, "arming": "unarmed", "arming_value": "unarmed"}


@pytest.mark.parametrize(
    ("evidence", "mode", "action", "promote", "fence", "notify"),
    [
        (E(**UP, **REPLICA), "automatic", "none", False, False, False),
        (E(**DOWN, **REPLICA), "automatic", "promote", True, True, True),
        (E(**DOWN, **REPLICA), "manual", "would-promote", False, False, True),
        (E(**DOWN, **REPLICA), "dry-run", "dry-run", False, False, False),
        (E(**DOWN, **{**REPLICA, "replica_status": "backing-up"}), "automatic", "retry-later", False, False,
         True),
        (E(**DOWN, **{**REPLICA, "replica_status": "modifying"}), "automatic", "retry-later", False, False,
         True),
        (E(**DOWN, **{**REPLICA, "replica_status": "storage-full"}), "automatic", "blocked", False, False,
         True),
        (E(**DOWN, replica_status="missing"), "automatic", "blocked", False, False, True),
        (E(**DOWN, replica_status="unreachable"), "automatic", "retry-later", False, False, True),
        (E(**UP, replica_status="error"), "automatic", "none", False, False, True),
        # Already promoted: never promote; fence only where it is missing.
        (E(**DOWN, **PROMOTED), "automatic", "already-promoted", False, True, True),
        (E(**UP, **PROMOTED), "automatic", "already-promoted", False, True, True),
        (E(**UP, **{**PROMOTED, "fence_state": "fenced"}), "automatic", "already-promoted", False, False,
         False),
        (E(**UP, **{**PROMOTED, "fence_state": "absent"}), "automatic", "already-promoted", False, False,
         False),
        (E(**UP, **{**PROMOTED, "fence_state": "unknown"}), "automatic", "already-promoted", False, False,
         True),
        (E(**DOWN, **PROMOTED), "manual", "already-promoted", False, False, True),
        (E(**DOWN, **PROMOTED), "dry-run", "already-promoted", False, False, False),
        # Fenced but RDS still shows the link: a promotion is under way.
        (E(**DOWN, **{**REPLICA, "fence_state": "fenced"}), "automatic", "already-promoted", False, False,
         False),
        # Region unreachable: only the health check can confirm.
        (E(health_check="unhealthy", **GONE, **REPLICA), "automatic", "promote", True, True, True),
        (E(health_check="healthy", **GONE, **REPLICA), "automatic", "none", False, False, False),
        (E(health_check="unknown", **GONE, **REPLICA), "automatic", "blocked", False, False, True),
        (E(health_check="unknown", alarm_state="OK", primary_status="available", **REPLICA), "automatic",
         "none", False, False, False),
        # The alarm, readable and OK, contradicts an unhealthy check.
        (E(health_check="unhealthy", alarm_state="OK", primary_status="available", **REPLICA), "automatic",
         "retry-later", False, False, True),
        # An alarm in ALARM without the health check's confirmation is not enough.
        (E(health_check="healthy", alarm_state="ALARM", primary_status="available", **REPLICA), "automatic",
         "none", False, False, False),
        # Missing lag never blocks.
        (E(**DOWN, **REPLICA, replica_lag_seconds=None), "automatic", "promote", True, True, True),
        # Not armed: never promote, whatever else the evidence says.
        (E(**DOWN, **FRESH), "automatic", "not-armed", False, False, True),
        (E(**DOWN, **FRESH), "manual", "not-armed", False, False, True),
        (E(**DOWN, **FRESH), "dry-run", "not-armed", False, False, False),
        (E(health_check="unhealthy", **GONE, **FRESH), "automatic", "not-armed", False, False, True),
        (E(**DOWN, **{**REPLICA, "arming": "other-primary", "arming_value": "db-old"}), "automatic",
         "not-armed", False, False, True),
        (E(**DOWN, **{**REPLICA, "arming": "missing", "arming_value": None}), "automatic", "not-armed",
         False, False, True),
        (E(**DOWN, **{**REPLICA, "arming": "unknown", "arming_value": None}), "automatic", "not-armed",
         False, False, True),
        # Evidence that says nothing about arming is not armed (the field's default).
        (E(**DOWN, replica_status="available", replica_is_replica=True, replica_address="r",
           fence_state="not-fenced"), "automatic", "not-armed", False, False, True),
        # Healthy and unarmed: nothing to do (arming is separate, see below).
        (E(**UP, **FRESH), "automatic", "none", False, False, False),
        # Fence repair after a promotion does not depend on arming.
        (E(**DOWN, **{**PROMOTED, "arming": "unarmed"}), "automatic", "already-promoted", False, True,
         True),
        # Self-recovery grace, counted from the alarm leaving OK (600 s by default).
        (E(**{**DOWN, "primary_status": "rebooting"}, alarm_state_seconds=120, **REPLICA), "automatic",
         "retry-later", False, False, True),
        (E(**{**DOWN, "primary_status": "modifying", "alarm_state": "INSUFFICIENT_DATA"},
           alarm_state_seconds=599, **REPLICA), "automatic", "retry-later", False, False, True),
        (E(**{**DOWN, "primary_status": "rebooting"}, alarm_state_seconds=601, **REPLICA), "automatic",
         "promote", True, True, True),
        (E(**{**DOWN, "primary_status": "rebooting"}, alarm_state_seconds=601, **REPLICA), "manual",
         "would-promote", False, False, True),
        (E(**{**DOWN, "primary_status": "rebooting"}, alarm_state_seconds=None, **REPLICA), "automatic",
         "retry-later", False, False, True),
        (E(**{**DOWN, "primary_status": "upgrading"}, alarm_state_seconds=30, **FRESH), "automatic",
         "not-armed", False, False, True),
        # Statuses an operator must fix get no grace.
        (E(**{**DOWN, "primary_status": "failed"}, alarm_state_seconds=30, **REPLICA), "automatic",
         "promote", True, True, True),
        (E(**{**DOWN, "primary_status": "storage-full"}, alarm_state_seconds=30, **REPLICA), "automatic",
         "promote", True, True, True),
        (E(**{**DOWN, "primary_status": "inaccessible-encryption-credentials"}, alarm_state_seconds=30,
           **REPLICA), "automatic", "promote", True, True, True),
        (E(**{**DOWN, "primary_status": "stopped"}, alarm_state_seconds=30, **REPLICA), "automatic",
         "promote", True, True, True),
    ],
)
def test_decision_table(evidence, mode, action, promote, fence, notify):
    decision = promoter.decide(evidence, mode)

    assert (decision.action, decision.promote, decision.fence, decision.notify) == (
        action, promote, fence, notify,
    ), decision.reasons
    assert decision.reasons


def test_recovery_grace_comes_from_the_caller():
    rebooting = E(**{**DOWN, "primary_status": "rebooting"}, alarm_state_seconds=120, **REPLICA)

    assert promoter.decide(rebooting, "automatic", recovery_grace_seconds=60).action == "promote"
    assert promoter.decide(rebooting, "automatic", recovery_grace_seconds=0).action == "promote"
    assert promoter.decide(rebooting, "automatic", recovery_grace_seconds=121).action == "retry-later"


@pytest.mark.parametrize(
    ("evidence", "mode", "arm"),
    [
        (E(**UP, **FRESH), "automatic", True),
        (E(**UP, **FRESH), "manual", True),
        (E(**UP, **FRESH), "dry-run", False),  # dry-run writes nothing
        (E(**UP, **REPLICA), "automatic", False),  # already armed for this primary
        (E(**UP, **{**REPLICA, "arming": "other-primary", "arming_value": "db-old"}), "automatic", True),
        (E(**UP, **{**REPLICA, "arming": "unknown", "arming_value": None}), "automatic", True),
        (E(**UP, **{**REPLICA, "arming": "missing", "arming_value": None}), "automatic", True),
        # The alarm could not be read: a healthy check alone does not arm, because a
        # brand-new health check reports healthy before it has seen any data.
        (E(health_check="healthy", **GONE, **FRESH), "automatic", False),
        # Never from an unhealthy, unknown or contradictory observation.
        (E(**DOWN, **FRESH), "automatic", False),
        (E(health_check="unhealthy", **GONE, **FRESH), "automatic", False),
        (E(health_check="unknown", alarm_state="OK", primary_status="available", **FRESH), "automatic",
         False),
        (E(health_check="healthy", alarm_state="ALARM", primary_status="available", **FRESH), "automatic",
         False),
        (E(health_check="healthy", alarm_state="INSUFFICIENT_DATA", primary_status="available", **FRESH),
         "automatic", False),
        (E(health_check="healthy", alarm_state="missing", primary_status="available", **FRESH),
         "automatic", False),
        (E(**{**UP, "primary_status": "missing"}, **FRESH), "automatic", False),
        # A promoted replica: the "primary" coming back may be the diverged old one.
        (E(**UP, **{**PROMOTED, "arming": "unarmed"}), "automatic", False),
    ],
)
def test_arming_table(evidence, mode, arm):
    decision = promoter.decide(evidence, mode)

    assert decision.arm is arm, decision
    assert not (decision.arm and decision.promote)


D = promoter.Decision
PROMOTE = D("promote", ("r",), promote=True, fence=True, notify=True)


@pytest.mark.parametrize(
    ("decision", "source", "action_failed", "published"),
    [
        (PROMOTE, "schedule", False, True),
        (D("would-promote", ("r",), notify=True), "schedule", False, True),
        (D("already-promoted", ("r",), fence=True, notify=True), "schedule", False, True),
        (PROMOTE, "sns", False, True),
        # Nothing changed: only off the one-minute schedule.
        (D("retry-later", ("r",), notify=True), "schedule", False, False),
        (D("retry-later", ("r",), notify=True), "sns", False, True),
        (D("blocked", ("r",), notify=True), "schedule", False, False),
        (D("blocked", ("r",), notify=True), "direct", False, True),
        (D("not-armed", ("r",), notify=True), "schedule", False, False),
        (D("not-armed", ("r",), notify=True), "sns", False, True),
        (D("none", ("r",), notify=True), "schedule", False, False),  # unreadable evidence
        (D("none", ("r",), notify=True), "unknown", False, True),
        (D("none", ("r",)), "sns", False, False),
        # A failed promotion or fence goes out whatever the trigger.
        (PROMOTE, "schedule", True, True),
    ],
)
def test_publication_policy(decision, source, action_failed, published):
    assert promoter.should_publish(decision, source, action_failed) is published


@pytest.mark.parametrize(("event", "source"), [
    (SCHEDULE, "schedule"),
    (ALARM_NOTIFICATION, "sns"),
    ({"dryRun": True}, "direct"),
    ({}, "direct"),
    ("not an object", "unknown"),
])
def test_trigger_sources(event, source):
    assert promoter.describe_trigger(event)["source"] == source


def test_decide_rejects_an_unknown_mode():
    with pytest.raises(ValueError):
        promoter.decide(E(**UP, **REPLICA), "yolo")


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["Failure: x", "Failure: x", "Success: y"], "unhealthy"),
        (["Failure: x", "Success: y", "Success: y"], "healthy"),
        (["Failure: x", "Success: y"], "unknown"),
        (["Failure: x", "Pending", "Success: y"], "unknown"),
        ([], "unknown"),
    ],
)
def test_health_check_majority(statuses, expected):
    assert promoter.summarize_health_check(observations(*statuses))[0] == expected


# --- settings and clients ----------------------------------------------------------------

def test_settings_defaults_and_validation(world, monkeypatch):
    for key in ("AUTOMATION_MODE", "API_TIMEOUT_SECONDS", "MAX_ATTEMPTS", "BACKUP_RETENTION_DAYS",
                "PRIMARY_SET_IDENTIFIER", "RECORD_TTL_SECONDS", "RECOVERY_GRACE_SECONDS"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOSTED_ZONE_ID", f"/hostedzone/{world.zone_id}")

    settings = promoter.Settings.from_env(os.environ)
    assert settings.automation_mode == "automatic"
    assert (settings.api_timeout_seconds, settings.max_attempts) == (5, 2)
    assert (settings.backup_retention_days, settings.primary_set_identifier) == (7, "primary")
    assert settings.hosted_zone_id == world.zone_id
    assert settings.arming_parameter_name == ARMING_PARAMETER
    assert settings.recovery_grace_seconds == 600

    with pytest.raises(promoter.ConfigError, match="ARMING_PARAMETER_NAME"):
        promoter.Settings.from_env({k: v for k, v in os.environ.items() if k != "ARMING_PARAMETER_NAME"})
    with pytest.raises(promoter.ConfigError, match="RECOVERY_GRACE_SECONDS"):
        promoter.Settings.from_env({**os.environ, "RECOVERY_GRACE_SECONDS": "3601"})

    with pytest.raises(promoter.ConfigError, match="AUTOMATION_MODE"):
        promoter.Settings.from_env({**os.environ, "AUTOMATION_MODE": "auto"})
    with pytest.raises(promoter.ConfigError, match="BACKUP_RETENTION_DAYS"):
        promoter.Settings.from_env({**os.environ, "BACKUP_RETENTION_DAYS": "0"})
    with pytest.raises(promoter.ConfigError, match="WRITER_RECORD_NAME"):
        promoter.Settings.from_env({k: v for k, v in os.environ.items() if k != "WRITER_RECORD_NAME"})


def test_clients_are_bounded_by_timeout_and_attempts(monkeypatch):
    settings = promoter.Settings(
        replica_identifier=REPLICA_ID, replica_region="eu-central-1", primary_identifier=PRIMARY_ID,
        primary_region="eu-west-1", health_check_id="h", canary_alarm_name="a", hosted_zone_id="Z",
        writer_record_name=WRITER, events_topic_arn="arn:aws:sns:eu-central-1:123456789012:t",
        arming_parameter_name=ARMING_PARAMETER, api_timeout_seconds=0.5, max_attempts=2,
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with SilentPort() as endpoint:
        # The SDK's own endpoint variable, as with a moto server: the factory does nothing special.
        monkeypatch.setenv("AWS_ENDPOINT_URL_RDS", endpoint)
        hanging = promoter.make_client("rds", "eu-west-1", settings)
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            hanging.describe_db_instances()
        wall = time.monotonic() - started
    # Two attempts of 0.5 s each plus the standard mode's short backoff; never open-ended.
    assert 1.0 <= wall < 2.5


def test_lag_reader_picks_the_latest_datapoint():
    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)

    class FakeCloudWatch:
        def get_metric_statistics(self, **kwargs):
            assert kwargs["Namespace"] == "AWS/RDS" and kwargs["MetricName"] == "ReplicaLag"
            return {"Datapoints": [
                {"Timestamp": now - datetime.timedelta(minutes=1), "Maximum": 2.0},
                {"Timestamp": now - datetime.timedelta(minutes=3), "Maximum": 9.0},
            ]}

    class BrokenCloudWatch:
        def get_metric_statistics(self, **kwargs):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetMetricStatistics")

    assert promoter.read_replica_lag(FakeCloudWatch(), REPLICA_ID, now)[0] == 2.0
    lag, detail = promoter.read_replica_lag(BrokenCloudWatch(), REPLICA_ID, now)
    assert lag is None and "AccessDenied" in detail
