"""A two-region failover world in moto for the promoter, and the corrections it needs.

``FailoverWorld.build()`` (call inside ``moto.mock_aws``) creates what the deployed
layers would: an encrypted primary with backups, a cross-region encrypted read replica
made from the primary's ARN with a key of the replica's region, the canary alarm,
a CLOUDWATCH_METRIC health check on it, a private hosted zone with the writer failover
pair and the reader record, an encrypted events topic with an SQS queue subscribed
so tests can read what the promoter published, and the promoter's arming parameter as
the layer deploys it ("unarmed", in the replica's region).

``world.client_factory(promoter)`` wraps the promoter's own client factory; the
handler code is untouched. It counts calls, and corrects moto openly where it differs
from documented AWS behaviour:

* Route 53 GetHealthCheckStatus: moto always answers one "Success" observation. The
  answer is replaced by ``world.health_check_observations`` (shape as in the Route 53
  API reference, GetHealthCheckStatus / HealthCheckObservation: IPAddress, Region,
  StatusReport{Status, CheckedTime}; Status starts with "Success" or "Failure"), or
  the call fails when ``world.health_check_unreachable`` is set.
* RDS PromoteReadReplica: moto keeps ReadReplicaSourceDBInstanceIdentifier on the
  promoted instance. Real AWS clears it once the instance stands alone (RDS User
  Guide, USER_ReadRepl.Promote; DescribeDBInstances). ``promotion_effect="complete"``
  clears it after the call, as AWS does when the promotion finishes;
  ``"stale"`` keeps moto's answer, like a describe made right after the call.
* A dead primary region is played by pointing primary-region clients at a local
  port that accepts TCP and never answers (or refuses), with the promoter's own
  timeouts and retry settings.

Time is played, not corrected: ``set_alarm(state, for_seconds=...)`` backdates the
moment the alarm entered its state. moto answers DescribeAlarms with
StateUpdatedTimestamp only (AWS also sends StateTransitionedTimestamp); the promoter
falls back to the former, so these tests run that fallback.
"""

from __future__ import annotations

import datetime
import functools
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID

PRIMARY_REGION = "eu-west-1"
REPLICA_REGION = "eu-central-1"
PRIMARY_ID = "db-qa-primary"
REPLICA_ID = "db-qa-replica"
ZONE_NAME = "db-qa.internal"
WRITER = f"writer.{ZONE_NAME}"
READER = f"reader.{ZONE_NAME}"
ALARM = "db-qa-canary-failing"
ARMING_PARAMETER = "db-failover-armed-qa"


@functools.lru_cache(maxsize=1)
def _session() -> boto3.session.Session:
    # Shared across tests so botocore loads each API model once (moto resets boto3's default
    # session in every mock_aws).
    return boto3.session.Session()


def client(service: str, region: str) -> Any:
    return _session().client(service, region_name=region)


def observations(*statuses: str) -> list[dict[str, Any]]:
    now = datetime.datetime.now(datetime.timezone.utc)
    regions = ("us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2", "sa-east-1")
    return [
        {"IPAddress": f"192.0.2.{index + 10}", "Region": regions[index % len(regions)],
         "StatusReport": {"Status": status, "CheckedTime": now}}
        for index, status in enumerate(statuses)
    ]


HEALTHY = observations(*["Success: HTTP Status Code 200, OK"] * 3)
UNHEALTHY = observations(*["Failure: The alarm is in the ALARM state"] * 3)


