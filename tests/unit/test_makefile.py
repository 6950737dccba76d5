"""The Makefile front door: layer order, stopping at the first failure, clear refusals.

A stand-in ``pulumi`` on PATH records every call (its working directory is the
layer) instead of deploying; the AWS credentials check talks to the emulator.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from offline.emulator import emulator_environment, start_emulator
from shared.contract import LAYERS

REPO = Path(__file__).resolve().parents[2]

FAKE_PULUMI = """#!/usr/bin/env bash
# Records "<layer> <args>" and the backend settings it was given; keeps a marker per
# created stack and answers a missing one as the real CLI does; fails `up` in one layer;
# with FAKE_PULUMI_BACKEND_DOWN every command fails the way an unreachable backend does.
layer="$(basename "$PWD")"
echo "$layer $*" >> "$FAKE_PULUMI_LOG"
echo "${PULUMI_BACKEND_URL-unset} ${PULUMI_CONFIG_PASSPHRASE-unset}" >> "$FAKE_PULUMI_LOG.env"
if [ -n "${FAKE_PULUMI_BACKEND_DOWN:-}" ]; then
  echo "error: could not reach the backend: connection refused" >&2; exit 255
fi
case "$1 $2" in
  "stack select")
    if [ "$3" = "--create" ]; then touch "$FAKE_STATE/$layer"; exit 0; fi
    [ -e "$FAKE_STATE/$layer" ] || { echo "error: no stack named '$3' found" >&2; exit 255; } ;;
  "stack rm") rm -f "$FAKE_STATE/$layer" ;;
