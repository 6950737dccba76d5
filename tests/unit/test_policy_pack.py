"""The CrossGuard adapters in policy/__main__.py, driven with the policy SDK's own
argument classes (no gRPC server: the pack is never constructed here)."""

from __future__ import annotations

import importlib
import json

import pytest

pulumi_policy = pytest.importorskip("pulumi_policy")
from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (  # noqa: E402
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
    unknown_checking_proxy,
)

from policy import rules  # noqa: E402
from shared.config import DictSource  # noqa: E402

pack = importlib.import_module("policy.__main__")

SUFFIX = "qa7"
PRIMARY, SECONDARY = "eu-west-1", "ap-southeast-2"
DEFAULT_REGION = "us-east-1"  # a region this stack is not configured for
BASE = rules.Context(suffix=SUFFIX, regions=(PRIMARY, SECONDARY))
TAGS = {"Environment": SUFFIX, "Project": "p", "ManagedBy": "pulumi", "Layer": "primary-db",
        "DeploymentId": "5eed1d0f"}
KEY = f"arn:aws:kms:{PRIMARY}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
GOOD_DB = {
    "identifier": f"pg-primary-{SUFFIX}", "storageEncrypted": True, "kmsKeyId": KEY,
    "parameterGroupName": f"pg-tls-primary-{SUFFIX}", "iamDatabaseAuthenticationEnabled": True,
    "enabledCloudwatchLogsExports": ["postgresql", "upgrade"], "monitoringInterval": 60,
    "monitoringRoleArn": "arn:aws:iam::111122223333:role/r", "backupRetentionPeriod": 7,
    "deletionProtection": False, "skipFinalSnapshot": True, "copyTagsToSnapshot": True,
    "multiAz": True,
}


