"""Hold a VPC function's execution role until Lambda has released its network interfaces.

Lambda deletes a VPC function's network interfaces (Hyperplane ENIs, one per subnet and
security-group combination) asynchronously after the function is gone, and it does so with
the function's execution role ("To delete unused network interfaces, the Lambda service uses
the execution role of the function that created the network interface", AWS Knowledge
Center, "Why can't I detach or delete an elastic network interface that Lambda created?").
Pulumi deletes the role seconds after the function; the interfaces then stay in use, and the
network layer's security-group and subnet deletes wait and fail (FIELD-NOTES 31).

``LambdaInterfaceDrain`` sits between them in the dependency graph: it depends on the role
and its policy, and the function depends on it. Pulumi destroys in reverse dependency order,
so the function goes first, then this resource, whose delete waits until no Lambda interface
of the function's subnets and security groups is left, and only then the policy and the
role. An interface Lambda has already detached ("available") is deleted here, as the
Terraform AWS provider does for lingering Lambda interfaces when it deletes a security group
or subnet (internal/service/ec2, deleteLingeringLambdaENI). Creating it calls nothing.

Why not ``replace_security_groups_on_destroy`` (still in pulumi-aws 7 / Terraform AWS
provider v6, where the delete first moves the function to replacement security groups, waits
for the update, then deletes it): it frees the security groups only. The interfaces still
sit in the function's subnets and VPC, Lambda still needs the execution role to delete them,
and the swap makes Lambda create interfaces for the replacement group during the destroy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

# The description Lambda gives its interfaces ("AWS Lambda VPC ENI-<function>-<id>"), the
# same prefix the Terraform AWS provider matches; newer ones also say InterfaceType "lambda".
LAMBDA_INTERFACE_DESCRIPTION_PREFIX = "AWS Lambda VPC ENI"
LAMBDA_INTERFACE_TYPE = "lambda"
# The Lambda service team's P99 for deleting its interfaces is about 35 minutes; the
# Terraform AWS provider waits at least 45 for them, and so does this.
RELEASE_TIMEOUT_SECONDS = 45 * 60
POLL_SECONDS = 20
_GONE_CODES = ("InvalidNetworkInterfaceID.NotFound",)


def lambda_interfaces(ec2: Any, subnet_ids: Sequence[str], security_group_ids: Sequence[str]
                      ) -> list[dict[str, Any]]:
    """Lambda's interfaces in these subnets that carry one of these security groups."""
    filters = [{"Name": "subnet-id", "Values": list(subnet_ids)}]
    if security_group_ids:
        filters.append({"Name": "group-id", "Values": list(security_group_ids)})
    found = []
    for page in ec2.get_paginator("describe_network_interfaces").paginate(Filters=filters):
        for interface in page["NetworkInterfaces"]:
            if (interface.get("InterfaceType") == LAMBDA_INTERFACE_TYPE or str(
                    interface.get("Description", "")).startswith(LAMBDA_INTERFACE_DESCRIPTION_PREFIX)):
                found.append(interface)
    return found


def drain_lambda_interfaces(ec2: Any, subnet_ids: Sequence[str], security_group_ids: Sequence[str],
                            *, timeout_seconds: float = RELEASE_TIMEOUT_SECONDS,
                            poll_seconds: float = POLL_SECONDS,
                            sleep: Callable[[float], None] = time.sleep,
                            clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Wait until no Lambda interface is left; delete the ones Lambda has detached.

    Returns the ids deleted here. Raises ``TimeoutError`` naming the interfaces still in use,
    so the destroy stops with the role in place and can simply be run again.
    """
    from botocore.exceptions import ClientError

    deadline = clock() + timeout_seconds
    deleted: list[str] = []
    while True:
        interfaces = lambda_interfaces(ec2, subnet_ids, security_group_ids)
        if not interfaces:
            return deleted
        for interface in interfaces:
            if interface.get("Status") != "available":
                continue
            interface_id = interface["NetworkInterfaceId"]
            try:
                ec2.delete_network_interface(NetworkInterfaceId=interface_id)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _GONE_CODES:
                    raise
            deleted.append(interface_id)
        in_use = sorted(i["NetworkInterfaceId"] for i in interfaces if i.get("Status") != "available")
        if not in_use:
            return deleted
        if clock() >= deadline:
            raise TimeoutError(
                f"Lambda has not released network interfaces {', '.join(in_use)} after "
                f"{timeout_seconds:.0f} s; the function's execution role is kept so Lambda can "
                "still delete them. Run the destroy again later."
            )
        sleep(poll_seconds)


class LambdaInterfaceDrainProvider(ResourceProvider):
    """Create records the function's network placement; delete drains its interfaces."""

    # Nothing secret is captured: the provider need not be stored as a secret.
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['functionName']}-interfaces", outs=_outputs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Never replaced: a replacement's delete would wait for interfaces the (unchanged)
        # function still uses.
        return DiffResult(changes=_outputs(olds) != _outputs(news), replaces=[],
                          delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_outputs(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        import boto3

        ec2 = boto3.client("ec2", region_name=props["region"])
        drain_lambda_interfaces(ec2, props["subnetIds"], props["securityGroupIds"],
                                timeout_seconds=float(props["timeoutSeconds"]))


def _outputs(props: dict[str, Any]) -> dict[str, Any]:
    return {key: props[key] for key in
            ("functionName", "region", "subnetIds", "securityGroupIds", "timeoutSeconds")}


class LambdaInterfaceDrain(pulumi.dynamic.Resource, module="lambda", name="InterfaceDrain"):
    """Holds what it depends on (the execution role) until the function's interfaces are gone.

    Give it ``depends_on=[role, role policy]`` and make the function depend on it.
    """

    def __init__(self, name: str, *, function_name: str, region: pulumi.Input[str],
                 subnet_ids: pulumi.Input[Sequence[str]],
                 security_group_ids: pulumi.Input[Sequence[str]],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            LambdaInterfaceDrainProvider(), name,
            {"functionName": function_name, "region": region, "subnetIds": subnet_ids,
             "securityGroupIds": security_group_ids,
             "timeoutSeconds": RELEASE_TIMEOUT_SECONDS},
            opts,
        )