@dataclass
class FailoverWorld:
    primary_address: str = ""
    replica_address: str = ""
    zone_id: str = ""
    health_check_id: str = ""
    topic_arn: str = ""
    queue_url: str = ""
    health_check_observations: list[dict[str, Any]] = field(default_factory=lambda: list(HEALTHY))
    health_check_unreachable: bool = False
    promotion_effect: str = "complete"  # complete | stale
    primary_endpoint: str | None = None  # set to play a dead primary region
    promote_error: str | None = None  # an RDS error code PromoteReadReplica answers with
    change_error: str | None = None  # a Route 53 error code ChangeResourceRecordSets answers with
    arming_read_error: str | None = None  # an SSM error code GetParameter answers with
    arming_write_error: str | None = None  # an SSM error code PutParameter answers with
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    # --- building ------------------------------------------------------------------------
    def build(self) -> FailoverWorld:
        kms_primary = client("kms", PRIMARY_REGION).create_key()["KeyMetadata"]["Arn"]
        kms_replica = client("kms", REPLICA_REGION).create_key()["KeyMetadata"]["Arn"]
        rds_primary = client("rds", PRIMARY_REGION)
        primary = rds_primary.create_db_instance(
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

        cloudwatch = client("cloudwatch", PRIMARY_REGION)
        cloudwatch.put_metric_alarm(
            AlarmName=ALARM, Namespace="AWS/Lambda", MetricName="Errors",
            Dimensions=[{"Name": "FunctionName", "Value": "db-qa-canary"}], Statistic="Sum",
            Period=60, EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="breaching",
        )
        self.set_alarm("OK")

        route53 = client("route53", REPLICA_REGION)
        self.health_check_id = route53.create_health_check(
            CallerReference="canary-check",
            HealthCheckConfig={
                "Type": "CLOUDWATCH_METRIC",
                "AlarmIdentifier": {"Region": PRIMARY_REGION, "Name": ALARM},
                "InsufficientDataHealthStatus": "Unhealthy",
            },
        )["HealthCheck"]["Id"]
        vpc = client("ec2", PRIMARY_REGION).create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        self.zone_id = route53.create_hosted_zone(
            Name=ZONE_NAME, CallerReference="zone", HostedZoneConfig={"PrivateZone": True},
            VPC={"VPCRegion": PRIMARY_REGION, "VPCId": vpc},
        )["HostedZone"]["Id"].rsplit("/", 1)[-1]
        records = [
            {"Name": WRITER, "Type": "CNAME", "SetIdentifier": "primary", "Failover": "PRIMARY", "TTL": 30,
             "HealthCheckId": self.health_check_id, "ResourceRecords": [{"Value": self.primary_address}]},
            {"Name": WRITER, "Type": "CNAME", "SetIdentifier": "secondary", "Failover": "SECONDARY",
             "TTL": 30, "ResourceRecords": [{"Value": self.replica_address}]},
            {"Name": READER, "Type": "CNAME", "TTL": 30,
             "ResourceRecords": [{"Value": self.replica_address}]},
        ]
        route53.change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": r} for r in records]},
        )

        # As the dns-failover layer creates it (automated_promotion.py).
        client("ssm", REPLICA_REGION).put_parameter(
            Name=ARMING_PARAMETER, Value="unarmed", Type="String", Tier="Standard",
        )

        sns = client("sns", REPLICA_REGION)
        self.topic_arn = sns.create_topic(
            Name="db-qa-failover-events", Attributes={"KmsMasterKeyId": kms_replica}
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
            "PRIMARY_REGION": PRIMARY_REGION,
            "HEALTH_CHECK_ID": self.health_check_id,
            "CANARY_ALARM_NAME": ALARM,
            "HOSTED_ZONE_ID": self.zone_id,
            "WRITER_RECORD_NAME": WRITER,
            "PRIMARY_SET_IDENTIFIER": "primary",
            "RECORD_TTL_SECONDS": "30",
            "EVENTS_TOPIC_ARN": self.topic_arn,
            "AUTOMATION_MODE": "automatic",
            "API_TIMEOUT_SECONDS": "1",
            "MAX_ATTEMPTS": "1",
            "BACKUP_RETENTION_DAYS": "7",
            "ARMING_PARAMETER_NAME": ARMING_PARAMETER,
            "RECOVERY_GRACE_SECONDS": "600",
        }
        env.update(overrides)
        return env

    # --- state changes a test makes ----------------------------------------------------
    def _db(self, region: str, identifier: str) -> Any:
        return get_backend("rds")[DEFAULT_ACCOUNT_ID][region].databases[identifier]

    def set_alarm(self, state: str, for_seconds: float = 0) -> None:
        """Put the alarm in ``state``, entered ``for_seconds`` ago."""
        client("cloudwatch", PRIMARY_REGION).set_alarm_state(
            AlarmName=ALARM, StateValue=state, StateReason=f"test sets {state}"
        )
        if for_seconds:
            alarm = get_backend("cloudwatch")[DEFAULT_ACCOUNT_ID][PRIMARY_REGION].alarms[ALARM]
            alarm.state_updated_timestamp -= datetime.timedelta(seconds=for_seconds)

    def set_replica_status(self, status: str) -> None:
        self._db(REPLICA_REGION, REPLICA_ID).status = status

    def set_primary_status(self, status: str) -> None:
        self._db(PRIMARY_REGION, PRIMARY_ID).status = status

    def set_arming(self, value: str) -> None:
        client("ssm", REPLICA_REGION).put_parameter(Name=ARMING_PARAMETER, Value=value, Overwrite=True)

    def arming_value(self) -> str:
        return client("ssm", REPLICA_REGION).get_parameter(Name=ARMING_PARAMETER)["Parameter"]["Value"]

    def detach_replica(self) -> None:
        """What AWS shows once a promotion has finished: the instance stands alone."""
        replica = self._db(REPLICA_REGION, REPLICA_ID)
        replica.source_db_instance_identifier = None
        replica.is_replica = False
        primary = self._db(PRIMARY_REGION, PRIMARY_ID)
        primary.replicas = [r for r in primary.replicas if not r.endswith(f":db:{REPLICA_ID}")]

    def delete_writer_primary_record(self) -> None:
        record = self.writer_records()["primary"]
        client("route53", REPLICA_REGION).change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]},
        )

    def delete_replica(self) -> None:
        del get_backend("rds")[DEFAULT_ACCOUNT_ID][REPLICA_REGION].databases[REPLICA_ID]

    def publish_replica_lag(self, seconds: float) -> None:
        # RDS publishes AWS/RDS ReplicaLag itself; AWS refuses customer data in "AWS/"
        # namespaces, moto accepts it, which lets the test play RDS's part.
        # Stamped two minutes back: a complete one-minute period, as RDS would have sent it.
        stamp = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=2)
        client("cloudwatch", REPLICA_REGION).put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[{"MetricName": "ReplicaLag", "Value": seconds, "Unit": "Seconds", "Timestamp": stamp,
                         "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": REPLICA_ID}]}],
        )

    # --- reading results ---------------------------------------------------------------
    def writer_records(self) -> dict[str, dict[str, Any]]:
        answer = client("route53", REPLICA_REGION).list_resource_record_sets(HostedZoneId=self.zone_id)
        return {
            r["SetIdentifier"]: r for r in answer["ResourceRecordSets"]
            if r["Name"].rstrip(".") == WRITER and "SetIdentifier" in r
        }

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

    # --- the instrumented factory ------------------------------------------------------
    def client_factory(self, promoter: Any) -> Any:
        original = promoter.make_client

        def factory(service: str, region: str, settings: Any, session: Any = None) -> Any:
            if region == PRIMARY_REGION and self.primary_endpoint:
                made = (session or promoter.shared_session()).client(
                    service, region_name=region, endpoint_url=self.primary_endpoint,
                    config=promoter.client_config(settings),
                )
            else:
                made = original(service, region, settings, session)
            events = made.meta.events
            events.register("before-call.*.*", self._record_call)
            if service == "route53":
                events.register("before-call.route53.GetHealthCheckStatus", self._health_check_status)
                events.register("before-call.route53.ChangeResourceRecordSets", self._change_records)
            if service == "rds":
                events.register("before-call.rds.PromoteReadReplica", self._promote_before)
                events.register("after-call.rds.PromoteReadReplica", self._promote_after)
            if service == "ssm":
                events.register("before-call.ssm.GetParameter", self._get_parameter)
                events.register("before-call.ssm.PutParameter", self._put_parameter)
            return made

        return factory

    def _record_call(self, model: Any, params: Any, **_: Any) -> None:
        self.calls.setdefault(model.name, []).append(params.get("body") or {})

    def _health_check_status(self, **_: Any) -> Any:
        if self.health_check_unreachable:
            raise EndpointConnectionError(endpoint_url="https://route53.amazonaws.com")
        return AWSResponse(None, 200, {}, None), {"HealthCheckObservations": self.health_check_observations}

    def _change_records(self, **_: Any) -> Any:
        if self.change_error:
            return _error(self.change_error, 400)
        return None

    def _get_parameter(self, **_: Any) -> Any:
        return _error(self.arming_read_error, 400) if self.arming_read_error else None

    def _put_parameter(self, **_: Any) -> Any:
        return _error(self.arming_write_error, 400) if self.arming_write_error else None

    def _promote_before(self, **_: Any) -> Any:
        if self.promote_error:
            return _error(self.promote_error, 400)
        return None

    def _promote_after(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code == 200 and self.promotion_effect == "complete":
            self.detach_replica()


def _error(code: str, status: int) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse(None, status, {}, None), {
        "Error": {"Code": code, "Message": f"test answers {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


class SilentPort:
    """A local port that completes TCP handshakes and never answers: a hanging region."""

    def __enter__(self) -> str:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=32)
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self._listener.close()


def refused_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
