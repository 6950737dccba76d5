"""One explicit AWS provider per region, carrying the default tags.

Every AWS resource in this project is created with ``opts=...provider=...`` (or
under a component whose ``providers`` carry it): nothing may fall back to the
ambient default provider, whose region would come from whatever the operator's
shell happens to say. The offline plan fails any resource without an explicit
provider. A layer declares only the regions it builds in.

The primary region's provider is built to survive that region's loss. By default
configuring an AWS provider costs two API calls in the provider's own region
(credential validation and the account-ID lookup, both STS GetCallerIdentity), so
a provider for a region that is down fails every ``pulumi up`` of a layer that
declares it, even one that changes nothing there: exactly the converge after a
regional failover (RUNBOOK.md section 2). The primary provider skips both, and
calls AWS only when a resource in that region needs it. Credentials are still
checked up front: by the secondary provider, and by ``make deploy``/``make
converge`` preflight (STS in the secondary region).

Skipping the account-ID lookup has one documented cost: for a listed set of
resource types (``ACCOUNT_BUILT_ARN_TYPES`` below, from the Terraform AWS
provider's ``skip_requesting_account_id`` documentation) the provider builds the
``arn`` attribute itself and leaves the account out. The secondary provider keeps
the lookup because it holds such a resource whose ARN a policy grants on (the
promoter's arming parameter); on the primary provider only VPC flow logs are of
such a type, and nothing reads their ARN (tests/unit/test_providers.py holds
both facts). Region validation is left at pulumi-aws's default (skipped): it is a
static check of the name, never a call, and ``shared/config.py`` already checks both
regions against botocore's endpoint data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from shared.config import CommonSettings
from shared.tags import standard_tags

ROLES = ("primary", "secondary")

# Resource types (pulumi-aws tokens) of the project's kind whose ``arn`` the provider
# builds from its own account ID, so that ``skip_requesting_account_id`` leaves the
# account empty: the subset of the Terraform AWS provider's list (website/docs/index.html.markdown,
# ``skip_requesting_account_id``) that this project could plausibly declare.
ACCOUNT_BUILT_ARN_TYPES = frozenset({
    "aws:ec2/flowLog:FlowLog",
    "aws:ec2/instance:Instance",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:efs/fileSystem:FileSystem",
    "aws:elasticache/cluster:Cluster",
    "aws:ssm/document:Document",
    "aws:ssm/parameter:Parameter",
})


@dataclass(frozen=True)
class RegionalProviders:
    """The providers of one layer, by region role ("primary"/"secondary")."""

    by_role: dict[str, aws.Provider]
    regions: dict[str, str] = field(default_factory=dict)

    @property
    def primary(self) -> aws.Provider:
        return self.for_role("primary")

    @property
    def secondary(self) -> aws.Provider:
        return self.for_role("secondary")

    def opts(self, role: str, **kwargs) -> pulumi.ResourceOptions:
        """Resource options pinned to the ``role`` ("primary"/"secondary") provider."""
        return pulumi.ResourceOptions(provider=self.for_role(role), **kwargs)

    def invoke_opts(self, role: str) -> pulumi.InvokeOptions:
        return pulumi.InvokeOptions(provider=self.for_role(role))

    def for_role(self, role: str) -> aws.Provider:
        if role not in ROLES:
            raise ValueError(f"unknown region role {role!r}: expected 'primary' or 'secondary'")
        if role not in self.by_role:
            raise ValueError(f"this layer declares no {role}-region provider "
                             f"(it builds in: {', '.join(self.by_role)})")
        return self.by_role[role]

    def region(self, role: str) -> str:
        self.for_role(role)
        return self.regions[role]


def regional_providers(common: CommonSettings, layer: str, deployment_id: pulumi.Input[str],
                       roles: Sequence[str] = ROLES) -> RegionalProviders:
    """The providers for ``roles`` (both regions unless the layer builds in fewer)."""
    tags = aws.ProviderDefaultTagsArgs(tags=standard_tags(common, layer, deployment_id))
    namer = common.namer
    regions = {"primary": common.primary_region, "secondary": common.secondary_region}
    unknown = [role for role in roles if role not in ROLES]
    if unknown or not roles:
        raise ValueError(f"roles must be a non-empty subset of {ROLES}, not {tuple(roles)}")

    def provider(role: str) -> aws.Provider:
        # See the module docstring: the primary provider makes no call at configure time.
        survives_own_region = role == "primary"
        return aws.Provider(
            namer.logical("aws", role),
            region=regions[role],
            default_tags=tags,
            skip_credentials_validation=survives_own_region,
            skip_requesting_account_id=survives_own_region,
        )

    return RegionalProviders(by_role={role: provider(role) for role in roles},
                             regions={role: regions[role] for role in roles})
