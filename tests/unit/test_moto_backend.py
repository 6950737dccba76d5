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

from offline.harness import DYNAMIC_TYPE_PREFIX, ResourceRecord, SyntheticBackend, run_all
from offline.moto_backend import (
    MotoBackend,
    _record_name,
    _rule_permission,
    _zip_bytes,
    emulated_types,
    plain,
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
