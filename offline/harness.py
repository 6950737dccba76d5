"""Run a layer's real ``__main__.py`` under the Pulumi mock runtime.

No Pulumi CLI, no provider plugins, no AWS credentials: the program runs in
this Python process against a mock resource monitor. Every resource the program
registers is recorded (type, logical name, inputs, provider, region, options)
and answered by a *backend*:

- ``SyntheticBackend`` (this module) returns plausible identifiers, ARNs and
  endpoints, for unit tests and ``make plan``;
- the rehearsal's backend creates the resource in an AWS API emulator and
  returns the emulator's real identifiers (``offline/rehearse``).

Stack references resolve to the outputs an upstream layer actually exported in
the same run (``run_all``), or to outputs a test supplies.

A layer can also be re-run against its previous run, as ``pulumi up`` runs against the
state (``run_layer(..., previous=...)``): unchanged resources keep their ids and outputs
without a backend call, changed ones are updated, new ones created, and the ones the
program no longer registers deleted once it has run.

Records keep inputs under their wire (camelCase) names, exactly as a CrossGuard
policy sees them, so the same policy rules check both.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from shared.config import DictSource, accepting_layers, check_declared, load_common
from shared.contract import LAYERS, PROJECTS, stack_reference_name

REPO_ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO_ROOT / "stacks"
# An account ID from the AWS documentation's example range; never a real account.
OFFLINE_ACCOUNT_ID = "111122223333"
PROVIDER_TYPE = "pulumi:providers:aws"
# Type tokens of pulumi.dynamic resources ("pulumi-python:dynamic/<module>:<name>").
DYNAMIC_TYPE_PREFIX = "pulumi-python:dynamic"
STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
# What happened to a resource when a layer ran against its previous run (LayerRun.changes).
CREATED, UPDATED, DELETED, UNCHANGED = "created", "updated", "deleted", "unchanged"
# Outside ``run_layer(targets=...)``, as `pulumi up --target` treats a resource (the engine's
# step generator): one the state holds and the program changed keeps its state (old inputs,
# id and outputs) and no provider is called (SKIPPED); one the state does not hold is not
# created and not written to the state (SKIPPED_CREATE).
SKIPPED, SKIPPED_CREATE = "skipped", "skipped-create"


class UntargetedCreateError(RuntimeError):
    """A resource that takes part in a targeted run needs one `pulumi up --target` does not
    create (new and not targeted): the engine refuses such a run, and so does the harness."""


class ReadNotEmulated(NotImplementedError):
    """A backend cannot read this resource back for a refresh; its state is kept as it is."""


@dataclass
class ResourceRecord:
    """One registered resource, as the engine would have seen it."""

    layer: str
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    custom: bool
    provider_urn: str | None = None
    region: str | None = None
    default_tags: dict[str, str] = field(default_factory=dict)
    parent_urn: str | None = None
    protect: bool = False
    retain_on_delete: bool = False
    # URNs this resource waits for: depends_on plus the resources its inputs come from.
    dependencies: list[str] = field(default_factory=list)
    # Input properties (wire names) whose changes the engine ignores on update.
    ignore_changes: list[str] = field(default_factory=list)
    id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    # What a re-run compares (property_values), taken when the resource is registered:
    # assets are hashed then, as the engine keeps their hashes in the state.
    # Not an __init__ argument, so ``dataclasses.replace`` with other inputs starts afresh.
    compared: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def target_region(self) -> str | None:
        """Where AWS holds the resource: its own ``region`` input (pulumi-aws 7), else its
        provider's region."""
        own = self.inputs.get("region")
        return own if isinstance(own, str) else self.region

    @property
    def effective_tags(self) -> dict[str, str]:
        """What AWS ends up with: provider default tags overlaid by resource tags."""
        tags = dict(self.default_tags)
        tags.update(self.inputs.get("tags") or {})
        return tags


@dataclass
class LayerRun:
    layer: str
    project: str
    stack: str
    resources: list[ResourceRecord]
    exports: dict[str, Any]
    secret_exports: set[str]
    invokes: list[tuple[str, dict[str, Any], str | None]]
    # URN -> CREATED / UPDATED / UNCHANGED / DELETED, as `pulumi up` would report it; a run
    # without a previous run creates everything.
    changes: dict[str, str] = field(default_factory=dict)
    # Records of the previous run the program no longer registers, in deletion order.
    deleted: list[ResourceRecord] = field(default_factory=list)
    # With refresh: URN -> the properties the refresh found changed in AWS ("<gone>" when
    # the resource no longer exists), and URN -> why a resource could not be read back.
    refreshed: dict[str, list[str]] = field(default_factory=dict)
    not_refreshed: dict[str, str] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_contains: str = "") -> ResourceRecord:
        matches = [r for r in self.of_type(type_) if name_contains in r.name]
        if len(matches) != 1:
            raise AssertionError(
                f"expected exactly one {type_} named like {name_contains!r} in {self.layer}, "
                f"found {[r.name for r in matches]}"
            )
        return matches[0]

    def by_urn(self, urn: str) -> ResourceRecord:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise KeyError(urn)


