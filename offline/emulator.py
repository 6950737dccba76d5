"""The local AWS API emulator (moto's server) the rehearsal deploys into.

``start_emulator`` runs moto's server on a free loopback port in this process;
``emulator_environment`` is what points boto3 (here and in child processes)
at it with throw-away credentials, so nothing can reach a real account; and
``inventory`` lists what the emulator holds, service by service and region by
region, so the rehearsal can prove that a teardown left nothing behind.

Two things are played on the boto3 clients that talk to it, in the open:
``RegionRefusal`` (a region, and the global services' endpoints that live there, such
as Route 53's control plane in us-east-1, that do not answer: the regional outage of the
drills, the outage day and the converge) and ``EmulatorCorrections`` (where moto departs
from documented AWS behaviour).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from botocore.loaders import create_loader

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


@functools.lru_cache(maxsize=1)
def _endpoint_data() -> dict[str, Any]:
    return create_loader().load_data("endpoints")


def endpoint_region(service: str, region: str) -> str:
    """The region whose endpoint answers ``service`` for a client of ``region``.

    A regional service answers in the client's region. A global one (``isRegionalized:
    false`` in botocore's endpoint data: Route 53, IAM, CloudFront, Organizations) has one
    endpoint per partition, in the region its ``credentialScope`` names: route53.amazonaws.com
    is in us-east-1 whatever region the client names (AWS Fault Isolation Boundaries,
    "Global services": their control planes live in one region).
    """
    for partition in _endpoint_data()["partitions"]:
        found = partition.get("services", {}).get(service, {})
        named = found.get("endpoints", {}).get(region, {}).get("credentialScope", {}).get("region")
        if named and region not in partition.get("regions", {}):
            # A client botocore already pointed at the global endpoint: its region_name is
            # the endpoint's name ("aws-global"), and the endpoint's scope says where it is.
            return named
        if region not in partition.get("regions", {}) and not re.match(
                partition.get("regionRegex", "$^"), region):
            continue
        home = found.get("partitionEndpoint")
        if found.get("isRegionalized") is False and home:
            return found["endpoints"].get(home, {}).get("credentialScope", {}).get("region", region)
        return region
    return region


@dataclass(frozen=True)
class ApiCall:
    """One AWS API call a client made (or, refused, tried to make), with the region of the
    endpoint it went to (``endpoint_region``: us-east-1 for Route 53's API)."""

    service: str
    region: str
    operation: str

    def __str__(self) -> str:
        return f"{self.service}:{self.operation} ({self.region})"

    @classmethod
    def of(cls, made: Any, operation: str) -> ApiCall:
        """The call ``operation`` of the boto3 client ``made``."""
        service = made.meta.service_model.service_name
        return cls(service, endpoint_region(service, made.meta.region_name), operation)


class RegionRefusal:
    """A regional outage, played on the boto3 clients it hooks: the one mechanism every
    emulated client uses (the MotoBackend's, the drills', the integration tests' and the
    promoter's in tests/support/moto_failover.py).

    While it refuses, every call whose endpoint is in one of ``regions`` fails before
    anything is sent, with the EndpointConnectionError botocore raises for an unreachable
    endpoint. That includes the global services whose single endpoint lives there
    (``endpoint_region``): refusing us-east-1 refuses Route 53's control plane
    (route53.amazonaws.com) and IAM's too, from clients of any region. ``route53=True``
    also refuses Route 53's control plane while its home region answers (a what-if the
    drills play with other primary regions). Route 53's data plane (DNS answers, health
    checkers) is global and no API call, so nothing here touches it. ``refused`` lists what
    was refused. ``environment()`` hands the same outage to a child process, which rebuilds
    it with ``from_environment``.
    """

    ENV = "EMULATED_OUTAGE"  # "<region>[,<region>...][;route53]"

    def __init__(self, regions: Iterable[str] = (), *, route53: bool = False):
        self.regions: frozenset[str] = frozenset(regions)
        self.route53 = route53
        self.refused: list[ApiCall] = []

    def refuse(self, regions: Iterable[str], *, route53: bool = False) -> None:
        self.regions, self.route53 = frozenset(regions), route53

    def stop(self) -> None:
        self.regions, self.route53 = frozenset(), False

    @property
    def active(self) -> bool:
        return bool(self.regions) or self.route53

    def refuses(self, service: str, region: str) -> bool:
        """Whether a call of a ``service`` client of ``region`` is refused now."""
        return (endpoint_region(service, region) in self.regions
                or (self.route53 and service == "route53"))

    def check(self, call: ApiCall) -> None:
        """Raise as an unreachable endpoint does if ``call`` goes where nothing answers
        (``call.region`` is the endpoint's region, see ``ApiCall.of``)."""
        if call.region in self.regions or (self.route53 and call.service == "route53"):
            self.refused.append(call)
            raise EndpointConnectionError(
                endpoint_url=f"https://{call.service}.{call.region}.unreachable.invalid")

    def hook(self, made: Any) -> None:
        """Refuse ``made``'s calls while this outage lasts (botocore before-call event)."""

        def before_call(model: Any, **_: Any) -> None:
            self.check(ApiCall.of(made, model.name))

        made.meta.events.register("before-call.*.*", before_call)

    def environment(self) -> dict[str, str]:
        value = ",".join(sorted(self.regions)) + (";route53" if self.route53 else "")
        return {self.ENV: value} if self.active else {}

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> RegionRefusal:
        regions, _, flags = (env if env is not None else os.environ).get(cls.ENV, "").partition(";")
        return cls([r for r in regions.split(",") if r], route53=flags == "route53")


class EmulatorCorrections:
    """Openly corrects moto where it departs from documented AWS behaviour.

    * RDS PromoteReadReplica: moto keeps ReadReplicaSourceDBInstanceIdentifier on the
      promoted instance and keeps it in the source's ReadReplicaDBInstanceIdentifiers.
      On AWS a promoted instance is a standalone instance and DescribeDBInstances no
      longer names a source, nor does the source list it (RDS User Guide,
      USER_ReadRepl.Promote; API DBInstance.ReadReplicaSourceDBInstanceIdentifier:
      "if this DB instance is a read replica"). Once a successful promotion is seen on a
      hooked client, or named up front (``promoted``: a promotion another process made),
      both fields are corrected in DescribeDBInstances answers.
    * RDS PromoteReadReplica of an instance that is no longer a read replica: moto answers
      it as a success and changes nothing. AWS refuses it with InvalidDBInstanceState
      (RDS API Reference, PromoteReadReplica, Errors: "The DB instance isn't in a valid
      state", HTTP 400): that is what a ``pulumi up --refresh=false`` dropping
      ``replicate_source_db`` from an instance promoted outside Pulumi runs into
      (stacks/secondary-db/Pulumi.yaml). A call for an instance this object knows as
      promoted is answered so, before it reaches moto.

    Every successful call is also counted, so a drill can prove "exactly one promotion".
    ``environment()`` hands the promotions to a child process (``from_environment``).
    """

    ENV = "EMULATED_PROMOTIONS"  # comma-separated identifiers

    def __init__(self, promoted: Iterable[str] = ()):
        self.calls: list[str] = []
        self.applied: list[str] = []  # which corrections actually changed an answer
        self.promoted_arns: set[str] = set()
        self.promoted_ids: set[str] = set(promoted)

    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    def promoted_elsewhere(self, identifiers: Iterable[str]) -> None:
        """Instances promoted by another process (the drills' promoter, an operator)."""
        self.promoted_ids.update(identifiers)

    def forget(self, identifier: str) -> None:
        """``identifier`` was deleted: an instance created under it later is a new one."""
        self.promoted_ids.discard(identifier)
        self.promoted_arns = {arn for arn in self.promoted_arns if not arn.endswith(f":db:{identifier}")}

    def environment(self) -> dict[str, str]:
        return {self.ENV: ",".join(sorted(self.promoted_ids))} if self.promoted_ids else {}

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> EmulatorCorrections:
        value = (env if env is not None else os.environ).get(cls.ENV, "")
        return cls(promoted=[i for i in value.split(",") if i])

    def hook(self, made: Any) -> None:
        events = made.meta.events
        events.register("after-call.*.*", self._count)
        if made.meta.service_model.service_name == "rds":
            events.register("before-call.rds.PromoteReadReplica", self._promote_standalone)
            events.register("after-call.rds.PromoteReadReplica", self._promoted)
            events.register("after-call.rds.DescribeDBInstances", self._describe_corrected)

    def client(self, service: str, region: str,
               factory: Callable[[str, str], Any] | None = None) -> Any:
        # boto3's default session, made when first asked: a session made at import time
        # misses what an emulator started later hooks into botocore (moto's mock_aws).
        made = (factory or (lambda s, r: boto3.client(s, region_name=r)))(service, region)
        self.hook(made)
        return made

    def _count(self, http_response: Any, model: Any, **_: Any) -> None:
        if http_response is not None and http_response.status_code < 300:
            self.calls.append(model.name)

    def _promoted(self, http_response: Any, parsed: Mapping[str, Any], **_: Any) -> None:
        if http_response is not None and http_response.status_code < 300:
            instance = parsed.get("DBInstance") or {}
            self.promoted_arns.add(instance.get("DBInstanceArn", ""))
            self.promoted_ids.add(instance.get("DBInstanceIdentifier", ""))

    def _promote_standalone(self, params: Mapping[str, Any], **_: Any
                            ) -> tuple[AWSResponse, dict[str, Any]] | None:
        identifier = (params.get("body") or {}).get("DBInstanceIdentifier")
        if identifier not in self.promoted_ids and identifier not in self.promoted_arns:
            return None
        self._applied("RDS PromoteReadReplica: an instance that stands alone is refused with "
                      "InvalidDBInstanceState (moto answers it as a success)")
        message = f"DB instance {identifier} is not a read replica."
        return AWSResponse(None, 400, {}, None), {
            "Error": {"Code": "InvalidDBInstanceState", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    def _describe_corrected(self, parsed: dict[str, Any], **_: Any) -> None:
        for instance in parsed.get("DBInstances", []):
            if (instance.get("DBInstanceIdentifier") in self.promoted_ids
                    and instance.pop("ReadReplicaSourceDBInstanceIdentifier", None)):
                self._applied("RDS DescribeDBInstances: the promoted instance no longer names a "
                              "source (moto keeps ReadReplicaSourceDBInstanceIdentifier)")
            replicas = instance.get("ReadReplicaDBInstanceIdentifiers") or []
            kept = [r for r in replicas if r not in self.promoted_arns and r not in self.promoted_ids]
            if kept != replicas:
                instance["ReadReplicaDBInstanceIdentifiers"] = kept
                self._applied("RDS DescribeDBInstances: the source no longer lists the promoted "
                              "instance as its replica (moto keeps it listed)")

    def _applied(self, what: str) -> None:
        if what not in self.applied:
            self.applied.append(what)


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
        add("rds db-snapshot", region,
            (d["DBSnapshotIdentifier"] for d in
             rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]))
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
