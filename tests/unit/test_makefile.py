"""The Makefile front door: layer order, stopping at the first failure, clear refusals.

A stand-in ``pulumi`` on PATH records every call (its working directory is the
layer) instead of deploying; the AWS credentials check talks to the emulator.
Tests of the repository-local backend run the Makefile in a copy of the
repository, so they never touch this checkout's state or passphrase file.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import boto3
import pytest

from offline import preflight
from offline.emulator import emulator_environment, start_emulator
from offline.preflight import PUBLISHED_PASSPHRASE
from shared.contract import LAYERS

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"

FAKE_PULUMI = """#!/usr/bin/env bash
# Records "<layer> <args>" and the backend settings it was given; keeps a marker per
# created stack and answers a missing one as the real CLI does; fails `up` in one layer;
# with FAKE_PULUMI_BACKEND_DOWN every command fails the way an unreachable backend does.
layer="$(basename "$PWD")"
echo "$layer $*" >> "$FAKE_PULUMI_LOG"
echo "${PULUMI_BACKEND_URL-unset} ${PULUMI_CONFIG_PASSPHRASE-unset} ${PULUMI_CONFIG_PASSPHRASE_FILE-unset}" \
  >> "$FAKE_PULUMI_LOG.env"
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


# Targets that check the master secret before any layer is deployed.
SECRET_TARGETS = {"deploy", "up-primary-db", "up-secondary-db"}


