"""The whole offline plan: all four layers under a non-default suffix and regions.

The plan is synthesized once for this module; every test reads the same result.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from offline import plan as plan_module
from policy import rules
from policy.props import to_plain
from shared.contract import EXPORTS, LAYERS, NetworkOutputs

SUFFIX = "qa7"
PRIMARY, SECONDARY = "eu-west-1", "ap-southeast-2"
DEFAULT_REGIONS = ("us-east-1", "us-west-2")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plan() -> plan_module.Plan:
    config = plan_module.base_config(SUFFIX, PRIMARY, SECONDARY, {})
    return plan_module.build_plan(config)


@pytest.fixture(scope="module")
def plan_doc(plan, tmp_path_factory) -> dict:
    path = plan_module.write_plan(plan, tmp_path_factory.mktemp("plan"))
    assert path.name == f"plan-{SUFFIX}.json"
    return json.loads(path.read_text())


def test_all_four_layers_are_synthesized_in_order(plan):
    assert list(plan.runs) == list(LAYERS)
    assert plan.suffix == SUFFIX and plan.regions == (PRIMARY, SECONDARY)
    for run in plan.runs.values():
        assert run.stack == SUFFIX
        assert any(r.custom and r.type.startswith("aws:") for r in run.resources)


def test_no_rule_fails(plan):
    assert plan.report.violations == [], "\n".join(map(str, plan.report.violations))
    assert plan.ok


def test_waived_findings_are_reported_not_dropped(plan):
    waived = {(f.rule_id, f.resource_name) for f in plan.report.waived}
    # Both database instances run without deletion protection, for destroyability.
    assert ("rds-deletion-protection-baseline", f"pg-primary-{SUFFIX}") in waived
    assert ("rds-deletion-protection-baseline", f"pg-replica-{SUFFIX}") in waived
    assert all(f.waiver_reason for f in plan.report.waived)


def test_every_layer_exports_exactly_its_contract(plan):
    for layer, run in plan.runs.items():
        assert set(run.exports) == set(EXPORTS[layer]), layer
    assert plan.contract_problems == []


def test_every_aws_resource_has_an_explicit_provider_in_a_configured_region(plan):
    for run in plan.runs.values():
        for record in run.resources:
            if not (record.custom and record.type.startswith("aws:")):
                continue
            assert record.provider_urn, f"{record.type} {record.name} has no explicit provider"
            region = record.inputs.get("region") or record.region
            assert region in (PRIMARY, SECONDARY), f"{record.type} {record.name} in {region}"


def test_every_layer_tags_its_resources_with_the_network_layers_deployment_id(plan):
    deployment_id = plan.runs["network"].exports[NetworkOutputs.DEPLOYMENT_ID]
    random_ids = plan.runs["network"].of_type("random:index/randomId:RandomId")
    assert [r.outputs["hex"] for r in random_ids] == [deployment_id]
    for layer, run in plan.runs.items():
        tagged = [r for r in run.resources if r.custom and r.type.startswith("aws:")]
        assert tagged, layer
        for record in tagged:
            assert record.effective_tags.get("DeploymentId") == deployment_id, (layer, record.name)
            assert record.effective_tags.get("Layer") == layer


def test_both_regions_hold_a_database_with_forced_tls(plan):
    instances = [(r, run) for run in plan.runs.values() for r in run.of_type(rules.RDS_INSTANCE)]
    assert {r.region for r, _ in instances} == {PRIMARY, SECONDARY}
    for instance, run in instances:
        attached = instance.inputs["parameterGroupName"]
        [group] = [g for g in run.of_type(rules.RDS_PARAMETER_GROUP)
                   if g.inputs["name"] == attached]
        assert group.region == instance.region
        params = {p["name"]: str(p["value"]) for p in to_plain(group.inputs)["parameters"]}
        assert params.get("rds.force_ssl") == "1"


def test_no_default_region_appears_except_where_aws_dictates_it(plan, plan_doc):
    text = json.dumps(plan_doc)
    assert "us-west-2" not in text
    # Route 53 publishes health-check metrics in us-east-1 only (Route 53 Developer
    # Guide, "Monitoring health checks using CloudWatch"): the dashboard's widget of
    # that metric is the one place the region may appear.
    allowed = 0
    for layer in plan_doc["layers"].values():
        for resource in layer["resources"]:
            blob = json.dumps(resource["inputs"])
            if "us-east-1" not in blob:
                continue
            assert resource["type"] == "aws:cloudwatch/dashboard:Dashboard", resource["name"]
            for widget in json.loads(resource["inputs"]["dashboardBody"])["widgets"]:
                props = widget["properties"]
                if props.get("region") == "us-east-1":
                    assert {m[0] for m in props["metrics"]} == {"AWS/Route53"}
                    allowed += 1
    assert text.count("us-east-1") == allowed


def test_every_physical_name_carries_the_suffix(plan):
    for run in plan.runs.values():
        for record in run.resources:
            for key, value in rules.physical_names(to_plain(record.inputs), record.type):
                assert re.search(rf"(?<![a-z0-9]){SUFFIX}(?![a-z0-9])", value), (record.name, key)


def test_the_plan_json_lists_every_resource_with_secrets_masked(plan, plan_doc):
    for layer, run in plan.runs.items():
        doc = plan_doc["layers"][layer]
        assert [r["name"] for r in doc["resources"]] == [r.name for r in run.resources]
        for resource in doc["resources"]:
            assert {"type", "name", "region", "provider", "inputs"} <= set(resource)
    text = json.dumps(plan_doc)
    for secret in plan.secrets:
        assert secret not in text
    assert "4dabf18193072939515e22adb298388d" not in text  # no raw secret wrappers
    primary = next(r for r in plan_doc["layers"]["primary-db"]["resources"]
                   if r["type"] == rules.RDS_INSTANCE)
    if "password" in primary["inputs"]:
        assert primary["inputs"]["password"] == plan_module.MASK
    assert plan_doc["violations"] == [] and plan_doc["waived"]


def test_the_summary_shows_each_layer_its_outputs_and_each_failure_paths_timing(plan):
    text = plan_module.render(plan)
    for layer in LAYERS:
        assert f"== {layer} " in text
    for key in EXPORTS["network"]:
        assert f"    {key} = " in text
    exports = plan.runs["dns-failover"].exports
    for title, key in (("instance failure, region reachable", "instanceFailureWorstCaseSeconds"),
                       ("whole-region outage", "regionOutageWorstCaseSeconds")):
        assert f"    {title}: {exports[key]} s (exported {key} = {exports[key]})" in text
    assert "replica canary relays the witness" in text
    assert "engine=postgres" in text and "multiAz=" in text and "encrypted=True" in text
    assert text.rstrip().endswith("PLAN OK")


def test_a_violation_fails_the_plan(monkeypatch, tmp_path, capsys):
    def no_vpcs(resource_type, props, ctx):
        return ["VPCs are forbidden by this test"]

    monkeypatch.setattr(rules, "RULES", [*rules.RULES, rules.Rule(
        "test-no-vpcs", "test rule", no_vpcs, ("aws:ec2/vpc:Vpc",))])
    code = plan_module.main(["--suffix", SUFFIX, "--layers", "network", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == plan_module.EXIT_VIOLATIONS
    assert "[VIOLATION] test-no-vpcs" in out and out.rstrip().endswith("PLAN FAILED")


def test_every_layer_is_required(monkeypatch, tmp_path, capsys):
    real = plan_module.layer_dir
    monkeypatch.setattr(plan_module, "layer_dir",
                        lambda layer: tmp_path if layer == "dns-failover" else real(layer))
    code = plan_module.main(["--suffix", SUFFIX, "--out-dir", str(tmp_path / "out")])
    assert code == plan_module.EXIT_SYNTHESIS
    assert "dns-failover" in capsys.readouterr().err


def test_layers_must_be_listed_in_dependency_order(capsys):
    assert plan_module.main(["--layers", "primary-db,network"]) == plan_module.EXIT_SYNTHESIS


def test_layer_overrides_reach_one_layer_only():
    common, per_layer = plan_module.parse_overrides(["alarmEmail=a@example.com",
                                                     "primary-db/multiAz=false"])
    assert common == {"alarmEmail": "a@example.com"}
    assert per_layer == {"primary-db": {"multiAz": "false"}}
    with pytest.raises(plan_module.cfg.ConfigError, match="nosuchlayer"):
        plan_module.parse_overrides(["nosuchlayer/key=1"])


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offline.plan", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_the_command_exits_zero_for_a_good_suffix(tmp_path):
    result = _run_cli("--suffix", SUFFIX, "--primary-region", PRIMARY,
                      "--secondary-region", SECONDARY, "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / f"plan-{SUFFIX}.json").exists()
    assert "PLAN OK" in result.stdout


@pytest.mark.parametrize("args,key", [
    (("--suffix", "Bad_Suffix"), "environmentSuffix"),
    (("--suffix", SUFFIX, "--secondary-region", "us-east-1"), "secondaryRegion"),
    (("--suffix", SUFFIX, "--config", "dns-failover/recordTtlSeconds=300"), "recordTtlSeconds"),
])
def test_the_command_fails_on_bad_config_naming_the_key(tmp_path, args, key):
    result = _run_cli(*args, "--out-dir", str(tmp_path))
    assert result.returncode == plan_module.EXIT_CONFIG
    assert f"'{key}'" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing synthesized, nothing written


# ---------------------------------------------------------------------------- config changes

PROMOTED = "secondary-db/replicaPromoted=true"
# The converge is checked for a us-east-1 primary (Route 53's API lives there too) and for
# this module's pair of other regions.
REGION_PAIRS = [("us-east-1", "us-west-2"), (PRIMARY, SECONDARY)]


@pytest.fixture(scope="module", params=REGION_PAIRS, ids=lambda pair: f"{pair[0]}->{pair[1]}")
def converge(request, tmp_path_factory) -> tuple[str, str, int, str, dict]:
    """`make plan` as an operator runs it before converging the layers after a failover."""
    primary, secondary = request.param
    out_dir = tmp_path_factory.mktemp("converge")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = plan_module.main(["--suffix", SUFFIX, "--primary-region", primary,
                                 "--secondary-region", secondary, "--config", PROMOTED,
                                 "--out-dir", str(out_dir)])
    return (primary, secondary, code, printed.getvalue(),
            json.loads((out_dir / f"plan-{SUFFIX}.json").read_text()))


def _by_urn(doc: dict, layer: str) -> dict[str, dict]:
    return {r["urn"]: r for r in doc["layers"][layer]["resources"]}


def test_a_config_change_is_compared_with_the_plan_without_it(converge):
    primary, secondary, code, printed, doc = converge
    assert code == plan_module.EXIT_OK and printed.rstrip().endswith("PLAN OK")
    changes = doc["changesAgainstBaseline"]
    assert changes["baselineConfig"] == {"environmentSuffix": SUFFIX, "aws:region": primary,
                                         "secondaryRegion": secondary}
    assert list(changes["layers"]) == list(LAYERS)
    # The layers below the replica do not read it: nothing of theirs changes.
    assert changes["layers"]["network"] == [] and changes["layers"]["primary-db"] == []


def test_converging_after_a_failover_changes_the_replica_in_place_and_nothing_in_the_primary_region(
        converge):
    primary, secondary, _, printed, doc = converge
    changes = doc["changesAgainstBaseline"]["layers"]
    exports = {layer: doc["layers"][layer]["exports"] for layer in LAYERS}
    resources = _by_urn(doc, "secondary-db")

    secondary_db = {(c["action"], c["type"]): c for c in changes["secondary-db"]}
    assert set(secondary_db) == {("updated", rules.RDS_INSTANCE),
                                 ("deleted", "aws:cloudwatch/metricAlarm:MetricAlarm")}
    instance = secondary_db[("updated", rules.RDS_INSTANCE)]
    assert resources[instance["urn"]]["inputs"]["identifier"] == exports["secondary-db"][
        "replicaInstanceIdentifier"]
    props = instance["properties"]
    # Dropping the source is the promotion (pulumi-aws rds.Instance docs); retention and a
    # backup window are what a standalone instance gets, nothing else of it changes.
    assert set(props) == {"replicateSourceDb", "backupRetentionPeriod", "backupWindow"}
    assert props["replicateSourceDb"] == {"before": exports["primary-db"]["primaryDbInstanceArn"],
                                          "after": None}
    assert props["backupRetentionPeriod"]["before"] == 0
    assert props["backupRetentionPeriod"]["after"] == exports["secondary-db"][
        "replicaBackupRetentionDaysAfterPromotion"] > 0
    # The lag alarm goes: a standalone instance has no replication to lag behind.
    lag = secondary_db[("deleted", "aws:cloudwatch/metricAlarm:MetricAlarm")]
    assert "lag" in lag["name"]

    # The writer record's PRIMARY member now names the promoted replica.
    [writer] = changes["dns-failover"]
    record = _by_urn(doc, "dns-failover")[writer["urn"]]["inputs"]
    assert (writer["action"], writer["type"]) == ("updated", "aws:route53/record:Record")
    assert record["name"] == exports["dns-failover"]["writerRecordName"]
    assert record["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert writer["properties"] == {"records": {"before": [exports["primary-db"]["primaryDbAddress"]],
                                                "after": [exports["secondary-db"]["replicaAddress"]]}}

    everything = [c for layer in changes.values() for c in layer]
    assert {c["region"] for c in everything} == {secondary}, everything
    assert f"primary region {primary}: untouched" in printed
    assert f"~ {rules.RDS_INSTANCE} {instance['name']} [{secondary}]" in printed
    assert f"- aws:cloudwatch/metricAlarm:MetricAlarm {lag['name']} [{secondary}]" in printed


def test_the_writer_record_is_changed_through_route53_s_api_in_us_east_1(converge):
    # The record's provider is the secondary region's, but AWS serves Route 53's API from
    # us-east-1 alone: the plan names the change a global control-plane call, whatever the
    # primary region (a us-east-1 outage takes it down either way).
    _, secondary, _, printed, doc = converge
    everything = [c for layer in doc["changesAgainstBaseline"]["layers"].values() for c in layer]
    [writer] = doc["changesAgainstBaseline"]["layers"]["dns-failover"]
    assert (writer["region"], writer["apiRegion"]) == (secondary, "us-east-1")
    assert writer["globalControlPlane"] == "Route 53"
    assert f"[{secondary}; API in us-east-1]" in printed
    assert ("global control planes (served from us-east-1 only): 1 change(s) through Route 53; "
            "they wait while us-east-1 is down") in printed
    others = [c for c in everything if c is not writer]
    assert {c["apiRegion"] for c in others} == {secondary}
    assert {c["globalControlPlane"] for c in others} == {None}


def test_govcloud_s_global_control_plane_is_its_own():
    from offline.changes import api_region, global_control_plane

    assert api_region("aws:route53/record:Record", "us-gov-east-1") == "us-gov-west-1"
    assert global_control_plane("aws:route53/record:Record", "us-gov-east-1") == "Route 53"
    assert global_control_plane("aws:iam/policy:Policy", "eu-west-1") == "IAM"
    assert global_control_plane("aws:rds/instance:Instance", "us-east-1") is None
    assert api_region("aws:rds/instance:Instance", "us-gov-east-1") == "us-gov-east-1"


def test_the_comparison_reports_a_change_in_the_primary_region():
    config = plan_module.base_config(SUFFIX, PRIMARY, SECONDARY, {})
    plan = plan_module.build_plan(config, layers=("network",), baseline=config,
                                  layer_config={"network": {"primaryVpcCidr": "10.30.0.0/16"}})
    [vpc] = [c for c in plan.changes["network"] if c.type == "aws:ec2/vpc:Vpc"]
    assert (vpc.action, vpc.region) == ("updated", PRIMARY)
    assert vpc.properties["cidrBlock"] == ("10.10.0.0/16", "10.30.0.0/16")
    assert f"primary region {PRIMARY}: {sum(c.region == PRIMARY for c in plan.changes['network'])} " \
           "change(s)" in plan_module.render(plan)


def test_a_converge_layer_override_that_touches_the_primary_region_is_reported_there():
    # The canary alarm and its health check's alarm settings live with the primary: an
    # operator who also changed them on the outage day would touch the dead region.
    config = plan_module.base_config(SUFFIX, PRIMARY, SECONDARY, {})
    plan = plan_module.build_plan(
        config, baseline=config,
        layer_config={"secondary-db": {"replicaPromoted": True},
                      "dns-failover": {"alarmEvaluationPeriods": 4}})
    in_primary = [c for c in plan.changes["dns-failover"] if c.region == PRIMARY]
    assert in_primary and all(c.action == "updated" for c in in_primary)
    assert "aws:cloudwatch/metricAlarm:MetricAlarm" in {c.type for c in in_primary}
    assert f"primary region {PRIMARY}: {len(in_primary)} change(s)" in plan_module.render(plan)


def test_without_overrides_there_is_no_baseline(plan, plan_doc):
    assert plan.changes is None and plan_doc["changesAgainstBaseline"] is None
    assert "changes against the baseline" not in plan_module.render(plan)


def test_the_plan_says_which_secret_and_policy_applications_use_in_each_region(plan, plan_doc):
    access = plan_doc["applications"]
    by_region = access["masterSecretArnByRegion"]
    assert set(by_region) == {PRIMARY, SECONDARY}
    assert by_region[PRIMARY] == plan.runs["primary-db"].exports["primaryMasterSecretArn"]
    assert by_region[SECONDARY] == plan.runs["secondary-db"].exports["secondaryMasterSecretArn"]
    # The replica is the same secret in the other region (Secrets Manager's ARN rule).
    assert by_region[SECONDARY].split(":")[3] == SECONDARY
    assert by_region[SECONDARY].split(":")[4:] == by_region[PRIMARY].split(":")[4:]
    policy = plan.runs["dns-failover"].exports["databaseConnectPolicyArn"]
    assert access["databaseConnectPolicyArn"] == policy
    text = plan_module.render(plan)
    assert f"credentials in {SECONDARY}: {by_region[SECONDARY]}" in text
    assert f"IAM database authentication: attach {policy}" in text
