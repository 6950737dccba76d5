"""The promoter: its pure decision table, and its handler against a two-region moto world.

The handler runs in-process with its own boto3 clients pointed at moto (``mock_aws``);
``tests/support/moto_failover.py`` builds the world and documents, with the AWS
references, the two places where the test corrects moto (health check status, and the
replication link a finished promotion removes).
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


# --- decisions against the moto world ----------------------------------------------------

def test_healthy_primary_no_action_and_nothing_published(world, capsys):
    before = world.writer_records()

    answer, logged = invoke(capsys)

    assert answer["action"] == "none"
    assert logged["action"] == "none" and logged["mode"] == "automatic"
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
    primary_down(world)
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
    assert logged["outcome"]["notify"] == "published"


def test_already_promoted_is_a_no_op_and_fencing_is_idempotent(world, capsys):
    primary_down(world)
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


def test_replica_backing_up_is_retried_later_without_promoting(world, capsys):
    primary_down(world)
    world.set_replica_status("backing-up")
    before = world.writer_records()

    answer, _ = invoke(capsys)

    assert answer["action"] == "retry-later"
    assert any("backing-up" in reason for reason in answer["reasons"])
    assert world.count("PromoteReadReplica") == 0
    assert world.writer_records() == before
    assert [n["action"] for n in world.notifications()] == ["retry-later"]


def test_manual_mode_notifies_would_promote_and_changes_nothing(world, capsys, monkeypatch):
    monkeypatch.setenv("AUTOMATION_MODE", "manual")
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
    primary_down(world)

    answer, logged = invoke(capsys, {"dryRun": True})

    assert answer["action"] == "dry-run"
    assert logged["trigger"] == {"source": "direct"}
    assert world.count("PromoteReadReplica") == 0
    assert world.count("Publish") == 0


def test_alarm_notification_trigger_is_recorded(world, capsys):
    primary_down(world)
    message = json.dumps({"AlarmName": "db-qa-canary-failing", "NewStateValue": "ALARM"})
    sns = {"TopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms", "Message": message}
    event = {"Records": [{"EventSource": "aws:sns", "Sns": sns}]}

    answer, _ = invoke(capsys, event)

    assert answer["trigger"]["source"] == "sns" and answer["trigger"]["state"] == "ALARM"
    assert answer["action"] == "promote"


def test_unreachable_primary_region_confirmed_by_health_check_promotes_in_bounded_time(world, capsys):
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
    primary_down(world)

    answer, _ = invoke(capsys)

    assert answer["evidence"]["replica_lag_seconds"] == "unknown"
    assert any("lag unknown" in reason for reason in answer["reasons"])
    assert answer["action"] == "promote"
    assert world.count("PromoteReadReplica") == 1


def test_replica_lag_is_reported_when_rds_publishes_it(world, capsys):
    primary_down(world)
    world.publish_replica_lag(3.0)

    answer, _ = invoke(capsys)

    assert answer["evidence"]["replica_lag_seconds"] == 3.0
    assert any("replica lag 3 s" in reason for reason in answer["reasons"])


@pytest.mark.parametrize("effect", ["complete", "stale"])
def test_two_runs_back_to_back_promote_exactly_once(world, capsys, effect):
    # "complete": the second run sees the replica standing alone (as AWS shows it once done);
    # "stale": it still sees the replication link, as a describe right after the call may.
    world.promotion_effect = effect
    primary_down(world)

    first, _ = invoke(capsys)
    second, _ = invoke(capsys)

    assert first["action"] == "promote"
    assert second["action"] == "already-promoted"
    assert world.count("PromoteReadReplica") == 1
    assert world.writer_records()["primary"]["ResourceRecords"] == [{"Value": world.replica_address}]


def test_concurrent_promotion_answered_invalid_state_is_not_an_error(world, capsys):
    primary_down(world)
    world.promote_error = "InvalidDBInstanceState"
    before = world.writer_records()

    answer, _ = invoke(capsys)

    assert answer["action"] == "promote"
    assert answer["outcome"]["promote"] == "in-progress"
    assert "fence" not in answer["outcome"]  # fenced by the run that sees the promotion finish
    assert world.writer_records() == before


def test_failed_fence_raises_after_logging_and_notifying(world, capsys):
    primary_down(world)
    world.change_error = "PriorRequestNotComplete"

    with pytest.raises(promoter.PromoterError, match="PriorRequestNotComplete"):
        promoter.handler(SCHEDULE, None)

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["outcome"]["fence"].startswith("failed")
    sent = world.notifications()
    assert len(sent) == 1 and sent[0]["outcome"]["fence"].startswith("failed")
    assert world.count("PromoteReadReplica") == 1


def test_without_a_primary_writer_record_promotion_needs_no_fence(world, capsys):
    primary_down(world)
    world.delete_writer_primary_record()

    answer, _ = invoke(capsys)

    assert answer["action"] == "promote" and answer["outcome"]["promote"] == "requested"
    assert answer["outcome"]["fence"].startswith("not needed")
    assert world.count("ChangeResourceRecordSets") == 0
    assert "primary" not in world.writer_records()


def test_signals_that_disagree_wait_for_the_next_trigger(world, capsys):
    world.health_check_observations = list(UNHEALTHY)
    world.set_alarm("OK")

    answer, _ = invoke(capsys)

    assert answer["action"] == "retry-later"
    assert world.count("PromoteReadReplica") == 0


def test_missing_replica_is_blocked(world, capsys):
    primary_down(world)
    world.delete_replica()

    answer, _ = invoke(capsys)

    assert answer["action"] == "blocked"
    assert world.count("PromoteReadReplica") == 0
    assert [n["action"] for n in world.notifications()] == ["blocked"]


# --- the pure decision table -------------------------------------------------------------

E = promoter.Evidence
DOWN = {"health_check": "unhealthy", "alarm_state": "ALARM", "primary_status": "available"}
UP = {"health_check": "healthy", "alarm_state": "OK", "primary_status": "available"}
REPLICA = {"replica_status": "available", "replica_is_replica": True, "replica_address": "r.example",
           "fence_state": "not-fenced"}
PROMOTED = {**REPLICA, "replica_is_replica": False}
GONE = {"alarm_state": "unreachable", "primary_status": "unreachable"}


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
    ],
)
def test_decision_table(evidence, mode, action, promote, fence, notify):
    decision = promoter.decide(evidence, mode)

    assert (decision.action, decision.promote, decision.fence, decision.notify) == (
        action, promote, fence, notify,
    ), decision.reasons
    assert decision.reasons


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
                "PRIMARY_SET_IDENTIFIER", "RECORD_TTL_SECONDS"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOSTED_ZONE_ID", f"/hostedzone/{world.zone_id}")

    settings = promoter.Settings.from_env(os.environ)
    assert settings.automation_mode == "automatic"
    assert (settings.api_timeout_seconds, settings.max_attempts) == (5, 2)
    assert (settings.backup_retention_days, settings.primary_set_identifier) == (7, "primary")
    assert settings.hosted_zone_id == world.zone_id

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
        api_timeout_seconds=0.5, max_attempts=2,
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
