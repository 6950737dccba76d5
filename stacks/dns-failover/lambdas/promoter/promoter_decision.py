"""The promoter's decision: a pure function of the evidence (no I/O, no clock).

Three independent sources say whether the primary is gone. Each answers "down", "up" or
"unknown" (RDS may also say "recovering"):

* canary: the canary in the primary VPC, through its CloudWatch alarm (read in the primary
  region). When that alarm cannot be read, Route 53's own, global view of the same alarm
  stands in for it: the replica canary resolves ``witness.<zone>``, whose failover answer
  Route 53 computes from the canary's health check, and logs what it saw in the secondary
  region. One source, two channels: both report the same canary.
* rds: RDS's view of the primary instance (DescribeDBInstances in the primary region).
* link: what the secondary region sees of the primary region across the inter-region path:
  the primary region's APIs do not answer at all, or the replica reports its read
  replication broken (DBInstance.StatusInfos: error, stopped or terminated, or not
  normal). It never says "up": a replica that reports "replicating" may be reading a
  stream whose source died a moment ago.

Automatic promotion needs at least two sources saying "down" and none saying "up". Two
observations made across the same inter-region path are ONE source (link): a network
partition between the two regions makes the primary region's APIs unreachable AND stops
replication while the primary goes on serving its own region, so counting them twice
would promote a healthy primary (split brain). In a real regional outage the second
source is the canary, seen through Route 53's global data plane (the witness).

ReplicaLag is not a vote: whether RDS keeps publishing it, publishes a growing value or 0
once the source is gone is not documented, and an idle primary produces a stalled-looking
series too. It is read for the RPO guard instead (``estimate_rpo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

MODES = ("automatic", "manual", "dry-run")
ACTIONS = (
    "none", "promote", "would-promote", "dry-run", "retry-later", "signals-disagree",
    "unconfirmed", "rpo-hold", "not-armed", "blocked", "already-promoted", "refused",
)
DOWN, UP, UNKNOWN, RECOVERING = "down", "up", "unknown", "recovering"

# A reachable primary in these statuses is serving (RDS User Guide, "Viewing Amazon RDS DB
# instance status": backups and storage optimization run on a live instance).
PRIMARY_UP_STATUSES = frozenset({"available", "backing-up", "storage-optimization"})
# Statuses a reachable primary does not leave without an operator.
PRIMARY_DOWN_STATUSES = frozenset({
    "failed", "storage-full", "incompatible-network", "incompatible-option-group",
    "incompatible-parameters", "incompatible-restore", "incompatible-credentials",
    "inaccessible-encryption-credentials", "inaccessible-encryption-credentials-recoverable",
    "restore-error", "insufficient-capacity", "stopped", "stopping", "deleting", "missing",
})
# Statuses RDS brings a reachable primary out of by itself within minutes (a reboot, a
# Multi-AZ failover, maintenance, an in-place modification): held for the recovery grace.
SELF_RECOVERY_STATUSES = frozenset({
    "configuring-enhanced-monitoring", "configuring-iam-database-auth", "configuring-log-exports",
    "converting-to-vpc", "maintenance", "modifying", "moving-to-vpc", "rebooting", "renaming",
    "resetting-master-credentials", "starting", "upgrading",
})
# Replica statuses in which PromoteReadReplica is documented to fail or cannot succeed
# yet: wait (API_PromoteReadReplica: "backing-up" cannot be promoted).
REPLICA_WAIT_STATUSES = frozenset({
    "backing-up", "creating", "rebooting", "starting", "maintenance", "upgrading", "renaming",
    "moving-to-vpc", "converting-to-vpc",
})
# Replica statuses that need an operator; no promotion can succeed.
REPLICA_BLOCKED_STATUSES = frozenset({
    "failed", "storage-full", "incompatible-network", "incompatible-option-group",
    "incompatible-parameters", "incompatible-restore", "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable", "restore-error", "insufficient-capacity",
    "stopped", "stopping", "deleting",
})
# Any other status (available, modifying, storage-optimization, configuring-*...): RDS may
# accept the promotion, so it is attempted and InvalidDBInstanceState handled (retried).
# Read replication statuses (DBInstance.StatusInfos, StatusType "read replication") that
# mean the replica no longer receives the primary's changes.
REPLICATION_BROKEN_STATUSES = frozenset({"error", "stopped", "terminated"})
# Failures that mean "could not reach the endpoint" rather than "the API said no".
UNANSWERED = frozenset({"unreachable"})
# Answers of the primary region's APIs that tell nothing about the primary.
NO_ANSWER = frozenset({"unreachable", "error", "unknown"})


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class LagPoint:
    """One ReplicaLag datapoint: the minute it covers (epoch seconds) and the lag."""

    at: float
    seconds: float


@dataclass(frozen=True)
class LedgerRecord:
    """The failover record of the current replica (see promoter_ledger)."""

    state: str  # claimed | promote-requested | promote-failed | promote-refused | recorded
    attempt: int
    claimed_by: str
    lease_until: float
    replica_resource_id: str
    detail: str = ""

    @property
    def settled(self) -> bool:
        """A promotion was accepted by RDS, or found done: never call PromoteReadReplica again."""
        return self.state in ("promote-requested", "recorded")


@dataclass(frozen=True)
class Evidence:
    # Primary region (read across the inter-region path).
    alarm_state: str = "unknown"  # OK | ALARM | INSUFFICIENT_DATA | missing | unreachable | error
    alarm_state_seconds: float | None = None  # how long the alarm has been in alarm_state
    primary_status: str = "unknown"  # an RDS status, or missing | unreachable | error
    # Route 53's global view of the canary, relayed by the replica canary (secondary region).
    witness: str = "unknown"  # healthy | unhealthy | unresolved | unknown (no fresh observation)
    witness_age_seconds: float | None = None
    replica_alive: bool | None = None  # the replica canary's own probe, same log line
    # Secondary region.
    replica_status: str = "unknown"  # an RDS status, or missing | unreachable | error
    replica_is_replica: bool | None = None
    replica_source: str | None = None
    replica_address: str | None = None
    replica_resource_id: str | None = None
    replication_status: str | None = None  # StatusInfos "read replication" Status
    replication_normal: bool | None = None
    replication_message: str = ""
    lag_points: tuple[LagPoint, ...] = ()
    lag_detail: str = ""
    # The promoter's own records (secondary region).
    arming: str = "unknown"  # armed | unarmed | other-primary | missing | unknown
    arming_value: str | None = None
    ledger: LedgerRecord | None = None
    ledger_readable: bool = False
    errors: tuple[str, ...] = ()

    @property
    def primary_region_reachable(self) -> bool | None:
        """False when no primary-region API answered at all, True when one did."""
        answers = (self.alarm_state, self.primary_status)
        if all(answer in UNANSWERED for answer in answers):
            return False
        if any(answer not in NO_ANSWER for answer in answers):
            return True
        return None

    @property
    def ledger_for_this_replica(self) -> LedgerRecord | None:
        """The ledger record, unless it belongs to an earlier instance under the same name."""
        record = self.ledger
        if record is None or not self.replica_resource_id:
            return None
        return record if record.replica_resource_id == self.replica_resource_id else None

    def to_dict(self) -> dict[str, Any]:
        record = self.ledger_for_this_replica
        return {
            "alarm_state": self.alarm_state,
            "alarm_state_seconds": _or_unknown(self.alarm_state_seconds),
            "primary_status": self.primary_status,
            "primary_region_reachable": self.primary_region_reachable,
            "witness": self.witness,
            "witness_age_seconds": _or_unknown(self.witness_age_seconds),
            "replica_alive": self.replica_alive,
            "replica_status": self.replica_status,
            "replica_is_replica": self.replica_is_replica,
            "replica_source": self.replica_source,
            "replica_address": self.replica_address,
            "replication_status": self.replication_status,
            "replication_normal": self.replication_normal,
            "replication_message": self.replication_message,
            "replica_lag_seconds": _or_unknown(self.lag_points[-1].seconds if self.lag_points else None),
            "lag_detail": self.lag_detail,
            "arming": self.arming,
            "arming_value": self.arming_value,
            "ledger": None if record is None else {
                "state": record.state, "attempt": record.attempt, "claimed_by": record.claimed_by,
                "detail": record.detail,
            },
            "ledger_readable": self.ledger_readable,
            "errors": list(self.errors),
        }


def _or_unknown(value: float | None) -> float | str:
    return "unknown" if value is None else value


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Vote:
    source: str  # canary | rds | link
    verdict: str  # down | up | unknown | recovering
    why: str


def canary_vote(ev: Evidence) -> Vote:
    state = ev.alarm_state
    if state == "OK":
        return Vote("canary", UP, "canary alarm OK (read in the primary region)")
    if state in ("ALARM", "INSUFFICIENT_DATA"):
        return Vote("canary", DOWN, f"canary alarm {state} (read in the primary region)")
    relayed = (f"canary alarm unreadable ({state}); Route 53's global view of it, relayed by the "
               "replica canary")
    if ev.witness == "healthy":
        return Vote("canary", UP, f"{relayed}: healthy")
    if ev.witness == "unhealthy":
        return Vote("canary", DOWN, f"{relayed}: unhealthy")
    return Vote("canary", UNKNOWN, f"{relayed}: no fresh observation ({ev.witness})")


def rds_vote(ev: Evidence) -> Vote:
    status = ev.primary_status
    if status in PRIMARY_UP_STATUSES:
        return Vote("rds", UP, f"RDS reports the primary '{status}'")
    if status in PRIMARY_DOWN_STATUSES:
        return Vote("rds", DOWN, f"RDS reports the primary '{status}'")
    if status in SELF_RECOVERY_STATUSES:
        return Vote("rds", RECOVERING, f"RDS reports the primary '{status}' (it recovers in place)")
    return Vote("rds", UNKNOWN, f"RDS's view of the primary is unavailable ({status})")


def link_vote(ev: Evidence) -> Vote:
    reasons = []
    if ev.primary_region_reachable is False:
        reasons.append("no primary-region API answers")
    if ev.replication_status in REPLICATION_BROKEN_STATUSES or ev.replication_normal is False:
        detail = f": {ev.replication_message}" if ev.replication_message else ""
        reasons.append(f"the replica reports read replication '{ev.replication_status}'{detail}")
    if reasons:
        return Vote("link", DOWN, "; ".join(reasons))
    return Vote("link", UNKNOWN, "the primary region answers and the replica reports no broken replication")


def votes(ev: Evidence) -> tuple[Vote, Vote, Vote]:
    return canary_vote(ev), rds_vote(ev), link_vote(ev)


# --------------------------------------------------------------------------- RPO


@dataclass(frozen=True)
class RpoEstimate:
    seconds: float | None  # None: unknown
    detail: str


def estimate_rpo(points: Sequence[LagPoint], replay_tolerance_seconds: float = 15.0) -> RpoEstimate:
    """The writes at risk: the replica's lag when it last replayed something.

    Each datapoint dates the last replayed commit: ``at - seconds``. Once replay stops
    (the primary died, or the link broke) that date stops moving, whatever RDS then does
    with the metric: publish nothing more, publish a lag that grows with the clock, or
    publish 0. The estimate is the lag of the first datapoint of the newest run whose
    replay date stayed put, i.e. how far behind the replica was when replication stopped,
    not how long ago that was. A lag that grows faster than the clock is no stall (the
    replay date cannot go back): there the latest lag stands. The tolerance absorbs the
    minute-granularity of the metric. With no datapoint at all the RPO is unknown.
    """
    if not points:
        return RpoEstimate(None, "no ReplicaLag datapoint in the lookback window")
    ordered = sorted(points, key=lambda point: point.at)
    start = len(ordered) - 1
    while start > 0:
        newer, older = ordered[start], ordered[start - 1]
        if abs((newer.at - newer.seconds) - (older.at - older.seconds)) > replay_tolerance_seconds:
            break  # replay advanced (or the lag outgrew the clock) between these two points
        start -= 1
    first = ordered[start]
    if start == len(ordered) - 1:
        detail = f"latest ReplicaLag {first.seconds:g} s"
    else:
        detail = (f"ReplicaLag {first.seconds:g} s when replay last advanced; "
                  f"{len(ordered) - 1 - start} later datapoint(s) show no replay progress")
    return RpoEstimate(first.seconds, detail)


# --------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Decision:
    action: str
    reasons: tuple[str, ...]
    claim: bool = False  # claim the ledger for a new failover and promote
    retry: bool = False  # take over an unsettled claim and call PromoteReadReplica again
    record: bool = False  # record a promotion made outside the promoter
    fence_database: bool = False  # stop the old primary when its region answers
    notify: bool = False
    arm: bool = False

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}")

    @property
    def promotes(self) -> bool:
        return self.claim or self.retry


@dataclass(frozen=True)
class Policy:
    """The knobs of the decision, from the promoter's settings."""

    mode: str = "automatic"
    recovery_grace_seconds: float = 600
    max_promotion_lag_seconds: float = 300
    # An explicit operator request naming the replica: promote whatever the evidence says.
    operator_failover: bool = False
    refused: str | None = None  # why the trigger was refused (no action at all)
    now: float = 0.0  # epoch seconds, for the ledger lease


