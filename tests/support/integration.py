"""What the integration tests stand on: the deployed outputs, AWS clients, the promoter.

The integration tests are written for REAL AWS. They read only the flat stack
outputs (``cfn-outputs/flat-outputs.json``, or ``FLAT_OUTPUTS_PATH``) and the
standard AWS environment (credentials, ``AWS_ENDPOINT_URL``); every region comes
from the outputs. The rehearsal (``make rehearse``) runs the same tests against
an AWS API emulator by setting ``AWS_ENDPOINT_URL`` and ``AWS_EMULATOR=moto``.

Under the emulator, two things differ, both in the open:

* Lambda functions cannot run (moto needs Docker to invoke them). The promoter is
  run in-process instead: its deployed configuration (handler, environment) is read
  with GetFunctionConfiguration and the same handler code is called with it, its
  boto3 clients pointed at the emulator by the standard environment.
* Where moto departs from documented AWS behaviour, ``EmulatorCorrections``
  (offline/emulator.py) adjusts the answers, each with the AWS reference, and only in the
  failover drills.
* The drills also PLAY what cannot happen in an emulator, each in the open:
  ``PlayedCanaries`` (the canaries' runs), ``PlayedPrimaryFailure`` (RDS reporting an
  instance failed), ``RegionOutage`` (a region, and Route 53's control plane, refusing
  every call; the rehearsal's outage day hands its own to every client here), and
  ``Route53View`` answers DNS queries from the documented failover rules.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from offline.emulator import EmulatorCorrections, RegionRefusal
from tests.support.lambdas import load_lambda
from tests.support.route53_model import HealthCheckSpec, RegionDown, Route53Model, alarm_from_metrics

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUTS_PATH = REPO / "cfn-outputs" / "flat-outputs.json"
OUTPUTS_ENV = "FLAT_OUTPUTS_PATH"
EMULATOR_ENV = "AWS_EMULATOR"
DRILL_ENV = "RUN_FAILOVER_DRILL"
DRILL_REPORT_ENV = "DRILL_REPORT_PATH"
# The after-failover checks (tests/integration/test_after_failover.py) run on request.
AFTER_FAILOVER_ENV = "RUN_AFTER_FAILOVER"
# Skip reasons of checks only real AWS can answer start with this (the rehearsal
# fails on any other skip).
REAL_AWS_ONLY = "real AWS only"


def outputs_path() -> Path:
    return Path(os.environ.get(OUTPUTS_ENV) or DEFAULT_OUTPUTS_PATH)


def no_outputs_message(path: Path) -> str:
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return (f"no deployment outputs at {shown}: `make deploy ENV_SUFFIX=x && make outputs "
            "ENV_SUFFIX=x` (AWS) or `make rehearse ENV_SUFFIX=demo` (emulator)")


def under_emulator() -> bool:
    return os.environ.get(EMULATOR_ENV, "").strip().lower() not in ("", "0", "false", "no")


def drill_requested() -> bool:
    return os.environ.get(DRILL_ENV, "").strip().lower() in ("1", "true", "yes")


def after_failover_requested() -> bool:
    return os.environ.get(AFTER_FAILOVER_ENV, "").strip().lower() in ("1", "true", "yes")


class Deployment(Mapping[str, Any]):
    """The flat outputs, failing clearly on a missing key."""

    def __init__(self, outputs: Mapping[str, Any], path: Path):
        self._outputs = dict(outputs)
        self.path = path

    @classmethod
    def load(cls, path: Path | None = None) -> Deployment:
        path = path or outputs_path()
        return cls(json.loads(path.read_text()), path)

    def __getitem__(self, key: str) -> Any:
        if key not in self._outputs:
            raise KeyError(f"output {key!r} is missing from {self.path}: is every layer deployed "
                           "and were the outputs exported after the last deploy?")
        return self._outputs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


_SESSION = boto3.session.Session()


# The outage the rehearsal is playing, if any (its outage day): every client refuses it;
# and the promotions it has seen, whose DescribeDBInstances answers moto gets wrong.
ONGOING_OUTAGE = RegionRefusal.from_environment()
KNOWN_PROMOTIONS = EmulatorCorrections.from_environment()


def client(service: str, region: str) -> Any:
    """A new client (standard credential and endpoint chain, patient retries).

    New, so hooks one test adds never reach another; from one session, so service
    models load once. Under the emulator, a client of a region the rehearsal has taken
    down (``RegionRefusal.ENV``) refuses every call, as that region's endpoint would, and
    the promotions the rehearsal saw (``EmulatorCorrections.ENV``) are corrected in RDS's
    answers.
    """
    made = _SESSION.client(
        service, region_name=region,
        config=Config(retries={"max_attempts": 5, "mode": "standard"},
                      connect_timeout=10, read_timeout=70),
    )
    if under_emulator():
        if ONGOING_OUTAGE.active:
            ONGOING_OUTAGE.hook(made)
        if KNOWN_PROMOTIONS.promoted_ids:
            KNOWN_PROMOTIONS.hook(made)
    return made


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def describe_instance(rds: Any, identifier: str) -> dict[str, Any]:
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def db_parameters(rds: Any, group: str) -> dict[str, str | None]:
    """User-set parameters of a parameter group (all pages)."""
    found: dict[str, str | None] = {}
    kwargs: dict[str, Any] = {"DBParameterGroupName": group, "Source": "user"}
    while True:
        page = rds.describe_db_parameters(**kwargs)
        for parameter in page.get("Parameters", []):
            found[parameter["ParameterName"]] = parameter.get("ParameterValue")
        if not page.get("Marker"):
            return found
        kwargs["Marker"] = page["Marker"]


def record_sets(route53: Any, zone_id: str, name: str) -> list[dict[str, Any]]:
    """All record sets named ``name`` (any type, any set identifier)."""
    wanted = name.rstrip(".").lower()
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": wanted}
    while True:
        page = route53.list_resource_record_sets(**kwargs)
        for record in page["ResourceRecordSets"]:
            if record["Name"].rstrip(".").lower() == wanted:
                found.append(record)
            elif found:
                return found
        if not page.get("IsTruncated"):
            return found
        kwargs.update(StartRecordName=page["NextRecordName"], StartRecordType=page["NextRecordType"])
        if page.get("NextRecordIdentifier"):
            kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]


def values_of(record: Mapping[str, Any]) -> list[str]:
    return [rr["Value"].rstrip(".").lower() for rr in record.get("ResourceRecords", [])]


def alarms_on(cloudwatch: Any, dimension: str, value: str) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
        for alarm in page["MetricAlarms"]:
            if {"Name": dimension, "Value": value} in alarm.get("Dimensions", []):
                alarms.append(alarm)
    return alarms


ClientHook = Callable[[Any], None]


@dataclass
class PromoterRunner:
    """Runs the deployed promoter: a Lambda invoke on AWS, the same handler in-process on moto."""

    deployment: Deployment
    emulated: bool
    hooks: list[ClientHook] = field(default_factory=list)

    @property
    def function_arn(self) -> str:
        return self.deployment["promoterFunctionArn"]

    @property
    def region(self) -> str:
        return region_of(self.function_arn)

    def configuration(self) -> dict[str, Any]:
        return client("lambda", self.region).get_function_configuration(FunctionName=self.function_arn)

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        if not self.emulated:
            return self._invoke_lambda(event)
        return self._invoke_in_process(event)

    def _invoke_lambda(self, event: Mapping[str, Any]) -> dict[str, Any]:
        answer = client("lambda", self.region).invoke(
            FunctionName=self.function_arn, InvocationType="RequestResponse",
            Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            raise AssertionError(f"the promoter failed ({answer['FunctionError']}): {payload}")
        return payload

    def _invoke_in_process(self, event: Mapping[str, Any]) -> dict[str, Any]:
        config = self.configuration()
        module_name, _, function_name = config["Handler"].rpartition(".")
        module = load_lambda(module_name)
        handler = getattr(module, function_name)
        environment = dict((config.get("Environment") or {}).get("Variables") or {})
        # What the Lambda runtime sets for every function, besides its configured variables.
        environment.update(AWS_REGION=self.region, AWS_DEFAULT_REGION=self.region,
                           AWS_LAMBDA_FUNCTION_NAME=config["FunctionName"])
        with _patched_environ(environment), self._hooked_factory(module):
            result = handler(dict(event), None)
        # A Lambda answer travels as JSON; so does this one.
        return json.loads(json.dumps(result, default=str))

    @contextlib.contextmanager
    def _hooked_factory(self, module: Any) -> Iterator[None]:
        original = module.make_client

        def make_client(*args: Any, **kwargs: Any) -> Any:
            made = original(*args, **kwargs)
            for hook in self.hooks:
                hook(made)
            return made

        module.make_client = make_client
        try:
            yield
        finally:
            module.make_client = original


@contextlib.contextmanager
def _patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class RegionOutage(RegionRefusal):
    """The drills' regional outage: ``region`` (and Route 53's control plane when
    ``control_plane``) refusing every call of the clients it hooks while ``down``."""

    def __init__(self, region: str, control_plane: bool):
        super().__init__()
        self.region, self.control_plane = region, control_plane

    @property
    def down(self) -> bool:
        return self.active

    @down.setter
    def down(self, value: bool) -> None:
        if value:
            self.refuse([self.region], route53=self.control_plane)
        else:
            self.stop()


class PlayedPrimaryFailure:
    """Plays an instance failure RDS would report: DescribeDBInstances of the primary answers
    ``status`` (moto has no way to fail an instance). Emulator drills only."""

    def __init__(self, identifier: str, status: str = "failed"):
        self.identifier, self.status, self.active = identifier, status, False

    def hook(self, made: Any) -> None:
        if made.meta.service_model.service_name == "rds":
            made.meta.events.register("after-call.rds.DescribeDBInstances", self._failed)

    def _failed(self, parsed: dict[str, Any], **_: Any) -> None:
        for instance in parsed.get("DBInstances", []):
            if self.active and instance.get("DBInstanceIdentifier") == self.identifier:
                instance["DBInstanceStatus"] = self.status


class PlayedCanaries:
    """The two canaries' runs, played in the emulator (Lambda cannot run there).

    The primary's canary reports through CloudWatch: its alarm's state (what the promoter
    reads) and its Errors datapoints (what Route 53 evaluates). The replica canary logs the
    answer Route 53 gives for witness.<zone>, taken from the Route 53 model over the
    deployed records and alarms. Both write exactly what the real functions produce.
    """

    def __init__(self, deployment: Deployment, route53: Any):
        self.deployment = deployment
        self.primary_region = deployment["primaryDbRegion"]
        self.view = Route53View(deployment, route53)
        self.canary_reachable = True  # False while the primary region is down

    def primary(self, report: str) -> None:
        """"ok", "failing" or "silent", as test_promoter's world plays it."""
        cloudwatch = client("cloudwatch", self.primary_region)
        cloudwatch.set_alarm_state(AlarmName=self.deployment["canaryAlarmName"],
                                   StateValue="OK" if report == "ok" else "ALARM",
                                   StateReason=f"drill: the canary reports {report}")
        if report == "silent":
            return
        now = datetime.datetime.now(datetime.timezone.utc)
        cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=[
            {"MetricName": "Errors", "Value": 0.0 if report == "ok" else 1.0, "Unit": "Count",
             "Timestamp": now - datetime.timedelta(seconds=5 + 60 * minute),
             "Dimensions": [{"Name": "FunctionName", "Value": self.deployment["canaryFunctionName"]}]}
            for minute in range(2)
        ])

    def relay_witness(self) -> str:
        answer = self.view.answer(self.deployment["witnessRecordName"])
        healthy, failing = self.view.witness_addresses()
        verdict = "healthy" if answer == [healthy] else "unhealthy" if answer == [failing] else "unresolved"
        group = self.deployment["replicaCanaryLogGroupName"]
        logs = client("logs", self.deployment["replicaRegion"])
        stream = "drill-replica-canary"
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        line = {"event": "canary-probe", "host": self.deployment["replicaAddress"], "port": 5432,
                "alive": True, "witness": verdict,
                "witness_detail": f"{self.deployment['witnessRecordName']} -> {answer}"}
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": int(time.time() * 1000), "message": json.dumps(line)}])
        return verdict


