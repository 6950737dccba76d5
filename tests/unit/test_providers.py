"""Providers: one per region a layer builds in, and the primary one survives its region's loss.

Read against the offline plan of all four layers (non-default regions), so what is
checked is what the layer programs really declare.
"""

from __future__ import annotations

import json

import pytest

from offline import plan as plan_module
from offline.harness import PROVIDER_TYPE
from shared.providers import ACCOUNT_BUILT_ARN_TYPES

SUFFIX = "pv3"
PRIMARY, SECONDARY = "eu-west-1", "eu-central-1"
# What a layer builds in, from each layer's own description (README "Layers").
EXPECTED_REGIONS = {
    "network": {PRIMARY, SECONDARY},
    "primary-db": {PRIMARY},
    "secondary-db": {SECONDARY},
    "dns-failover": {PRIMARY, SECONDARY},
}


@pytest.fixture(scope="module")
def plan() -> plan_module.Plan:
    return plan_module.build_plan(plan_module.base_config(SUFFIX, PRIMARY, SECONDARY, {}))


def providers(run):
    return {record.region: record for record in run.of_type(PROVIDER_TYPE)}


def test_each_layer_declares_a_provider_only_for_the_regions_it_builds_in(plan):
    for layer, run in plan.runs.items():
        assert set(providers(run)) == EXPECTED_REGIONS[layer], layer


def test_the_primary_provider_makes_no_call_to_its_region_when_configured(plan):
    # Credential validation and the account-ID lookup are both STS calls in the provider's
    # region: with the region down they would fail every `pulumi up` that declares it.
    for layer, run in plan.runs.items():
        primary = providers(run).get(PRIMARY)
        if primary is None:
            continue
        assert primary.inputs.get("skipCredentialsValidation") is True, layer
        assert primary.inputs.get("skipRequestingAccountId") is True, layer


def test_the_secondary_provider_still_validates_credentials_and_knows_its_account(plan):
    for layer, run in plan.runs.items():
        secondary = providers(run).get(SECONDARY)
        if secondary is None:
            continue
        assert not secondary.inputs.get("skipCredentialsValidation"), layer
        assert not secondary.inputs.get("skipRequestingAccountId"), layer


def test_no_arn_the_primary_provider_builds_without_an_account_is_ever_read(plan):
    # Under skip_requesting_account_id the provider writes these types' `arn` with an empty
    # account: harmless only while nothing grants or points at that ARN.
    for run in plan.runs.values():
        primary = providers(run).get(PRIMARY)
        if primary is None:
            continue
        built = [r for r in run.resources
                 if r.provider_urn == primary.urn and r.type in ACCOUNT_BUILT_ARN_TYPES]
        for record in built:
            arn = record.outputs.get("arn")
            assert arn, f"{record.type} {record.name}: the synthetic backend gave no arn"
            readers = [other.name for other in run.resources if other is not record
                       and arn in json.dumps(other.inputs, default=str)]
            assert readers == [], f"{record.name}'s account-less ARN is read by {readers}"
            assert arn not in json.dumps(run.exports, default=str), record.name


def test_resources_whose_arn_a_policy_grants_on_sit_on_a_provider_that_knows_its_account(plan):
    # The promoter's arming parameter: its ARN is in the promoter's IAM policy.
    parameters = [r for r in plan.runs["dns-failover"].resources
                  if r.type == "aws:ssm/parameter:Parameter"]
    assert parameters
    secondary = providers(plan.runs["dns-failover"])[SECONDARY]
    assert all(p.provider_urn == secondary.urn for p in parameters)
