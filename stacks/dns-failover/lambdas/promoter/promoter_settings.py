"""The promoter's settings: its environment, read and checked once per invocation.

The dns-failover layer (automated_promotion.py) writes these variables; the names and
meanings are the interface between the two and are listed in promoter.py's docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promoter_decision import MODES

DEFAULT_RECOVERY_GRACE_SECONDS = 600
DEFAULT_MAX_PROMOTION_LAG_SECONDS = 300
# Lookback of the ReplicaLag series beyond the recovery grace: long enough that datapoints
# from before the failure are still in the window when the decision is finally taken.
LAG_LOOKBACK_MARGIN_SECONDS = 15 * 60
# The replica canary runs every minute and its log lines arrive within seconds: an
# observation older than this means it missed runs, and the witness counts as unknown.
WITNESS_MAX_AGE_SECONDS = 150


class ConfigError(ValueError):
    """An environment variable is missing or invalid."""


@dataclass(frozen=True)
class Settings:
    replica_identifier: str
    replica_region: str
    primary_identifier: str
    primary_region: str
    canary_alarm_name: str
    events_topic_arn: str
    arming_parameter_name: str
    ledger_table_name: str
    fence_namespace: str
    fence_metric: str
    witness_log_group: str
    automation_mode: str = "automatic"
    api_timeout_seconds: float = 5.0
    max_attempts: int = 2
    backup_retention_days: int = 7
    recovery_grace_seconds: int = DEFAULT_RECOVERY_GRACE_SECONDS
    max_promotion_lag_seconds: int = DEFAULT_MAX_PROMOTION_LAG_SECONDS
    claim_lease_seconds: int = 180

    @property
    def lag_lookback_seconds(self) -> int:
        return self.recovery_grace_seconds + LAG_LOOKBACK_MARGIN_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        def required(key: str) -> str:
            value = (environ.get(key) or "").strip()
            if not value:
                raise ConfigError(f"{key} is required")
            return value

        def number(key: str, default: float, low: float, high: float, kind: type) -> Any:
            raw = (environ.get(key) or "").strip()
            try:
                value = kind(raw) if raw else kind(default)
            except ValueError as bad:
                raise ConfigError(f"{key} must be a number, got {raw!r}") from bad
            if not low <= value <= high:
                raise ConfigError(f"{key} must be between {low} and {high}, got {value}")
            return value

        mode = (environ.get("AUTOMATION_MODE") or "automatic").strip()
        if mode not in MODES:
            raise ConfigError(f"AUTOMATION_MODE must be one of {', '.join(MODES)}, got {mode!r}")
        return cls(
            replica_identifier=required("REPLICA_IDENTIFIER"),
            replica_region=required("REPLICA_REGION"),
            primary_identifier=required("PRIMARY_IDENTIFIER"),
            primary_region=required("PRIMARY_REGION"),
            canary_alarm_name=required("CANARY_ALARM_NAME"),
            events_topic_arn=required("EVENTS_TOPIC_ARN"),
            arming_parameter_name=required("ARMING_PARAMETER_NAME"),
            ledger_table_name=required("LEDGER_TABLE_NAME"),
            fence_namespace=required("FENCE_NAMESPACE"),
            fence_metric=required("FENCE_METRIC"),
            witness_log_group=required("WITNESS_LOG_GROUP"),
            automation_mode=mode,
            api_timeout_seconds=number("API_TIMEOUT_SECONDS", 5, 0.1, 60, float),
            max_attempts=number("MAX_ATTEMPTS", 2, 1, 10, int),
            backup_retention_days=number("BACKUP_RETENTION_DAYS", 7, 1, 35, int),
            recovery_grace_seconds=number("RECOVERY_GRACE_SECONDS", DEFAULT_RECOVERY_GRACE_SECONDS,
                                          0, 3600, int),
            max_promotion_lag_seconds=number("MAX_PROMOTION_LAG_SECONDS",
                                             DEFAULT_MAX_PROMOTION_LAG_SECONDS, 1, 86400, int),
            claim_lease_seconds=number("CLAIM_LEASE_SECONDS", 180, 30, 3600, int),
        )
