"""A two-region failover world in moto for the promoter, with Route 53's data plane modelled.

``FailoverWorld.build()`` (call inside ``moto.mock_aws``) creates what the deployed layers
would: an encrypted primary with backups, a cross-region encrypted read replica made from
the primary's ARN with a key of the replica's region, the canary alarm (primary region),
the writer-fence alarm (secondary region), the two alarm-based health checks, a private
hosted zone with the writer, witness and reader records, the promoter's ledger table and
arming parameter, the replica canary's log group, and an encrypted events topic with an
SQS queue subscribed so tests can read what the promoter published.

The world plays the parts that cannot run here, each from its documented behaviour:

* The canaries (Lambda needs Docker in moto). ``set_canary`` sets what the primary's
  canary reports: its alarm's state, as the promoter reads it, and the Errors datapoints
  Route 53 evaluates. ``relay_witness`` writes the line the replica canary logs after
  resolving ``witness.<zone>``: the answer comes from the Route 53 model.
* Route 53's data plane (``tests.support.route53_model``): health checks from alarm data,
  failover answers. ``writer_answer`` is what a client in either VPC resolves.
* A dead primary region (``region_down``): the promoter's clients refuse every call to the
  primary region as an unreachable endpoint does (``offline.emulator.RegionRefusal``, the
  one regional outage every emulated client plays; with a us-east-1 primary that includes
  Route 53's control plane); the Route 53 model finds the primary's CloudWatch unanswering
  too. A hanging region (``SilentPort`` as ``primary_endpoint``) is the other way a region
  fails: connections that never answer, bounded by the promoter's own timeouts.

Where moto departs from documented AWS behaviour, ``client_factory`` corrects it openly,
on the promoter's own clients (the handler code is untouched):

* DescribeDBInstances has no StatusInfos in moto. AWS reports a read replica's
  replication state there (API Reference, DBInstance.StatusInfos, StatusType "read
  replication"): the answer for the replica gets ``world.replication``.
* StopDBInstance: moto stops an instance that still has a read replica. AWS refuses
  (RDS User Guide, "Stopping an Amazon RDS DB instance temporarily": an instance with a
  read replica cannot be stopped): answered InvalidDBInstanceState while the primary
  still lists the replica.
* PromoteReadReplica: moto keeps ReadReplicaSourceDBInstanceIdentifier on the promoted
  instance (and the source keeps listing it). Real AWS clears both once the instance
  stands alone (RDS User Guide, USER_ReadRepl.Promote). ``promotion_effect="complete"``
  clears them after the call, as AWS shows once the promotion finished; ``"stale"`` keeps
  moto's answer, like a describe made right after the call.

Time is played, not corrected: ``set_alarm(state, for_seconds=...)`` backdates the moment
the alarm entered its state. moto answers DescribeAlarms with StateUpdatedTimestamp only
(AWS also sends StateTransitionedTimestamp); the promoter falls back to the former, so
these tests run that fallback.
"""

from __future__ import annotations

import datetime
import functools
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID

from offline.emulator import RegionRefusal
from tests.support.lambdas import load_layer_module
from tests.support.route53_model import HealthCheckSpec, RegionDown, Route53Model, alarm_from_metrics

PRIMARY_REGION = "eu-west-1"
REPLICA_REGION = "eu-central-1"
PRIMARY_ID = "db-qa-primary"
REPLICA_ID = "db-qa-replica"
ZONE_NAME = "db-qa.internal"
WRITER = f"writer.{ZONE_NAME}"
READER = f"reader.{ZONE_NAME}"
WITNESS = f"witness.{ZONE_NAME}"
CANARY_FUNCTION = "db-canary-qa"
CANARY_ALARM = "db-canary-errors-qa"
FENCE_ALARM = "db-failover-fenced-qa"
NAMESPACE = "RdsFailover/qa"
FENCE_METRIC = "FailoverFenced"
LEDGER_TABLE = "db-failover-ledger-qa"
ARMING_PARAMETER = "db-failover-armed-qa"
WITNESS_LOG_GROUP = "/aws/lambda/db-replica-canary-qa"
CANARY_PERIODS = 2  # alarmEvaluationPeriods (and M) of the defaults

_dns = load_layer_module("failover_dns")
HEALTHY_ADDRESS, FAILING_ADDRESS = _dns.WITNESS_HEALTHY_ADDRESS, _dns.WITNESS_FAILING_ADDRESS


@functools.lru_cache(maxsize=1)
def _session() -> boto3.session.Session:
    # Shared across tests so botocore loads each API model once (moto resets boto3's default
    # session in every mock_aws).
    return boto3.session.Session()


