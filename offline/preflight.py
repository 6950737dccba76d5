"""Checks the Makefile runs before touching any stack, so mistakes fail at once.

``python -m offline.preflight CHECK [CHECK...]`` exits 0 when every check
passes and 2 with a message that says what to do when one does not. Values come
from the environment (the Makefile hands every user value over that way, never
pasted into shell text) or from the matching options. The suffix rule is the
same function the layers use (``shared.config.validate_suffix``), and so are
the region rules (``validate_region``, ``validate_region_pair``), which need
botocore's endpoint data: on a Python without botocore the region check only
requires the two regions to differ, and the layers check the rest.

Checks: ``suffix``, ``regions``, ``switches`` (REFRESH/POLICY), ``secrets``
(SECRETS_PROVIDER, the state passphrase, the per-checkout passphrase file),
``pulumi`` (the CLI), ``aws`` (credentials: STS in the primary region, or in the
secondary one with ``--sts-region secondary``, as ``make converge`` asks while the
primary may be down), ``state-backend`` (warns when the state or its KMS key lives in
the primary region; never fails), ``master-secret`` (the master secret exists in the
primary region and Secrets Manager reports its replica in the secondary region
``InSync``) and ``secret-replica`` (the replica exists in the secondary region, asked
there only). The first four need only the standard library; the others need boto3.
Regions and the secret's name come from the options/environment, else from the
suffix's stack config files, else from the layers' defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from shared.config import (
    DEFAULT_PRIMARY_REGION,
    DEFAULT_SECONDARY_REGION,
    ConfigError,
    secret_replica_arn,
    validate_region,
    validate_region_pair,
    validate_suffix,
)

REPO = Path(__file__).resolve().parents[1]
# The repository-local file backend the Makefile uses when PULUMI_BACKEND_URL is unset.
LOCAL_STATE_DIR = REPO / ".pulumi-state"
LOCAL_BACKEND = f"file://{LOCAL_STATE_DIR}"
# Random passphrase of this checkout's local backend (git-ignored, mode 600).
LOCAL_PASSPHRASE_FILE = REPO / ".pulumi-passphrase"
# The constant earlier versions of the Makefile exported for the local backend. It is
# published in this repository, so it protects nothing; it is still accepted for local
# state created with it, so nobody is locked out of that state (README, State).
PUBLISHED_PASSPHRASE = "local-backend-only-not-a-secret"

SWITCHES = ("REFRESH", "POLICY")
# Secrets providers `pulumi stack init/select --create --secrets-provider` accepts.
_CLOUD_SECRETS_SCHEMES = ("awskms", "azurekeyvault", "gcpkms", "hashivault")
_SAFE_URL_RE = re.compile(r"[A-Za-z0-9:/_.=&?%+-]+\Z")
_KMS_KEY_ID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
_KMS_KEY_ID_RE = re.compile(rf"{_KMS_KEY_ID}\Z")
_KMS_ALIAS_RE = re.compile(r"alias/[A-Za-z0-9/_-]{1,250}\Z")
_KMS_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:"
    rf"(key/{_KMS_KEY_ID}|alias/[A-Za-z0-9/_-]{{1,250}})\Z"
)


def _named(exc: ConfigError, key: str) -> str:
    """The config rule's message, naming the make variable instead of a config key."""
    return str(exc).replace(f"config '{key}'", key)


def check_suffix(suffix: str | None) -> str | None:
    if not suffix:
        return ("ENV_SUFFIX is not set: pass the environment suffix every resource name carries, "
                "e.g. ENV_SUFFIX=pr123 (lower-case letters, digits, hyphens)")
    try:
        validate_suffix("ENV_SUFFIX", suffix)
    except ConfigError as exc:
        return _named(exc, "ENV_SUFFIX")
    return None


def check_regions(primary: str | None, secondary: str | None) -> str | None:
    if primary and secondary and primary == secondary:
        return f"PRIMARY_REGION and SECONDARY_REGION must differ (both are {primary})"
    try:
        for key, region in (("PRIMARY_REGION", primary), ("SECONDARY_REGION", secondary)):
            try:
                if region:
                    validate_region(key, region)
            except ConfigError as exc:
                return _named(exc, key)
        if primary and secondary:
            validate_region_pair(primary, secondary, "PRIMARY_REGION", "SECONDARY_REGION")
    except ConfigError as exc:
        return _named(exc, exc.key)
    except ImportError:
        # Region names are checked against botocore's endpoint data, and this check may run
        # on a Python without botocore (before the virtualenv exists). The layers and
        # `make plan` check the regions again with the project's botocore.
        return None
    return None


def check_switches(env: Mapping[str, str]) -> str | None:
    for name in SWITCHES:
        value = env.get(name, "")
        if value not in ("", "0", "1"):
            return f"{name} must be 1 (on), or 0 or empty (off) (got {value!r})"
    return None


