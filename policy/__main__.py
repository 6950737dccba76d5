"""CrossGuard policy pack: the rules of ``policy.rules`` enforced on real previews.

    pulumi preview --policy-pack policy      # from a layer directory: --policy-pack ../../policy

The Pulumi CLI runs this file (``python -m pulumi.policy <engine> policy``, which
executes it as ``__main__``); constructing the ``PolicyPack`` then starts the
analyzer's gRPC server and blocks. Everything above ``main()`` only adapts the
policy SDK's arguments to the plain rule functions, so tests can import and
drive the adapters without a server (FIELD-NOTES 23).

Each rule becomes one mandatory policy. Findings a waiver covers are reported
by one advisory policy, ``waived-findings``, so the preview shows them with
their reason without blocking the update.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The CLI puts this directory, not the repository, on sys.path; the editable
# install normally provides ``policy`` and ``shared``, this covers a plain checkout.
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.append(_REPO)

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy import rules  # noqa: E402
from policy.props import UNKNOWN, to_plain  # noqa: E402
from shared.config import ConfigSource, PulumiSource, load_common  # noqa: E402

PACK_NAME = "rds-multi-region-failover"
WAIVED_POLICY = "waived-findings"
_LEVELS = {rules.MANDATORY: EnforcementLevel.MANDATORY, rules.ADVISORY: EnforcementLevel.ADVISORY}


def stack_context(source: ConfigSource | None = None) -> rules.Context:
    """Suffix and regions from the stack's configuration.

    The CLI hands the stack's config to the policy process (the policy SDK loads
    it and the project/stack into the Pulumi runtime). If it cannot be read, the
    context stays empty and resource_context falls back to the provider.
    """
    if source is None and not {"PULUMI_PROJECT", "PULUMI_STACK"} <= set(os.environ):
        # Not run by the CLI: Pulumi's config would only yield placeholder defaults.
        return rules.Context()
    try:
        # PulumiSource refuses undeclared keys as it opens: config the program rejects too.
        common = load_common(source if source is not None else PulumiSource())
    except Exception:  # no project configured, or config the program itself rejects
        return rules.Context()
    return rules.Context(suffix=common.environment_suffix,
                         regions=(common.primary_region, common.secondary_region))


def _mapping(value: Any) -> Mapping[str, Any]:
    # Provider inputs reach analyzers JSON-encoded when they are objects.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}


def _provider_facts(provider: Any) -> tuple[str | None, dict[str, Any], bool | None, str | None]:
    """(region, default tags, explicit?, name) of a PolicyProviderResource (or None)."""
    if provider is None:
        return None, {}, None, None
    props = to_plain(provider.props)
    region = props.get("region")
    default_tags = dict(_mapping(_mapping(props.get("defaultTags")).get("tags")))
    # The engine names the providers it creates on its own "default" / "default_<version>".
    explicit = not str(provider.name).startswith("default")
    return (region if isinstance(region, str) else None), default_tags, explicit, provider.name


def resource_context(resource_type: str, name: str, props: Mapping[str, Any], provider: Any,
                     base: rules.Context) -> rules.Context:
    region, default_tags, explicit, provider_name = _provider_facts(provider)
    own_region = props.get("region")
    if isinstance(own_region, str):
        region = own_region  # pulumi-aws 7's per-resource region overrides the provider's
    tags: dict[str, Any] | None = dict(default_tags)
    for key in ("tagsAll", "tags"):
        value = props.get(key)
        if value is UNKNOWN:
            tags = None  # cannot tell during preview
            break
        if isinstance(value, Mapping):
            tags.update(value)
    suffix = base.suffix or default_tags.get("Environment")
    return rules.Context(suffix=suffix if isinstance(suffix, str) else None, regions=base.regions,
                         region=region, tags=tags, name=name, provider=provider_name,
                         explicit_provider=explicit)


def resource_findings(args: ResourceValidationArgs, rule_list: Sequence[rules.Rule] | None = None,
                      base: rules.Context | None = None) -> list[rules.Finding]:
    """Evaluate the rules on one resource as CrossGuard presents it."""
    props = to_plain(args.props)
    ctx = resource_context(args.resource_type, args.name, props, args.provider,
                           base if base is not None else stack_context())
    return rules.evaluate_resource(args.resource_type, props, ctx, rule_list, urn=args.urn)


def stack_resources(args: StackValidationArgs) -> list[rules.StackResource]:
    out = []
    for resource in args.resources:
        props = to_plain(resource.props)
        region, _, _, _ = _provider_facts(resource.provider)
        if isinstance(props.get("region"), str):
            region = props["region"]
        out.append(rules.StackResource(
            type=resource.resource_type, name=resource.name, props=props, urn=resource.urn,
            region=region, protect=bool(resource.opts.protect) if resource.opts else None,
            # PolicyResourceOptions carries no retainOnDelete: only the offline plan sees it.
            retain_on_delete=None,
        ))
    return out


def stack_findings(args: StackValidationArgs, rule_list: Sequence[rules.StackRule] | None = None,
                   base: rules.Context | None = None) -> list[rules.Finding]:
    return rules.evaluate_stack(stack_resources(args), base if base is not None else stack_context(),
                                rule_list)


def validate_resource_with(rule: rules.Rule, base: rules.Context | None = None
                           ) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rule.applies(args.resource_type):
            return
        for finding in resource_findings(args, [rule], base):
            if not finding.waived:
                report_violation(finding.message, None)

    return validate


def validate_stack_with(rule: rules.StackRule, base: rules.Context | None = None
                        ) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for finding in stack_findings(args, [rule], base):
            if not finding.waived:
                report_violation(f"{finding.resource_name}: {finding.message}", finding.urn or None)

    return validate


def report_waived_resource(base: rules.Context | None = None
                           ) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for finding in resource_findings(args, None, base):
            if finding.waived:
                report_violation(f"WAIVED {finding.rule_id}: {finding.message} "
                                 f"(reason: {finding.waiver_reason})", None)

    return validate


def policies(base: rules.Context | None = None) -> list:
    """The pack's policies: one mandatory policy per rule, one advisory for waivers."""
    out: list = [
        ResourceValidationPolicy(
            name=rule.id, description=rule.description,
            validate=validate_resource_with(rule, base),
            enforcement_level=_LEVELS[rule.enforcement],
        )
        for rule in rules.RULES
    ]
    out += [
        StackValidationPolicy(
            name=rule.id, description=rule.description,
            validate=validate_stack_with(rule, base),
            enforcement_level=_LEVELS[rule.enforcement],
        )
        for rule in rules.STACK_RULES
    ]
    out.append(ResourceValidationPolicy(
        name=WAIVED_POLICY,
        description="Findings waived in policy/waivers.py, reported with their reason.",
        validate=report_waived_resource(base),
        enforcement_level=EnforcementLevel.ADVISORY,
    ))
    return out


def main() -> None:
    # Starts the analyzer's gRPC server and blocks: only ever run by the CLI.
    PolicyPack(name=PACK_NAME, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)


if __name__ == "__main__":
    main()
