"""The rehearsal's emulator backend: the parts that need no emulator running.

The backend end to end (every handler against moto's server) is exercised by
tests/test_rehearsal.py; these check the translation rules and the promise that
nothing is faked silently.
"""

from __future__ import annotations

import io
import zipfile

import pulumi
import pytest
from botocore.exceptions import EndpointConnectionError

from offline.emulator import emulator_environment
from offline.harness import DYNAMIC_TYPE_PREFIX, ResourceRecord, SyntheticBackend, run_all
from offline.moto_backend import (
    ApiCall,
    Created,
    DeleteNotEmulated,
    MotoBackend,
    UpdateNotEmulated,
    _record_name,
    _rule_permission,
    _zip_bytes,
    emulated_types,
    plain,
    updatable_types,
)

SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}


def _record(type_: str, name: str = "thing-demo", **inputs) -> ResourceRecord:
    return ResourceRecord(layer="network", type=type_, name=name, urn=f"urn:{name}",
                          inputs=inputs, custom=True, region="eu-west-1")


def _offline_backend() -> MotoBackend:
    # An endpoint nothing listens on: these tests must never reach it.
    return MotoBackend("http://127.0.0.1:9", fallback=SyntheticBackend())


def test_every_aws_type_the_layers_use_has_an_emulator_handler():
    runs = run_all({"environmentSuffix": "demo", "alarmEmail": "ops@example.com"}, stack="demo")
    used = {r.type for run in runs.values() for r in run.resources
            if r.custom and r.type.startswith(("aws:", DYNAMIC_TYPE_PREFIX))}
    assert any(t.startswith(DYNAMIC_TYPE_PREFIX) for t in used)  # the interface drain
    missing = sorted(used - set(emulated_types()))
    assert not missing, (f"teach offline/moto_backend.py to create {missing} in the emulator "
                         "(or the rehearsal will report them as not emulated)")


def test_secret_inputs_are_unwrapped_for_the_emulator_at_any_depth():
    wrapped = {"password": {**SECRET_SIG, "value": "s3cret"},
               "nested": [{"v": {**SECRET_SIG, "value": {"a": 1}}}]}
    assert plain(wrapped) == {"password": "s3cret", "nested": [{"v": {"a": 1}}]}


@pytest.mark.parametrize(("name", "expected"), [
    ("writer", "writer.db-demo.internal"),
    ("writer.db-demo.internal", "writer.db-demo.internal"),
    ("Writer.DB-demo.internal.", "writer.db-demo.internal"),
    ("db-demo.internal", "db-demo.internal"),
])
def test_record_names_are_completed_with_the_zone_like_the_provider(name, expected):
    assert _record_name(name, "db-demo.internal.") == expected


def test_security_group_rule_becomes_one_ip_permission_with_integer_ports():
    perm = _rule_permission({"ipProtocol": "tcp", "fromPort": 5432.0, "toPort": 5432.0,
                             "referencedSecurityGroupId": "sg-1", "description": "from clients"})
    assert perm == {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
                    "UserIdGroupPairs": [{"GroupId": "sg-1", "Description": "from clients"}]}
    everything = _rule_permission({"ipProtocol": "-1", "cidrIpv4": "10.0.0.0/16"})
    assert everything == {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}


def test_lambda_archives_are_zipped_relative_to_the_layer_directory():
    # dns-failover's handlers live in lambdas/<name>/ under the layer directory.
    data = _zip_bytes(pulumi.FileArchive("lambdas/promoter"), "dns-failover")
    assert "promoter.py" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    data = _zip_bytes(pulumi.AssetArchive({"index.py": pulumi.StringAsset("x = 1")}), "network")
    assert zipfile.ZipFile(io.BytesIO(data)).read("index.py") == b"x = 1"


def test_a_type_without_handler_is_reported_by_name_not_faked_silently():
    backend = _offline_backend()
    rid, outputs = backend.create(_record("aws:ec2/natGateway:NatGateway", "nat-demo"))
    assert rid and outputs["id"] == rid  # the program can go on
    assert [(n.type, n.name) for n in backend.not_emulated] == [
        ("aws:ec2/natGateway:NatGateway", "nat-demo")]
    assert backend.created == []  # nothing to tear down: nothing exists in the emulator

    backend.create(_record("random:index/randomId:RandomId", "rid-demo", byteLength=4))
    assert backend.not_emulated[-1].reason.startswith("provider-local")


def test_an_invoke_without_emulator_answer_is_reported():
    backend = _offline_backend()
    answer = backend.call("aws:iam/getPolicyDocument:getPolicyDocument",
                          {"statements": [{"actions": ["s3:GetObject"], "resources": ["*"]}]}, "eu-west-1")
    assert '"s3:GetObject"' in answer["json"] and backend.not_emulated_invokes == []
    with pytest.raises(NotImplementedError):
        backend.call("aws:ec2/getVpc:getVpc", {}, "eu-west-1")
    assert backend.not_emulated_invokes == [("aws:ec2/getVpc:getVpc", "eu-west-1")]


