"""Rules between layers: refused before synthesis by ``make plan``, in one line at deploy time.

``make plan`` knows every layer's config up front, so a disagreement between layers is a
config error (exit 2) before any layer runs. In a deployment a layer learns its upstream's
values only from stack outputs, inside an ``apply``; there the error must still read as
one line. pulumi-language-python-exec (the entry point `pulumi up` runs a Python program
through) logs a ``pulumi.RunError`` as ``str(error)`` alone and any other exception as
"Program failed with an unhandled exception:" plus a traceback.
"""

from __future__ import annotations

import traceback

import pulumi
import pytest

from offline import plan as plan_module
from shared import config as cfg
from shared.contract import MissingOutputError, PrimaryDbOutputs
from tests.support.db_layers import (
    BASE_CONFIG,
    INSTANCE,
    run_expecting_failure,
    run_upstream,
    run_with_upstream,
)

SUFFIX = "qa7"


def reported_by_pulumi_up(error: BaseException) -> str:
    """What pulumi-language-python-exec logs for a program that stopped with ``error``."""
    if isinstance(error, pulumi.RunError):
        return str(error)
    return "Program failed with an unhandled exception:\n" + "".join(
        traceback.format_exception(type(error), error, error.__traceback__))


def load_all(per_layer: dict[str, dict] | None = None) -> dict[str, object]:
    per_layer = per_layer or {}
    return {layer: loader(cfg.DictSource({**BASE_CONFIG, **per_layer.get(layer, {})}))
            for layer, loader in cfg.LOADERS.items()}


# --------------------------------------------------------------------------- make plan


@pytest.mark.parametrize("per_layer,key,names", [
    ({"primary-db": {"aws:region": "eu-west-3"}}, "aws:region", ("primary-db", "eu-west-3")),
    ({"dns-failover": {"secondaryRegion": "eu-north-1"}}, "secondaryRegion",
     ("dns-failover", "eu-north-1")),
    ({"secondary-db": {"organization": "other-org"}}, "organization", ("secondary-db",)),
    ({"primary-db": {"maxAllocatedStorageGiB": 300}, "secondary-db": {"maxAllocatedStorageGiB": 250}},
     "secondary-db/maxAllocatedStorageGiB", ("300 GiB",)),
])
def test_layers_that_disagree_are_refused(per_layer, key, names):
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.validate_across_layers(load_all(per_layer))
    assert caught.value.key == key
    assert all(name in str(caught.value) for name in names)


@pytest.mark.parametrize("replica_ceiling", [0, 300])  # 0 follows the primary's; equal is enough
def test_layers_that_agree_pass(replica_ceiling):
    cfg.validate_across_layers(load_all({"primary-db": {"maxAllocatedStorageGiB": 300},
                                         "secondary-db": {"maxAllocatedStorageGiB": replica_ceiling}}))


@pytest.mark.parametrize("args,key", [
    (("--config", "secondary-db/maxAllocatedStorageGiB=100"), "secondary-db/maxAllocatedStorageGiB"),
    (("--config", "primary-db/aws:region=eu-west-3"), "aws:region"),
    (("--config", "dns-failover/secondaryRegion=eu-central-1"), "secondaryRegion"),
    (("--config", "secondaryRegin=eu-west-1"), "secondaryRegin"),
    (("--config", "primary-db/instanceClas=db.r7g.large"), "primary-db/instanceClas"),
    (("--config", "aws:profile=production"), "aws:profile"),
    (("--primary-region", "us-east-9"), "aws:region"),
    (("--primary-region", "us-gov-west-1"), "secondaryRegion"),
    (("--config", "primaryVpcCidr=127.0.0.0/16"), "primaryVpcCidr"),
])
def test_the_plan_refuses_bad_config_in_one_line_before_synthesizing(monkeypatch, tmp_path, capsys,
                                                                      args, key):
    monkeypatch.setattr(plan_module, "run_all",
                        lambda *a, **k: pytest.fail("a layer was synthesized"))
    code = plan_module.main(["--suffix", SUFFIX, *args, "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == plan_module.EXIT_CONFIG
    assert err.count("\n") == 1 and f"config '{key}'" in err
    assert not list(tmp_path.iterdir())


def test_the_plan_accepts_agreeing_layers_and_routes_shared_keys(tmp_path, capsys):
    code = plan_module.main([
        "--suffix", SUFFIX, "--out-dir", str(tmp_path),
        "--config", "alarmEmail=ops@example.com",  # read by three layers, not the network
        "--config", "aws:region=eu-west-1", "--config", "acme:team=dba",
        "--config", "primary-db/maxAllocatedStorageGiB=300",
        "--config", "secondary-db/maxAllocatedStorageGiB=300",
    ])
    assert code == plan_module.EXIT_OK, capsys.readouterr().err
    assert "maxStorage=300" in capsys.readouterr().out


# --------------------------------------------------------------------------- deployment


@pytest.fixture(scope="module")
def upstream():
    return run_upstream(BASE_CONFIG, "network", "primary-db")


def test_a_replica_ceiling_below_the_primarys_stops_the_layer_in_one_line(upstream):
    ceiling = int(upstream["primary-db"].exports[PrimaryDbOutputs.MAX_ALLOCATED_STORAGE_GIB])
    failure = run_expecting_failure(
        "secondary-db", {**BASE_CONFIG, "maxAllocatedStorageGiB": ceiling - 1}, upstream)
    report = reported_by_pulumi_up(failure)
    assert "\n" not in report
    assert "config 'maxAllocatedStorageGiB'" in report and f"{ceiling} GiB" in report


def test_a_replica_ceiling_equal_to_the_primarys_is_used(upstream):
    ceiling = int(upstream["primary-db"].exports[PrimaryDbOutputs.MAX_ALLOCATED_STORAGE_GIB])
    run = run_with_upstream("secondary-db", {**BASE_CONFIG, "maxAllocatedStorageGiB": ceiling},
                            upstream)
    assert run.one(INSTANCE).inputs["maxAllocatedStorage"] == ceiling


@pytest.mark.parametrize("key,other", [("aws:region", "eu-west-3"),
                                       ("secondaryRegion", "eu-north-1")])
def test_a_layer_configured_for_other_regions_stops_in_one_line_naming_the_key(upstream, key, other):
    failure = run_expecting_failure("secondary-db", {**BASE_CONFIG, key: other}, upstream)
    assert isinstance(failure, MissingOutputError)
    report = reported_by_pulumi_up(failure)
    assert "\n" not in report
    assert report.startswith(f"config '{key}': ") and repr(other) in report
