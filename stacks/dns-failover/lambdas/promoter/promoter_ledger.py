"""The failover ledger: one DynamoDB item per replica, changed only by conditional writes.

It is what makes a failover happen once. A run that decides to promote first CLAIMS the
replica's item (PutItem on condition that no claim for this replica instance exists);
only the run whose write succeeds calls PromoteReadReplica and sends the "promote"
notification. Every other run, concurrent or later, sees the claim and does neither.
DynamoDB evaluates a condition and applies the write as one atomic step (DynamoDB
Developer Guide, "Condition expressions" / "Conditional writes"), so this holds whatever
the runs' concurrency: reserved concurrency is a convenience, not the guarantee. (SSM
PutParameter without Overwrite refuses an existing name too, but AWS does not document it
as a linearizable compare-and-set; DynamoDB does.)

A claim carries a lease (the promoter's Lambda timeout and a margin): a run that dies
between its claim and RDS's answer leaves a claim the next run may take over once the
lease has run out; a promotion RDS refused (InvalidDBInstanceState) or that failed may be
taken over at once. Each take-over is itself conditional on the attempt number, so no two
runs ever call PromoteReadReplica for the same attempt.

The item also keeps the failover on record after the fact: while it exists for the
current replica instance, the promoter publishes "writers fenced" (the metric behind the
writer record's health check) and fences the old primary. The replica's DbiResourceId is
part of the record, so an item left from an earlier replica of the same name (after a
failback rebuilt it) does not count, and a new claim overwrites it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promoter_decision import LedgerRecord

KEY = "pk"
CLAIMED, REQUESTED, FAILED, REFUSED, RECORDED = (
    "claimed", "promote-requested", "promote-failed", "promote-refused", "recorded")
_NOT_CLAIMED_FOR_THIS_INSTANCE = f"attribute_not_exists({KEY}) OR replicaResourceId <> :rid"


class LedgerConflict(Exception):
    """Another run's conditional write came first."""


@dataclass(frozen=True)
class Ledger:
    dynamodb: Any  # a boto3 DynamoDB client in the replica's region
    table: str
    replica_identifier: str

    @property
    def key(self) -> dict[str, dict[str, str]]:
        return {KEY: {"S": f"failover/{self.replica_identifier}"}}

    def read(self) -> LedgerRecord | None:
        """The record, read consistently (a just-written claim must be seen). Raises on errors."""
        item = self.dynamodb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get("Item")
        return None if item is None else _record(item)

    def claim(self, resource_id: str, primary_identifier: str, run_id: str, now: float,
              lease_seconds: float, state: str = CLAIMED, detail: str = "") -> LedgerRecord:
        """Claim a new failover of this replica instance (or record one found done)."""
        item = {
            **self.key,
            "replicaResourceId": {"S": resource_id},
            "primaryIdentifier": {"S": primary_identifier},
            "state": {"S": state},
            "attempt": {"N": "1"},
            "claimedBy": {"S": run_id},
            "leaseUntil": {"N": str(int(now + lease_seconds))},
            "updatedAt": {"N": str(int(now))},
            "detail": {"S": detail},
        }
        self._conditional(lambda: self.dynamodb.put_item(
            TableName=self.table, Item=item, ConditionExpression=_NOT_CLAIMED_FOR_THIS_INSTANCE,
            ExpressionAttributeValues={":rid": {"S": resource_id}},
        ))
        return _record(item)

    def take_over(self, record: LedgerRecord, run_id: str, now: float, lease_seconds: float) -> LedgerRecord:
        """Claim the next attempt of an unsettled failover, if nobody else did."""
        answer = self._conditional(lambda: self.dynamodb.update_item(
            TableName=self.table, Key=self.key,
            UpdateExpression="SET attempt = :next, claimedBy = :me, leaseUntil = :lease, "
                             "#state = :claimed, updatedAt = :now, detail = :detail",
            ConditionExpression="replicaResourceId = :rid AND attempt = :attempt AND "
                                "(#state IN (:failed, :refused) OR leaseUntil < :now)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":next": {"N": str(record.attempt + 1)}, ":attempt": {"N": str(record.attempt)},
                ":me": {"S": run_id}, ":lease": {"N": str(int(now + lease_seconds))},
                ":claimed": {"S": CLAIMED}, ":failed": {"S": FAILED}, ":refused": {"S": REFUSED},
                ":now": {"N": str(int(now))}, ":rid": {"S": record.replica_resource_id},
                ":detail": {"S": f"taken over from {record.claimed_by} ({record.state})"},
            },
            ReturnValues="ALL_NEW",
        ))
        return _record(answer["Attributes"])

    def settle(self, record: LedgerRecord, state: str, detail: str, now: float) -> None:
        """Record RDS's answer to this run's attempt (only the claimant of that attempt may)."""
        self._conditional(lambda: self.dynamodb.update_item(
            TableName=self.table, Key=self.key,
            UpdateExpression="SET #state = :state, detail = :detail, updatedAt = :now",
            ConditionExpression="claimedBy = :me AND attempt = :attempt",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":state": {"S": state}, ":detail": {"S": detail[:1000]}, ":now": {"N": str(int(now))},
                ":me": {"S": record.claimed_by}, ":attempt": {"N": str(record.attempt)},
            },
        ))

    def _conditional(self, write: Any) -> Any:
        try:
            return write()
        except self.dynamodb.exceptions.ConditionalCheckFailedException as error:
            raise LedgerConflict(str(error)) from error


def _record(item: dict[str, dict[str, str]]) -> LedgerRecord:
    def text(name: str) -> str:
        return item.get(name, {}).get("S", "")

    def number(name: str) -> float:
        return float(item.get(name, {}).get("N", "0"))

    return LedgerRecord(
        state=text("state"), attempt=int(number("attempt")), claimed_by=text("claimedBy"),
        lease_until=number("leaseUntil"), replica_resource_id=text("replicaResourceId"),
        detail=text("detail"),
    )
