"""IAM policy documents as plain JSON, built in one place.

Documents are rendered with ``json.dumps`` (no ``getPolicyDocument`` invoke), so
they are visible to the policy rules offline exactly as AWS will receive them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi


def assume_role_policy(service: str, source_account: pulumi.Input[str] | None = None
                       ) -> pulumi.Output[str]:
    """Trust policy for one AWS service principal, confined to our account if given.

    ``aws:SourceAccount`` guards against the confused-deputy problem for service
    roles (IAM User Guide, "The confused deputy problem").
    """

    def render(account: str | None) -> str:
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        }
        if account:
            statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    return pulumi.Output.from_input(source_account).apply(render)


def statement(actions: Sequence[str], resources: Sequence[str], sid: str | None = None,
              condition: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"Effect": "Allow", "Action": list(actions), "Resource": list(resources)}
    if sid:
        out["Sid"] = sid
    if condition:
        out["Condition"] = condition
    return out


def statement_on(actions: Sequence[str], resource: pulumi.Input[str], sid: str,
                 condition: dict[str, Any] | None = None) -> pulumi.Output[dict[str, Any]]:
    """``statement`` on one resource whose ARN may not be known yet."""
    return pulumi.Output.from_input(resource).apply(
        lambda arn: statement(actions, [arn], sid=sid, condition=condition)
    )


def policy_document(statements: Sequence[pulumi.Input[dict[str, Any]]]) -> pulumi.Output[str]:
    """A policy document whose statements may hold Outputs (ARNs of other resources)."""
    return pulumi.Output.all(*statements).apply(
        lambda resolved: json.dumps({"Version": "2012-10-17", "Statement": list(resolved)})
    )
