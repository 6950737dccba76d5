"""Building blocks used by more than one layer.

Each is a typed ComponentResource (dataclass args, children parented to the
component, ``register_outputs`` last) or a small pure helper. Create a
component with ``opts=pulumi.ResourceOptions(providers=[regional_provider])``
so every child inherits that region's provider.
"""

from shared.components.alarms import (
    PRIMARY_EVENT_CATEGORIES,
    REPLICA_EVENT_CATEGORIES,
    AlarmSpec,
    DatabaseAlarms,
    DatabaseAlarmsArgs,
    connections_alarm,
    cpu_alarm,
    free_storage_alarm,
    freeable_memory_alarm,
    replica_lag_alarm,
)
from shared.components.alerting import SNS_PUBLISHERS, AlertTopic, AlertTopicArgs
from shared.components.encryption_key import EncryptionKey, EncryptionKeyArgs, key_policy
from shared.components.foundation import DatabaseFoundation, DatabaseFoundationArgs
from shared.components.inputs import (
    AccountContext,
    RegionalNetworkInputs,
    account_context,
    gated,
    network_inputs,
)
from shared.components.monitoring_role import EnhancedMonitoringRole, EnhancedMonitoringRoleArgs
from shared.components.postgres import (
    CA_CERTIFICATE_IDENTIFIER,
    LOG_EXPORTS,
    POSTGRES_PORT,
    DbLogGroups,
    DbLogGroupsArgs,
    InstanceBaseline,
    TlsParameterGroup,
    TlsParameterGroupArgs,
    hardened_instance_args,
    log_group_name,
    log_group_pattern,
)

__all__ = [
    "CA_CERTIFICATE_IDENTIFIER",
    "LOG_EXPORTS",
    "POSTGRES_PORT",
    "PRIMARY_EVENT_CATEGORIES",
    "REPLICA_EVENT_CATEGORIES",
    "SNS_PUBLISHERS",
    "AccountContext",
    "AlarmSpec",
    "AlertTopic",
    "AlertTopicArgs",
    "DatabaseAlarms",
    "DatabaseAlarmsArgs",
    "DatabaseFoundation",
    "DatabaseFoundationArgs",
    "DbLogGroups",
    "DbLogGroupsArgs",
    "EncryptionKey",
    "EncryptionKeyArgs",
    "EnhancedMonitoringRole",
    "EnhancedMonitoringRoleArgs",
    "InstanceBaseline",
    "RegionalNetworkInputs",
    "TlsParameterGroup",
    "TlsParameterGroupArgs",
    "account_context",
    "connections_alarm",
    "cpu_alarm",
    "free_storage_alarm",
    "freeable_memory_alarm",
    "gated",
    "hardened_instance_args",
    "key_policy",
    "log_group_name",
    "log_group_pattern",
    "network_inputs",
    "replica_lag_alarm",
]