esac
if [ "$1" = up ] && [ "$layer" = "${FAKE_PULUMI_FAIL_LAYER:-}" ]; then exit 1; fi
exit 0
"""


@pytest.fixture(scope="module")
def emulator():
    # The emulator configures moto through this process's environment (its account id);
    # restore it so in-process moto tests that run later see their own defaults.
    saved = dict(os.environ)
    emu = start_emulator()
    yield emu
    emu.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def env(tmp_path, emulator):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "state").mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    environ.update(emulator_environment(emulator.endpoint_url, "us-east-1"))
    environ.update(
        PATH=f"{bindir}{os.pathsep}{environ['PATH']}",
        FAKE_PULUMI_LOG=str(tmp_path / "calls.log"),
        FAKE_STATE=str(tmp_path / "state"),
        # Keep the stand-in away from the repository's local state directory.
        PULUMI_BACKEND_URL=f"file://{tmp_path / 'backend'}",
        PULUMI_CONFIG_PASSPHRASE="test",
    )
    return environ


def make(env: dict, *args: str) -> subprocess.CompletedProcess:
    # -o: never reinstall the virtualenv from inside a test.
    return subprocess.run(["make", "-s", "-C", str(REPO), "-o", ".venv/.installed", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def calls(env: dict, verb: str) -> list[str]:
    log = Path(env["FAKE_PULUMI_LOG"])
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[0] for line in lines if line.split()[1] == verb]


def test_deploy_runs_every_layer_in_dependency_order_with_the_suffix_stack(env):
    result = make(env, "deploy", "ENV_SUFFIX=mk1", "PRIMARY_REGION=eu-west-1",
                  "SECONDARY_REGION=eu-central-1")
    assert result.returncode == 0, result.stderr
    assert calls(env, "up") == list(LAYERS)
    log = Path(env["FAKE_PULUMI_LOG"]).read_text()
    for layer in LAYERS:
        assert f"{layer} stack select --create mk1" in log
        assert f"{layer} config set aws:region eu-west-1" in log
        assert f"{layer} config set secondaryRegion eu-central-1" in log
        assert f"{layer} up --yes --stack mk1" in log


def test_deploy_stops_at_the_first_failing_layer(env):
    env = {**env, "FAKE_PULUMI_FAIL_LAYER": "primary-db"}
    result = make(env, "deploy", "ENV_SUFFIX=mk2")
    assert result.returncode != 0
    assert calls(env, "up") == ["network", "primary-db"]


def test_destroy_runs_in_reverse_skips_layers_never_deployed_and_can_run_twice(env):
    for layer in ("network", "primary-db"):
        (Path(env["FAKE_STATE"]) / layer).touch()
    result = make(env, "destroy", "ENV_SUFFIX=mk3")
    assert result.returncode == 0, result.stderr
    assert calls(env, "destroy") == ["primary-db", "network"]
    assert "dns-failover: no stack mk3, nothing to destroy" in result.stdout
    assert not any((Path(env["FAKE_STATE"]) / layer).exists() for layer in LAYERS)

    again = make(env, "destroy", "ENV_SUFFIX=mk3")
    assert again.returncode == 0, again.stderr
    assert calls(env, "destroy") == ["primary-db", "network"]  # the first teardown's only
    assert all(f"{layer}: no stack mk3, nothing to destroy" in again.stdout for layer in LAYERS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "ENV_SUFFIX is not set"),
        (("ENV_SUFFIX=Bad_Suffix",), "ENV_SUFFIX: may contain only lower-case letters"),
        (("ENV_SUFFIX=ok", "PRIMARY_REGION=eu-west-1", "SECONDARY_REGION=eu-west-1"),
         "must differ"),
    ],
)
def test_bad_input_is_refused_before_pulumi_runs(env, args, message):
    result = make(env, "deploy", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert not Path(env["FAKE_PULUMI_LOG"]).exists()


def test_a_missing_pulumi_cli_is_named_with_how_to_install_it(env):
    bare = {**env, "PATH": os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not (Path(p) / "pulumi").exists())}
    result = make(bare, "deploy", "ENV_SUFFIX=mk4")
    assert result.returncode != 0
    assert "Pulumi CLI is not installed" in result.stderr
    assert "get.pulumi.com" in result.stderr


def test_missing_aws_credentials_stop_the_deploy_before_pulumi_up(env):
    # Point the credentials check at a closed port: no STS, no deployment.
    no_aws = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = make(no_aws, "deploy", "ENV_SUFFIX=mk5")
    assert result.returncode != 0
    assert "no usable AWS credentials" in result.stderr
    assert calls(no_aws, "up") == []


def test_destroy_with_an_unreachable_backend_fails_instead_of_skipping(env):
    (Path(env["FAKE_STATE"]) / "network").touch()
    result = make({**env, "FAKE_PULUMI_BACKEND_DOWN": "1"}, "destroy", "ENV_SUFFIX=mk8")
    assert result.returncode != 0
    assert "could not reach the backend" in result.stderr
    assert "nothing to destroy" not in result.stdout
    assert calls(env, "destroy") == []


def test_outputs_before_deploy_names_the_missing_stack_and_what_to_run(env):
    result = make(env, "outputs", "ENV_SUFFIX=mk9")
    assert result.returncode != 0
    assert "layer network has no stack mk9" in result.stderr
    assert "make deploy ENV_SUFFIX=mk9" in result.stderr
    assert "Traceback" not in result.stderr
    assert calls(env, "stack") == ["network"]  # stops at the first missing layer


def test_the_passphrase_default_applies_to_the_local_backend_only(env):
    local = {k: v for k, v in env.items() if not k.startswith("PULUMI_")}
    make(local, "outputs", "ENV_SUFFIX=mk10")
    make({**local, "PULUMI_BACKEND_URL": "s3://team-state"}, "outputs", "ENV_SUFFIX=mk10")
    make({**local, "PULUMI_BACKEND_URL": ""}, "outputs", "ENV_SUFFIX=mk10")
    seen = Path(env["FAKE_PULUMI_LOG"] + ".env").read_text().splitlines()
    backend = f"file://{REPO}/.pulumi-state"
    assert seen == [f"{backend} local-backend-only-not-a-secret", "s3://team-state unset",
                    f"{backend} local-backend-only-not-a-secret"]


def test_policy_and_refresh_switches_reach_pulumi_up(env):
    result = make(env, "up-network", "ENV_SUFFIX=mk11", "POLICY=1", "REFRESH=1")
    assert result.returncode == 0, result.stderr
    assert "network up --yes --stack mk11 --refresh --policy-pack ../../policy" in \
        Path(env["FAKE_PULUMI_LOG"]).read_text()
    make(env, "up-network", "ENV_SUFFIX=mk11")
    assert Path(env["FAKE_PULUMI_LOG"]).read_text().splitlines()[-1] == "network up --yes --stack mk11"
