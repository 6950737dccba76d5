"""A scheduled Lambda function with its own log group, role and least-privilege policy.

The canary and the promoter share this shape: a single-file Python handler, a log group
declared (with retention and a KMS key) before the function so Lambda never creates an
unmanaged one, an execution role whose inline policy can write only that log group plus
what the caller adds, and an EventBridge rule that runs the function every minute.

A function given subnets runs in a VPC: its role also gets the network-interface
permissions Lambda needs, scoped to those subnets and security groups, and a
``LambdaInterfaceDrain`` keeps the role until Lambda has released the interfaces on destroy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from shared import iam
from shared.components.lambda_interfaces import LambdaInterfaceDrain
from shared.naming import Namer

LAMBDAS_DIR = Path(__file__).resolve().parent / "lambdas"
# Lambda.2 (FSBP): a supported runtime; the handlers use the standard library and boto3 only.
RUNTIME = "python3.13"
EVERY_MINUTE = "rate(1 minute)"


def handler_archive(module: str) -> pulumi.AssetArchive:
    """The handler's source files, alone in the archive (no __pycache__, no tests).

    ``lambdas/<module>/<module>.py`` is the entry point; its siblings are the modules it
    imports (the Lambda runtime puts the archive's root on the import path).
    """
    sources = sorted((LAMBDAS_DIR / module).glob("*.py"))
    return pulumi.AssetArchive({path.name: pulumi.FileAsset(str(path)) for path in sources})


@dataclass
class VpcPlacement:
    """Where a VPC function's network interfaces go, and the account they belong to.

    The account and partition are passed in, not looked up through the function's own
    provider: a lookup through the primary region's provider would need that region's
    APIs on every `pulumi up`, also while it is down.
    """

    region: str
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_ids: pulumi.Input[Sequence[str]]


@dataclass
class FailoverFunctionArgs:
    base: str  # catalogued name base, e.g. "db-canary"; the role and schedule add suffixes
    module: str  # lambdas/<module>/<module>.py with a handler() function
    description: str
    environment: Mapping[str, pulumi.Input[str]]
    timeout_seconds: int
    memory_mb: int
    log_retention_days: int
    # The key of the function's region that encrypts its log group (a database layer's key,
    # whose policy names this log group: shared.naming.FAILOVER_FUNCTION_BASES).
    log_group_kms_key_arn: pulumi.Input[str]
    namer: Namer
    policy_statements: Sequence[pulumi.Input[dict[str, Any]]] = field(default_factory=list)
    vpc: VpcPlacement | None = None  # None: outside any VPC
    # None leaves the function on the account's unreserved pool.
    reserved_concurrency: int | None = None


class FailoverFunction(pulumi.ComponentResource):
    """One Lambda function of the failover machinery, run every minute by EventBridge."""

    log_group: aws.cloudwatch.LogGroup
    role: aws.iam.Role
    function: aws.lambda_.Function
    schedule: aws.cloudwatch.EventRule

    def __init__(self, name: str, args: FailoverFunctionArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("rdsfailover:dns:FailoverFunction", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = args.namer
        self._namer, self._base = namer, args.base
        function_name = namer.name(args.base)

        self.log_group = aws.cloudwatch.LogGroup(
            namer.logical(args.base, "logs"),
            name=namer.lambda_log_group(args.base),
            retention_in_days=args.log_retention_days,
            kms_key_id=args.log_group_kms_key_arn,
            opts=child,
        )
        role_name = namer.name(f"{args.base}-role")
        # Lambda assumes an execution role only for functions of the account that passed it
        # (iam:PassRole does not cross accounts), so the trust needs no source condition.
        self.role = aws.iam.Role(
            role_name,
            name=role_name,
            description=f"Execution role of {function_name}",
            assume_role_policy=iam.assume_role_policy("lambda.amazonaws.com"),
            opts=child,
        )
        vpc = args.vpc
        policy = aws.iam.RolePolicy(
            namer.logical(args.base, "policy"),
            role=self.role.id,
            policy=iam.policy_document([
                self.log_group.arn.apply(lambda arn: iam.statement(
                    ["logs:CreateLogStream", "logs:PutLogEvents"], [arn, f"{arn}:*"],
                    sid="WriteOwnLogGroup",
                )),
                *(vpc_interface_statements(vpc) if vpc else []),
                *args.policy_statements,
            ]),
            opts=child,
        )

        vpc_config = None
        function_waits_for: list[pulumi.Resource] = [self.log_group, policy]
        if vpc:
            vpc_config = aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=vpc.subnet_ids, security_group_ids=vpc.security_group_ids,
            )
            # Destroyed after the function and before the role and its policy: its delete
            # waits until Lambda has released the function's network interfaces, which
            # Lambda can only do while the role still grants it the EC2 calls.
            function_waits_for.append(LambdaInterfaceDrain(
                namer.logical(args.base, "interface-drain"),
                function_name=function_name,
                region=vpc.region,
                subnet_ids=vpc.subnet_ids,
                security_group_ids=vpc.security_group_ids,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role, policy]),
            ))
        self.function = aws.lambda_.Function(
            function_name,
            name=function_name,
            description=args.description,
            role=self.role.arn,
            runtime=RUNTIME,
            handler=f"{args.module}.handler",
            code=handler_archive(args.module),
            architectures=["arm64"],
            timeout=args.timeout_seconds,
            memory_size=args.memory_mb,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=dict(args.environment)),
            vpc_config=vpc_config,
            reserved_concurrent_executions=args.reserved_concurrency,
            # The log group must exist with its retention before the first invocation, and the
            # role must already carry its policy (a VPC function needs the ENI permissions
            # at creation time).
            opts=pulumi.ResourceOptions(parent=self, depends_on=function_waits_for),
        )
        # A failed or late run is superseded by the next minute's run: retrying an old
        # trigger would only stack stale work behind fresh evidence.
        aws.lambda_.FunctionEventInvokeConfig(
            namer.logical(args.base, "async"),
            function_name=self.function.name,
            maximum_retry_attempts=0,
            maximum_event_age_in_seconds=60,
            opts=child,
        )

        schedule_name = namer.name(f"{args.base}-schedule")
        self.schedule = aws.cloudwatch.EventRule(
            schedule_name,
            name=schedule_name,
            description=f"Runs {function_name} every minute",
            schedule_expression=EVERY_MINUTE,
            opts=child,
        )
        permission = self.allow_invoke(
            "schedule", "events.amazonaws.com", self.schedule.arn,
        )
        aws.cloudwatch.EventTarget(
            namer.logical(args.base, "schedule-target"),
            rule=self.schedule.name,
            arn=self.function.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission]),
        )

        self.register_outputs({
            "functionName": self.function.name,
            "functionArn": self.function.arn,
            "logGroupName": self.log_group.name,
        })

    def allow_invoke(self, label: str, principal: str, source_arn: pulumi.Input[str],
                     opts: pulumi.ResourceOptions | None = None) -> aws.lambda_.Permission:
        """Let ``principal`` invoke the function, only on behalf of ``source_arn``."""
        base = pulumi.ResourceOptions(parent=self)
        return aws.lambda_.Permission(
            self._namer.logical(self._base, label, "invoke"),
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal=principal,
            source_arn=source_arn,
            opts=pulumi.ResourceOptions.merge(base, opts),
        )


def errors_alarm(function: FailoverFunction, name: str, description: str, *, period: int,
                 evaluation_periods: int, datapoints_to_alarm: int | None,
                 topic_arn: pulumi.Input[str], opts: pulumi.ResourceOptions
                 ) -> aws.cloudwatch.MetricAlarm:
    """An alarm on ``function``'s Lambda Errors that notifies ``topic_arn`` both ways.

    A period without any datapoint counts as failing (``breaching``): these functions run
    every minute, so silence means the schedule or Lambda is broken, and a function that
    does not run checks nothing.
    """
    return aws.cloudwatch.MetricAlarm(
        name,
        name=name,
        alarm_description=description,
        namespace="AWS/Lambda",
        metric_name="Errors",
        dimensions={"FunctionName": function.function.name},
        statistic="Sum",
        period=period,
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=datapoints_to_alarm,
        comparison_operator="GreaterThanThreshold",
        threshold=0,
        treat_missing_data="breaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        opts=opts,
    )


def vpc_interface_statements(vpc: VpcPlacement) -> list[pulumi.Output[dict[str, Any]]]:
    """What Lambda needs to manage a VPC function's interfaces, as narrow as EC2 allows.

    Lambda makes these calls with the execution role (Lambda Developer Guide, "Giving Lambda
    functions access to resources in an Amazon VPC", required IAM permissions). Scoping per
    the Service Authorization Reference (Amazon EC2, actions table):
    - CreateNetworkInterface authorizes the new interface (no ID before it exists, so
      ``network-interface/*``), the subnet and the security groups: those two are named.
    - DeleteNetworkInterface, AssignPrivateIpAddresses and UnassignPrivateIpAddresses
      authorize the interface, with the ``ec2:Subnet`` condition key (the subnet's ARN):
      only interfaces in the function's subnets.
    - DescribeNetworkInterfaces and DescribeSubnets support no resource-level permissions:
      "*", narrowed by ``ec2:Region``, the one condition key they take.
    ``lambda:SourceFunctionArn`` cannot narrow any of them: Lambda adds it only to calls from
    the execution environment and to its logging calls, not to the EC2 calls it makes to
    create interfaces (Lambda Developer Guide, "Using source function ARN to control function
    access behavior").
    """

    def arns(values: list[Any]) -> dict[str, list[str]]:
        part, reg, account, subnets, groups = values
        prefix = f"arn:{part}:ec2:{reg}:{account}"
        return {
            "interfaces": [f"{prefix}:network-interface/*"],
            "subnets": [f"{prefix}:subnet/{subnet}" for subnet in subnets],
            "groups": [f"{prefix}:security-group/{group}" for group in groups],
        }

    resolved = pulumi.Output.all(vpc.partition, vpc.region, vpc.account_id, vpc.subnet_ids,
                                 vpc.security_group_ids).apply(arns)
    return [
        resolved.apply(lambda r: iam.statement(
            ["ec2:CreateNetworkInterface"], r["interfaces"] + r["subnets"] + r["groups"],
            sid="CreateInterfacesInOwnSubnetsAndGroups",
        )),
        resolved.apply(lambda r: iam.statement(
            ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
             "ec2:UnassignPrivateIpAddresses"], r["interfaces"],
            sid="ManageInterfacesInOwnSubnets",
            condition={"ArnEquals": {"ec2:Subnet": r["subnets"]}},
        )),
        pulumi.Output.from_input(vpc.region).apply(lambda reg: iam.statement(
            ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], ["*"],
            sid="DescribeInterfacesInOwnRegion",
            condition={"StringEquals": {"ec2:Region": reg}},
        )),
    ]