@dataclass
class _Reasons:
    items: list[str] = field(default_factory=list)

    def add(self, reason: str) -> _Reasons:
        self.items.append(reason)
        return self

    def tuple(self) -> tuple[str, ...]:
        return tuple(self.items)


def decide(ev: Evidence, policy: Policy) -> Decision:
    """What to do, and why, from the evidence alone."""
    if policy.mode not in MODES:
        raise ValueError(f"unknown mode {policy.mode!r}")
    decision = _decide(ev, policy)
    if policy.refused:
        # Nothing at all is done for a refused trigger, arming included; the operator who
        # sent it is told (dry-run mode only logs, as always).
        return Decision("refused", (f"trigger refused: {policy.refused}; nothing was done",
                                    *decision.reasons), notify=policy.mode != "dry-run")
    if policy.mode != "automatic" and not policy.operator_failover:
        # manual and dry-run never change the database, the ledger or DNS; dry-run does not
        # even publish.
        decision = replace(decision, claim=False, retry=False, record=False, fence_database=False,
                           notify=decision.notify and policy.mode == "manual")
    arm = policy.mode != "dry-run" and ev.arming != "armed" and observed_healthy(ev)
    return replace(decision, arm=arm)


def observed_healthy(ev: Evidence) -> bool:
    """Strong enough to arm on: the canary alarm reads OK AND RDS reports the primary serving.

    Two sources, because a fresh alarm has no data yet and a fresh instance may be
    available before its canary runs. Never once the replica stands alone (the "primary"
    may be a diverged old one) or a failover is recorded.
    """
    return (ev.alarm_state == "OK" and ev.primary_status in PRIMARY_UP_STATUSES
            and ev.replica_is_replica is not False and ev.ledger_for_this_replica is None)


