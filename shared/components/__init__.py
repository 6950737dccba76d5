"""Building blocks used by more than one layer.

Each is a typed ComponentResource (dataclass args, children parented to the
component, ``register_outputs`` last) or a small pure helper. Create a
component with ``opts=pulumi.ResourceOptions(providers=[regional_provider])``
so every child inherits that region's provider.
"""

from shared.components.alarms import (
    PRIMARY_EVENT_CATEGORIES,
    REPLICA_EVENT_CATEGORIES,
    DatabaseAlarms,
    DatabaseAlarmsArgs,
    connections_alarm,
    cpu_alarm,
    free_storage_alarm,
    freeable_memory_alarm,
    replica_lag_alarm,
)
from shared.components.foundation import DatabaseFoundation, DatabaseFoundationArgs
from shared.components.inputs import account_context, gated, network_inputs
from shared.components.postgres import DbLogGroups, InstanceBaseline, hardened_instance_args

__all__ = [
    "PRIMARY_EVENT_CATEGORIES",
    "REPLICA_EVENT_CATEGORIES",
    "DatabaseAlarms",
    "DatabaseAlarmsArgs",
    "DatabaseFoundation",
    "DatabaseFoundationArgs",
    "DbLogGroups",
    "InstanceBaseline",
    "account_context",
    "connections_alarm",
    "cpu_alarm",
    "free_storage_alarm",
    "freeable_memory_alarm",
    "gated",
    "hardened_instance_args",
    "network_inputs",
    "replica_lag_alarm",
]