def test_an_update_without_handler_fails_naming_the_type_instead_of_being_faked():
    backend = _offline_backend()
    old = _record("aws:kms/key:Key", "key-demo", description="one")
    new = _record("aws:kms/key:Key", "key-demo", description="two")
    with pytest.raises(UpdateNotEmulated, match=r"aws:kms/key:Key 'key-demo'.*changed: description"):
        backend.update(old, new)
    assert backend.calls == []  # refused before anything was sent
    # The converge of a replica after a failover changes these two, which the backend knows.
    assert {"aws:rds/instance:Instance", "aws:route53/record:Record"} <= set(updatable_types())
    # A type the emulator has no handler for at all is refused the same way, not answered
    # synthetically: a converge never pretends to have changed something.
    with pytest.raises(UpdateNotEmulated, match="aws:ec2/natGateway:NatGateway 'nat-demo'"):
        backend.update(_record("aws:ec2/natGateway:NatGateway", "nat-demo", a=1),
                       _record("aws:ec2/natGateway:NatGateway", "nat-demo", a=2))
    assert backend.calls == [] and backend.not_emulated == []


def test_a_delete_of_what_the_backend_did_not_create_fails_naming_it():
    backend = _offline_backend()
    alarm = _record("aws:cloudwatch/metricAlarm:MetricAlarm", "pg-replica-lag-demo")
    with pytest.raises(DeleteNotEmulated, match=r"MetricAlarm 'pg-replica-lag-demo'.*did not create"):
        backend.delete(alarm)
    # Nor for a type the emulator cannot hold: nothing is deleted on a guess.
    with pytest.raises(DeleteNotEmulated, match="NatGateway"):
        backend.delete(_record("aws:ec2/natGateway:NatGateway", "nat-demo"))
    assert backend.calls == []
    # What it did create goes with the deleter it kept, once.
    deleted: list[str] = []
    backend.created.append(Created("network", alarm.type, alarm.name, "eu-west-1", alarm.name,
                                   lambda: deleted.append(alarm.name) or "deleted", urn=alarm.urn))
    backend.delete(alarm)
    assert deleted == [alarm.name] and backend.created_by_urn(alarm.urn) is None


@pytest.fixture
def unreachable(monkeypatch) -> MotoBackend:
    """A backend whose calls are signed with throw-away credentials and sent nowhere."""
    for key, value in emulator_environment("http://127.0.0.1:9", "eu-west-1").items():
        monkeypatch.setenv(key, value)
    return _offline_backend()


def test_a_refused_region_fails_every_call_before_it_is_sent_and_records_it(unreachable):
    backend = unreachable
    backend.refuse(["eu-west-1"])
    with pytest.raises(EndpointConnectionError):
        backend.client("sts", "eu-west-1").get_caller_identity()
    assert backend.refused == [ApiCall("sts", "eu-west-1", "GetCallerIdentity")]
    assert backend.calls == []
    # Another region's call is sent (and fails only because nothing listens on the test
    # endpoint); so is Route 53's, whose endpoint is in us-east-1, not in eu-west-1.
    for service, region in (("sts", "eu-central-1"), ("route53", "eu-central-1")):
        with pytest.raises(EndpointConnectionError):
            getattr(backend.client(service, region),
                    "get_caller_identity" if service == "sts" else "list_hosted_zones")()
    assert backend.calls == [ApiCall("sts", "eu-central-1", "GetCallerIdentity"),
                             ApiCall("route53", "us-east-1", "ListHostedZones")]
    assert len(backend.refused) == 1


def test_refusing_us_east_1_refuses_route53_and_iam_from_a_client_of_any_region(unreachable):
    backend = unreachable
    backend.refuse(["us-east-1"])
    for service, call in (("route53", "list_hosted_zones"), ("iam", "list_roles")):
        with pytest.raises(EndpointConnectionError):
            getattr(backend.client(service, "eu-central-1"), call)()
    assert backend.refused == [ApiCall("route53", "us-east-1", "ListHostedZones"),
                               ApiCall("iam", "us-east-1", "ListRoles")]
    # A regional service of the other region is sent (nothing listens: it fails on connect).
    with pytest.raises(EndpointConnectionError):
        backend.client("sts", "eu-central-1").get_caller_identity()
    assert backend.calls == [ApiCall("sts", "eu-central-1", "GetCallerIdentity")]


def test_route53_can_be_refused_whatever_region_its_client_is_for(unreachable):
    backend = unreachable
    backend.refuse(["eu-west-1"], route53=True)
    with pytest.raises(EndpointConnectionError):
        backend.client("route53", "eu-central-1").list_hosted_zones()
    assert backend.refused == [ApiCall("route53", "us-east-1", "ListHostedZones")]
    backend.stop_refusing()
    with pytest.raises(EndpointConnectionError):  # sent now: nothing listens
        backend.client("route53", "eu-central-1").list_hosted_zones()
    assert backend.calls == [ApiCall("route53", "us-east-1", "ListHostedZones")]
    assert len(backend.refused) == 1


def test_an_instance_change_the_provider_would_replace_for_is_not_emulated():
    backend = _offline_backend()
    old = _record("aws:rds/instance:Instance", "pg-replica-demo", identifier="pg-replica-demo",
                  kmsKeyId="arn:aws:kms:eu-west-1:111122223333:key/one", backupRetentionPeriod=0)
    new = _record("aws:rds/instance:Instance", "pg-replica-demo", identifier="pg-replica-demo",
                  kmsKeyId="arn:aws:kms:eu-west-1:111122223333:key/two", backupRetentionPeriod=7)
    backend.created.append(Created("network", old.type, old.name, "eu-west-1", "db-ONE",
                                   lambda: "deleted", urn=old.urn))
    # kms_key_id is ForceNew in the provider's schema: a replacement, which no update handler
    # may pretend to be; the change the handler knows (backups) does not hide it.
    with pytest.raises(UpdateNotEmulated, match="kmsKeyId") as refused:
        backend.update(old, new)
    assert "backupRetentionPeriod" not in str(refused.value)
    assert backend.calls == []
