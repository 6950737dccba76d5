"""The harness converges a deployed layer as `pulumi up` does against its state.

The real layers run twice: once as deployed, then again against that run (``previous``)
with the config an operator changes, and the backend must see exactly the calls the
engine would make: none for unchanged resources, an update for a changed one, a create
for a new URN, a delete (after the program, dependents first) for a dropped one.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from offline.harness import (
    CREATED,
    DELETED,
    SKIPPED,
    UNCHANGED,
    UPDATED,
    ResourceRecord,
    SyntheticBackend,
    UntargetedCreateError,
    changed_inputs,
    run_all,
    run_layer,
)
from shared.config import DictSource, load_common
from shared.contract import SecondaryDbOutputs, stack_reference_name

STACK = "cv3"
CONFIG = {"environmentSuffix": STACK, "aws:region": "eu-west-1", "secondaryRegion": "ap-southeast-2"}
# Set explicitly, so the expected retention comes from this test, not from a default.
RETENTION = 5
SECONDARY = {"backupRetentionDaysAfterPromotion": RETENTION}
INSTANCE = "aws:rds/instance:Instance"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


class RecordingBackend(SyntheticBackend):
    """The synthetic backend, logging every resource call the harness makes."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str]] = []

    def create(self, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        self.log.append(("create", record.urn))
        return super().create(record)

    def update(self, previous: ResourceRecord, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        self.log.append(("update", record.urn))
        return super().update(previous, record)

    def delete(self, previous: ResourceRecord) -> None:
        self.log.append(("delete", previous.urn))
        super().delete(previous)


@pytest.fixture(scope="module")
def deployed():
    return run_all(CONFIG, stack=STACK, layer_config={"secondary-db": SECONDARY},
                   layers=("network", "primary-db", "secondary-db"))


def _upstream(deployed) -> dict[str, dict[str, Any]]:
    common = load_common(DictSource(CONFIG, stack=STACK))
    return {stack_reference_name(common, layer): deployed[layer].exports
            for layer in ("network", "primary-db")}


def _rerun(deployed, backend, **secondary) -> Any:
    return run_layer("secondary-db", {**CONFIG, **SECONDARY, **secondary}, stack=STACK,
                     upstream=_upstream(deployed), backend=backend, previous=deployed["secondary-db"])


def test_promoting_updates_the_same_instance_and_deletes_only_the_lag_alarm(deployed):
    before = deployed["secondary-db"]
    instance = before.one(INSTANCE)
    [lag] = [r for r in before.of_type(ALARM) if "lag" in r.name]
    backend = RecordingBackend()

    run = _rerun(deployed, backend, replicaPromoted=True)

    # The instance is updated while the program runs; the alarm it no longer declares is
    # deleted afterwards. Nothing else reaches the backend.
    assert backend.log == [("update", instance.urn), ("delete", lag.urn)]
    assert run.changes[instance.urn] == UPDATED and run.changes[lag.urn] == DELETED
    assert [r.urn for r in run.deleted] == [lag.urn]
    others = set(run.changes) - {instance.urn, lag.urn}
    assert others and {run.changes[urn] for urn in others} == {UNCHANGED}

    promoted = run.by_urn(instance.urn)
    assert promoted.id == instance.id  # the SAME instance
    assert instance.inputs.get("replicateSourceDb") and not promoted.inputs.get("replicateSourceDb")
    assert promoted.inputs["backupRetentionPeriod"] == RETENTION
    assert run.exports[SecondaryDbOutputs.PROMOTED] is True
    # Unchanged resources keep what the deployment gave them.
    for urn in others:
        assert run.by_urn(urn).outputs == before.by_urn(urn).outputs


def test_rerunning_an_unchanged_layer_calls_the_backend_for_nothing(deployed):
    backend = RecordingBackend()
    run = _rerun(deployed, backend)
    assert backend.log == []
    assert set(run.changes.values()) == {UNCHANGED}
    assert run.changes.keys() == {r.urn for r in deployed["secondary-db"].resources}
    assert run.exports == deployed["secondary-db"].exports


def test_a_new_urn_is_created(deployed):
    backend = RecordingBackend()
    run = _rerun(deployed, backend, alarmEmail="ops@example.com")
    created = [urn for urn, change in run.changes.items() if change == CREATED]
    assert len(created) == 1 and run.by_urn(created[0]).type == "aws:sns/topicSubscription:TopicSubscription"
    assert backend.log == [("create", created[0])]


def test_deletes_come_after_the_program_with_dependents_first():
    def first() -> None:
        import pulumi_aws as aws

        group = aws.cloudwatch.LogGroup("group", name="group")
        aws.cloudwatch.LogMetricFilter("filter", log_group_name=group.name, pattern="x",
                                       metric_transformation={"name": "m", "namespace": "n",
                                                              "value": "1"})

    def second() -> None:
        import pulumi_aws as aws

        aws.sns.Topic("topic", name="topic")

    deployed = run_layer("network", CONFIG, stack=STACK, program=first)
    group, metric_filter = deployed.resources[-2:]
    assert group.urn in metric_filter.dependencies
    backend = RecordingBackend()
    run = run_layer("network", CONFIG, stack=STACK, program=second, backend=backend,
                    previous=deployed)
    [topic] = [r for r in run.resources if r.name == "topic"]
    assert backend.log == [("create", topic.urn), ("delete", metric_filter.urn), ("delete", group.urn)]


def test_targets_leave_every_other_resource_as_the_state_holds_it(deployed):
    # `pulumi up --target`: only the lag alarm is targeted, so the instance's change is
    # skipped (old inputs and outputs kept, no backend call) and the alarm is deleted.
    before = deployed["secondary-db"]
    instance = before.one(INSTANCE)
    [lag] = [r for r in before.of_type(ALARM) if "lag" in r.name]
    backend = RecordingBackend()
    run = run_layer("secondary-db", {**CONFIG, **SECONDARY, "replicaPromoted": True}, stack=STACK,
                    upstream=_upstream(deployed), backend=backend, previous=before,
                    targets={lag.urn})
    assert backend.log == [("delete", lag.urn)]
    assert run.changes[instance.urn] == SKIPPED
    kept = run.by_urn(instance.urn)
    assert kept.inputs["replicateSourceDb"] == instance.inputs["replicateSourceDb"]
    assert kept.outputs == instance.outputs

    # Targeting the instance instead: it is updated, and the untargeted alarm stays.
    backend = RecordingBackend()
    run = run_layer("secondary-db", {**CONFIG, **SECONDARY, "replicaPromoted": True}, stack=STACK,
                    upstream=_upstream(deployed), backend=backend, previous=before,
                    targets={instance.urn})
    assert backend.log == [("update", instance.urn)]
    assert run.changes[lag.urn] == SKIPPED and run.by_urn(lag.urn).outputs == lag.outputs


def test_a_new_resource_outside_the_targets_is_refused(deployed):
    instance = deployed["secondary-db"].one(INSTANCE)
    with pytest.raises(UntargetedCreateError, match="TopicSubscription"):
        run_layer("secondary-db", {**CONFIG, **SECONDARY, "alarmEmail": "ops@example.com"},
                  stack=STACK, upstream=_upstream(deployed), backend=RecordingBackend(),
                  previous=deployed["secondary-db"], targets={instance.urn})
    with pytest.raises(ValueError, match="pass previous too"):
        run_layer("secondary-db", CONFIG, stack=STACK, targets={instance.urn})


def test_a_previous_run_of_another_layer_or_stack_is_refused(deployed):
    with pytest.raises(ValueError, match="previous is a run of secondary-db"):
        run_layer("primary-db", CONFIG, stack=STACK, previous=deployed["secondary-db"])
    with pytest.raises(ValueError, match="stack other"):
        run_layer("secondary-db", CONFIG, stack="other", previous=deployed["secondary-db"])


def test_a_backend_that_cannot_update_or_delete_cannot_converge(deployed):
    class CreateOnly:
        def __init__(self) -> None:
            self.synthetic = SyntheticBackend()
            self.created: list[str] = []

        def create(self, record):
            self.created.append(record.urn)
            return self.synthetic.create(record)

        def call(self, token, args, region):
            return self.synthetic.call(token, args, region)

    backend = CreateOnly()
    with pytest.raises(TypeError, match="CreateOnly cannot converge a deployed layer: it has no "
                                        "update or delete"):
        _rerun(deployed, backend, replicaPromoted=True)
    assert backend.created == []  # refused before the program ran
    # Without a previous run it deploys as before.
    run_layer("secondary-db", {**CONFIG, **SECONDARY}, stack=STACK, upstream=_upstream(deployed),
              backend=backend)
    assert len(backend.created) == len([r for r in deployed["secondary-db"].resources
                                        if r.custom and not r.type.startswith("pulumi:")])


def _record(**inputs: Any) -> ResourceRecord:
    return ResourceRecord(layer="dns-failover", type="aws:lambda/function:Function", name="fn",
                          urn="urn:fn", inputs=inputs, custom=True, region="eu-west-1")


def test_assets_compare_by_content_not_by_object(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("x = 1\n")

    def code(path, extra: str = "") -> pulumi.AssetArchive:
        return pulumi.AssetArchive({"h.py": pulumi.FileAsset(str(path)),
                                    "s.py": pulumi.StringAsset("y = 2" + extra)})

    assert changed_inputs(_record(code=code(tmp_path / "a.py")),
                          _record(code=code(tmp_path / "a.py"))) == []
    assert changed_inputs(_record(code=code(tmp_path / "a.py")),
                          _record(code=code(tmp_path / "a.py", " + 1"))) == ["code"]
    # Another file, even with the same content: the path is part of what is compared.
    assert changed_inputs(_record(code=code(tmp_path / "a.py")),
                          _record(code=code(tmp_path / "b.py"))) == ["code"]


def test_a_file_edited_between_runs_is_a_change(tmp_path):
    source = tmp_path / "handler.py"
    source.write_text("x = 1\n")

    def program() -> None:
        import pulumi_aws as aws

        aws.lambda_.Function("fn", name="fn", role="arn:aws:iam::111122223333:role/r",
                             runtime="python3.13", handler="handler.main",
                             code=pulumi.AssetArchive({"handler.py": pulumi.FileAsset(str(source))}))

    deployed = run_layer("network", CONFIG, stack=STACK, program=program)
    [fn] = [r for r in deployed.resources if r.name == "fn"]
    assert set(run_layer("network", CONFIG, stack=STACK, program=program,
                         previous=deployed).changes.values()) == {UNCHANGED}
    source.write_text("x = 2\n")
    run = run_layer("network", CONFIG, stack=STACK, program=program, previous=deployed)
    assert run.changes[fn.urn] == UPDATED


def test_only_ignore_changes_is_left_out_of_the_comparison():
    old, new = _record(value="a", other=1), _record(value="b", other=1)
    assert changed_inputs(old, new) == ["value"]
    new.ignore_changes = ["value"]
    assert changed_inputs(old, new) == []
    # The provider, its region and its default tags count as changes of the resource.
    moved = _record(value="a", other=1)
    moved.region, moved.default_tags = "eu-central-1", {"Layer": "x"}
    assert changed_inputs(old, moved) == ["<default tags>", "<region>"]
