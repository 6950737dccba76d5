"""Stack config a layer's Pulumi.yaml does not declare is refused, naming the nearest key.

A layer reads its keys by name, so an undeclared key (a typo, another layer's key) would
be ignored while the real key keeps its default. The layer programs refuse such keys as
their config is opened; ``make plan`` refuses them before anything is synthesized.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from offline.harness import SyntheticBackend, layer_configs, run_layer
from shared import config as cfg
from shared import project_files
from shared.contract import LAYERS, PROJECTS

REPO = Path(__file__).resolve().parents[2]
NETWORK_CONFIG = {"environmentSuffix": "qa7", "aws:region": "eu-west-1",
                  "secondaryRegion": "eu-central-1"}


def declared(layer: str) -> set[str]:
    return set(yaml.safe_load((REPO / "stacks" / layer / "Pulumi.yaml").read_text())["config"])


class NothingMayBeCreated(SyntheticBackend):
    def create(self, record):
        # An Exception (pytest.fail's BaseException would escape the runtime's event loop).
        raise AssertionError(f"{record.type} {record.name} was registered")


@pytest.mark.parametrize("layer", LAYERS)
def test_the_accepted_keys_are_the_config_block_of_the_layers_project_file(layer):
    assert project_files.declared_keys(layer) == declared(layer)
    assert project_files.layer_of_project(PROJECTS[layer]) == layer


@pytest.mark.parametrize("layer,key,nearest", [
    ("network", "secondaryRegin", "secondaryRegion"),
    ("primary-db", "rds-primary-db:instanceClas", "instanceClass"),
    ("secondary-db", "maxAllocatedStorageGb", "maxAllocatedStorageGiB"),
    ("dns-failover", "recordTTLSeconds", "recordTtlSeconds"),
])
def test_an_undeclared_key_is_refused_naming_it_and_the_nearest_declared_one(layer, key, nearest):
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.check_declared(layer, key)
    assert caught.value.key == key
    assert f"stacks/{layer}/Pulumi.yaml" in str(caught.value)
    assert f"nearest declared key is '{nearest}'" in str(caught.value)


@pytest.mark.parametrize("layer", LAYERS)
def test_declared_keys_and_keys_of_other_namespaces_are_accepted(layer):
    for key in declared(layer):
        cfg.check_declared(layer, key)
        cfg.check_declared(layer, f"{PROJECTS[layer]}:{key}")
    for key in ("aws:region", "pulumi:disable-default-providers", "acme:team"):
        cfg.check_declared(layer, key)


@pytest.mark.parametrize("key", ["aws:profile", "aws:assumeRoles", "aws:secretKey",
                                 "aws:defaultTags"])
def test_aws_keys_other_than_the_region_are_refused(key):
    # The layers' providers are explicit: they would ignore these (pulumi-aws issue 3259).
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.check_declared("primary-db", key)
    assert caught.value.key == key
    assert "explicit" in str(caught.value) and "aws:region" in str(caught.value)


def test_a_key_of_another_layer_names_the_layers_that_declare_it():
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.check_declared("network", "alarmEmail")
    message = str(caught.value)
    assert all(layer in message for layer in ("primary-db", "secondary-db", "dns-failover"))


def test_config_for_every_layer_reaches_the_layers_that_declare_it():
    configs = layer_configs(
        {"alarmEmail": "ops@example.com", "aws:region": "eu-west-1", "subnetsPerRegion": 3},
        {"primary-db": {"multiAz": False}}, LAYERS)
    assert [layer for layer in LAYERS if "alarmEmail" in configs[layer]] == [
        "primary-db", "secondary-db", "dns-failover"]
    assert all(configs[layer]["aws:region"] == "eu-west-1" for layer in LAYERS)
    assert [layer for layer in LAYERS if "subnetsPerRegion" in configs[layer]] == ["network"]
    assert [layer for layer in LAYERS if "multiAz" in configs[layer]] == ["primary-db"]
    # A key written in one layer's namespace is that layer's only.
    configs = layer_configs({"rds-secondary-db:multiAz": True}, {}, LAYERS)
    assert [layer for layer in LAYERS if configs[layer]] == ["secondary-db"]


@pytest.mark.parametrize("config,layer_config,layers,key,hint", [
    ({"secondaryRegin": "eu-west-1"}, {}, LAYERS, "secondaryRegin", "'secondaryRegion'"),
    ({}, {"primary-db": {"multiAZ": "false"}}, LAYERS, "primary-db/multiAZ", "'multiAz'"),
    ({"aws:profile": "prod"}, {}, LAYERS, "aws:profile", "explicit"),
    ({"rds-primary-db:multiAZ": "false"}, {}, LAYERS, "rds-primary-db:multiAZ", "'multiAz'"),
    # Declared, but by no layer this run includes: it would be ignored all the same.
    ({"zoneName": "db-qa7.internal"}, {}, ("network",), "zoneName", "dns-failover"),
])
def test_config_no_layer_reads_is_refused(config, layer_config, layers, key, hint):
    with pytest.raises(cfg.ConfigError) as caught:
        layer_configs(config, layer_config, layers)
    assert caught.value.key == key
    assert hint in str(caught.value)


@pytest.mark.parametrize("layer", LAYERS)
def test_the_layer_program_refuses_an_undeclared_key_before_registering_anything(layer):
    with pytest.raises(cfg.ConfigError) as caught:
        run_layer(layer, {**NETWORK_CONFIG, "secondaryRegin": "eu-west-2"}, stack="ci",
                  backend=NothingMayBeCreated())
    # As `pulumi config set secondaryRegin ...` writes it in the stack's config.
    assert caught.value.key == f"{PROJECTS[layer]}:secondaryRegin"
    assert "'secondaryRegion'" in str(caught.value)


def test_the_layer_program_runs_with_its_declared_keys_and_other_namespaces():
    before = os.environ.get("PULUMI_CONFIG")
    run = run_layer("network", {**NETWORK_CONFIG, "subnetsPerRegion": 3, "acme:team": "dba",
                                "pulumi:disable-default-providers": '["kubernetes"]'}, stack="ci")
    assert len(run.of_type("aws:ec2/subnet:Subnet")) == 6
    # The harness hands config over through PULUMI_CONFIG as the language host does, and
    # leaves the process environment as it found it.
    assert os.environ.get("PULUMI_CONFIG") == before
