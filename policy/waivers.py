"""Every exception to a policy rule, in one place, each with its reason.

Some security baselines conflict with what this project must do (the task
requires every resource to be destroyable by CI) or depend on a value the
operator chooses in configuration. Findings of those rules are not silently
passed: they are reported as WAIVED together with the reason below, in
``make plan`` output and as advisory messages of the CrossGuard pack.

A waiver applies only when its condition holds, so a waiver never hides a
different problem of the same rule (a primary with no backups at all is still
a violation of ``rds-primary-backups``, whatever the waivers say).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policy.props import UNKNOWN, get

if TYPE_CHECKING:  # only for annotations: rules imports this module lazily
    from policy.rules import Context


@dataclass(frozen=True)
class Waiver:
    rule_id: str
    condition: Callable[[str, Mapping[str, Any], Context], bool]
    reason: str


def _explicit(props: Mapping[str, Any], key: str) -> Any:
    """The value only if the program set it (absent: the AWS default, not a choice)."""
    return get(props, key) if key in props else None


def _is_replica(props: Mapping[str, Any]) -> bool:
    source = get(props, "replicateSourceDb")
    return source is UNKNOWN or bool(source)


def _short_backup_retention(resource_type: str, props: Mapping[str, Any], ctx: Context) -> bool:
    days = _explicit(props, "backupRetentionPeriod")
    return isinstance(days, (int, float)) and 1 <= days < 7


def _short_log_retention(resource_type: str, props: Mapping[str, Any], ctx: Context) -> bool:
    days = _explicit(props, "retentionInDays")
    return isinstance(days, (int, float)) and 1 <= days < 365


def _deletion_protection_off(resource_type: str, props: Mapping[str, Any], ctx: Context) -> bool:
    return get(props, "deletionProtection", False) is not True


def _replica(resource_type: str, props: Mapping[str, Any], ctx: Context) -> bool:
    return _is_replica(props)


def _multi_az_configured_off(resource_type: str, props: Mapping[str, Any], ctx: Context) -> bool:
    return _explicit(props, "multiAz") is False


WAIVERS: list[Waiver] = [
    Waiver(
        "rds-deletion-protection-baseline", _deletion_protection_off,
        "the task requires every resource to be destroyable by CI: deletion protection would "
        "make `pulumi destroy` fail (AWS FSBP RDS.8 waived; backups and the cross-region "
        "replica protect the data instead)",
    ),
    Waiver(
        "rds-backup-retention-week", _short_backup_retention,
        "backupRetentionDays is configured below 7 days (allowed range 1-35, default 7) for a "
        "short-lived environment; automated backups stay on, which is what the replica needs "
        "(AWS FSBP RDS.11's 7-day minimum waived only for such a configured value)",
    ),
    Waiver(
        "logs-retention-year", _short_log_retention,
        "log retention is configurable (flowLogRetentionDays, logRetentionDays; default 30 "
        "days) so destroyable environments stay cheap; raise it to 365 or more where logs are "
        "evidence (AWS FSBP CloudWatch.16 waived for configured values)",
    ),
    Waiver(
        "rds-multi-az", _replica,
        "the cross-region replica is itself the disaster-recovery copy; Multi-AZ for it is "
        "the secondary-db multiAz setting (default false), applied after promotion too",
    ),
    Waiver(
        "rds-multi-az", _multi_az_configured_off,
        "multiAz is explicitly configured off for this instance (the layer's multiAz setting; "
        "primary-db defaults to true): a cost choice for non-production environments (AWS "
        "FSBP RDS.5 waived)",
    ),
]


def waiver_for(rule_id: str, resource_type: str, props: Mapping[str, Any], ctx: Context
               ) -> Waiver | None:
    """The first waiver of ``rule_id`` whose condition holds for this resource."""
    for waiver in WAIVERS:
        if waiver.rule_id == rule_id and waiver.condition(resource_type, props, ctx):
            return waiver
    return None
