"""Runs of the database layers under the mock runtime, and the checks both layers share.

Upstream stack references are never hand-written: the network (and, for the
replica, the primary-db) layer is run for real and its exports are fed to the
layer under test, exactly as ``make plan`` chains them.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

from offline.harness import Backend, LayerRun, run_all, run_layer
from shared.config import DictSource, load_common
from shared.contract import stack_reference_name

STACK = "ci"
SUFFIX = "dr42"
# Neither is a default region: nothing may fall back to us-east-1 / us-west-2.
PRIMARY, SECONDARY = "eu-west-1", "eu-central-1"
DEFAULT_REGIONS = ("us-east-1", "us-west-2")
BASE_CONFIG: dict[str, Any] = {
    "environmentSuffix": SUFFIX,
    "aws:region": PRIMARY,
    "secondaryRegion": SECONDARY,
}

INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
EVENT_SUBSCRIPTION = "aws:rds/eventSubscription:EventSubscription"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
SECRET_INVOKE = "aws:secretsmanager/getSecretVersion:getSecretVersion"


def run_upstream(config: Mapping[str, Any], *layers: str) -> dict[str, LayerRun]:
    return run_all(config, stack=STACK, layers=layers)


def run_with_upstream(layer: str, config: Mapping[str, Any], upstream_runs: Mapping[str, LayerRun],
                      backend: Backend | None = None) -> LayerRun:
    """Run ``layer`` with stack references resolving to the given real runs' exports."""
    common = load_common(DictSource(config, stack=STACK))
    upstream = {stack_reference_name(common, name): run.exports
                for name, run in upstream_runs.items()}
    return run_layer(layer, config, stack=STACK, upstream=upstream, backend=backend)


def aws_resources(run: LayerRun) -> list:
    return [r for r in run.resources if r.custom and r.type.startswith("aws:")]


def document(record, key: str = "policy") -> dict[str, Any]:
    value = record.inputs[key]
    return json.loads(value) if isinstance(value, str) else value


def statements_by_sid(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def arn_region(arn: str) -> str:
    return arn.split(":")[3]


def is_secret(value: Any) -> bool:
    """A value the engine received wrapped as a Pulumi secret."""
    return isinstance(value, Mapping) and value.get(_special_sig_key) == _special_secret_sig


def all_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from all_strings(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from all_strings(item)


def mentions_default_region(value: Any) -> list[str]:
    return [s for s in all_strings(value) if any(r in s for r in DEFAULT_REGIONS)]


def assert_encrypted_with_own_key(run: LayerRun, region: str) -> None:
    """Storage, Performance Insights, logs and alerts all use this layer's CMK in ``region``."""
    instance, key = run.one(INSTANCE), run.one(KEY)
    key_arn = key.outputs["arn"]
    assert key.region == region and arn_region(key_arn) == region
    assert key.inputs["enableKeyRotation"] is True
    assert instance.inputs.get("storageEncrypted") is True
    assert instance.inputs.get("kmsKeyId") == key_arn
    assert instance.inputs.get("performanceInsightsEnabled") is True
    assert instance.inputs.get("performanceInsightsKmsKeyId") == key_arn
    assert run.one(TOPIC).inputs.get("kmsMasterKeyId") == key_arn
    log_groups = run.of_type(LOG_GROUP)
    assert log_groups and all(g.inputs.get("kmsKeyId") == key_arn for g in log_groups)


def assert_tls_forced(run: LayerRun, region: str) -> None:
    """The instance is attached to this stack's parameter group, in its region, forcing TLS."""
    instance, group = run.one(INSTANCE), run.one(PARAMETER_GROUP)
    assert instance.region == region and group.region == region
    assert instance.inputs.get("parameterGroupName") == group.inputs["name"]
    params = {p["name"]: p["value"] for p in group.inputs["parameters"]}
    assert params.get("rds.force_ssl") == "1"


def run_expecting_failure(layer: str, config: Mapping[str, Any],
                          upstream_runs: Mapping[str, LayerRun],
                          backend: Backend | None = None) -> BaseException:
    """Run a layer that must fail; return the exception.

    A program that fails inside an ``apply`` leaves every dependent output's future
    holding the same exception, and asyncio logs each one as "never retrieved" when
    it is collected (thousands of lines at interpreter exit). Once the failure is
    captured here, those futures are marked retrieved.
    """
    try:
        run_with_upstream(layer, config, upstream_runs, backend)
    except Exception as exc:
        failure = exc
    else:
        raise AssertionError(f"the {layer} layer ran although it should have failed")
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Future) and obj.done() and not obj.cancelled():
            obj.exception()
    return failure
