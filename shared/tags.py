"""The one tag set every resource carries, applied as provider default tags."""

from __future__ import annotations

from shared.config import CommonSettings

REQUIRED_TAG_KEYS = ("Environment", "Project", "ManagedBy", "Layer")


def standard_tags(common: CommonSettings, layer: str) -> dict[str, str]:
    """Tags for every resource of ``layer`` (null-label style: same keys everywhere)."""
    tags = {
        "Environment": common.environment_suffix,
        "Project": common.project_tag,
        "ManagedBy": "pulumi",
        "Layer": layer,
    }
    if common.owner:
        tags["Owner"] = common.owner
    return tags
