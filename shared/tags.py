"""The one tag set every resource carries, applied as provider default tags."""

from __future__ import annotations

import pulumi

from shared.config import CommonSettings

REQUIRED_TAG_KEYS = ("Environment", "Project", "ManagedBy", "Layer", "DeploymentId")


def standard_tags(common: CommonSettings, layer: str, deployment_id: pulumi.Input[str]
                  ) -> dict[str, pulumi.Input[str]]:
    """Tags for every resource of ``layer`` (null-label style: same keys everywhere).

    ``DeploymentId`` is the network layer's random id: the suffix names a deployment,
    the id tells this deployment's resources from those of an earlier or parallel one
    that used the same suffix (cost reports, leftover sweeps after a failed teardown).
    """
    tags: dict[str, pulumi.Input[str]] = {
        "Environment": common.environment_suffix,
        "Project": common.project_tag,
        "ManagedBy": "pulumi",
        "Layer": layer,
        "DeploymentId": deployment_id,
    }
    if common.owner:
        tags["Owner"] = common.owner
    return tags
