"""A small model of Route 53's data plane: health-check status and failover answers.

moto stores records and health checks but evaluates neither (and drops a health check's
alarm and insufficient-data settings), and no DNS query can be sent to it. The tests
therefore answer DNS queries with this model, written from AWS's documented rules only:

* CLOUDWATCH_METRIC (Route 53 API Reference, HealthCheckConfig.Type): healthy when the
  alarm is OK, unhealthy when it is ALARM; when CloudWatch has insufficient data, the
  check's InsufficientDataHealthStatus decides: Healthy, Unhealthy, or LastKnownStatus
  ("the status of the health check from the last time that CloudWatch had sufficient
  data"; "for new health checks that have no last known status, the default status for
  the health check is healthy"). Route 53 evaluates the alarm's data with the alarm's
  period, evaluation periods, statistic, threshold and comparison only (API Reference,
  CloudWatchAlarmConfiguration: no DatapointsToAlarm, no TreatMissingData). How it
  applies N periods when a window is partly empty is not documented; the model takes the
  strict reading: ALARM only when every datapoint of the window breaches, INSUFFICIENT
  data when the window has none. An alarm whose region does not answer has, for Route 53,
  insufficient data (the design is checked against that reading: see FIELD-NOTES 3).
* CALCULATED: healthy when at least HealthThreshold children are healthy. Inverted flips
  the result (HealthCheckConfig.Inverted).
* Failover records (API Reference, ResourceRecordSet.Failover): PRIMARY is answered while
  it is healthy, "regardless of the health of the secondary"; SECONDARY when PRIMARY is
  unhealthy and SECONDARY is healthy; "when the secondary resource record set is unhealthy,
  Route 53 responds with the primary regardless of the health of the primary". A record
  without a health check is healthy.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}


class RegionDown(Exception):
    """The alarm's region does not answer: for Route 53, CloudWatch has insufficient data."""


@dataclass(frozen=True)
class HealthCheckSpec:
    id: str
    type: str  # CLOUDWATCH_METRIC | CALCULATED
    alarm_name: str | None = None
    alarm_region: str | None = None
    insufficient_data: str = "LastKnownStatus"  # Healthy | Unhealthy | LastKnownStatus
    children: tuple[str, ...] = ()
    threshold: int = 1
    inverted: bool = False


# (alarm name, region) -> "OK" | "ALARM" | "INSUFFICIENT_DATA"; raises RegionDown.
AlarmEvaluator = Callable[[str, str], str]


@dataclass
class Route53Model:
    checks: Mapping[str, HealthCheckSpec]
    evaluate_alarm: AlarmEvaluator
    last_known: dict[str, bool] = field(default_factory=dict)

    def healthy(self, check_id: str) -> bool:
        spec = self.checks[check_id]
        if spec.type == "CALCULATED":
            result = sum(self.healthy(child) for child in spec.children) >= spec.threshold
        elif spec.type == "CLOUDWATCH_METRIC":
            result = self._alarm_check(spec)
        else:
            raise ValueError(f"the model does not evaluate {spec.type} health checks")
        return result != spec.inverted

    def _alarm_check(self, spec: HealthCheckSpec) -> bool:
        try:
            state = self.evaluate_alarm(spec.alarm_name or "", spec.alarm_region or "")
        except RegionDown:
            state = "INSUFFICIENT_DATA"
        if state == "INSUFFICIENT_DATA":
            if spec.insufficient_data == "LastKnownStatus":
                return self.last_known.get(spec.id, True)
            return spec.insufficient_data == "Healthy"
        self.last_known[spec.id] = state == "OK"
        return state == "OK"

    def answer(self, record_sets: Sequence[Mapping[str, Any]], name: str) -> list[str]:
        """The values Route 53 answers a query for ``name`` with."""
        wanted = name.rstrip(".").lower()
        matching = [r for r in record_sets if r["Name"].rstrip(".").lower() == wanted]
        if not matching:
            raise LookupError(f"no record named {name}")
        failover = {r.get("Failover"): r for r in matching if r.get("Failover")}
        if not failover:
            return _values(matching[0])
        primary, secondary = failover["PRIMARY"], failover.get("SECONDARY")
        if self._record_healthy(primary) or secondary is None:
            return _values(primary)
        if self._record_healthy(secondary):
            return _values(secondary)
        return _values(primary)  # both unhealthy: "responds with the primary"

    def _record_healthy(self, record: Mapping[str, Any]) -> bool:
        check = record.get("HealthCheckId")
        return True if not check else self.healthy(check)


def _values(record: Mapping[str, Any]) -> list[str]:
    return [rr["Value"].rstrip(".").lower() for rr in record.get("ResourceRecords", [])]


def alarm_from_metrics(cloudwatch: Callable[[str], Any],
                       now: Callable[[], datetime.datetime] | None = None) -> AlarmEvaluator:
    """Evaluate an alarm's configuration against its metric data, as Route 53 does.

    ``cloudwatch(region)`` returns a CloudWatch client for the region, or raises RegionDown.
    """
    clock = now or (lambda: datetime.datetime.now(datetime.timezone.utc))

    def evaluate(alarm_name: str, region: str) -> str:
        client = cloudwatch(region)
        alarm = client.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]
        period, periods = int(alarm["Period"]), int(alarm["EvaluationPeriods"])
        # CloudWatch time stamps have whole seconds: include the current one.
        end = clock() + datetime.timedelta(seconds=1)
        answer = client.get_metric_statistics(
            Namespace=alarm["Namespace"], MetricName=alarm["MetricName"],
            Dimensions=alarm.get("Dimensions") or [], Period=period,
            StartTime=end - datetime.timedelta(seconds=period * periods), EndTime=end,
            Statistics=[alarm["Statistic"]],
        )
        values = [point[alarm["Statistic"]] for point in answer.get("Datapoints", [])]
        if not values:
            return "INSUFFICIENT_DATA"
        breaches = OPERATORS[alarm["ComparisonOperator"]]
        return "ALARM" if all(breaches(value, alarm["Threshold"]) for value in values) else "OK"

    return evaluate