def _decide(ev: Evidence, policy: Policy) -> Decision:
    reasons = _Reasons()
    canary, rds, link = votes(ev)
    for vote in (canary, rds, link):
        reasons.add(f"{vote.source}: {vote.verdict} ({vote.why})")

    if ev.replica_status == "missing":
        return Decision("blocked", reasons.add("the replica does not exist: nothing to promote").tuple(),
                        notify=True)
    if ev.replica_is_replica is None or not ev.replica_resource_id:
        reasons.add(f"cannot read the replica ({ev.replica_status}); re-evaluated on the next run")
        wanted = DOWN in (canary.verdict, rds.verdict, link.verdict)
        return Decision("retry-later" if wanted else "none", reasons.tuple(), notify=wanted)
    if not ev.ledger_readable:
        # Without the ledger no promotion can be exactly once, and the fence state is unknown.
        reasons.add("cannot read the failover ledger: no promotion and no fence change this run")
        wanted = DOWN in (canary.verdict, rds.verdict, link.verdict) or ev.replica_is_replica is False
        return Decision("retry-later" if wanted else "none", reasons.tuple(), notify=wanted)

    record = ev.ledger_for_this_replica
    if record is not None or ev.replica_is_replica is False:
        return _after_promotion(ev, policy, record, reasons)
    if policy.operator_failover:
        reasons.add("an operator asked for this failover by naming the replica")
        return _promotable(ev, policy, reasons, operator=True)
    return _while_replicating(ev, policy, (canary, rds, link), reasons)


