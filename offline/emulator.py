"""The local AWS API emulator (moto's server) the rehearsal deploys into.

``start_emulator`` runs moto's server on a free loopback port in this process;
``emulator_environment`` is what points boto3 (here and in child processes)
at it with throw-away credentials, so nothing can reach a real account; and
``inventory`` lists what the emulator holds, service by service and region by
region, so the rehearsal can prove that a teardown left nothing behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from offline.harness import OFFLINE_ACCOUNT_ID


@dataclass
class Emulator:
    server: Any
    endpoint_url: str

    def stop(self) -> None:
        self.server.stop()


def start_emulator(account_id: str = OFFLINE_ACCOUNT_ID) -> Emulator:
    # Both are read by moto at request time: the account every ARN carries (one from
    # the documentation's example range), and AWS managed policies (the layers attach
    # AmazonRDSEnhancedMonitoringRole and the Lambda execution policies).
    os.environ["MOTO_ACCOUNT_ID"] = account_id
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    from moto.server import ThreadedMotoServer

    # One line per request on stderr would bury the report, and so would the tracebacks of
    # the calls moto answers with HTTP 500 (the report lists those differences instead).
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return Emulator(server, f"http://{host}:{port}")


def emulator_environment(endpoint_url: str, region: str) -> dict[str, str]:
    """Environment that sends every AWS SDK call to the emulator, never to AWS."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
        "AWS_SESSION_TOKEN": "emulator",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # No profile, config or instance metadata may supply real credentials or endpoints.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def apply_environment(env: dict[str, str]) -> None:
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(env)


_SESSION = boto3.session.Session()
_CLIENTS: dict[tuple[str, str, str], Any] = {}


def _client(service: str, region: str, endpoint_url: str) -> Any:
    # One session for all: building a client per call would reload its service model.
    key = (service, region, endpoint_url)
    if key not in _CLIENTS:
        _CLIENTS[key] = _SESSION.client(
            service, region_name=region, endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}))
    return _CLIENTS[key]


def inventory(endpoint_url: str, regions: Iterable[str]) -> dict[str, set[str]]:
    """Everything the emulator holds, as ``{"<service> <kind>": {"<region> <id>", ...}}``.

    KMS keys scheduled for deletion count as gone (that is how AWS deletes a key);
    they are listed under ``kms pending-deletion`` for the report.
    """
    found: dict[str, set[str]] = {}

    def add(kind: str, region: str, ids: Iterable[str]) -> None:
        found.setdefault(kind, set()).update(f"{region} {i}" for i in ids)

    regions = list(dict.fromkeys(regions))
    for region in regions:
        ec2 = _client("ec2", region, endpoint_url)
        add("ec2 vpc", region, (v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]))
        add("ec2 subnet", region, (s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]))
        add("ec2 security-group", region,
            (g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]))
        add("ec2 security-group-rule", region,
            (r["SecurityGroupRuleId"] for r in ec2.describe_security_group_rules()["SecurityGroupRules"]))
        add("ec2 flow-log", region, (f["FlowLogId"] for f in ec2.describe_flow_logs()["FlowLogs"]))
        add("ec2 network-interface", region,
            (n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces()["NetworkInterfaces"]))

        logs = _client("logs", region, endpoint_url)
        add("logs log-group", region, (g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]))

        kms = _client("kms", region, endpoint_url)
        live, pending = [], []
        for key in kms.list_keys()["Keys"]:
            meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            (pending if meta["KeyState"] == "PendingDeletion" else live).append(meta["KeyId"])
        add("kms key", region, live)
        add("kms pending-deletion", region, pending)
        add("kms alias", region, (a["AliasName"] for a in kms.list_aliases()["Aliases"]
                                  if not a["AliasName"].startswith("alias/aws/")))

        rds = _client("rds", region, endpoint_url)
        add("rds db-instance", region,
            (d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]))
        add("rds subnet-group", region,
            (g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]))
        add("rds parameter-group", region,
            (g["DBParameterGroupName"] for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
             if not g["DBParameterGroupName"].startswith("default.")))
        add("rds event-subscription", region,
            (s["CustSubscriptionId"] for s in
             rds.describe_event_subscriptions()["EventSubscriptionsList"]))

        sns = _client("sns", region, endpoint_url)
        add("sns topic", region, (t["TopicArn"] for t in sns.list_topics()["Topics"]))
        add("sns subscription", region,
            (s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]))

        sqs = _client("sqs", region, endpoint_url)
        add("sqs queue", region, sqs.list_queues().get("QueueUrls", []))

        cw = _client("cloudwatch", region, endpoint_url)
        alarms = cw.describe_alarms()
        add("cloudwatch alarm", region,
            (a["AlarmName"] for a in alarms["MetricAlarms"] + alarms.get("CompositeAlarms", [])))
        add("cloudwatch dashboard", region,
            (d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]))

        events = _client("events", region, endpoint_url)
        add("events rule", region, (r["Name"] for r in events.list_rules()["Rules"]))

        lam = _client("lambda", region, endpoint_url)
        add("lambda function", region,
            (f["FunctionName"] for f in lam.list_functions()["Functions"]))

        ssm = _client("ssm", region, endpoint_url)
        add("ssm parameter", region,
            (p["Name"] for page in ssm.get_paginator("describe_parameters").paginate()
             for p in page["Parameters"]))

        sm = _client("secretsmanager", region, endpoint_url)
        add("secretsmanager secret", region, (s["Name"] for s in sm.list_secrets()["SecretList"]))

    home = regions[0]
    iam = _client("iam", home, endpoint_url)
    add("iam role", "global", (r["RoleName"] for r in iam.list_roles()["Roles"]))
    add("iam policy", "global", (p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]))
    r53 = _client("route53", home, endpoint_url)
    add("route53 hosted-zone", "global", (z["Id"] for z in r53.list_hosted_zones()["HostedZones"]))
    add("route53 health-check", "global", (h["Id"] for h in r53.list_health_checks()["HealthChecks"]))
    return found


def leftovers(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, list[str]]:
    """What ``after`` holds that ``before`` did not, except keys scheduled for deletion."""
    left: dict[str, list[str]] = {}
    for kind, items in after.items():
        if kind == "kms pending-deletion":
            continue
        extra = sorted(items - before.get(kind, set()))
        if extra:
            left[kind] = extra
    return left
