"""An encrypted SNS topic that alarms and AWS services of this account publish to."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from shared.naming import Namer

# Service principals that deliver alerts to our topics: CloudWatch alarms, EventBridge
# rules and RDS event subscriptions (RDS User Guide, "Granting permissions to publish
# notifications to an Amazon SNS topic").
SNS_PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com")


@dataclass
class AlertTopicArgs:
    namer: Namer
    topic_base: str  # catalogued SNS topic base, e.g. "db-alerts-primary"
    kms_key_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    email: str | None = None
    publishers: Sequence[str] = field(default_factory=lambda: list(SNS_PUBLISHERS))


class AlertTopic(pulumi.ComponentResource):
    """SNS topic encrypted with a CMK, publishable only by our account's services."""

    topic: aws.sns.Topic
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: AlertTopicArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:shared:AlertTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic_name = args.namer.name(args.topic_base)
        self.topic = aws.sns.Topic(
            topic_name,
            name=topic_name,
            kms_master_key_id=args.kms_key_arn,
            opts=child,
        )
        aws.sns.TopicPolicy(
            topic_name,
            arn=self.topic.arn,
            policy=pulumi.Output.all(self.topic.arn, args.account_id).apply(
                lambda values: _topic_policy(values[0], values[1], args.publishers)
            ),
            opts=child,
        )
        if args.email:
            # E-mail subscriptions stay "pending confirmation" until the recipient clicks
            # the link AWS sends; nothing is delivered before that.
            aws.sns.TopicSubscription(
                args.namer.logical(args.topic_base, "email"),
                topic=self.topic.arn,
                protocol="email",
                endpoint=args.email,
                opts=child,
            )
        self.arn = self.topic.arn
        self.register_outputs({"topicArn": self.topic.arn})


def _topic_policy(topic_arn: str, account_id: str, publishers: Sequence[str]) -> str:
    # aws:SourceAccount keeps other accounts' alarms and rules from using these service
    # principals to publish here (confused deputy). Principals of this account keep the
    # access their IAM policies give them.
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ThisAccountsServicesPublish",
            "Effect": "Allow",
            "Principal": {"Service": sorted(publishers)},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }],
    })