def kms_key_region(provider: str) -> str | None:
    """Region of an awskms:// secrets provider's key, when the URL says it."""
    parts = urlsplit(provider)
    region = parse_qs(parts.query).get("region", [None])[0]
    arn = _KMS_ARN_RE.match((parts.netloc + parts.path).lstrip("/"))
    return region or (arn["region"] if arn else None)


def check_secrets_provider(value: str | None) -> str | None:
    """SECRETS_PROVIDER: empty (Pulumi's default), passphrase, default or a KMS URL.

    awskms URLs take the forms of the Go CDK awskms keeper Pulumi uses:
    awskms://alias/NAME, awskms:///KEY-ID, awskms:///arn:aws:kms:REGION:ACCOUNT:key/ID
    (or :alias/NAME), each optionally with ?region=REGION.
    """
    if not value or value in ("passphrase", "default"):
        return None
    rule = ("SECRETS_PROVIDER must be passphrase, default, awskms://alias/NAME, "
            "awskms:///KEY-ID or awskms:///arn:aws:kms:REGION:ACCOUNT:key/ID (optionally "
            f"?region=REGION), or a {', '.join(s for s in _CLOUD_SECRETS_SCHEMES[1:])} URL")
    if not _SAFE_URL_RE.match(value):
        return f"{rule} (got {value!r})"
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in _CLOUD_SECRETS_SCHEMES or not rest.strip("/?"):
        return f"{rule} (got {value!r})"
    if scheme != "awskms":
        return None
    parts = urlsplit(value)
    key = (parts.netloc + parts.path).lstrip("/")
    if not (_KMS_ALIAS_RE.match(key) or _KMS_KEY_ID_RE.match(key) or _KMS_ARN_RE.match(key)):
        return f"{rule} (got {value!r})"
    region = parse_qs(parts.query).get("region", [None])[0]
    if region:
        try:
            validate_region("SECRETS_PROVIDER region", region)
        except ConfigError as exc:
            return _named(exc, "SECRETS_PROVIDER region")
    return None


def _read_passphrase_file(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()  # Pulumi trims the file's content too
    except OSError:
        return None


def _has_local_stacks() -> bool:
    # <project>/<stack>.json, plus the .bak and .gz forms the file backend also writes.
    return any((LOCAL_STATE_DIR / ".pulumi" / "stacks").glob("**/*.json*"))


def ensure_local_passphrase_file(path: Path = LOCAL_PASSPHRASE_FILE) -> str | None:
    """Create this checkout's random passphrase file once; refuse one others can read."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            return (f"{path} holds the local state's passphrase but other users may read it "
                    f"(mode {mode:04o}): run `chmod 600 {path}`")
        if _read_passphrase_file(str(path)) == PUBLISHED_PASSPHRASE:
            print(f"warning: the local state still uses the passphrase this repository "
                  f"published ({path}): rotate it as README (State) explains", file=sys.stderr)
        return None
    # Stacks created before this file existed are encrypted with the published constant:
    # keep it for them instead of locking their owner out, and say how to rotate.
    legacy = _has_local_stacks()
    phrase = PUBLISHED_PASSPHRASE if legacy else secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(phrase + "\n")
    if legacy:
        print(f"warning: {LOCAL_STATE_DIR} already holds stacks encrypted with the published "
              f"passphrase; {path} keeps that passphrase so they stay usable: rotate it as "
              "README (State) explains", file=sys.stderr)
    else:
        print(f"preflight: created {path} (random passphrase of this checkout's local state; "
              "keep it, the local state cannot be decrypted without it)")
    return None


def check_passphrase(env: Mapping[str, str]) -> str | None:
    """Refuse the published passphrase outside the local backend; set up the local one."""
    backend = env.get("PULUMI_BACKEND_URL", "").strip() or LOCAL_BACKEND
    phrase_file = env.get("PULUMI_CONFIG_PASSPHRASE_FILE", "")
    if backend.rstrip("/") == LOCAL_BACKEND:
        if "PULUMI_CONFIG_PASSPHRASE" not in env and phrase_file == str(LOCAL_PASSPHRASE_FILE):
            return ensure_local_passphrase_file()
        return None
    if env.get("PULUMI_CONFIG_PASSPHRASE") == PUBLISHED_PASSPHRASE:
        source = "PULUMI_CONFIG_PASSPHRASE is"
    elif phrase_file and _read_passphrase_file(phrase_file) == PUBLISHED_PASSPHRASE:
        source = f"PULUMI_CONFIG_PASSPHRASE_FILE ({phrase_file}) holds"
    else:
        return None
    return (f"{source} the passphrase this repository publishes for its local backend, so it "
            f"would protect nothing in {backend}: set a passphrase of your own, or create the "
            "stacks with SECRETS_PROVIDER=awskms://alias/NAME (README, State)")


def check_pulumi() -> str | None:
    if shutil.which("pulumi"):
        return None
    return ("the Pulumi CLI is not installed (deploy, preview, outputs and destroy need it): "
            "install it with `curl -fsSL https://get.pulumi.com | sh` (or `brew install pulumi`) "
            "and make sure `pulumi` is on PATH. `make test` and `make plan` do not need it.")


def _quick_aws_config():
    from botocore.config import Config

    return Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1})


def check_aws(region: str) -> str | None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client(
            "sts", region_name=region,
            config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
        )
        identity = client.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        return (f"no usable AWS credentials ({exc.__class__.__name__}: {exc}): configure them "
                "(AWS_PROFILE, `aws sso login`, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and retry")
    print(f"preflight: AWS credentials of {identity['Arn']} (checked with STS in {region})")
    return None


def bucket_region(bucket: str) -> str:
    """The bucket's region from GetBucketLocation; raises on any failure."""
    import boto3

    client = boto3.client("s3", region_name="us-east-1", config=_quick_aws_config())
    constraint = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    # S3 API Reference, GetBucketLocation: buckets in us-east-1 have a null
    # LocationConstraint, and "EU" is the legacy name of eu-west-1.
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)