def _after_promotion(ev: Evidence, policy: Policy, record: LedgerRecord | None,
                     reasons: _Reasons) -> Decision:
    """A failover is recorded or the replica already stands alone: keep it fenced."""
    fence_database = True
    if record is None:
        reasons.add("the replica stands alone but no failover is recorded (promoted outside the "
                    "promoter): recording it fences writers onto it")
        return Decision("already-promoted", reasons.tuple(), record=True, fence_database=fence_database,
                        notify=True)
    reasons.add(f"failover recorded: {record.state} (attempt {record.attempt}, run {record.claimed_by})")
    if record.settled or ev.replica_is_replica is False:
        return Decision("already-promoted", reasons.tuple(), fence_database=fence_database)
    # Claimed but RDS has not accepted a promotion yet.
    if record.state == "claimed" and record.lease_until > policy.now:
        reasons.add("another run holds the claim and is promoting: not calling PromoteReadReplica again")
        return Decision("already-promoted", reasons.tuple(), fence_database=fence_database)
    why = {"promote-failed": "the last PromoteReadReplica failed",
           "promote-refused": "RDS refused the last PromoteReadReplica (InvalidDBInstanceState)",
           }.get(record.state, "the run that claimed it ended without an answer from RDS")
    reasons.add(f"{why}: taking the claim over and trying again")
    replica_state = _replica_state(ev)
    if replica_state is not None:
        action, reason = replica_state
        reasons.add(reason)
        return Decision(action, reasons.tuple(), fence_database=fence_database, notify=True)
    return Decision("promote", reasons.tuple(), retry=True, fence_database=fence_database, notify=True)


