"""A customer-managed KMS key for one region: a database, log groups and alert topics.

KMS keys are regional, so each region that holds encrypted data gets its own
key (an encrypted cross-region replica must be given a key of its own region).
A key grants only the services it serves: RDS and topic publishers for a
database key, CloudWatch Logs (for named log groups) for any key that has them.
The key policy is explicit instead of the console default, so a reviewer can
see exactly which services may use the key and under which conditions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from shared.components.alerting import SNS_PUBLISHERS
from shared.naming import Namer

# Publishers whose calls to KMS on behalf of an encrypted topic carry aws:SourceAccount.
# EventBridge's do not: "Adding the aws:SourceAccount and aws:SourceArn to a AWS KMS policy
# is not supported for EventBridge-to-encrypted topics" (SNS Developer Guide, "Managing
# Amazon SNS encryption keys and costs"), so a condition would silently drop its events.
_PUBLISHERS_WITHOUT_SOURCE_KEYS = ("events.amazonaws.com",)

DELETION_WINDOW_DAYS = 7
# Cryptographic operations a service needs to encrypt and read back data with the key.
_DATA_ACTIONS = (
    "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
    "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey",
)


@dataclass
class EncryptionKeyArgs:
    namer: Namer
    alias_base: str  # catalogued KMS alias base, e.g. "rds-primary"
    region: str
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    description: str
    # Log group names (a trailing "*" allowed) whose data CloudWatch Logs may encrypt.
    log_group_patterns: Sequence[str] = ()
    # RDS storage, snapshots and Performance Insights of this account and region.
    for_rds: bool = True
    # Service principals that publish to topics encrypted with this key.
    topic_publishers: Sequence[str] = SNS_PUBLISHERS


def key_policy(region: str, account_id: str, partition: str,
               log_group_patterns: Sequence[str], for_rds: bool = True,
               topic_publishers: Sequence[str] = SNS_PUBLISHERS) -> str:
    """The key policy document (JSON) for one region's key."""
    statements: list[dict[str, Any]] = [
        {
            # AWS's default first statement: the account (through IAM policies) administers
            # and uses the key. Without it a key can become unmanageable (KMS Developer
            # Guide, "Default key policy"). In a key policy, Resource "*" means this key.
            "Sid": "AccountAdministersKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
    ]
    if for_rds:
        statements.append({
            # The statement AWS's own aws/rds key carries: principals of this account may
            # use the key only through RDS in this region (storage, snapshots, Performance
            # Insights, cross-region replica creation).
            "Sid": "RdsInThisRegionForThisAccount",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [*_DATA_ACTIONS, "kms:CreateGrant", "kms:ListGrants"],
            "Resource": "*",
            "Condition": {"StringEquals": {
                "kms:ViaService": f"rds.{region}.amazonaws.com",
                "kms:CallerAccount": account_id,
            }},
        })
    if log_group_patterns:
        statements.append({
            # CloudWatch Logs may use the key only for the named log groups of this account:
            # it passes the group's ARN as encryption context on every call (CloudWatch Logs
            # User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS"). It checks
            # this policy when a group is created or associated with the key, so the policy
            # (part of the key resource) must exist before any such group.
            "Sid": "CloudWatchLogsForOwnLogGroups",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": list(_DATA_ACTIONS),
            "Resource": "*",
            "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [
                f"arn:{partition}:logs:{region}:{account_id}:log-group:{pattern}"
                for pattern in log_group_patterns
            ]}},
        })
    # CloudWatch alarms, EventBridge and RDS event notifications publish to SNS topics
    # encrypted with this key; SNS needs these two calls on their behalf (SNS Developer
    # Guide, "Enable compatibility between event sources from AWS services and encrypted
    # topics"). Who may publish to which topic is limited by the topic policy.
    conditioned = sorted(set(topic_publishers) - set(_PUBLISHERS_WITHOUT_SOURCE_KEYS))
    unconditioned = sorted(set(topic_publishers) & set(_PUBLISHERS_WITHOUT_SOURCE_KEYS))
    if conditioned:
        # Only on behalf of this account's alarms and subscriptions (confused deputy, IAM
        # User Guide; KMS Developer Guide, "aws:SourceAccount").
        statements.append(_publish_statement(
            "ServicesPublishToEncryptedTopics", conditioned,
            {"StringEquals": {"aws:SourceAccount": account_id}}))
    if unconditioned:
        statements.append(_publish_statement("EventBridgePublishesToEncryptedTopics", unconditioned))
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _publish_statement(sid: str, principals: Sequence[str],
                       condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": list(principals)},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return statement


class EncryptionKey(pulumi.ComponentResource):
    """A symmetric CMK with yearly rotation, a 7-day deletion window and an alias."""

    key: aws.kms.Key
    alias: aws.kms.Alias
    arn: pulumi.Output[str]
    alias_name: str

    def __init__(self, name: str, args: EncryptionKeyArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:shared:EncryptionKey", name, None, opts)
        namer = args.namer
        self.alias_name = namer.kms_alias(args.alias_base)
        policy = pulumi.Output.all(args.account_id, args.partition).apply(
            lambda ids: key_policy(args.region, ids[0], ids[1], args.log_group_patterns,
                                   args.for_rds, args.topic_publishers)
        )
        self.key = aws.kms.Key(
            namer.name(args.alias_base),
            description=args.description,
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            enable_key_rotation=True,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.alias = aws.kms.Alias(
            namer.name(args.alias_base),
            name=self.alias_name,
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.key.arn
        self.register_outputs({"keyArn": self.key.arn, "aliasName": self.alias_name})
