"""What a config change changes: two syntheses of the same layers, compared resource by resource.

``make plan`` with ``--config`` overrides also synthesizes the baseline (same suffix,
regions and layers, without the overrides) and reports, per layer, which resources the
overrides would create, delete or change, with each one's type, logical name and region.
Resources are matched by URN and compared as a ``pulumi up`` of the new program against
the baseline's state would compare them (``offline.harness.changed_inputs``), so this is
the offline answer to "what does converging the layers touch, and where".

"Where" has two parts: the region the resource lives in, and the region of the API
endpoint its change goes through. They differ for global services: a Route 53 record of
the secondary region's provider is changed through route53.amazonaws.com, in us-east-1
(``offline.emulator.endpoint_region``), so with a us-east-1 primary a converge that
touches no primary-region resource still needs an API the outage may have taken down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from offline.emulator import endpoint_region
from offline.harness import (
    CREATED,
    DELETED,
    STACK_REFERENCE_TYPE,
    UPDATED,
    LayerRun,
    ResourceRecord,
    changed_inputs,
    property_values,
)

# Summary marks, as `pulumi preview` shows them.
MARKS = {CREATED: "+", UPDATED: "~", DELETED: "-"}


@dataclass(frozen=True)
class ResourceChange:
    """One resource a config change creates, deletes or changes (inputs differ)."""

    action: str  # CREATED, UPDATED or DELETED (offline.harness)
    layer: str
    type: str
    name: str
    urn: str
    region: str | None
    # Changed property -> (baseline value, new value), as compared (assets by content).
    properties: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    # The region of the API endpoint the change goes through (us-east-1 for Route 53), and
    # the global service that endpoint belongs to, if it is one (Route 53, IAM).
    api_region: str | None = None
    global_control_plane: str | None = None


def _held_in_aws(record: ResourceRecord) -> bool:
    # Component resources and stack references hold nothing in AWS and the engine never
    # calls a provider for them, so they cannot be created, changed or deleted anywhere.
    # Providers can: a changed provider changes every resource it manages.
    return record.custom and record.type != STACK_REFERENCE_TYPE


def diff_layer(before: LayerRun, after: LayerRun) -> list[ResourceChange]:
    """``after``'s resources against ``before``'s: deletions (in ``before``'s order), then
    creations and changes (in ``after``'s order)."""
    old = {r.urn: r for r in before.resources if _held_in_aws(r)}
    new = {r.urn: r for r in after.resources if _held_in_aws(r)}
    changes = [_change(DELETED, record) for urn, record in old.items() if urn not in new]
    for urn, record in new.items():
        prior = old.get(urn)
        if prior is None:
            changes.append(_change(CREATED, record))
            continue
        changed = changed_inputs(prior, record)
        if changed:
            was, now = property_values(prior), property_values(record)
            changes.append(_change(UPDATED, record, {k: (was.get(k), now.get(k)) for k in changed}))
    return changes


def diff_runs(before: Mapping[str, LayerRun], after: Mapping[str, LayerRun]
              ) -> dict[str, list[ResourceChange]]:
    """Per layer of ``after`` (in its order), what changes against ``before``."""
    missing = [layer for layer in after if layer not in before]
    if missing:
        raise ValueError(f"no baseline run of {', '.join(missing)} to compare with")
    return {layer: diff_layer(before[layer], run) for layer, run in after.items()}


def _change(action: str, record: ResourceRecord,
            properties: dict[str, tuple[Any, Any]] | None = None) -> ResourceChange:
    region = record.target_region
    return ResourceChange(action=action, layer=record.layer, type=record.type, name=record.name,
                          urn=record.urn, region=region, properties=dict(properties or {}),
                          api_region=api_region(record.type, region),
                          global_control_plane=global_control_plane(record.type, region))


def _module(resource_type: str) -> str | None:
    # The pulumi-aws module of a type token ("aws:route53/record:Record" -> "route53") is the
    # AWS service's endpoint name for the global services (route53, iam).
    return resource_type.split(":")[1].split("/")[0] if resource_type.startswith("aws:") else None


def api_region(resource_type: str, region: str | None) -> str | None:
    """The region of the endpoint a change of a ``resource_type`` resource of ``region`` goes
    to: ``region`` itself, except for a global service (``endpoint_region``)."""
    module = _module(resource_type)
    return region if region is None or module is None else endpoint_region(module, region)


# How the report names the global services (FIELD-NOTES 25: their control planes live in
# one region of the partition, us-east-1 in the commercial one, us-gov-west-1 in GovCloud).
GLOBAL_CONTROL_PLANES = {"route53": "Route 53", "iam": "IAM"}


def global_control_plane(resource_type: str, region: str | None = None) -> str | None:
    """The global service a change of ``resource_type`` calls (one API endpoint per
    partition, whatever region its provider names), if any."""
    module = _module(resource_type)
    probe = region or "us-west-2"
    if module is None or endpoint_region(module, probe) == probe:
        return None
    return GLOBAL_CONTROL_PLANES.get(module, module)


def regions_touched(changes: Mapping[str, list[ResourceChange]]) -> dict[str | None, int]:
    """How many created, deleted or changed resources each region holds."""
    counts: dict[str | None, int] = {}
    for layer_changes in changes.values():
        for change in layer_changes:
            counts[change.region] = counts.get(change.region, 0) + 1
    return counts