def _replica_state(ev: Evidence) -> tuple[str, str] | None:
    """(action, reason) when the replica's status stops a promotion now; None to attempt it."""
    status = ev.replica_status
    if status in REPLICA_BLOCKED_STATUSES:
        return "blocked", f"replica '{status}': cannot be promoted in this state; needs an operator"
    if status in REPLICA_WAIT_STATUSES:
        return "retry-later", f"replica '{status}': RDS does not promote it in this state; retried next run"
    return None


def _while_replicating(ev: Evidence, policy: Policy, sources: tuple[Vote, Vote, Vote],
                       reasons: _Reasons) -> Decision:
    rds = sources[1]
    down = [vote for vote in sources if vote.verdict == DOWN]
    up = [vote for vote in sources if vote.verdict == UP]
    recovering = rds.verdict == RECOVERING

    if not down:
        return Decision("none", reasons.add("no source says the primary is down: no action").tuple())
    if recovering:
        hold, why = _recovery_hold(ev, policy.recovery_grace_seconds)
        reasons.add(why)
        if hold:
            return Decision("retry-later", reasons.tuple(), notify=True)
        down.append(Vote("rds", DOWN, "recovery grace exceeded"))
    if up:
        reasons.add(
            "signals disagree: " + ", ".join(v.source for v in down) + " say(s) the primary is down, "
            + ", ".join(v.source for v in up) + " say(s) it is up. Not promoting. Check: "
            + _what_to_check(down, up)
        )
        return Decision("signals-disagree", reasons.tuple(), notify=True)
    if len(down) < 2:
        reasons.add(f"only one source says the primary is down ({down[0].source}); automatic "
                    "promotion needs two independent ones: waiting for a second")
        return Decision("unconfirmed", reasons.tuple(), notify=True)
    reasons.add("independent sources agree the primary is gone: " + ", ".join(v.source for v in down))
    if ev.arming != "armed":
        reasons.add(_not_armed_reason(ev))
        return Decision("not-armed", reasons.tuple(), notify=True)
    reasons.add(f"armed: the primary was observed healthy since deployment ({ev.arming_value})")
    return _promotable(ev, policy, reasons, operator=False)