def stack_config(layer: str, suffix: str | None) -> dict[str, object]:
    """The ``config:`` block of ``stacks/<layer>/Pulumi.<suffix>.yaml`` ({} if none)."""
    stack_file = REPO / "stacks" / layer / f"Pulumi.{suffix}.yaml"
    if not (suffix and stack_file.exists()):
        return {}
    import yaml

    return (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}


def _configured(layer: str, suffix: str | None, key: str, default: str) -> str:
    value = stack_config(layer, suffix).get(key)
    return value if isinstance(value, str) and value else default


def configured_primary_region(suffix: str | None) -> str:
    """The primary region the network stack of this suffix is configured for, if any."""
    return _configured("network", suffix, "aws:region", DEFAULT_PRIMARY_REGION)


def configured_secondary_region(suffix: str | None) -> str:
    """The secondary region the network stack of this suffix is configured for, if any."""
    return _configured("network", suffix, "rds-network:secondaryRegion", DEFAULT_SECONDARY_REGION)


def configured_master_secret(suffix: str | None) -> str:
    """The primary-db stack's masterSecretId (a name or an ARN), or the layer's default."""
    return _configured("primary-db", suffix, "rds-primary-db:masterSecretId",
                       f"rds-master-{suffix}")


def _secrets_client(region: str):
    import boto3

    return boto3.client("secretsmanager", region_name=region, config=_quick_aws_config())


def _replicate_hint(secret_id: str, primary: str, secondary: str) -> str:
    return (f"aws secretsmanager replicate-secret-to-regions --region {primary} "
            f"--secret-id {secret_id} --add-replica-regions Region={secondary}")


def _describe_secret(client, secret_id: str, region: str) -> tuple[dict | None, str | None]:
    """(DescribeSecret answer, None), or (None, why not) in words naming the secret."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.describe_secret(SecretId=secret_id), None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return None, f"no secret {secret_id} in {region}"
        return None, f"could not read secret {secret_id} in {region} ({code}: {exc})"
    except BotoCoreError as exc:
        return None, f"could not reach Secrets Manager in {region} ({exc.__class__.__name__}: {exc})"


def check_master_secret(secret_id: str, primary: str, secondary: str,
                        client_for: Callable[[str], object] = _secrets_client) -> str | None:
    """The master secret exists in the primary region with an ``InSync`` replica in the
    secondary one: without it, the credentials of a promoted replica are unreadable while
    the primary region is down (README, Deploying step 1)."""
    described, problem = _describe_secret(client_for(primary), secret_id, primary)
    if described is None:
        return (f"master secret: {problem}. Create it, replicated to {secondary}, as README "
                "(Deploying to AWS, step 1) shows, or set masterSecretId in the primary-db stack")
    owner = described.get("PrimaryRegion") or primary
    if owner != primary:
        # A replica of a secret kept elsewhere: only its own region reports replication, so
        # ask the secondary region directly.
        return check_secret_replica(described["ARN"], primary, secondary, client_for)
    status = {r.get("Region"): r for r in described.get("ReplicationStatus") or []}.get(secondary)
    if status is None:
        return (f"master secret {secret_id} has no replica in {secondary}, so applications "
                f"could not read the credentials there while {primary} is down: run "
                f"`{_replicate_hint(secret_id, primary, secondary)}` (add ,KmsKeyId=<key in "
                f"{secondary}> for a customer-managed key)")
    if status.get("Status") != "InSync":
        return (f"master secret {secret_id}'s replica in {secondary} is "
                f"{status.get('Status')} ({status.get('StatusMessage') or 'no message'}): "
                "wait for InProgress to finish; for Failed, fix the cause Secrets Manager "
                "gives (often a secret of the same name already there, or an unusable KMS key) "
                f"and run `{_replicate_hint(secret_id, primary, secondary)}` again")
    print(f"preflight: master secret {secret_id} replicated to {secondary} (InSync)")
    return None


def check_secret_replica(secret_id: str, primary: str, secondary: str,
                         client_for: Callable[[str], object] = _secrets_client) -> str | None:
    """The master secret's replica exists in the secondary region, asking only that region."""
    replica = secret_replica_arn(secret_id, secondary) if secret_id.startswith("arn:") else secret_id
    described, problem = _describe_secret(client_for(secondary), replica, secondary)
    if described is None:
        return (f"master secret replica: {problem}, so applications cannot read the "
                f"credentials in {secondary}. While {primary} answers, add the replica with "
                f"`{_replicate_hint(secret_id, primary, secondary)}`; if {primary} is down, "
                f"put the same credentials into a new secret in {secondary} by hand "
                "(RUNBOOK.md, outage day)")
    print(f"preflight: master secret replica {described['ARN']} is readable in {secondary}")
    return None