class Route53View:
    """Route 53's data plane over the deployed zone (``tests.support.route53_model``).

    The health checks' settings are the ones the layer declares (the outputs name them;
    moto drops AlarmIdentifier and InsufficientDataHealthStatus, the unit tests check the
    declared values on the plan). ``primary_down`` makes the primary region's CloudWatch
    unanswering for Route 53, as in a regional outage.
    """

    def __init__(self, deployment: Deployment, route53: Any):
        self.deployment, self.route53 = deployment, route53
        self.primary_down = False
        checks = {
            deployment["canaryHealthCheckId"]: HealthCheckSpec(
                deployment["canaryHealthCheckId"], "CLOUDWATCH_METRIC", deployment["canaryAlarmName"],
                deployment["primaryDbRegion"], "Unhealthy"),
            deployment["writerFenceHealthCheckId"]: HealthCheckSpec(
                deployment["writerFenceHealthCheckId"], "CLOUDWATCH_METRIC", deployment["fenceAlarmName"],
                deployment["replicaRegion"], "LastKnownStatus"),
        }
        self.model = Route53Model(checks, alarm_from_metrics(self._cloudwatch))

    def _cloudwatch(self, region: str) -> Any:
        if self.primary_down and region == self.deployment["primaryDbRegion"]:
            raise RegionDown(region)
        return client("cloudwatch", region)

    def answer(self, name: str) -> list[str]:
        return self.model.answer(record_sets(self.route53, self.deployment["hostedZoneId"], name), name)

    def writer(self) -> str:
        """"primary" or "replica": where writer.<zone> sends a client now."""
        answer = self.answer(self.deployment["writerRecordName"])
        return {self.deployment["primaryDbAddress"].lower(): "primary",
                self.deployment["replicaAddress"].lower(): "replica"}[answer[0]]

    def witness_addresses(self) -> tuple[str, str]:
        pair = {r.get("Failover"): values_of(r) for r in record_sets(
            self.route53, self.deployment["hostedZoneId"], self.deployment["witnessRecordName"])}
        return pair["PRIMARY"][0], pair["SECONDARY"][0]


class Phases:
    """Named phases with their wall-clock duration (reported, never asserted)."""

    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings.append((name, time.perf_counter() - start))

    def render(self) -> str:
        return "\n".join(f"  {seconds:8.2f}s  {name}" for name, seconds in self.timings)

    def write(self, path: str | None, **extra: Any) -> None:
        if path:
            Path(path).write_text(json.dumps({"phases": self.timings, **extra}))


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