def _promotable(ev: Evidence, policy: Policy, reasons: _Reasons, operator: bool) -> Decision:
    replica_state = _replica_state(ev)
    if replica_state is not None:
        action, reason = replica_state
        return Decision(action, reasons.add(reason).tuple(), notify=True)
    rpo = estimate_rpo(ev.lag_points)
    if not operator:
        guard = policy.max_promotion_lag_seconds
        if rpo.seconds is None:
            reasons.add(f"RPO unknown ({rpo.detail}): nothing bounds the writes at risk, so automatic "
                        "mode waits for a person (promote by hand: RUNBOOK.md)")
            return Decision("rpo-hold", reasons.tuple(), notify=True)
        if rpo.seconds > guard:
            reasons.add(f"RPO guard: {rpo.detail} exceeds maxAutomaticPromotionLagSeconds ({guard:g} s); "
                        "automatic mode waits for a person (promote by hand: RUNBOOK.md)")
            return Decision("rpo-hold", reasons.tuple(), notify=True)
    reasons.add(f"RPO estimate: {rpo.detail}" if rpo.seconds is not None else f"RPO unknown ({rpo.detail})")
    if policy.mode == "automatic" or operator:
        reasons.add(f"replica '{ev.replica_status}': promoting it and fencing writers onto it")
        return Decision("promote", reasons.tuple(), claim=True, fence_database=True, notify=True)
    if policy.mode == "manual":
        reasons.add("would promote it (manual mode: an operator decides)")
        return Decision("would-promote", reasons.tuple(), notify=True)
    reasons.add("would promote it (dry-run: logged only)")
    return Decision("dry-run", reasons.tuple())


def _what_to_check(down: Sequence[Vote], up: Sequence[Vote]) -> str:
    hints = {
        ("canary", DOWN): "the canary's log group and its alarm (a broken or throttled canary, or a "
                          "security-group change, looks like a dead primary)",
        ("rds", DOWN): "the primary's status and events in the RDS console",
        ("link", DOWN): "replication (the replica's StatusInfos) and whether the primary region's "
                        "APIs answer from elsewhere (a partition between the regions looks like this)",
        ("canary", UP): "the canary's recent probes",
        ("rds", UP): "the primary's status in RDS",
    }
    seen = [hints[key] for key in ((vote.source, vote.verdict) for vote in (*down, *up)) if key in hints]
    return "; ".join(seen) + ". Promote by hand only once you are sure (RUNBOOK.md)"


def _not_armed_reason(ev: Evidence) -> str:
    why = {
        "unarmed": "the arming parameter still reads 'unarmed'",
        "other-primary": f"the arming parameter names another primary ({ev.arming_value})",
        "missing": "the arming parameter does not exist",
    }.get(ev.arming, "the arming parameter could not be read (counted as not armed)")
    return (f"NOT ARMED: the primary has not been observed healthy since deployment ({why}); "
            "automatic promotion is off until it is. If the primary is really down, promote by "
            "hand (RUNBOOK.md)")


def _recovery_hold(ev: Evidence, grace_seconds: float) -> tuple[bool, str]:
    """(hold, reason) while RDS recovers a reachable primary in place, within the grace."""
    status = ev.primary_status
    age = ev.alarm_state_seconds if ev.alarm_state in ("ALARM", "INSUFFICIENT_DATA") else None
    if grace_seconds <= 0:
        return False, f"primary '{status}' recovers in place, but the recovery grace is off"
    if age is None:
        return True, (f"primary '{status}': RDS is recovering it in place and how long the canary has "
                      "been failing is unknown: holding; re-evaluated on the next run")
    if age < grace_seconds:
        return True, (f"primary '{status}': RDS is recovering it in place (reboot, Multi-AZ failover, "
                      f"maintenance); canary failing for {age:.0f} s, within the {grace_seconds:g} s "
                      "recovery grace: holding")
    return False, (f"primary '{status}', but the canary has been failing for {age:.0f} s, beyond the "
                   f"{grace_seconds:g} s recovery grace: no longer waiting")