class Backend(Protocol):
    """Answers resource registrations and invokes for the mock runtime."""

    def create(self, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        """Return the physical id and the full output state (wire names)."""

    def call(self, token: str, args: dict[str, Any], region: str | None) -> dict[str, Any]:
        """Return the result of an invoke (wire names)."""


class ConvergingBackend(Backend, Protocol):
    """A backend that can also bring deployed resources in line with a re-run program."""

    def update(self, previous: ResourceRecord, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        """Apply ``record``'s inputs to the resource ``previous`` describes; return the
        (possibly new) physical id and the full output state (wire names)."""

    def delete(self, previous: ResourceRecord) -> None:
        """Delete the resource ``previous`` describes."""


class RefreshingBackend(ConvergingBackend, Protocol):
    """A converging backend that can also read deployed resources back (``refresh``)."""

    def read(self, previous: ResourceRecord) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """What the provider's read finds for the resource ``previous`` describes: its inputs
        and outputs as the refreshed state holds them, or None when it no longer exists.
        Raises ReadNotEmulated when the backend cannot read this type."""


def _short_hash(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


class SyntheticBackend:
    """Plausible outputs for every resource and invoke the layers use."""

    def __init__(self, account_id: str = OFFLINE_ACCOUNT_ID,
                 master_secret: Mapping[str, str] | None = None):
        self.account_id = account_id
        self.master_secret = dict(master_secret or {
            "username": "dbadmin", "password": "offline-plan-placeholder-password",
        })
        # Instances an invoke reports as standalone (promoted outside Pulumi).
        self.promoted_instances: set[str] = set()

    # ---------------------------------------------------------------- resources
    def create(self, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        return self._synthesize(record)

    def _synthesize(self, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        inputs = record.inputs
        region = record.region or "offline-region-1"
        acct = self.account_id
        h = _short_hash(record.type, record.name)
        token = record.type
        out: dict[str, Any] = dict(inputs)
        name = inputs.get("name") or inputs.get("identifier") or record.name
        rid = f"{h}"

        def arn(service: str, resource: str, reg: str = region, account: str = acct) -> str:
            return f"arn:aws:{service}:{reg}:{account}:{resource}"

        if token == "aws:rds/instance:Instance":
            ident = inputs.get("identifier") or record.name
            rid = ident
            out.update(
                identifier=ident,
                arn=arn("rds", f"db:{ident}"),
                address=f"{ident}.c{h[:12]}.{region}.rds.amazonaws.com",
                port=inputs.get("port") or 5432,
                resourceId=f"db-{h.upper()}",
                engine=inputs.get("engine") or "postgres",
                status="available",
            )
            out["endpoint"] = f"{out['address']}:{out['port']}"
        elif token in ("aws:rds/subnetGroup:SubnetGroup", "aws:rds/parameterGroup:ParameterGroup",
                       "aws:rds/eventSubscription:EventSubscription"):
            kind = {"SubnetGroup": "subgrp", "ParameterGroup": "pg",
                    "EventSubscription": "es"}[token.rsplit(":", 1)[1]]
            rid = name
            out.update(name=name, arn=arn("rds", f"{kind}:{name}"))
        elif token == "aws:kms/key:Key":
            rid = str(uuid.UUID(hashlib.md5(h.encode()).hexdigest()))
            out.update(keyId=rid, arn=arn("kms", f"key/{rid}"))
        elif token == "aws:kms/alias:Alias":
            rid = name
            out.update(arn=arn("kms", name), targetKeyArn=arn("kms", f"key/{inputs.get('targetKeyId')}"))
        elif token == "aws:sns/topic:Topic":
            rid = arn("sns", name)
            out.update(name=name, arn=rid)
        elif token == "aws:sns/topicSubscription:TopicSubscription":
            rid = f"{inputs.get('topic')}:{uuid.UUID(hashlib.md5(h.encode()).hexdigest())}"
            out.update(arn=rid)
        elif token == "aws:iam/role:Role":
            rid = name
            out.update(name=name, arn=f"arn:aws:iam::{acct}:role/{name}", uniqueId=f"AROA{h.upper()}")
        elif token == "aws:iam/policy:Policy":
            rid = f"arn:aws:iam::{acct}:policy/{name}"
            out.update(name=name, arn=rid)
        elif token == "aws:lambda/function:Function":
            rid = name
            fn_arn = arn("lambda", f"function:{name}")
            out.update(
                name=name, arn=fn_arn, qualifiedArn=f"{fn_arn}:$LATEST", version="$LATEST",
                invokeArn=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{fn_arn}/invocations",
            )
        elif token == "aws:cloudwatch/metricAlarm:MetricAlarm":
            rid = name
            out.update(name=name, arn=arn("cloudwatch", f"alarm:{name}"))
        elif token == "aws:cloudwatch/logGroup:LogGroup":
            rid = name
            out.update(name=name, arn=arn("logs", f"log-group:{name}"))
        elif token == "aws:cloudwatch/eventRule:EventRule":
            rid = name
            out.update(name=name, arn=arn("events", f"rule/{name}"))
        elif token == "aws:cloudwatch/dashboard:Dashboard":
            rid = inputs.get("dashboardName") or name
            out.update(dashboardArn=f"arn:aws:cloudwatch::{acct}:dashboard/{rid}")
        elif token == "aws:ssm/parameter:Parameter":
            # The provider's id is the name; the ARN is parameter/<name> (no slash in our names).
            rid = name
            out.update(name=name, arn=arn("ssm", f"parameter/{name}"), version=1)
        elif token == "aws:route53/zone:Zone":
            rid = f"Z{h.upper()[:13]}"
            out.update(zoneId=rid, arn=f"arn:aws:route53:::hostedzone/{rid}",
                       nameServers=[f"ns-{i}.awsdns.example" for i in range(4)])
        elif token == "aws:route53/healthCheck:HealthCheck":
            rid = str(uuid.UUID(hashlib.md5(h.encode()).hexdigest()))
            out.update(arn=f"arn:aws:route53:::healthcheck/{rid}")
        elif token == "aws:route53/record:Record":
            rid = f"{inputs.get('zoneId')}_{inputs.get('name')}_{inputs.get('type')}"
            out.update(fqdn=inputs.get("name"))
        elif token == "aws:ec2/vpc:Vpc":
            rid = f"vpc-{h}"
            out.update(arn=arn("ec2", f"vpc/{rid}"), defaultSecurityGroupId=f"sg-{h[::-1]}",
                       defaultNetworkAclId=f"acl-{h}", mainRouteTableId=f"rtb-{h}")
        elif token == "aws:ec2/subnet:Subnet":
            rid = f"subnet-{h}"
            out.update(arn=arn("ec2", f"subnet/{rid}"))
        elif token in ("aws:ec2/securityGroup:SecurityGroup",
                       "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"):
            rid = f"sg-{h}"
            out.update(arn=arn("ec2", f"security-group/{rid}"))
        elif token.startswith(DYNAMIC_TYPE_PREFIX):
            # A dynamic resource's provider runs in the deployer's process and may call AWS
            # (the interface drain does, on delete): nothing runs here. Its outputs are its
            # inputs, as pulumi.dynamic records them.
            rid = f"{record.name}-{h[:8]}"
        elif token.startswith("random:"):
            out.update(hex=h[:16], b64Url=h[:11], b64Std=h[:11] + "=", dec=str(int(h[:12], 16)),
                       result=h[: int(inputs.get("length") or 8)])
        else:
            service = token.split(":")[1].split("/")[0]
            resource = token.rsplit(":", 1)[1].lower()
            out.setdefault("arn", arn(service, f"{resource}/{rid}"))
        out.setdefault("id", rid)
        return rid, out

    def update(self, previous: ResourceRecord, record: ResourceRecord) -> tuple[str, dict[str, Any]]:
        """The outputs a create of the new inputs would give, under the resource's old id."""
        _, out = self._synthesize(record)
        out["id"] = previous.id
        if (record.type == "aws:rds/instance:Instance" and previous.inputs.get("replicateSourceDb")
                and not record.inputs.get("replicateSourceDb")):
            # Dropping the source promotes the replica (resourceInstanceUpdate): from now on
            # the instance lookup reports it standing alone, as AWS would.
            self.promoted_instances.add(str(record.inputs.get("identifier") or previous.id))
        return str(previous.id), out

    def delete(self, previous: ResourceRecord) -> None:
        """Nothing exists anywhere, so there is nothing to delete."""

    def read(self, previous: ResourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
        """The state as it is: nothing here changes outside the program, except an instance
        ``promoted_instances`` names, which reads back without its source (resourceInstanceRead
        sets replicate_source_db from ReadReplicaSourceDBInstanceIdentifier)."""
        inputs, outputs = dict(previous.inputs), dict(previous.outputs)
        identifier = str(previous.outputs.get("identifier") or previous.inputs.get("identifier"))
        if previous.type == "aws:rds/instance:Instance" and identifier in self.promoted_instances:
            inputs.pop("replicateSourceDb", None)
            outputs["replicateSourceDb"] = ""
        return inputs, outputs

    # ---------------------------------------------------------------- invokes
    def call(self, token: str, args: dict[str, Any], region: str | None) -> dict[str, Any]:
        region = region or "offline-region-1"
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{region}{z}" for z in "abcdef"]
            return {"id": region, "names": names,
                    "zoneIds": [f"{region[:3]}{region[-1]}-az{i + 1}" for i in range(6)],
                    "groupNames": [region]}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"id": self.account_id, "accountId": self.account_id,
                    "arn": f"arn:aws:iam::{self.account_id}:user/offline",
                    "userId": "AIDAOFFLINE"}
        if token == "aws:index/getRegion:getRegion":
            return {"id": region, "name": region, "region": region,
                    "endpoint": f"ec2.{region}.amazonaws.com", "description": region}
        if token == "aws:index/getPartition:getPartition":
            return {"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com",
                    "reverseDnsPrefix": "com.amazonaws"}
        if token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            secret_id = args.get("secretId")
            return {"id": f"{secret_id}|AWSCURRENT", "secretId": secret_id,
                    "arn": self._secret_arn(secret_id, region),
                    "secretArn": self._secret_arn(secret_id, region),
                    "secretString": json.dumps(self.master_secret),
                    "versionId": "offline", "versionStages": ["AWSCURRENT"]}
        if token == "aws:secretsmanager/getSecret:getSecret":
            name = args.get("name") or args.get("arn")
            return {"id": self._secret_arn(name, region), "arn": self._secret_arn(name, region),
                    "name": name}
        if token == "aws:rds/getInstance:getInstance":
            # The replica's live state, as the dns-failover layer reads it: a replica unless
            # the caller says this deployment's replica stands alone.
            identifier = args.get("dbInstanceIdentifier")
            source = f"arn:aws:rds:offline:{self.account_id}:db:source"
            return {"id": identifier, "dbInstanceIdentifier": identifier,
                    "replicateSourceDb": "" if identifier in self.promoted_instances else source,
                    "dbInstanceArn": f"arn:aws:rds:{region}:{self.account_id}:db:{identifier}"}
        if token == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {"id": "offline", "json": policy_document_json(args)}
        raise NotImplementedError(
            f"the offline harness does not answer invoke {token}; teach SyntheticBackend.call"
        )

    def _secret_arn(self, secret_id: str | None, region: str) -> str:
        if secret_id and secret_id.startswith("arn:"):
            return secret_id
        return f"arn:aws:secretsmanager:{region}:{self.account_id}:secret:{secret_id}-AbCdEf"


def policy_document_json(args: Mapping[str, Any]) -> str:
    """Render getPolicyDocument arguments the way the provider does."""
    statements = []
    for st in args.get("statements") or []:
        out: dict[str, Any] = {"Effect": st.get("effect") or "Allow"}
        if st.get("sid"):
            out["Sid"] = st["sid"]
        if st.get("actions"):
            out["Action"] = st["actions"]
        if st.get("resources"):
            out["Resource"] = st["resources"]
        for principals in st.get("principals") or []:
            out.setdefault("Principal", {})[principals["type"]] = principals["identifiers"]
        for cond in st.get("conditions") or []:
            out.setdefault("Condition", {}).setdefault(cond["test"], {})[cond["variable"]] = (
                cond["values"]
            )
        statements.append(out)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


# --------------------------------------------------------------------------- comparing runs


def program_path(path: str, layer: str) -> Path:
    """An asset's file: Pulumi runs a program in its project directory, where relative
    asset paths start."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return layer_dir(layer) / candidate


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def comparable(value: Any, layer: str) -> Any:
    """``value`` as ``pulumi up`` compares it: assets and archives by what they hold.

    An asset object is a new Python object on every run, so it is replaced by its kind, its
    path or URI and the SHA-256 of its content (the engine hashes asset contents); every
    other value is kept as it is.
    """
    if isinstance(value, pulumi.FileAsset):
        return {"asset": "file", "path": value.path,
                "sha256": _sha256(program_path(value.path, layer).read_bytes())}
    if isinstance(value, pulumi.StringAsset):
        return {"asset": "string", "sha256": _sha256(value.text.encode())}
    if isinstance(value, pulumi.RemoteAsset):
        return {"asset": "remote", "uri": value.uri}
    if isinstance(value, pulumi.FileArchive):
        root = program_path(value.path, layer)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for item in files:
            digest.update(str(item.relative_to(root) if item != root else "").encode())
            digest.update(item.read_bytes())
        return {"archive": "file", "path": value.path, "sha256": digest.hexdigest()}
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": "assets",
                "assets": {name: comparable(item, layer) for name, item in sorted(value.assets.items())}}
    if isinstance(value, pulumi.RemoteArchive):
        return {"archive": "remote", "uri": value.uri}
    if isinstance(value, Mapping):
        return {key: comparable(item, layer) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(item, layer) for item in value]
    return value


# Pseudo-properties changed_inputs reports besides input names (never valid input names).
PROVIDER_CHANGE, REGION_CHANGE, DEFAULT_TAGS_CHANGE = "<provider>", "<region>", "<default tags>"


def property_values(record: ResourceRecord) -> dict[str, Any]:
    """Everything of ``record`` a re-run compares, by property name (see changed_inputs);
    taken once, the first time it is asked for (the harness asks at registration)."""
    if record.compared is None:
        values = {key: comparable(value, record.layer) for key, value in record.inputs.items()}
        values[PROVIDER_CHANGE] = record.provider_urn
        values[REGION_CHANGE] = record.region
        values[DEFAULT_TAGS_CHANGE] = dict(record.default_tags)
        record.compared = values
    return record.compared


def changed_inputs(previous: ResourceRecord, record: ResourceRecord) -> list[str]:
    """The properties of ``record`` that differ from ``previous`` (same URN), sorted.

    Every input is compared, nested values included, assets by content (``comparable``).
    So are the resource's provider, its region and the provider's default tags, which
    reach AWS as the resource's tags: a change of any of them is a change of the resource,
    reported under the names ``<provider>``, ``<region>`` and ``<default tags>``.

    One thing only is left out, as the engine leaves it out: the properties the NEW
    program lists in ``ignore_changes`` (the engine keeps their old value; top-level names,
    the only kind the layers use). Resource options the engine applies without calling a
    provider (protect, retain_on_delete, depends_on) are not inputs and never make a change.
    """
    before, after = property_values(previous), property_values(record)
    ignored = set(record.ignore_changes)
    return sorted(key for key in set(before) | set(after)
                  if key not in ignored and before.get(key) != after.get(key))


def _decode(value: Any) -> Any:
    """Provider inputs arrive JSON-encoded; resource inputs arrive as values."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class _Mocks(pulumi_mocks.Mocks):
    def __init__(self, recorder: _Recorder):
        self.recorder = recorder

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        return self.recorder.new_resource(args)

    def call(self, args: pulumi_mocks.MockCallArgs):
        return self.recorder.call(args)


class _Recorder:
    """Turns mock-runtime callbacks into records and backend calls."""

    def __init__(self, layer: str, backend: Backend, upstream: Mapping[str, Mapping[str, Any]],
                 previous: LayerRun | None = None, targets: frozenset[str] | None = None):
        self.layer = layer
        self.backend = backend
        self.upstream = upstream
        self.previous = {r.urn: r for r in previous.resources} if previous else {}
        self.targets = targets
        self.changes: dict[str, str] = {}
        self.skipped_creates: set[str] = set()
        self.records: list[ResourceRecord] = []
        self.providers: dict[str, ResourceRecord] = {}  # provider URN -> record
        self.invokes: list[tuple[str, dict[str, Any], str | None]] = []
        self._pending_options: dict[tuple[str, str], dict[str, Any]] = {}

    def _provider(self, ref: str | None) -> ResourceRecord | None:
        if not ref:
            return None
        # A provider reference is "<provider URN>::<provider id>".
        return self.providers.get(ref.rsplit("::", 1)[0])

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        options = self._pending_options.pop((args.typ, args.name), {})
        record = ResourceRecord(
            layer=self.layer, type=args.typ, name=args.name, urn=options.get("urn", ""),
            inputs=dict(args.inputs), custom=bool(args.custom),
            parent_urn=options.get("parent") or None,
            protect=options.get("protect", False),
            retain_on_delete=options.get("retain_on_delete", False),
            dependencies=list(options.get("dependencies", [])),
            ignore_changes=list(options.get("ignore_changes", [])),
        )
        if args.typ == STACK_REFERENCE_TYPE:
            ref_name = args.inputs.get("name") or args.name
            outputs = dict(self.upstream.get(ref_name, {}))
            record.id = ref_name
            record.outputs = {"name": ref_name, "outputs": outputs, "secretOutputNames": []}
            return self._keep(record, self._change(record))
        if args.typ == PROVIDER_TYPE:
            record.region = _decode(args.inputs.get("region"))
            tags = _decode(args.inputs.get("defaultTags")) or {}
            record.default_tags = dict(tags.get("tags") or {})
            record.inputs = {k: _decode(v) for k, v in args.inputs.items()}
            record.id = f"provider-{_short_hash(args.name, length=8)}"
            record.outputs = dict(record.inputs)
            self.providers[record.urn] = record
            return self._keep(record, self._change(record))
        provider = self._provider(args.provider)
        if provider is not None:
            record.provider_urn = provider.urn
            record.region = provider.region
            record.default_tags = provider.default_tags
        self._ignore_changes(record)
        change = self._change(record)
        if self.targets is not None:
            if record.urn not in self.targets and record.type != ROOT_STACK_TYPE:
                return self._untargeted(record, change)
            self._refuse_skipped_dependencies(record)
        if not args.custom:
            record.id = ""
        elif change == CREATED:
            record.id, record.outputs = self.backend.create(record)
        elif change == UNCHANGED:
            # As the engine does for a resource whose inputs did not change: the state's
            # id and outputs stand, and the provider is not called.
            prior = self.previous[record.urn]
            record.id, record.outputs = prior.id, dict(prior.outputs)
        else:
            record.id, record.outputs = converging(self.backend).update(
                self.previous[record.urn], record)
        return self._keep(record, change)

    def _ignore_changes(self, record: ResourceRecord) -> None:
        """processIgnoreChanges: an ignored property keeps the state's value (or stays unset
        if the state has none), so the provider is handed what the state holds."""
        prior = self.previous.get(record.urn)
        if prior is None:
            return
        for key in record.ignore_changes:
            if key in prior.inputs:
                record.inputs[key] = prior.inputs[key]
            else:
                record.inputs.pop(key, None)

    def _untargeted(self, record: ResourceRecord, change: str) -> tuple[str, dict[str, Any]]:
        """Outside ``targets``: the state's record stands as it is, whatever the program says;
        a resource the state does not hold is not created and not recorded (a skipped
        create: the program gets no id and no outputs for it)."""
        if change == CREATED:
            self.skipped_creates.add(record.urn)
            self.changes[record.urn] = SKIPPED_CREATE
            return "", {}
        prior = self.previous[record.urn]
        kept = replace(prior, inputs=dict(prior.inputs), outputs=dict(prior.outputs))
        return self._keep(kept, UNCHANGED if change == UNCHANGED else SKIPPED)

    def _refuse_skipped_dependencies(self, record: ResourceRecord) -> None:
        """The engine's check of a targeted step (validateSteps): none of what it needs (its
        parent, its dependencies, its provider) may be a create the targets skipped."""
        needed = [record.parent_urn, *record.dependencies, record.provider_urn]
        skipped = [urn for urn in needed if urn in self.skipped_creates]
        if skipped:
            raise UntargetedCreateError(
                f"{record.type} {record.name} ({record.urn}) is targeted, but it needs "
                f"{', '.join(skipped)}, which the state does not hold and the targets do not "
                "include: `pulumi up --target` refuses to run (the engine's \"untargeted "
                "create\"); add it to the targets")

    def _change(self, record: ResourceRecord) -> str:
        prior = self.previous.get(record.urn)
        if prior is None:
            return CREATED
        return UPDATED if changed_inputs(prior, record) else UNCHANGED

    def _keep(self, record: ResourceRecord, change: str) -> tuple[str, dict[str, Any]]:
        property_values(record)  # hash its assets now, as the engine's state would
        self.changes[record.urn] = change
        self.records.append(record)
        return record.id or "", record.outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        provider = self._provider(args.provider)
        region = provider.region if provider else None
        self.invokes.append((args.token, dict(args.args), region))
        return self.backend.call(args.token, dict(args.args), region)


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """Keeps the resource options the plain mock monitor drops (parent, protect...)."""

    def __init__(self, mocks: _Mocks, recorder: _Recorder):
        super().__init__(mocks)
        self.recorder = recorder

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        self.recorder._pending_options[(request.type, request.name)] = {
            "urn": urn,
            "parent": request.parent,
            "protect": bool(getattr(request, "protect", False)),
            "retain_on_delete": bool(getattr(request, "retainOnDelete", False)),
            "dependencies": list(getattr(request, "dependencies", []) or []),
            "ignore_changes": list(getattr(request, "ignoreChanges", []) or []),
        }
        return super().RegisterResource(request)

    def ReadResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        self.recorder._pending_options[(request.type, request.name)] = {
            "urn": urn, "parent": request.parent,
        }
        return super().ReadResource(request)


def refreshes_on_update(layer: str) -> bool:
    """Whether ``pulumi up`` of ``layer`` refreshes first unless told ``--refresh=false``
    (``options: refresh: always`` in its Pulumi.yaml)."""
    import yaml

    project = yaml.safe_load((layer_dir(layer) / "Pulumi.yaml").read_text()) or {}
    return str((project.get("options") or {}).get("refresh", "")).lower() == "always"


def layer_dir(layer: str) -> Path:
    return STACKS_DIR / layer


def _config_map(project: str, config: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in config.items():
        if value is None:
            continue
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, bool):
            out[full] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            out[full] = json.dumps(value)
        else:
            out[full] = str(value)
    return out


@contextmanager
def stack_config(config: Mapping[str, str]) -> Iterator[None]:
    """Hand a program its stack config as the Pulumi language host does.

    The host puts the whole config in PULUMI_CONFIG; the program's entry point
    (pulumi-language-python-exec) loads it into ``pulumi.Config`` with ``set_all_config``,
    and ``shared.config.PulumiSource`` reads the key list back from the variable.
    """
    saved = os.environ.get("PULUMI_CONFIG")
    os.environ["PULUMI_CONFIG"] = json.dumps(dict(config))
    try:
        pulumi.runtime.set_all_config(pulumi.runtime.get_config_env(), [])
        yield
    finally:
        if saved is None:
            os.environ.pop("PULUMI_CONFIG", None)
        else:
            os.environ["PULUMI_CONFIG"] = saved


def run_layer(
    layer: str,
    config: Mapping[str, Any] | None = None,
    *,
    stack: str = "dev",
    organization: str = "organization",
    upstream: Mapping[str, Mapping[str, Any]] | None = None,
    backend: Backend | None = None,
    preview: bool = False,
    program: Callable[[], None] | None = None,
    previous: LayerRun | None = None,
    targets: Iterable[str] | None = None,
    refresh: bool = False,
) -> LayerRun:
    """Run ``stacks/<layer>/__main__.py`` under mocks and return what it did.

    ``upstream`` maps stack-reference names (``org/project/stack``) to outputs.
    Exceptions raised by the program (for example a ``ConfigError``) propagate.
    ``program`` runs instead of ``__main__.py``, as the layer's program would (its project,
    modules and config): tests use it to build a component the layer does not declare yet.

    ``previous`` (a run of the same layer and stack) makes this run what ``pulumi up`` does
    against that run's state: a resource whose inputs did not change (``changed_inputs``)
    keeps its id and outputs and the backend is not called; a changed one goes to
    ``backend.update(previous_record, record)``, a new URN to ``backend.create``; once the
    program has run, each URN of ``previous`` it no longer registered goes to
    ``backend.delete(previous_record)``, dependents first. ``LayerRun.changes`` says what
    happened to every URN. The backend must then be a ``ConvergingBackend`` (TypeError
    before the program runs otherwise).

    Properties the program lists in ``ignore_changes`` keep the state's value, in the
    record and in what ``backend.update`` is handed, as the engine keeps them.

    ``targets`` (URNs, with ``previous``) is ``pulumi up --target``: a resource outside it
    that ``previous`` holds keeps its previous record (inputs, id, outputs) and no backend
    call is made, even if the program changed it (``SKIPPED`` then, else ``UNCHANGED``); one
    ``previous`` does not hold is not created and not recorded (``SKIPPED_CREATE``); a
    targeted resource that needs a skipped create (parent, dependency or provider) raises
    ``UntargetedCreateError`` before its backend call, as the engine refuses such a run.
    Previous resources the program no longer registers are deleted only if targeted.
    Providers and stack references always take part (the engine targets providers
    implicitly; stack references are reads).

    ``refresh`` (with ``previous``, without ``targets``) is ``pulumi up --refresh`` (or a
    project whose Pulumi.yaml says ``refresh: always``): before the program runs, every
    resource of ``previous`` the backend holds is read back (``RefreshingBackend.read``) and
    the program is compared with what was read. ``LayerRun.refreshed`` says what the refresh
    found changed; a resource the backend cannot read (``ReadNotEmulated``) keeps its state
    and is listed in ``LayerRun.not_refreshed`` with the reason. Without ``refresh`` this is
    ``pulumi up --refresh=false``: the state is taken as it is.
    """
    if layer not in PROJECTS:
        raise ValueError(f"unknown layer {layer!r}")
    backend = backend or SyntheticBackend()
    if previous is not None:
        if (previous.layer, previous.stack) != (layer, stack):
            raise ValueError(f"previous is a run of {previous.layer} (stack {previous.stack}), "
                             f"not of {layer} (stack {stack})")
        converging(backend)
    if targets is not None and previous is None:
        raise ValueError("targets select resources of a previous run: pass previous too")
    if refresh and previous is None:
        raise ValueError("refresh reads the resources of a previous run: pass previous too")
    if refresh and targets is not None:
        # What the engine refreshes under --target is not emulated: refuse, not guess.
        raise ValueError("refresh together with targets is not emulated: run the refreshing "
                         "update without targets, or the targeted one with refresh=False")
    refreshed: dict[str, list[str]] = {}
    not_refreshed: dict[str, str] = {}
    if refresh:
        assert previous is not None
        previous = _refreshed(previous, backend, refreshed, not_refreshed)

    def main() -> None:
        runpy.run_path(str(layer_dir(layer) / "__main__.py"), run_name="__main__")

    project = PROJECTS[layer]
    recorder = _Recorder(layer, backend, upstream or {}, previous,
                         frozenset(targets) if targets is not None else None)
    mocks = _Mocks(recorder)
    monitor = _RecordingMonitor(mocks, recorder)

    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview,
                             monitor=monitor, organization=organization)

    program_dir = layer_dir(layer)
    before = set(sys.modules)
    sys.path.insert(0, str(program_dir))
    try:
        with stack_config(_config_map(project, config or {})):
            _sync_await(run_pulumi_func(program or main))
        root = pulumi_settings.get_root_resource()
        exports, secrets = _resolve_exports(getattr(root, "outputs", {}))
    finally:
        sys.path.remove(str(program_dir))
        # Layers may use module names another layer uses too; forget them.
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            path = getattr(module, "__file__", None) or ""
            if path.startswith(str(program_dir)):
                del sys.modules[name]
    deleted = _delete_unregistered(previous, recorder, backend)
    return LayerRun(layer, project, stack, recorder.records, exports, secrets, recorder.invokes,
                    changes=recorder.changes, deleted=deleted, refreshed=refreshed,
                    not_refreshed=not_refreshed)


# A refresh found the resource gone (LayerRun.refreshed).
GONE = "<gone>"


def _refreshed(previous: LayerRun, backend: Backend, refreshed: dict[str, list[str]],
               not_refreshed: dict[str, str]) -> LayerRun:
    """``previous`` as a refresh leaves its state: each resource the backend holds is read
    back; one that no longer exists leaves the state (the program then creates it again)."""
    read = getattr(backend, "read", None)
    if not callable(read):
        raise TypeError(f"{type(backend).__name__} cannot refresh: it has no read "
                        "(see offline.harness.RefreshingBackend)")
    kept: list[ResourceRecord] = []
    for record in previous.resources:
        if not record.custom or record.type in (PROVIDER_TYPE, STACK_REFERENCE_TYPE):
            kept.append(record)  # nothing in AWS to read
            continue
        try:
            found = read(record)
        except ReadNotEmulated as exc:
            not_refreshed[record.urn] = str(exc)
            kept.append(record)
            continue
        if found is None:
            refreshed[record.urn] = [GONE]
            continue
        inputs, outputs = found
        changed = sorted(key for key in set(record.inputs) | set(inputs)
                         if comparable(record.inputs.get(key), record.layer)
                         != comparable(inputs.get(key), record.layer))
        if changed:
            refreshed[record.urn] = changed
        kept.append(replace(record, inputs=dict(inputs), outputs=dict(outputs)))
    return replace(previous, resources=kept)


def converging(backend: Backend) -> ConvergingBackend:
    """``backend`` if it can update and delete, else a TypeError naming what it lacks."""
    missing = [name for name in ("update", "delete") if not callable(getattr(backend, name, None))]
    if missing:
        raise TypeError(f"{type(backend).__name__} cannot converge a deployed layer: it has no "
                        f"{' or '.join(missing)} (see offline.harness.ConvergingBackend)")
    return backend  # type: ignore[return-value]


def _delete_unregistered(previous: LayerRun | None, recorder: _Recorder,
                         backend: Backend) -> list[ResourceRecord]:
    """Delete what the program no longer registers, as the engine does after the program."""
    if previous is None:
        return []
    gone = _reverse_dependency_order([r for r in previous.resources if r.urn not in recorder.changes])
    if recorder.targets is not None:
        # `pulumi up --target` deletes only targeted resources; the others stay in the state.
        untargeted = {r.urn for r in gone if r.type != PROVIDER_TYPE and r.urn not in recorder.targets}
        for record in [r for r in gone if r.urn in untargeted]:
            recorder._keep(record, SKIPPED)
        gone = [r for r in gone if r.urn not in untargeted]
    for record in gone:
        # Providers, components and stack references hold nothing in AWS: the engine only
        # forgets them.
        if record.custom and record.type not in (PROVIDER_TYPE, STACK_REFERENCE_TYPE):
            converging(backend).delete(record)
        recorder.changes[record.urn] = DELETED
    return gone


def state_export(run: LayerRun) -> dict[str, Any]:
    """``run`` as ``pulumi stack export`` prints the stack's state (version 3): each
    resource's URN, type, custom flag, id, inputs, outputs, parent and provider reference
    ("<provider URN>::<provider id>"). Values are as recorded (assets stay objects)."""
    provider_ids = {r.urn: r.id for r in run.resources if r.type == PROVIDER_TYPE}
    resources = []
    for r in run.resources:
        entry: dict[str, Any] = {"urn": r.urn, "type": r.type, "custom": r.custom, "id": r.id,
                                 "inputs": r.inputs, "outputs": r.outputs}
        if r.parent_urn:
            entry["parent"] = r.parent_urn
        if r.provider_urn:
            entry["provider"] = f"{r.provider_urn}::{provider_ids.get(r.provider_urn, '')}"
        resources.append(entry)
    return {"version": 3, "deployment": {"resources": resources}}


def destroy_order(run: LayerRun) -> list[ResourceRecord]:
    """The order ``pulumi destroy`` deletes the run's resources in.

    The engine deletes a resource only after everything that depends on it: the resources
    that name it in ``depends_on`` or take one of its outputs (``dependencies``), its
    children, and the resources it is the provider of. Any order that respects that is one
    the engine may take; this is the reverse of the registration order restricted to it.
    """
    return _reverse_dependency_order(run.resources)


def _reverse_dependency_order(records: list[ResourceRecord]) -> list[ResourceRecord]:
    """``records`` with every resource after all those of ``records`` that depend on it."""
    by_urn = {r.urn: r for r in records}
    dependents: dict[str, set[str]] = {urn: set() for urn in by_urn}
    for record in records:
        for upstream in (*record.dependencies, record.parent_urn, record.provider_urn):
            if upstream in dependents and upstream != record.urn:
                dependents[upstream].add(record.urn)
    deleted: list[ResourceRecord] = []
    done: set[str] = set()
    pending = [r.urn for r in reversed(records)]
    while pending:
        ready = [urn for urn in pending if dependents[urn] <= done]
        if not ready:
            raise AssertionError(f"dependency cycle among {sorted(pending)}")
        for urn in ready:
            deleted.append(by_urn[urn])
            done.add(urn)
        pending = [urn for urn in pending if urn not in done]
    return deleted


def _resolve_exports(outputs: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    resolved: dict[str, Any] = {}
    secrets: set[str] = set()

    async def resolve_all() -> None:
        for key, value in outputs.items():
            out = pulumi.Output.from_input(value)
            resolved[key] = await out.future()
            if await out.is_secret():
                secrets.add(key)

    _sync_await(resolve_all())
    return resolved, secrets


def run_all(
    config: Mapping[str, Any] | None = None,
    *,
    stack: str = "dev",
    organization: str = "organization",
    layer_config: Mapping[str, Mapping[str, Any]] | None = None,
    backend: Backend | None = None,
    layers: Iterable[str] = LAYERS,
    previous: Mapping[str, LayerRun] | None = None,
    refresh: Iterable[str] = (),
    targets: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, LayerRun]:
    """Run the layers in dependency order, each seeing the others' real exports.

    ``config`` goes to every layer that declares the key, ``layer_config`` to one layer
    (see ``layer_configs``).

    ``previous`` (runs by layer, for example an earlier ``run_all``) converges: each layer
    that has a previous run is re-run against it (``run_layer(previous=...)``), and the
    layers of ``previous`` not among ``layers`` are left alone, their exports still read
    by the layers that are run. So ``layers=("secondary-db", "dns-failover")`` updates
    those two without running, or calling the backend for, the layers below them.
    ``refresh`` names the layers re-run with ``refresh=True``, ``targets`` maps a layer to
    its ``targets`` (see ``run_layer``).
    """
    backend = backend or SyntheticBackend()
    runs: dict[str, LayerRun] = {}
    previous = previous or {}
    layers = list(layers)
    refresh, targets = set(refresh), dict(targets or {})
    unknown = sorted((refresh | set(targets)) - set(layers))
    if unknown:
        raise ValueError(f"refresh/targets name layers that are not run: {', '.join(unknown)}")
    upstream: dict[str, dict[str, Any]] = {}
    for layer, run in previous.items():
        prior = DictSource(layer_configs(config or {}, {}, [layer])[layer], stack=stack,
                           organization=organization)
        upstream[stack_reference_name(load_common(prior), layer)] = run.exports
    configs = layer_configs(config or {}, layer_config or {}, layers)
    for layer in layers:
        merged = configs[layer]
        run = run_layer(layer, merged, stack=stack, organization=organization,
                        upstream=upstream, backend=backend, previous=previous.get(layer),
                        refresh=layer in refresh, targets=targets.get(layer))
        runs[layer] = run
        common = load_common(DictSource(merged, stack=stack, organization=organization))
        upstream[stack_reference_name(common, layer)] = run.exports
    return runs


def layer_configs(config: Mapping[str, Any], layer_config: Mapping[str, Mapping[str, Any]],
                  layers: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each layer's stack config from config for several layers and config for one.

    A key of ``config`` goes to every layer among ``layers`` that reads it (its
    Pulumi.yaml declares it, or it is of another namespace such as aws:region); a key
    of ``layer_config[layer]`` must be one ``layer`` reads. ConfigError otherwise, naming
    the key (``<layer>/<key>`` for one layer's) and the nearest declared one.
    """
    layers = list(layers)
    configs: dict[str, dict[str, Any]] = {layer: {} for layer in layers}
    for key, value in config.items():
        for layer in accepting_layers(key, layers):
            configs[layer][key] = value
    for layer, values in layer_config.items():
        for key, value in values.items():
            check_declared(layer, key, shown=f"{layer}/{key}")
            if layer in configs:
                configs[layer][key] = value
    return configs
