"""The promoter's pure parts: the decision table, the RPO estimate, trigger parsing, settings.

No AWS here: ``decide`` is a function of the evidence, ``estimate_rpo`` of a lag series,
``parse_trigger`` of an event. The handler against a moto world (and the failure matrix)
is in test_promoter.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.lambdas import load_lambda

promoter = load_lambda("promoter")
rules = promoter.decision_rules
Evidence, LagPoint, LedgerRecord, Policy = rules.Evidence, rules.LagPoint, rules.LedgerRecord, rules.Policy

REPLICA = "db-qa-replica"
NOW = 1_800_000_000.0
LAG_OK = (LagPoint(NOW - 180, 2.0), LagPoint(NOW - 120, 3.0))
# Everything fine: the canary alarm OK, RDS reports the primary available, replicating.
HEALTHY = Evidence(
    alarm_state="OK", alarm_state_seconds=3600, primary_status="available", witness="healthy",
    replica_status="available", replica_is_replica=True, replica_source="arn:aws:rds:eu-west-1:1:db:p",
    replica_address="replica.example", replica_resource_id="db-REPLICA", replication_status="replicating",
    replication_normal=True, lag_points=LAG_OK, arming="armed", arming_value="db-qa-primary",
    ledger=None, ledger_readable=True,
)
UNREACHABLE = {"alarm_state": "unreachable", "primary_status": "unreachable", "alarm_state_seconds": None}
INSTANCE_FAILED = replace(HEALTHY, alarm_state="ALARM", alarm_state_seconds=180, primary_status="failed")
REGION_DOWN = replace(HEALTHY, **UNREACHABLE, witness="unhealthy")
POLICY = Policy(mode="automatic", recovery_grace_seconds=600, max_promotion_lag_seconds=300, now=NOW)


def claimed(state: str = "claimed", lease_until: float = NOW + 100, attempt: int = 1) -> LedgerRecord:
    return LedgerRecord(state=state, attempt=attempt, claimed_by="run-1", lease_until=lease_until,
                        replica_resource_id="db-REPLICA")


# (evidence, mode, expected action, claim, fence_database, notify)
TABLE = [
    pytest.param(HEALTHY, "automatic", "none", False, False, False, id="all-healthy"),
    # P1: a single source never promotes; one that says "up" vetoes.
    pytest.param(replace(HEALTHY, alarm_state="ALARM", witness="unhealthy"), "automatic",
                 "signals-disagree", False, False, True, id="canary-down-rds-up"),
    pytest.param(replace(HEALTHY, alarm_state="INSUFFICIENT_DATA"), "automatic", "signals-disagree",
                 False, False, True, id="metrics-delayed-in-primary-region"),
    pytest.param(replace(HEALTHY, replication_status="error", replication_normal=False), "automatic",
                 "signals-disagree", False, False, True, id="replica-broken-primary-fine"),
    pytest.param(replace(HEALTHY, **UNREACHABLE, witness="healthy"), "automatic", "signals-disagree",
                 False, False, True, id="api-partition-witness-healthy"),
    pytest.param(replace(HEALTHY, **UNREACHABLE, witness="unknown"), "automatic", "unconfirmed",
                 False, False, True, id="api-partition-no-witness"),
    # A partition between the regions cuts the APIs AND replication: still one source (link).
    pytest.param(replace(HEALTHY, **UNREACHABLE, witness="unknown", replication_status="error",
                         replication_normal=False), "automatic", "unconfirmed", False, False, True,
                 id="inter-region-partition-counts-once"),
    # Two independent sources and nothing saying "up".
    pytest.param(INSTANCE_FAILED, "automatic", "promote", True, True, True, id="instance-failed"),
    pytest.param(replace(INSTANCE_FAILED, primary_status="storage-full"), "automatic", "promote",
                 True, True, True, id="storage-full"),
    pytest.param(replace(INSTANCE_FAILED, primary_status="incompatible-parameters"), "automatic",
                 "promote", True, True, True, id="incompatible-parameters"),
    pytest.param(REGION_DOWN, "automatic", "promote", True, True, True, id="region-down-witness-confirms"),
    pytest.param(replace(REGION_DOWN, witness="healthy"), "automatic", "signals-disagree", False, False,
                 True, id="region-down-before-route53-sees-it"),
    # Recovery in place: held within the grace, promoted beyond it.
    pytest.param(replace(INSTANCE_FAILED, primary_status="rebooting", alarm_state_seconds=120),
                 "automatic", "retry-later", False, False, True, id="multi-az-failover-within-grace"),
    pytest.param(replace(INSTANCE_FAILED, primary_status="rebooting", alarm_state_seconds=900,
                         witness="unhealthy"), "automatic", "promote", True, True, True,
                 id="recovery-beyond-grace"),
    # Gates after the evidence.
    pytest.param(replace(INSTANCE_FAILED, arming="unarmed", arming_value="unarmed"), "automatic",
                 "not-armed", False, False, True, id="not-armed"),
    pytest.param(replace(INSTANCE_FAILED, lag_points=(LagPoint(NOW - 120, 900.0),)), "automatic",
                 "rpo-hold", False, False, True, id="lag-above-guard"),
    pytest.param(replace(INSTANCE_FAILED, lag_points=()), "automatic", "rpo-hold", False, False, True,
                 id="lag-unknown"),
    pytest.param(replace(INSTANCE_FAILED, replica_status="backing-up"), "automatic", "retry-later",
                 False, False, True, id="replica-backing-up"),
    pytest.param(replace(INSTANCE_FAILED, replica_status="storage-optimization"), "automatic", "promote",
                 True, True, True, id="replica-storage-optimization-is-attempted"),
    pytest.param(replace(INSTANCE_FAILED, replica_status="modifying"), "automatic", "promote",
                 True, True, True, id="replica-modifying-is-attempted"),
    pytest.param(replace(INSTANCE_FAILED, replica_status="failed"), "automatic", "blocked", False, False,
                 True, id="replica-failed"),
    pytest.param(replace(INSTANCE_FAILED, replica_status="missing", replica_is_replica=None),
                 "automatic", "blocked", False, False, True, id="replica-missing"),
    pytest.param(replace(INSTANCE_FAILED, ledger_readable=False), "automatic", "retry-later", False,
                 False, True, id="ledger-unreadable"),
    # Modes.
    pytest.param(INSTANCE_FAILED, "manual", "would-promote", False, False, True, id="manual"),
    pytest.param(INSTANCE_FAILED, "dry-run", "dry-run", False, False, False, id="dry-run"),
    # After a failover.
    pytest.param(replace(HEALTHY, ledger=claimed("promote-requested")), "automatic", "already-promoted",
                 False, True, False, id="recorded-failover-old-primary-back"),
    pytest.param(replace(INSTANCE_FAILED, ledger=claimed()), "automatic", "already-promoted", False, True,
                 False, id="claim-held-by-another-run"),
    pytest.param(replace(HEALTHY, replica_is_replica=False, replica_source=None), "automatic",
                 "already-promoted", False, True, True, id="promoted-outside-the-promoter"),
    pytest.param(replace(HEALTHY, replica_is_replica=False, replica_source=None), "manual",
                 "already-promoted", False, False, True, id="promoted-outside-manual-mode"),
]


@pytest.mark.parametrize(("evidence", "mode", "action", "claim", "fence_database", "notify"), TABLE)
def test_decision_table(evidence, mode, action, claim, fence_database, notify):
    decision = rules.decide(evidence, replace(POLICY, mode=mode))

    assert decision.action == action, decision.reasons
    assert decision.claim is claim
    assert decision.fence_database is fence_database
    assert decision.notify is notify
    assert decision.retry is False


def test_a_disagreement_names_what_to_check():
    decision = rules.decide(replace(HEALTHY, alarm_state="ALARM"), POLICY)

    text = " ".join(decision.reasons)
    assert "canary say(s) the primary is down, rds say(s) it is up" in text
    assert "the canary's log group" in text  # what on-call should look at


@pytest.mark.parametrize(("record", "action", "retry"), [
    (claimed("promote-refused"), "promote", True),
    (claimed("promote-failed"), "promote", True),
    (claimed("claimed", lease_until=NOW - 1), "promote", True),  # the claimant died
    (claimed("claimed", lease_until=NOW + 60), "already-promoted", False),  # still promoting
    (claimed("promote-requested"), "already-promoted", False),
])
def test_an_unsettled_claim_is_taken_over_only_when_free(record, action, retry):
    decision = rules.decide(replace(INSTANCE_FAILED, ledger=record), POLICY)

    assert decision.action == action
    assert decision.retry is retry
    assert decision.claim is False


def test_a_ledger_record_of_an_earlier_replica_instance_does_not_count():
    old = replace(claimed("promote-requested"), replica_resource_id="db-EARLIER")

    decision = rules.decide(replace(INSTANCE_FAILED, ledger=old), POLICY)

    assert decision.action == "promote" and decision.claim is True


def test_operator_failover_promotes_whatever_the_evidence_and_mode():
    policy = replace(POLICY, mode="manual", operator_failover=True)

    decision = rules.decide(replace(HEALTHY, arming="unarmed"), policy)

    assert decision.action == "promote" and decision.claim is True and decision.fence_database is True


def test_a_refused_trigger_does_nothing_at_all():
    decision = rules.decide(INSTANCE_FAILED, replace(POLICY, refused="unknown key 'DryRun'"))

    assert decision.action == "refused"
    assert not (decision.claim or decision.retry or decision.record)
    assert not (decision.fence_database or decision.arm)
    assert decision.notify is True
    assert decision.reasons[0].startswith("trigger refused: unknown key 'DryRun'")


@pytest.mark.parametrize(("evidence", "mode", "arm"), [
    (replace(HEALTHY, arming="unarmed"), "automatic", True),
    (replace(HEALTHY, arming="unarmed"), "manual", True),
    (replace(HEALTHY, arming="unarmed"), "dry-run", False),
    (HEALTHY, "automatic", False),  # already armed
    # Two sources must say "up": a fresh alarm without data, or RDS not serving, never arms.
    (replace(HEALTHY, arming="unarmed", alarm_state="INSUFFICIENT_DATA"), "automatic", False),
    (replace(HEALTHY, arming="unarmed", primary_status="modifying"), "automatic", False),
    (replace(HEALTHY, arming="unarmed", alarm_state="unreachable"), "automatic", False),
    # Nothing arms once the replica stands alone or a failover is recorded.
    (replace(HEALTHY, arming="unarmed", replica_is_replica=False), "automatic", False),
    (replace(HEALTHY, arming="unarmed", ledger=claimed("promote-requested")), "automatic", False),
])
def test_arming_table(evidence, mode, arm):
    assert rules.decide(evidence, replace(POLICY, mode=mode)).arm is arm


# --- votes -------------------------------------------------------------------------------

@pytest.mark.parametrize(("alarm", "witness", "verdict"), [
    ("OK", "unhealthy", "up"),  # the direct reading wins: it is the fresher one
    ("ALARM", "healthy", "down"),
    ("INSUFFICIENT_DATA", "unknown", "down"),
    ("unreachable", "healthy", "up"),
    ("unreachable", "unhealthy", "down"),
    ("error", "unresolved", "unknown"),
    ("missing", "unknown", "unknown"),
])
def test_canary_vote_uses_the_witness_only_when_the_alarm_cannot_be_read(alarm, witness, verdict):
    assert rules.canary_vote(replace(HEALTHY, alarm_state=alarm, witness=witness)).verdict == verdict


@pytest.mark.parametrize(("status", "verdict"), [
    ("available", "up"), ("backing-up", "up"), ("failed", "down"), ("storage-full", "down"),
    ("stopped", "down"), ("missing", "down"), ("rebooting", "recovering"), ("modifying", "recovering"),
    ("unreachable", "unknown"), ("error", "unknown"),
])
def test_rds_vote(status, verdict):
    assert rules.rds_vote(replace(HEALTHY, primary_status=status)).verdict == verdict


@pytest.mark.parametrize(("changes", "verdict"), [
    ({}, "unknown"),  # the link never says "up"
    (UNREACHABLE, "down"),
    ({"alarm_state": "unreachable", "primary_status": "error"}, "unknown"),  # an API said no: it answered
    ({"replication_status": "error", "replication_normal": False}, "down"),
    ({"replication_status": "terminated"}, "down"),
    ({"replication_status": "replicating", "replication_normal": False}, "down"),
    ({"replication_status": "replication stop point set"}, "unknown"),
])
def test_link_vote(changes, verdict):
    assert rules.link_vote(replace(HEALTHY, **changes)).verdict == verdict


# --- RPO ---------------------------------------------------------------------------------

def series(*lags: float, start: float = NOW - 600) -> tuple:
    return tuple(LagPoint(start + 60 * index, lag) for index, lag in enumerate(lags))


@pytest.mark.parametrize(("points", "seconds"), [
    # Replication healthy and busy: the latest lag.
    (series(2, 5, 3, 4), 4),
    # Reading A: RDS stops publishing once the source is gone: the last value is the RPO.
    (series(2, 5, 7), 7),
    # Reading B: RDS keeps publishing a lag that grows with the clock: the lag when replay
    # stopped, not how long ago that was.
    (series(2, 3, 63, 123, 183, 243), 3),
    # Reading C: RDS publishes 0 once caught up: 0.
    (series(2, 1, 0, 0, 0), 0),
    # A replica falling behind a live, busy primary: replay advances, the lag is real.
    (series(10, 40, 70, 100), 100),
    # A lag that grows faster than the clock is no stall: the latest (largest) value stands.
    (series(240, 600, 900), 900),
    # Minute buckets jitter the replay date by a few seconds: still one stall.
    (series(2, 5, 62, 126, 184), 5),
])
def test_rpo_is_the_lag_when_replay_last_advanced(points, seconds):
    assert rules.estimate_rpo(points).seconds == seconds


def test_rpo_without_any_datapoint_is_unknown():
    estimate = rules.estimate_rpo(())
    assert estimate.seconds is None and "no ReplicaLag datapoint" in estimate.detail


def test_rpo_of_a_growing_series_explains_itself():
    estimate = rules.estimate_rpo(series(2, 3, 63, 123))
    assert "2 later datapoint(s) show no replay progress" in estimate.detail


# --- triggers (P5) -----------------------------------------------------------------------

SCHEDULE = {"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "111122223333", "time": "2026-01-01T00:00:00Z", "region": "eu-central-1",
            "resources": ["arn:aws:events:eu-central-1:111122223333:rule/x"], "detail": {}}


def sns(sns_value) -> dict:
    return {"Records": [{"EventSource": "aws:sns", "Sns": sns_value}]}


@pytest.mark.parametrize(("event", "source", "dry_run", "operator", "refused"), [
    (SCHEDULE, "schedule", False, False, None),
    (sns({"TopicArn": "arn:t", "Message": '{"AlarmName": "a", "NewStateValue": "ALARM"}'}),
     "sns", False, False, None),
    ({}, "direct", False, False, None),
    ({"dryRun": True}, "direct", True, False, None),
    ({"dryRun": False, "note": "game day"}, "direct", False, False, None),
    ({"operatorFailover": REPLICA}, "direct", False, True, None),
    # Refused: unknown keys or values, whatever they look like.
    ({"DryRun": True}, "direct", False, False, "unknown key(s) 'DryRun'"),
    ({"dryRun": "yes"}, "direct", False, False, "dryRun must be true or false"),
    ({"dryRun": "true"}, "direct", False, False, "dryRun must be true or false"),
    ({"dryRun": 1}, "direct", False, False, "dryRun must be true or false"),
    ({"note": 5}, "direct", False, False, "note must be a string"),
    ({"note": "x" * 257}, "direct", False, False, "note must be a string"),
    ({"operatorFailover": "db-other"}, "direct", False, False, "operatorFailover must name"),
    ({"operatorFailover": REPLICA, "dryRun": True}, "direct", False, False, "cannot be combined"),
    ({**SCHEDULE, "dryRun": True}, "direct", False, False, "unknown key(s)"),
    ({"Records": [], "dryRun": True}, "direct", False, False, "unknown key(s)"),
    ([1, 2], "direct", False, False, "is a JSON list"),
    ("promote", "direct", False, False, "is a JSON str"),
    (None, "direct", False, False, "is a JSON NoneType"),
])
def test_triggers(event, source, dry_run, operator, refused):
    trigger = promoter.parse_trigger(event, REPLICA)

    assert trigger.source == source
    assert trigger.dry_run is dry_run
    assert trigger.operator_failover is operator
    if refused is None:
        assert trigger.refused is None
    else:
        assert refused in trigger.refused


@pytest.mark.parametrize(("event", "problem"), [
    (sns(None), "Records[0].Sns is NoneType"),
    (sns("a string"), "Records[0].Sns is str"),
    (sns({"TopicArn": "arn:t", "Message": 42}), "Sns.Message is int"),
    (sns({"TopicArn": "arn:t", "Message": "not json"}), "Sns.Message is not JSON"),
    ({"Records": "x"}, "Records is not a list"),
])
def test_a_malformed_notification_is_still_a_wake_up_never_refused(event, problem):
    trigger = promoter.parse_trigger(event, REPLICA)

    assert trigger.source == "sns" and trigger.refused is None
    assert problem in trigger.details["malformed"]


# --- settings ----------------------------------------------------------------------------

def _env(**overrides: str) -> dict[str, str]:
    env = {"REPLICA_IDENTIFIER": REPLICA, "REPLICA_REGION": "eu-central-1", "PRIMARY_IDENTIFIER": "p",
           "PRIMARY_REGION": "eu-west-1", "CANARY_ALARM_NAME": "a", "EVENTS_TOPIC_ARN": "arn:t",
           "ARMING_PARAMETER_NAME": "arm", "LEDGER_TABLE_NAME": "ledger", "FENCE_NAMESPACE": "ns",
           "FENCE_METRIC": "FailoverFenced", "WITNESS_LOG_GROUP": "/aws/lambda/w"}
    env.update(overrides)
    return env


def test_settings_defaults():
    settings = promoter.Settings.from_env(_env())

    assert settings.automation_mode == "automatic"
    assert settings.max_promotion_lag_seconds == 300
    assert settings.recovery_grace_seconds == 600
    # The lag lookback reaches back before the failure even after a full recovery grace.
    assert settings.lag_lookback_seconds > settings.recovery_grace_seconds


@pytest.mark.parametrize(("overrides", "message"), [
    ({"LEDGER_TABLE_NAME": ""}, "LEDGER_TABLE_NAME is required"),
    ({"WITNESS_LOG_GROUP": " "}, "WITNESS_LOG_GROUP is required"),
    ({"AUTOMATION_MODE": "sometimes"}, "AUTOMATION_MODE must be one of"),
    ({"MAX_PROMOTION_LAG_SECONDS": "0"}, "MAX_PROMOTION_LAG_SECONDS must be between"),
    ({"CLAIM_LEASE_SECONDS": "5"}, "CLAIM_LEASE_SECONDS must be between"),
    ({"API_TIMEOUT_SECONDS": "soon"}, "API_TIMEOUT_SECONDS must be a number"),
])
def test_settings_are_refused_with_the_variable_named(overrides, message):
    with pytest.raises(promoter.ConfigError, match=message):
        promoter.Settings.from_env(_env(**overrides))
