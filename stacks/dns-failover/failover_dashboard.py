"""One CloudWatch dashboard for the failover path: alarms, probes, fence, lag, decisions.

Every metric widget names the region its metric lives in, so the dashboard reads the same
from either region's console. It is created in the secondary region, the one an operator
watches while the primary region is failing; its first row is the state of the alarms
that live there (the stuck-failover alarm and the promoter's error alarm), the ones that
still speak when the primary region is gone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

PERIOD = 60


@dataclass
class FailoverDashboardArgs:
    name: str
    primary_region: str
    secondary_region: str
    canary_function_name: pulumi.Input[str]
    replica_canary_function_name: pulumi.Input[str]
    promoter_function_name: pulumi.Input[str]
    replica_identifier: pulumi.Input[str]
    metrics_namespace: str  # the promoter's: its decisions and the fence
    decisions_metric: str
    fence_metric: str
    # Alarms of the secondary region (the dashboard's own), shown by state at the top.
    secondary_alarm_arns: Sequence[pulumi.Input[str]] = ()


def failover_dashboard(args: FailoverDashboardArgs, opts: pulumi.ResourceOptions
                       ) -> aws.cloudwatch.Dashboard:
    body = pulumi.Output.all(
        args.canary_function_name, args.replica_canary_function_name, args.promoter_function_name,
        args.replica_identifier, pulumi.Output.all(*args.secondary_alarm_arns),
    ).apply(lambda v: json.dumps(dashboard_body(args, *v)))
    return aws.cloudwatch.Dashboard(args.name, dashboard_name=args.name, dashboard_body=body,
                                    opts=opts)


def dashboard_body(args: FailoverDashboardArgs, canary: str, replica_canary: str, promoter: str,
                   replica: str, alarm_arns: Sequence[str] = ()) -> dict[str, Any]:
    # The namespace carries the suffix, which may hold hyphens: a metric schema name with
    # non-alphanumeric characters must be double-quoted (CloudWatch User Guide, "CloudWatch
    # search expression syntax").
    search = (
        f"SEARCH('{{\"{args.metrics_namespace}\",Action}} MetricName=\"{args.decisions_metric}\"', "
        f"'Sum', {PERIOD})"
    )
    widgets = [
        _metric("Canary runs and failures (primary)", args.primary_region, [
            ["AWS/Lambda", "Invocations", "FunctionName", canary, {"stat": "Sum"}],
            ["AWS/Lambda", "Errors", "FunctionName", canary, {"stat": "Sum"}],
        ]),
        _metric("Replica canary runs and failures (secondary)", args.secondary_region, [
            ["AWS/Lambda", "Invocations", "FunctionName", replica_canary, {"stat": "Sum"}],
            ["AWS/Lambda", "Errors", "FunctionName", replica_canary, {"stat": "Sum"}],
        ]),
        _metric("Writers fenced onto the replica (1 = failed over)", args.secondary_region, [
            [args.metrics_namespace, args.fence_metric, {"stat": "Maximum"}],
        ], y_max=1),
        _metric("Replica lag, seconds (RPO if the primary failed now)", args.secondary_region, [
            ["AWS/RDS", "ReplicaLag", "DBInstanceIdentifier", replica, {"stat": "Maximum"}],
        ]),
        _metric("Promoter runs and failures (secondary)", args.secondary_region, [
            ["AWS/Lambda", "Invocations", "FunctionName", promoter, {"stat": "Sum"}],
            ["AWS/Lambda", "Errors", "FunctionName", promoter, {"stat": "Sum"}],
        ]),
        _metric("Promoter decisions by action", args.secondary_region, [
            [{"expression": search, "id": "decisions", "label": ""}],
        ]),
    ]
    top = 0
    if alarm_arns:
        # Alarm status widget (CloudWatch API Reference, "Dashboard body structure and
        # syntax": type "alarm", properties.alarms = 1 to 100 alarm ARNs).
        widgets.insert(0, {
            "type": "alarm", "x": 0, "y": 0, "width": 24, "height": 3,
            "properties": {"title": f"Failover alarms ({args.secondary_region})",
                           "alarms": list(alarm_arns), "sortBy": "stateUpdatedTimestamp"},
        })
        top = 3
    for index, widget in enumerate(w for w in widgets if w["type"] == "metric"):
        widget.update(x=(index % 2) * 12, y=top + (index // 2) * 6, width=12, height=6)
    return {"widgets": widgets}


def _metric(title: str, region: str, metrics: list[list[Any]], y_max: int | None = None
            ) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title, "region": region, "metrics": metrics, "period": PERIOD,
        "view": "timeSeries", "stacked": False,
    }
    if y_max is not None:
        properties["yAxis"] = {"left": {"min": 0, "max": y_max}}
    return {"type": "metric", "properties": properties}
