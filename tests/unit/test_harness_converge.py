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
    GONE,
    SKIPPED,
    SKIPPED_CREATE,
    UNCHANGED,
    UPDATED,
    ReadNotEmulated,
    ResourceRecord,
    SyntheticBackend,
    UntargetedCreateError,
    changed_inputs,
    run_all,
    run_layer,
)
from offline.moto_backend import plain
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
        self.handed: dict[str, tuple[ResourceRecord, ResourceRecord]] = {}  # update's arguments

    def create(self, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        self.log.append(("create", record.urn))
        return super().create(record)

    def update(self, previous: ResourceRecord, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        self.log.append(("update", record.urn))
        self.handed[record.urn] = (previous, record)
        return super().update(previous, record)

    def delete(self, previous: ResourceRecord) -> None:
        self.log.append(("delete", previous.urn))
        super().delete(previous)

    def read(self, previous: ResourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
        self.log.append(("read", previous.urn))
        return super().read(previous)


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


def test_a_new_resource_outside_the_targets_is_not_created_nor_recorded(deployed):
    # The engine skips an untargeted create (a "skipped create"): nothing needs the new
    # e-mail subscription, so the targeted run goes on without it.
    before = deployed["secondary-db"]
    instance = before.one(INSTANCE)
    backend = RecordingBackend()
    run = run_layer("secondary-db", {**CONFIG, **SECONDARY, "alarmEmail": "ops@example.com",
                                     "replicaPromoted": True},
                    stack=STACK, upstream=_upstream(deployed), backend=backend,
                    previous=before, targets={instance.urn})
    [skipped] = [urn for urn, change in run.changes.items() if change == SKIPPED_CREATE]
    assert "TopicSubscription" in skipped
    assert backend.log == [("update", instance.urn)]
    assert skipped not in {r.urn for r in run.resources}  # not in the state either
    with pytest.raises(ValueError, match="pass previous too"):
        run_layer("secondary-db", CONFIG, stack=STACK, targets={instance.urn})


def _topic_then_group(with_group: bool):
    """A program whose topic is named after a log group once the group exists."""
    def program() -> None:
        import pulumi_aws as aws

        name: Any = "plain"
        if with_group:
            name = aws.cloudwatch.LogGroup("group", name="group").name
        aws.sns.Topic("topic", name=name)
    return program


def test_a_target_that_needs_an_untargeted_new_resource_is_refused_before_its_backend_call():
    deployed = run_layer("network", CONFIG, stack=STACK, program=_topic_then_group(False))
    topic = next(r for r in deployed.resources if r.name == "topic")
    backend = RecordingBackend()
    with pytest.raises(UntargetedCreateError, match=r"aws:sns/topic:Topic topic .*needs .*group"):
        run_layer("network", CONFIG, stack=STACK, program=_topic_then_group(True),
                  backend=backend, previous=deployed, targets={topic.urn})
    assert backend.log == []  # neither the group nor the topic reached the backend
    # Targeting what it needs too, the run creates the group and updates the topic.
    group_urn = topic.urn.replace("aws:sns/topic:Topic::topic", "aws:cloudwatch/logGroup:LogGroup::group")
    run = run_layer("network", CONFIG, stack=STACK, program=_topic_then_group(True),
                    backend=backend, previous=deployed, targets={topic.urn, group_urn})
    assert backend.log == [("create", group_urn), ("update", topic.urn)]
    assert run.changes[group_urn] == CREATED and run.changes[topic.urn] == UPDATED


def test_ignore_changes_hands_the_backend_the_state_s_value():
    def program(value: str, description: str):
        def run() -> None:
            import pulumi_aws as aws

            aws.ssm.Parameter("arming", name="arming", type="String", value=value,
                              description=description,
                              opts=pulumi.ResourceOptions(ignore_changes=["value"]))
        return run

    deployed = run_layer("network", CONFIG, stack=STACK, program=program("unarmed", "one"))
    [param] = [r for r in deployed.resources if r.name == "arming"]
    backend = RecordingBackend()
    # The value alone changed: ignored, no call.
    run = run_layer("network", CONFIG, stack=STACK, program=program("reset", "one"),
                    backend=backend, previous=deployed)
    assert backend.log == [] and run.changes[param.urn] == UNCHANGED
    assert plain(run.by_urn(param.urn).inputs)["value"] == "unarmed"
    # The description changed too: updated, and the provider is handed the state's value,
    # so an update never resets what ignore_changes protects (the promoter's arming).
    run = run_layer("network", CONFIG, stack=STACK, program=program("reset", "two"),
                    backend=backend, previous=deployed)
    assert backend.log == [("update", param.urn)]
    _, handed = backend.handed[param.urn]
    assert plain(handed.inputs)["value"] == "unarmed" and handed.inputs["description"] == "two"


def test_a_refresh_compares_the_program_with_what_aws_reports(deployed):
    before = deployed["secondary-db"]
    instance = before.one(INSTANCE)
    backend = RecordingBackend()
    # The promoter promoted the replica outside Pulumi (what the synthetic read then reports).
    backend.promoted_instances.add(instance.outputs["identifier"])
    run = run_layer("secondary-db", {**CONFIG, **SECONDARY, "replicaPromoted": True}, stack=STACK,
                    upstream=_upstream(deployed), backend=backend, previous=before, refresh=True)
    reads = [urn for op, urn in backend.log if op == "read"]
    custom = [r.urn for r in before.resources if r.custom and not r.type.startswith("pulumi:")]
    assert reads == custom  # every resource the state holds in AWS, before anything else
    assert backend.log[:len(reads)] == [("read", urn) for urn in reads]
    assert run.refreshed == {instance.urn: ["replicateSourceDb"]}
    # The update is handed the refreshed state: no source left to drop, so no promotion.
    previous, _ = backend.handed[instance.urn]
    assert "replicateSourceDb" not in previous.inputs
    assert changed_inputs(previous, run.by_urn(instance.urn)) == ["backupRetentionPeriod",
                                                                 "backupWindow"]
    # Without refresh (pulumi up --refresh=false) the state still names the source.
    backend = RecordingBackend()
    backend.promoted_instances.add(instance.outputs["identifier"])
    run_layer("secondary-db", {**CONFIG, **SECONDARY, "replicaPromoted": True}, stack=STACK,
              upstream=_upstream(deployed), backend=backend, previous=before)
    assert "read" not in {op for op, _ in backend.log}
    assert backend.handed[instance.urn][0].inputs["replicateSourceDb"]


def test_a_refresh_keeps_and_lists_what_the_backend_cannot_read_and_drops_what_is_gone(deployed):
    before = deployed["secondary-db"]
    instance = before.one(INSTANCE)
    [lag] = [r for r in before.of_type(ALARM) if "lag" in r.name]

    class PartlyReading(RecordingBackend):
        def read(self, previous):
            if previous.type == ALARM:
                raise ReadNotEmulated("no alarm reader here")
            if previous.urn == instance.urn:
                return None  # deleted outside Pulumi
            return super().read(previous)

    backend = PartlyReading()
    run = run_layer("secondary-db", {**CONFIG, **SECONDARY}, stack=STACK,
                    upstream=_upstream(deployed), backend=backend, previous=before, refresh=True)
    assert set(run.not_refreshed) == {r.urn for r in before.of_type(ALARM)}
    assert run.not_refreshed[lag.urn] == "no alarm reader here"
    assert run.refreshed == {instance.urn: [GONE]}
    # Gone from the state, so the program creates it again; the alarms are as they were.
    assert run.changes[instance.urn] == CREATED and ("create", instance.urn) in backend.log
    assert run.changes[lag.urn] == UNCHANGED


def test_refresh_needs_a_previous_run_a_reading_backend_and_no_targets(deployed):
    before = deployed["secondary-db"]
    with pytest.raises(ValueError, match="pass previous too"):
        run_layer("secondary-db", CONFIG, stack=STACK, refresh=True)
    with pytest.raises(ValueError, match="refresh together with targets is not emulated"):
        run_layer("secondary-db", CONFIG, stack=STACK, previous=before, refresh=True,
                  targets={before.one(INSTANCE).urn})

    class NoRead(SyntheticBackend):
        read = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="NoRead cannot refresh: it has no read"):
        run_layer("secondary-db", {**CONFIG, **SECONDARY}, stack=STACK,
                  upstream=_upstream(deployed), backend=NoRead(), previous=before, refresh=True)


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