def check_state_backend(backend_url: str, secrets_provider: str, primary: str,
                        lookup: Callable[[str], str] = bucket_region) -> list[str]:
    """Warnings and notes about state that a primary-region outage would make unreachable.

    The state is what every `pulumi` command needs, failback included; a bucket (or a
    secrets key) in the primary region fails exactly when that region does.
    """
    messages = []
    parts = urlsplit(backend_url.strip())
    if parts.scheme == "s3" and parts.netloc:
        bucket = parts.netloc
        region = parse_qs(parts.query).get("region", [None])[0]
        if not region:
            try:
                region = lookup(bucket)
            except Exception as exc:  # best effort: any failure is only a note
                messages.append(f"note: could not look up the region of state bucket {bucket!r} "
                                f"({exc.__class__.__name__}: {exc}); make sure it is not in the "
                                f"primary region {primary} (README, State)")
        if region == primary:
            messages.append(
                f"warning: PULUMI_BACKEND_URL: state bucket {bucket!r} is in {primary}, the "
                "primary region: during that region's outage the state, and with it every "
                "pulumi command (failover follow-up, failback), is unreachable. Keep state in "
                "another region, ideally a third one, or in Pulumi Cloud (README, State)")
    if secrets_provider.startswith("awskms://"):
        key_region = kms_key_region(secrets_provider) or os.environ.get("AWS_REGION") \
            or os.environ.get("AWS_DEFAULT_REGION")
        if key_region == primary:
            messages.append(
                f"warning: SECRETS_PROVIDER: the KMS key is in {primary}, the primary region: "
                "during its outage the stacks' secrets cannot be decrypted. Use a key in "
                "another region (README, State)")
    return messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.preflight")
    parser.add_argument("checks", nargs="+", choices=[
        "suffix", "regions", "switches", "secrets", "pulumi", "aws", "state-backend",
        "master-secret", "secret-replica"])
    parser.add_argument("--suffix", default=os.environ.get("ENV_SUFFIX"))
    parser.add_argument("--primary-region", default=os.environ.get("PRIMARY_REGION") or None)
    parser.add_argument("--secondary-region", default=os.environ.get("SECONDARY_REGION") or None)
    parser.add_argument("--sts-region", choices=["primary", "secondary"], default="primary",
                        help="the region whose STS the aws check asks")
    args = parser.parse_args(argv)
    primary = args.primary_region or configured_primary_region(args.suffix)
    secondary = args.secondary_region or configured_secondary_region(args.suffix)
    for check in args.checks:
        problem = None
        if check == "suffix":
            problem = check_suffix(args.suffix)
        elif check == "regions":
            problem = check_regions(args.primary_region, args.secondary_region)
        elif check == "switches":
            problem = check_switches(os.environ)
        elif check == "secrets":
            problem = check_secrets_provider(os.environ.get("SECRETS_PROVIDER")) \
                or check_passphrase(os.environ)
        elif check == "pulumi":
            problem = check_pulumi()
        elif check == "aws":
            problem = check_aws(primary if args.sts_region == "primary" else secondary)
        elif check == "master-secret":
            problem = check_master_secret(configured_master_secret(args.suffix), primary, secondary)
        elif check == "secret-replica":
            problem = check_secret_replica(configured_master_secret(args.suffix), primary,
                                           secondary)
        else:
            for message in check_state_backend(os.environ.get("PULUMI_BACKEND_URL", ""),
                                               os.environ.get("SECRETS_PROVIDER", ""), primary):
                print(message, file=sys.stderr)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