def client(service: str, region: str) -> Any:
    return _session().client(service, region_name=region)


class SilentPort:
    """A local port that completes TCP handshakes and never answers: a hanging region."""

    def __enter__(self) -> str:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=32)
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self._listener.close()


@dataclass
class FailoverWorld:
    # The primary's region: the default, or us-east-1 to play Route 53's control-plane home.
    primary_region: str = PRIMARY_REGION
    primary_address: str = ""
    replica_address: str = ""
    zone_id: str = ""
    canary_check_id: str = ""
    fence_check_id: str = ""
    topic_arn: str = ""
    queue_url: str = ""
    promotion_effect: str = "complete"  # complete | stale
    # Set to a SilentPort to play a hanging primary region (its calls never answer).
    primary_endpoint: str | None = None
    # The promoter's calls the outage refuses (region_down, api_partition).
    outage: RegionRefusal = field(default_factory=RegionRefusal)
    # True: only the promoter's calls to the primary region fail (an API-only partition);
    # the region itself, and Route 53's view of it, are fine.
    partition_only: bool = False
    replication: dict[str, Any] = field(default_factory=lambda: {
        "StatusType": "read replication", "Status": "replicating", "Normal": True})
    promote_error: str | None = None  # an RDS error code PromoteReadReplica answers with
    arming_read_error: str | None = None
    arming_write_error: str | None = None
    ledger_error: str | None = None  # a DynamoDB error code every ledger call answers with
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    model: Route53Model | None = None

    # --- building ------------------------------------------------------------------------
    def build(self) -> FailoverWorld:
        kms_primary = client("kms", self.primary_region).create_key()["KeyMetadata"]["Arn"]
        kms_replica = client("kms", REPLICA_REGION).create_key()["KeyMetadata"]["Arn"]
        primary = client("rds", self.primary_region).create_db_instance(
            DBInstanceIdentifier=PRIMARY_ID, Engine="postgres", DBInstanceClass="db.t4g.micro",
            MasterUsername="app_admin", MasterUserPassword="not-a-real-secret-1", AllocatedStorage=20,
            StorageEncrypted=True, KmsKeyId=kms_primary, BackupRetentionPeriod=7,
        )["DBInstance"]
        replica = client("rds", REPLICA_REGION).create_db_instance_read_replica(
            DBInstanceIdentifier=REPLICA_ID, SourceDBInstanceIdentifier=primary["DBInstanceArn"],
            KmsKeyId=kms_replica, DBInstanceClass="db.t4g.micro",
        )["DBInstance"]
        self.primary_address = primary["Endpoint"]["Address"]
        self.replica_address = replica["Endpoint"]["Address"]

        # As the layer declares them (health_signal.py, writer_fence.py).
        client("cloudwatch", self.primary_region).put_metric_alarm(
            AlarmName=CANARY_ALARM, Namespace="AWS/Lambda", MetricName="Errors",
            Dimensions=[{"Name": "FunctionName", "Value": CANARY_FUNCTION}], Statistic="Sum",
            Period=60, EvaluationPeriods=CANARY_PERIODS, DatapointsToAlarm=CANARY_PERIODS, Threshold=0,
            ComparisonOperator="GreaterThanThreshold", TreatMissingData="breaching",
        )
        client("cloudwatch", REPLICA_REGION).put_metric_alarm(
            AlarmName=FENCE_ALARM, Namespace=NAMESPACE, MetricName=FENCE_METRIC, Statistic="Maximum",
            Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="missing",
        )
        self.set_canary("ok")

        route53 = client("route53", REPLICA_REGION)
        specs = {}
        for label, alarm, region, insufficient in (
            ("canary", CANARY_ALARM, self.primary_region, "Unhealthy"),
            ("fence", FENCE_ALARM, REPLICA_REGION, "LastKnownStatus"),
        ):
            check_id = route53.create_health_check(CallerReference=label, HealthCheckConfig={
                "Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": {"Region": region, "Name": alarm},
                "InsufficientDataHealthStatus": insufficient,
            })["HealthCheck"]["Id"]
            # moto drops AlarmIdentifier/InsufficientDataHealthStatus; the model keeps them.
            specs[check_id] = HealthCheckSpec(check_id, "CLOUDWATCH_METRIC", alarm, region, insufficient)
            setattr(self, f"{label}_check_id", check_id)
        self.model = Route53Model(specs, alarm_from_metrics(self._model_cloudwatch))

        vpc = client("ec2", self.primary_region).create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        self.zone_id = route53.create_hosted_zone(
            Name=ZONE_NAME, CallerReference="zone", HostedZoneConfig={"PrivateZone": True},
            VPC={"VPCRegion": self.primary_region, "VPCId": vpc},
        )["HostedZone"]["Id"].rsplit("/", 1)[-1]
        records = [
            *_pair(WRITER, "CNAME", 30, self.primary_address, self.replica_address, self.fence_check_id),
            *_pair(WITNESS, "A", 10, HEALTHY_ADDRESS, FAILING_ADDRESS, self.canary_check_id),
            {"Name": READER, "Type": "CNAME", "TTL": 30,
             "ResourceRecords": [{"Value": self.replica_address}]},
        ]
        route53.change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": r} for r in records]},
        )

        client("dynamodb", REPLICA_REGION).create_table(
            TableName=LEDGER_TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )
        client("ssm", REPLICA_REGION).put_parameter(
            Name=ARMING_PARAMETER, Value="unarmed", Type="String", Tier="Standard",
        )
        logs = client("logs", REPLICA_REGION)
        logs.create_log_group(logGroupName=WITNESS_LOG_GROUP)
        logs.create_log_stream(logGroupName=WITNESS_LOG_GROUP, logStreamName="replica-canary")

        sns = client("sns", REPLICA_REGION)
        self.topic_arn = sns.create_topic(
            Name="db-failover-events-qa", Attributes={"KmsMasterKeyId": kms_replica}
        )["TopicArn"]
        sqs = client("sqs", REPLICA_REGION)
        self.queue_url = sqs.create_queue(QueueName="db-qa-events-reader")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        return self

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "REPLICA_IDENTIFIER": REPLICA_ID,
            "REPLICA_REGION": REPLICA_REGION,
            "PRIMARY_IDENTIFIER": PRIMARY_ID,
            "PRIMARY_REGION": self.primary_region,
            "CANARY_ALARM_NAME": CANARY_ALARM,
            "EVENTS_TOPIC_ARN": self.topic_arn,
            "ARMING_PARAMETER_NAME": ARMING_PARAMETER,
            "LEDGER_TABLE_NAME": LEDGER_TABLE,
            "FENCE_NAMESPACE": NAMESPACE,
            "FENCE_METRIC": FENCE_METRIC,
            "WITNESS_LOG_GROUP": WITNESS_LOG_GROUP,
            "AUTOMATION_MODE": "automatic",
            "API_TIMEOUT_SECONDS": "1",
            "MAX_ATTEMPTS": "1",
            "BACKUP_RETENTION_DAYS": "7",
            "RECOVERY_GRACE_SECONDS": "600",
            "MAX_PROMOTION_LAG_SECONDS": "300",
            "CLAIM_LEASE_SECONDS": "180",
        }
        env.update(overrides)
        return env

    # --- state changes a test makes ----------------------------------------------------
    def _db(self, region: str, identifier: str) -> Any:
        return get_backend("rds")[DEFAULT_ACCOUNT_ID][region].databases[identifier]

    def set_alarm(self, state: str, for_seconds: float = 0) -> None:
        """Put the canary alarm in ``state``, entered ``for_seconds`` ago."""
        client("cloudwatch", self.primary_region).set_alarm_state(
            AlarmName=CANARY_ALARM, StateValue=state, StateReason=f"test sets {state}"
        )
        if for_seconds:
            alarm = get_backend("cloudwatch")[DEFAULT_ACCOUNT_ID][self.primary_region].alarms[CANARY_ALARM]
            alarm.state_updated_timestamp -= datetime.timedelta(seconds=for_seconds)

    def set_canary(self, report: str, alarm_for_seconds: float = 0) -> None:
        """What the primary's canary reports: "ok", "failing" (runs and raises) or "silent"
        (does not run at all). Sets the alarm the promoter reads and the Errors data Route 53
        evaluates, as CloudWatch would from the canary's runs."""
        self.set_alarm("OK" if report == "ok" else "ALARM", for_seconds=alarm_for_seconds)
        # A new report replaces the canary's recent minutes, as the next minutes' runs would.
        backend = get_backend("cloudwatch")[DEFAULT_ACCOUNT_ID][self.primary_region]
        backend.metric_data = [datum for datum in backend.metric_data
                               if (datum.namespace, datum.name) != ("AWS/Lambda", "Errors")]
        if report == "silent":
            return
        now = datetime.datetime.now(datetime.timezone.utc)
        # RDS and Lambda publish into AWS/ namespaces themselves; AWS refuses customer data
        # there, moto accepts it, which lets the test play Lambda's part.
        client("cloudwatch", self.primary_region).put_metric_data(Namespace="AWS/Lambda", MetricData=[
            {"MetricName": "Errors", "Value": 0.0 if report == "ok" else 1.0, "Unit": "Count",
             "Timestamp": now - datetime.timedelta(seconds=30 + 60 * minute),
             "Dimensions": [{"Name": "FunctionName", "Value": CANARY_FUNCTION}]}
            for minute in range(CANARY_PERIODS)
        ])

    def region_down(self) -> None:
        """The primary region stops answering (its APIs, and its CloudWatch for Route 53)."""
        self.outage.refuse([self.primary_region])
        self.partition_only = False

    def api_partition(self) -> None:
        """Only the path from the promoter to the primary region's APIs is cut."""
        self.outage.refuse([self.primary_region])
        self.partition_only = True

    def region_back(self) -> None:
        self.outage.stop()
        self.partition_only = False

    def set_replica_status(self, status: str) -> None:
        self._db(REPLICA_REGION, REPLICA_ID).status = status

    def set_primary_status(self, status: str) -> None:
        self._db(self.primary_region, PRIMARY_ID).status = status

    def primary_status(self) -> str:
        return self._db(self.primary_region, PRIMARY_ID).status

    def set_replication(self, status: str, normal: bool, message: str = "") -> None:
        self.replication = {"StatusType": "read replication", "Status": status, "Normal": normal,
                            "Message": message}

    def set_arming(self, value: str) -> None:
        client("ssm", REPLICA_REGION).put_parameter(Name=ARMING_PARAMETER, Value=value, Overwrite=True)

    def arming_value(self) -> str:
        return client("ssm", REPLICA_REGION).get_parameter(Name=ARMING_PARAMETER)["Parameter"]["Value"]

    def detach_replica(self) -> None:
        """What AWS shows once a promotion has finished: the instance stands alone."""
        replica = self._db(REPLICA_REGION, REPLICA_ID)
        replica.source_db_instance_identifier = None
        replica.is_replica = False
        primary = self._db(self.primary_region, PRIMARY_ID)
        primary.replicas = [r for r in primary.replicas if not r.endswith(f":db:{REPLICA_ID}")]

    def delete_replica(self) -> None:
        del get_backend("rds")[DEFAULT_ACCOUNT_ID][REPLICA_REGION].databases[REPLICA_ID]

    def publish_replica_lag(self, *series: float, minutes_ago: int = 2) -> None:
        """ReplicaLag datapoints, one a minute, the last one ``minutes_ago`` minutes ago."""
        now = datetime.datetime.now(datetime.timezone.utc)
        # RDS publishes AWS/RDS ReplicaLag itself; moto accepts the test playing that part.
        client("cloudwatch", REPLICA_REGION).put_metric_data(Namespace="AWS/RDS", MetricData=[
            {"MetricName": "ReplicaLag", "Value": value, "Unit": "Seconds",
             "Timestamp": now - datetime.timedelta(minutes=minutes_ago + len(series) - 1 - index),
             "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": REPLICA_ID}]}
            for index, value in enumerate(series)
        ])

    def relay_witness(self, replica_alive: bool = True) -> str:
        """The replica canary's run: resolve witness.<zone> (the Route 53 model) and log it."""
        answer = self.model.answer(self.record_sets(), WITNESS)
        verdict = ("healthy" if answer == [HEALTHY_ADDRESS] else
                   "unhealthy" if answer == [FAILING_ADDRESS] else "unresolved")
        line = {"event": "canary-probe", "host": self.replica_address, "port": 5432,
                "alive": replica_alive, "witness": verdict, "witness_detail": f"{WITNESS} -> {answer}"}
        client("logs", REPLICA_REGION).put_log_events(
            logGroupName=WITNESS_LOG_GROUP, logStreamName="replica-canary",
            logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(line)}])
        return verdict

    # --- reading results ---------------------------------------------------------------
    def record_sets(self) -> list[dict[str, Any]]:
        return client("route53", REPLICA_REGION).list_resource_record_sets(
            HostedZoneId=self.zone_id)["ResourceRecordSets"]

    def writer_answer(self) -> str:
        """The writer name as a client resolves it: "primary" or "replica"."""
        answer = self.model.answer(self.record_sets(), WRITER)
        return {self.primary_address.lower(): "primary", self.replica_address.lower(): "replica"}[answer[0]]

    def ledger_item(self) -> dict[str, Any] | None:
        return client("dynamodb", REPLICA_REGION).get_item(
            TableName=LEDGER_TABLE, Key={"pk": {"S": f"failover/{REPLICA_ID}"}}).get("Item")

    def fence_published(self) -> list[float]:
        """FailoverFenced values the promoter published, oldest first."""
        now = datetime.datetime.now(datetime.timezone.utc)
        points = client("cloudwatch", REPLICA_REGION).get_metric_statistics(
            Namespace=NAMESPACE, MetricName=FENCE_METRIC, Period=60, Statistics=["Maximum"],
            StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(seconds=1),
        )["Datapoints"]
        return [p["Maximum"] for p in sorted(points, key=lambda p: p["Timestamp"])]

    def notifications(self) -> list[dict[str, Any]]:
        sqs = client("sqs", REPLICA_REGION)
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                envelope = json.loads(message["Body"])
                found.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def count(self, operation: str) -> int:
        return len(self.calls.get(operation, []))

    def _model_cloudwatch(self, region: str) -> Any:
        if self.outage.refuses("cloudwatch", region) and not self.partition_only:
            raise RegionDown(region)
        return client("cloudwatch", region)

    # --- the instrumented factory ------------------------------------------------------
    def client_factory(self, promoter: Any) -> Any:
        original = promoter.make_client

        def factory(service: str, region: str, settings: Any, session: Any = None) -> Any:
            if region == self.primary_region and self.primary_endpoint:
                made = (session or promoter.shared_session()).client(
                    service, region_name=region, endpoint_url=self.primary_endpoint,
                    config=promoter.client_config(settings),
                )
            else:
                made = original(service, region, settings, session)
            events = made.meta.events
            events.register("before-call.*.*", self._record_call)
            if service == "rds":
                events.register("before-call.rds.PromoteReadReplica", self._promote_before)
                events.register("after-call.rds.PromoteReadReplica", self._promote_after)
                events.register("before-call.rds.StopDBInstance", self._stop_before)
                events.register("after-call.rds.DescribeDBInstances", self._status_infos)
            if service == "ssm":
                events.register("before-call.ssm.GetParameter", self._get_parameter)
                events.register("before-call.ssm.PutParameter", self._put_parameter)
            if service == "dynamodb":
                events.register("before-call.dynamodb.*", self._ledger_call)
            # Last, so a refused call is still recorded as made (it was attempted).
            self.outage.hook(made)
            return made

        return factory

    def _record_call(self, model: Any, params: Any, **_: Any) -> None:
        self.calls.setdefault(model.name, []).append(params.get("body") or {})

    def _get_parameter(self, **_: Any) -> Any:
        return _error(self.arming_read_error, 400) if self.arming_read_error else None

    def _put_parameter(self, **_: Any) -> Any:
        return _error(self.arming_write_error, 400) if self.arming_write_error else None

    def _ledger_call(self, **_: Any) -> Any:
        return _error(self.ledger_error, 500) if self.ledger_error else None

    def _promote_before(self, **_: Any) -> Any:
        return _error(self.promote_error, 400) if self.promote_error else None

    def _promote_after(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code == 200 and self.promotion_effect == "complete":
            self.detach_replica()

    def _stop_before(self, **_: Any) -> Any:
        if any(r.endswith(f":db:{REPLICA_ID}") or r == REPLICA_ID
               for r in self._db(self.primary_region, PRIMARY_ID).replicas):
            return _error("InvalidDBInstanceState", 400,
                          "Cannot stop a DB instance that has read replicas")
        return None

    def _status_infos(self, parsed: dict[str, Any], **_: Any) -> None:
        for instance in parsed.get("DBInstances", []):
            if instance.get("DBInstanceIdentifier") == REPLICA_ID and instance.get(
                    "ReadReplicaSourceDBInstanceIdentifier"):
                instance["StatusInfos"] = [dict(self.replication)]


def _pair(name: str, record_type: str, ttl: int, primary: str, secondary: str,
          check_id: str) -> list[dict[str, Any]]:
    return [
        {"Name": name, "Type": record_type, "SetIdentifier": "primary", "Failover": "PRIMARY", "TTL": ttl,
         "HealthCheckId": check_id, "ResourceRecords": [{"Value": primary}]},
        {"Name": name, "Type": record_type, "SetIdentifier": "secondary", "Failover": "SECONDARY",
         "TTL": ttl, "ResourceRecords": [{"Value": secondary}]},
    ]


def _error(code: str, status: int, message: str = "") -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse(None, status, {}, None), {
        "Error": {"Code": code, "Message": message or f"test answers {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
