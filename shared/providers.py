"""One explicit AWS provider per region, carrying the default tags.

Every AWS resource in this project is created with ``opts=...provider=...`` (or
under a component whose ``providers`` carry it): nothing may fall back to the
ambient default provider, whose region would come from whatever the operator's
shell happens to say. The offline plan fails any resource without an explicit
provider.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from shared.config import CommonSettings
from shared.tags import standard_tags


@dataclass(frozen=True)
class RegionalProviders:
    """The primary- and secondary-region providers of one layer."""

    primary: aws.Provider
    secondary: aws.Provider
    primary_region: str
    secondary_region: str

    def opts(self, role: str, **kwargs) -> pulumi.ResourceOptions:
        """Resource options pinned to the ``role`` ("primary"/"secondary") provider."""
        return pulumi.ResourceOptions(provider=self.for_role(role), **kwargs)

    def invoke_opts(self, role: str) -> pulumi.InvokeOptions:
        return pulumi.InvokeOptions(provider=self.for_role(role))

    def for_role(self, role: str) -> aws.Provider:
        if role == "primary":
            return self.primary
        if role == "secondary":
            return self.secondary
        raise ValueError(f"unknown region role {role!r}: expected 'primary' or 'secondary'")

    def region(self, role: str) -> str:
        self.for_role(role)
        return self.primary_region if role == "primary" else self.secondary_region


def regional_providers(common: CommonSettings, layer: str, deployment_id: pulumi.Input[str]
                       ) -> RegionalProviders:
    tags = aws.ProviderDefaultTagsArgs(tags=standard_tags(common, layer, deployment_id))
    namer = common.namer

    def provider(role: str, region: str) -> aws.Provider:
        return aws.Provider(
            namer.logical("aws", role),
            region=region,
            default_tags=tags,
        )

    return RegionalProviders(
        primary=provider("primary", common.primary_region),
        secondary=provider("secondary", common.secondary_region),
        primary_region=common.primary_region,
        secondary_region=common.secondary_region,
    )