def options(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def provider(name: str = f"aws-primary-{SUFFIX}", region: str = PRIMARY,
             tags: dict | None = None) -> PolicyProviderResource:
    # The engine hands analyzers a provider's object-valued inputs JSON-encoded.
    props = {"region": region, "defaultTags": json.dumps({"tags": TAGS if tags is None else tags})}
    return PolicyProviderResource("pulumi:providers:aws", unknown_checking_proxy(props),
                                  f"urn:pulumi:s::p::pulumi:providers:aws::{name}", name)


def resource_args(resource_type: str, props: dict, name: str = f"pg-primary-{SUFFIX}",
                  prov: PolicyProviderResource | None = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type, unknown_checking_proxy(dict(props)), f"urn:pulumi:s::p::{resource_type}::{name}",
        name, options(), prov if prov is not None else provider(),
    )


def reported(validate, args) -> list[tuple[str, str | None]]:
    messages: list[tuple[str, str | None]] = []
    validate(args, lambda message, urn=None: messages.append((message, urn)))
    return messages


def test_a_compliant_instance_passes_every_mandatory_policy():
    args = resource_args(rules.RDS_INSTANCE, GOOD_DB)
    for rule in rules.RULES:
        assert reported(pack.validate_resource_with(rule, BASE), args) == [], rule.id


def test_a_violation_is_reported_by_its_policy():
    args = resource_args(rules.RDS_INSTANCE, {**GOOD_DB, "publiclyAccessible": True})
    messages = reported(pack.validate_resource_with(rules.RULES_BY_ID["rds-not-public"], BASE), args)
    assert messages == [("publiclyAccessible is true", None)]


def test_waived_findings_do_not_block_and_are_reported_by_the_advisory_policy():
    args = resource_args(rules.RDS_INSTANCE, GOOD_DB)  # deletionProtection off: waived
    baseline = rules.RULES_BY_ID["rds-deletion-protection-baseline"]
    assert reported(pack.validate_resource_with(baseline, BASE), args) == []
    waived = reported(pack.report_waived_resource(BASE), args)
    assert any(m.startswith("WAIVED rds-deletion-protection-baseline") and "RDS.8" in m
               for m, _ in waived)


def test_values_unknown_at_preview_reach_no_rule_as_violations():
    props = {key: UNKNOWN_STRING_VALUE for key in GOOD_DB}
    props.update(storageEncrypted=UNKNOWN_BOOLEAN_VALUE, tags=UNKNOWN_STRING_VALUE,
                 enabledCloudwatchLogsExports=["postgresql", UNKNOWN_STRING_VALUE])
    args = resource_args(rules.RDS_INSTANCE, props)
    # Reading the proxy directly would raise: the adapter must not let that happen.
    with pytest.raises(UnknownValueError):
        args.props["kmsKeyId"]
    for rule in rules.RULES:
        assert reported(pack.validate_resource_with(rule, BASE), args) == [], rule.id


def test_effective_tags_combine_the_providers_default_tags_and_the_resources_tags():
    tags_rule = pack.validate_resource_with(rules.RULES_BY_ID["tags-required"], BASE)
    assert reported(tags_rule, resource_args("aws:ec2/vpc:Vpc", {})) == []
    bare = provider(tags={})
    assert reported(tags_rule, resource_args("aws:ec2/vpc:Vpc", {}, prov=bare))
    assert reported(tags_rule, resource_args("aws:ec2/vpc:Vpc", {"tags": TAGS}, prov=bare)) == []


def test_the_engines_default_provider_is_reported():
    rule = pack.validate_resource_with(rules.RULES_BY_ID["provider-explicit"], BASE)
    default = provider(name="default_7_51_1")
    assert reported(rule, resource_args("aws:ec2/vpc:Vpc", {}, name=f"v-{SUFFIX}", prov=default))
    assert reported(rule, resource_args("aws:ec2/vpc:Vpc", {}, name=f"v-{SUFFIX}")) == []


def test_region_comes_from_the_provider_or_the_resources_own_region_argument():
    rule = pack.validate_resource_with(rules.RULES_BY_ID["region-configured-only"], BASE)
    elsewhere = provider(region="us-east-1")
    assert reported(rule, resource_args("aws:ec2/vpc:Vpc", {}, prov=elsewhere))
    assert reported(rule, resource_args("aws:ec2/vpc:Vpc", {"region": SECONDARY}, prov=elsewhere)) == []


def test_the_suffix_falls_back_to_the_providers_environment_tag():
    ctx = pack.resource_context("aws:ec2/vpc:Vpc", "v", {}, provider(), rules.Context())
    assert ctx.suffix == SUFFIX and ctx.region == PRIMARY and ctx.explicit_provider is True


def _stack_resource(resource_type, props, name, protect=False, region=PRIMARY):
    return PolicyResource(resource_type, unknown_checking_proxy(dict(props)),
                          f"urn:pulumi:s::p::{resource_type}::{name}", name, options(protect),
                          provider(region=region), None, [], {})


def test_stack_policies_see_every_resource_with_region_and_options():
    group = {"name": f"pg-tls-primary-{SUFFIX}", "family": "postgres17",
             "parameters": [{"name": "rds.force_ssl", "value": "1"}]}
    good = StackValidationArgs([
        _stack_resource(rules.RDS_INSTANCE, GOOD_DB, f"pg-primary-{SUFFIX}"),
        _stack_resource(rules.RDS_PARAMETER_GROUP, group, f"pg-tls-primary-{SUFFIX}"),
    ])
    force_ssl = pack.validate_stack_with(rules.STACK_RULES_BY_ID["rds-force-ssl-parameter-group"], BASE)
    assert reported(force_ssl, good) == []
    # The same group in the other region does not count.
    elsewhere = StackValidationArgs([
        _stack_resource(rules.RDS_INSTANCE, GOOD_DB, f"pg-primary-{SUFFIX}"),
        _stack_resource(rules.RDS_PARAMETER_GROUP, group, f"pg-tls-primary-{SUFFIX}", region=SECONDARY),
    ])
    (message, urn), = reported(force_ssl, elsewhere)
    assert urn.endswith(f"::pg-primary-{SUFFIX}") and "pg-tls-primary" in message

    protected = StackValidationArgs([_stack_resource("aws:ec2/vpc:Vpc", {}, f"v-{SUFFIX}", protect=True)])
    no_protect = pack.validate_stack_with(rules.STACK_RULES_BY_ID["lifecycle-no-protect"], BASE)
    (message, urn), = reported(no_protect, protected)
    assert "protect" in message and urn.endswith(f"v-{SUFFIX}")


def test_stack_context_reads_the_stack_config_and_survives_missing_config():
    ctx = pack.stack_context(DictSource({"environmentSuffix": SUFFIX, "aws:region": PRIMARY,
                                         "secondaryRegion": SECONDARY}))
    assert ctx.suffix == SUFFIX and ctx.regions == (PRIMARY, SECONDARY)
    assert pack.stack_context(DictSource({"environmentSuffix": "Not Valid"})) == rules.Context()


def test_the_pack_has_one_mandatory_policy_per_rule_and_an_advisory_waiver_report(monkeypatch):
    built = {}

    def fake_pack(name, policies, enforcement_level=None, **kwargs):
        built.update(name=name, policies=policies, level=enforcement_level)

    # main() would start the analyzer's gRPC server; record what it would serve instead.
    monkeypatch.setattr(pack, "PolicyPack", fake_pack)
    pack.main()
    assert built["name"] == pack.PACK_NAME and built["level"] is EnforcementLevel.MANDATORY
    by_name = {p.name: p for p in built["policies"]}
    assert len(by_name) == len(built["policies"])
    for rule in rules.RULES:
        assert isinstance(by_name[rule.id], ResourceValidationPolicy)
        assert by_name[rule.id].enforcement_level is EnforcementLevel.MANDATORY
    for rule in rules.STACK_RULES:
        assert isinstance(by_name[rule.id], StackValidationPolicy)
        assert by_name[rule.id].enforcement_level is EnforcementLevel.MANDATORY
    assert by_name[pack.WAIVED_POLICY].enforcement_level is EnforcementLevel.ADVISORY


def test_policy_project_file_runs_python_in_the_repository_venv():
    yaml = pytest.importorskip("yaml")
    from pathlib import Path

    policy_dir = Path(pack.__file__).parent
    project = yaml.safe_load((policy_dir / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    venv = (policy_dir / project["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == (policy_dir.parent / ".venv").resolve()


# --------------------------------------------------------------------------- the real analyzer


@pytest.fixture(scope="module")
def analyzer():
    """The pack served by the policy SDK's own gRPC server, as the CLI starts it.

    The CLI passes the stack's project, name and config in the environment; the
    pack must read the suffix and regions from there.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    grpc = pytest.importorskip("grpc")
    from pulumi.runtime.proto import analyzer_pb2_grpc

    env = {
        **os.environ,
        "PULUMI_PROJECT": "rds-primary-db", "PULUMI_STACK": "anything", "PULUMI_DRY_RUN": "true",
        "PULUMI_CONFIG": json.dumps({"rds-primary-db:environmentSuffix": SUFFIX,
                                     "aws:region": PRIMARY,
                                     "rds-primary-db:secondaryRegion": SECONDARY}),
    }
    main = Path(pack.__file__)
    proc = subprocess.Popen([sys.executable, str(main)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=main.parent)
    try:
        port = proc.stdout.readline().strip()
        assert port.isdigit(), proc.stderr.read() if proc.poll() is not None else port
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _struct(values: dict):
    from google.protobuf import struct_pb2

    out = struct_pb2.Struct()
    out.update(values)
    return out


def _analyze(stub, resource_type: str, name: str, props: dict, region: str = PRIMARY) -> dict:
    from pulumi.runtime.proto import analyzer_pb2

    prov = provider(region=region)
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type, name=name, properties=_struct(props),
        urn=f"urn:pulumi:anything::rds-primary-db::{resource_type}::{name}",
        options=analyzer_pb2.AnalyzerResourceOptions(protect=False),
        provider=analyzer_pb2.AnalyzerProviderResource(
            type=prov.resource_type, urn=prov.urn, name=prov.name,
            properties=_struct({"region": region, "defaultTags": json.dumps({"tags": TAGS})})),
    )
    found: dict = {}
    for diagnostic in stub.Analyze(request).diagnostics:
        found.setdefault(diagnostic.policyName, []).append(diagnostic.message)
    return found


def test_the_served_pack_lists_every_rule(analyzer):
    from google.protobuf import empty_pb2

    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == pack.PACK_NAME
    names = {p.name for p in info.policies}
    assert names == {r.id for r in rules.RULES} | {r.id for r in rules.STACK_RULES} | {
        pack.WAIVED_POLICY}


def test_the_served_pack_passes_a_compliant_instance_and_reports_only_waivers(analyzer):
    found = _analyze(analyzer, rules.RDS_INSTANCE, f"pg-primary-{SUFFIX}", GOOD_DB)
    assert set(found) == {pack.WAIVED_POLICY}, found


def test_the_served_pack_reads_suffix_and_regions_from_the_stack_config(analyzer):
    found = _analyze(analyzer, rules.RDS_INSTANCE, "pg-primary",
                     {**GOOD_DB, "identifier": "pg-primary", "publiclyAccessible": True},
                     region=DEFAULT_REGION)
    assert {"naming-physical-suffix", "naming-logical-suffix", "rds-not-public",
            "region-configured-only"} <= set(found)
    assert any(SUFFIX in m for m in found["naming-physical-suffix"])


def test_the_served_pack_treats_preview_unknowns_as_unknown(analyzer):
    unknown = {key: UNKNOWN_STRING_VALUE for key in GOOD_DB}
    unknown["storageEncrypted"] = UNKNOWN_BOOLEAN_VALUE
    found = _analyze(analyzer, rules.RDS_INSTANCE, f"pg-primary-{SUFFIX}", unknown)
    assert set(found) <= {pack.WAIVED_POLICY}, found