def create_master_secret(env: dict, suffix: str, primary: str = "us-east-1",
                         secondary: str | None = "us-west-2") -> None:
    """README's step 1, as an operator does it before deploying: the master secret in the
    primary region, replicated to ``secondary`` (None: not replicated). Idempotent."""
    client = boto3.client("secretsmanager", region_name=primary,
                          endpoint_url=env["AWS_ENDPOINT_URL"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    try:
        client.describe_secret(SecretId=f"rds-master-{suffix}")
        return
    except client.exceptions.ResourceNotFoundException:
        pass
    replicas = {"AddReplicaRegions": [{"Region": secondary}]} if secondary else {}
    client.create_secret(Name=f"rds-master-{suffix}", SecretString="{}", **replicas)


def make(env: dict, *args: str, repo: Path = REPO, secret: bool = True
         ) -> subprocess.CompletedProcess:
    """Run make; with ``secret``, a deploy finds the operator's master secret in place."""
    values = dict(arg.split("=", 1) for arg in args if "=" in arg)
    regions = (values.get("PRIMARY_REGION", "us-east-1"), values.get("SECONDARY_REGION", "us-west-2"))
    # Only a deploy the preflight lets through gets this far in real life.
    if (secret and SECRET_TARGETS & set(args) and preflight.check_regions(*regions) is None
            and preflight.check_suffix(values.get("ENV_SUFFIX")) is None):
        create_master_secret(env, values["ENV_SUFFIX"], *regions)
    # -o: never reinstall the virtualenv from inside a test.
    return subprocess.run(["make", "-s", "-C", str(repo), f"VENV={VENV}", "-o", f"{VENV}/.installed",
                           *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """What the front door needs of the repository, in a place of its own."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy2(REPO / name, copy / name)
    for package in ("offline", "shared", "scripts"):
        shutil.copytree(REPO / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for layer in LAYERS:
        (copy / "stacks" / layer).mkdir(parents=True)
    return copy


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
    result = make(no_aws, "deploy", "ENV_SUFFIX=mk5", secret=False)
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


def test_the_passphrase_file_applies_to_the_local_backend_only(env, repo_copy):
    local = {k: v for k, v in env.items() if not k.startswith("PULUMI_")}
    make(local, "outputs", "ENV_SUFFIX=mk10", repo=repo_copy)
    make({**local, "PULUMI_BACKEND_URL": "s3://team-state"}, "outputs", "ENV_SUFFIX=mk10",
         repo=repo_copy)
    make({**local, "PULUMI_BACKEND_URL": ""}, "outputs", "ENV_SUFFIX=mk10", repo=repo_copy)
    seen = Path(env["FAKE_PULUMI_LOG"] + ".env").read_text().splitlines()
    backend, phrase_file = f"file://{repo_copy}/.pulumi-state", repo_copy / ".pulumi-passphrase"
    assert seen == [f"{backend} unset {phrase_file}", "s3://team-state unset unset",
                    f"{backend} unset {phrase_file}"]


def test_the_local_backend_gets_a_random_private_passphrase_per_checkout(env, repo_copy, tmp_path):
    local = {k: v for k, v in env.items() if not k.startswith("PULUMI_")}
    result = make(local, "deploy", "ENV_SUFFIX=mk20", repo=repo_copy)
    assert result.returncode == 0, result.stderr
    phrase_file = repo_copy / ".pulumi-passphrase"
    phrase = phrase_file.read_text().strip()
    assert stat.S_IMODE(phrase_file.stat().st_mode) == 0o600
    assert len(phrase) >= 32 and phrase != PUBLISHED_PASSPHRASE
    assert calls(local, "up") == list(LAYERS)
    # The same checkout keeps its passphrase; another checkout draws its own.
    assert make(local, "deploy", "ENV_SUFFIX=mk20", repo=repo_copy).returncode == 0
    assert phrase_file.read_text().strip() == phrase
    other = tmp_path / "other"
    shutil.copytree(repo_copy, other, ignore=shutil.ignore_patterns(".pulumi-*"))
    assert make(local, "deploy", "ENV_SUFFIX=mk20", repo=other).returncode == 0
    assert (other / ".pulumi-passphrase").read_text().strip() != phrase


def test_local_state_made_with_the_published_passphrase_stays_usable(env, repo_copy):
    local = {k: v for k, v in env.items() if not k.startswith("PULUMI_")}
    old_stack = repo_copy / ".pulumi-state" / ".pulumi" / "stacks" / "rds-network" / "old.json"
    old_stack.parent.mkdir(parents=True)
    old_stack.write_text("{}")
    result = make(local, "deploy", "ENV_SUFFIX=mk21", repo=repo_copy)
    assert result.returncode == 0, result.stderr
    assert (repo_copy / ".pulumi-passphrase").read_text().strip() == PUBLISHED_PASSPHRASE
    assert "published passphrase" in result.stderr and "rotate" in result.stderr


def test_a_passphrase_file_others_can_read_is_refused(env, repo_copy):
    local = {k: v for k, v in env.items() if not k.startswith("PULUMI_")}
    phrase_file = repo_copy / ".pulumi-passphrase"
    phrase_file.write_text("a-private-passphrase-of-this-checkout\n")
    phrase_file.chmod(0o644)
    result = make(local, "deploy", "ENV_SUFFIX=mk22", repo=repo_copy)
    assert result.returncode != 0
    assert "other users may read it (mode 0644)" in result.stderr and "chmod 600" in result.stderr
    assert calls(local, "stack") == []
    phrase_file.chmod(0o600)
    assert make(local, "deploy", "ENV_SUFFIX=mk22", repo=repo_copy).returncode == 0
    assert calls(local, "up") == list(LAYERS)


@pytest.mark.parametrize("how", ["variable", "file"])
def test_the_published_passphrase_is_refused_for_a_shared_backend(env, tmp_path, how):
    if how == "variable":
        shared = {**env, "PULUMI_CONFIG_PASSPHRASE": PUBLISHED_PASSPHRASE}
    else:
        phrase_file = tmp_path / "phrase"
        phrase_file.write_text(PUBLISHED_PASSPHRASE + "\n")
        shared = {k: v for k, v in env.items() if k != "PULUMI_CONFIG_PASSPHRASE"}
        shared["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(phrase_file)
    result = make(shared, "deploy", "ENV_SUFFIX=mk23")
    assert result.returncode != 0
    assert "passphrase this repository publishes" in result.stderr
    assert "SECRETS_PROVIDER=awskms://" in result.stderr
    assert calls(shared, "stack") == []
    # A passphrase of one's own passes (the env fixture's "test").
    assert make(env, "deploy", "ENV_SUFFIX=mk23").returncode == 0


def test_a_secrets_provider_reaches_stack_creation(env):
    provider = "awskms://alias/pulumi-state?region=eu-central-1"
    result = make(env, "deploy", "ENV_SUFFIX=mk24", f"SECRETS_PROVIDER={provider}")
    assert result.returncode == 0, result.stderr
    log = Path(env["FAKE_PULUMI_LOG"]).read_text()
    for layer in LAYERS:
        assert f"{layer} stack select --create mk24 --secrets-provider {provider}" in log


@pytest.mark.parametrize("provider", ["awskms://", "awskms://my-key", "kms://alias/x",
                                      "awskms://alias/x?region=moon-1", "awskms://alias/x y"])
def test_a_malformed_secrets_provider_is_refused(env, provider):
    result = make(env, "deploy", "ENV_SUFFIX=mk25", f"SECRETS_PROVIDER={provider}")
    assert result.returncode != 0
    assert "SECRETS_PROVIDER" in result.stderr
    assert calls(env, "stack") == []


def _bucket(env: dict, name: str, region: str) -> None:
    s3 = boto3.client("s3", region_name=region, endpoint_url=env["AWS_ENDPOINT_URL"],
                      aws_access_key_id="emulator", aws_secret_access_key="emulator")
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **extra)


def test_state_in_the_primary_region_is_warned_about(env):
    _bucket(env, "mk-state-primary", "us-east-1")
    result = make({**env, "PULUMI_BACKEND_URL": "s3://mk-state-primary"}, "deploy", "ENV_SUFFIX=mk26",
                  "PRIMARY_REGION=us-east-1")
    assert result.returncode == 0, result.stderr  # a warning, not a refusal
    assert "state bucket 'mk-state-primary' is in us-east-1, the primary region" in result.stderr
    assert calls(env, "up") == list(LAYERS)


def test_state_in_another_region_passes_without_warning(env):
    _bucket(env, "mk-state-elsewhere", "eu-central-1")
    for url in ("s3://mk-state-elsewhere", "s3://any-bucket?region=eu-central-1"):
        result = make({**env, "PULUMI_BACKEND_URL": url}, "deploy", "ENV_SUFFIX=mk27",
                      "PRIMARY_REGION=us-east-1")
        assert result.returncode == 0, result.stderr
        assert "primary region" not in result.stderr, url


def test_a_state_bucket_whose_region_is_unknown_gets_a_note(env):
    result = make({**env, "PULUMI_BACKEND_URL": "s3://mk-no-such-bucket"}, "deploy", "ENV_SUFFIX=mk28")
    assert result.returncode == 0, result.stderr
    assert "note: could not look up the region of state bucket 'mk-no-such-bucket'" in result.stderr


def test_policy_and_refresh_switches_reach_pulumi_up(env):
    result = make(env, "up-network", "ENV_SUFFIX=mk11", "POLICY=1", "REFRESH=1")
    assert result.returncode == 0, result.stderr
    assert "network up --yes --stack mk11 --refresh --policy-pack ../../policy" in \
        Path(env["FAKE_PULUMI_LOG"]).read_text()
    make(env, "up-network", "ENV_SUFFIX=mk11")
    assert Path(env["FAKE_PULUMI_LOG"]).read_text().splitlines()[-1] == "network up --yes --stack mk11"


# Each payload tries to create the marker file: by shell command substitution, by make's
# own $(shell), by closing a quote, by a command separator, or on a new line.
HOSTILE = [
    "x`touch {marker}`",
    "x$(touch {marker})",
    "$(shell touch {marker})",
    'x"; touch {marker}; echo "',
    "x'; touch {marker}; echo '",
    "x;touch {marker}",
    "x\ntouch {marker}",
]
# Every value a user passes to `make deploy`, with the setting its refusal names.
DEPLOY_VARIABLES = {
    "ENV_SUFFIX": "ENV_SUFFIX", "PRIMARY_REGION": "PRIMARY_REGION",
    "SECONDARY_REGION": "SECONDARY_REGION", "REFRESH": "REFRESH", "POLICY": "POLICY",
    "SECRETS_PROVIDER": "SECRETS_PROVIDER",
}


@pytest.mark.parametrize("payload", HOSTILE)
@pytest.mark.parametrize("variable", DEPLOY_VARIABLES)
def test_hostile_values_run_nothing_and_are_refused_by_name(env, tmp_path, variable, payload):
    marker = tmp_path / "pwned"
    value = payload.format(marker=marker)
    settings = {"ENV_SUFFIX": "mk30", variable: value}
    result = make(env, "deploy", *(f"{k}={v}" for k, v in settings.items()))
    assert not marker.exists(), f"{variable}={value!r} ran a command"
    assert result.returncode != 0
    assert f"error: {DEPLOY_VARIABLES[variable]}" in result.stderr
    assert calls(env, "stack") == []  # refused before any stack is selected


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_values_from_the_environment_run_nothing(env, tmp_path, payload):
    marker = tmp_path / "pwned"
    result = make({**env, "ENV_SUFFIX": payload.format(marker=marker)}, "destroy")
    assert not marker.exists()
    assert result.returncode != 0 and "error: ENV_SUFFIX" in result.stderr
    assert calls(env, "stack") == []


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_plan_args_are_split_as_words_never_run(env, tmp_path, payload):
    marker = tmp_path / "pwned"
    result = make(env, "plan", "ENV_SUFFIX=mk31", f"PLAN_ARGS=--config {payload.format(marker=marker)}",
                  f"PRIMARY_REGION={payload.format(marker=marker)}")
    assert not marker.exists()
    assert result.returncode != 0


def test_a_value_with_a_newline_gets_the_same_refusal_as_any_bad_suffix(env):
    result = make(env, "deploy", "ENV_SUFFIX=mk32\n")
    assert result.returncode != 0
    assert "ENV_SUFFIX: may contain only lower-case letters, digits and hyphens" in result.stderr
    assert calls(env, "stack") == []


@pytest.mark.parametrize("switch", ["REFRESH", "POLICY"])
def test_switches_take_only_1_or_0(env, switch):
    result = make(env, "up-network", "ENV_SUFFIX=mk33", f"{switch}=yes")
    assert result.returncode != 0
    assert f"{switch} must be 1 (on), or 0 or empty (off) (got 'yes')" in result.stderr
    assert calls(env, "up") == []
    # 0 is off (before, any non-empty value turned the switch on).
    assert make(env, "up-network", "ENV_SUFFIX=mk33", f"{switch}=0").returncode == 0
    assert Path(env["FAKE_PULUMI_LOG"]).read_text().splitlines()[-1] == "network up --yes --stack mk33"


def test_a_master_secret_without_its_replica_stops_the_deploy_before_any_layer(env):
    create_master_secret(env, "mk40", "eu-west-1", secondary=None)
    result = make(env, "deploy", "ENV_SUFFIX=mk40", "PRIMARY_REGION=eu-west-1",
                  "SECONDARY_REGION=eu-central-1", secret=False)
    assert result.returncode != 0
    assert "rds-master-mk40 has no replica in eu-central-1" in result.stderr
    assert "replicate-secret-to-regions --region eu-west-1" in result.stderr
    assert calls(env, "up") == []


def test_a_replicated_master_secret_lets_the_database_layers_deploy(env):
    create_master_secret(env, "mk41", "eu-west-1", "eu-central-1")
    result = make(env, "up-primary-db", "ENV_SUFFIX=mk41", "PRIMARY_REGION=eu-west-1",
                  "SECONDARY_REGION=eu-central-1", secret=False)
    assert result.returncode == 0, result.stderr
    assert "rds-master-mk41 replicated to eu-central-1 (InSync)" in result.stdout
    assert calls(env, "up") == ["primary-db"]


def test_converge_checks_credentials_in_the_secondary_region_and_refuses_without_a_replica(env):
    # The stand-in pulumi has no outputs: there is no replica to converge onto.
    create_master_secret(env, "mk42", "eu-west-1", "eu-central-1")
    result = make(env, "converge", "ENV_SUFFIX=mk42", "PRIMARY_REGION=eu-west-1",
                  "SECONDARY_REGION=eu-central-1")
    assert result.returncode != 0
    assert "checked with STS in eu-central-1" in result.stdout
    assert "master secret replica arn:aws:secretsmanager:eu-central-1:" in result.stdout
    assert "exports no replicaInstanceIdentifier" in result.stderr
    assert calls(env, "up") == [] and calls(env, "config") == []


def test_converge_refuses_when_the_secondary_region_has_no_secret_replica(env):
    create_master_secret(env, "mk43", "eu-west-1", secondary=None)
    result = make(env, "converge", "ENV_SUFFIX=mk43", "PRIMARY_REGION=eu-west-1",
                  "SECONDARY_REGION=eu-central-1")
    assert result.returncode != 0
    assert "no secret rds-master-mk43 in eu-central-1" in result.stderr
    assert calls(env, "stack") == []
