"""Checks the Makefile runs before touching any stack, so mistakes fail at once.

``python -m offline.preflight suffix|pulumi|aws [...]`` exits 0 when the check
passes and 2 with a message that says what to do when it does not. The suffix
rule is the same function the layers use (``shared.config.validate_suffix``), and
so are the region rules (``validate_region``, ``validate_region_pair``), which need
botocore's endpoint data: on a Python without botocore the region check only
requires the two regions to differ, and the layers check the rest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from shared.config import ConfigError, validate_region, validate_region_pair, validate_suffix


def check_suffix(suffix: str | None) -> str | None:
    if not suffix:
        return ("ENV_SUFFIX is not set: pass the environment suffix every resource name carries, "
                "e.g. ENV_SUFFIX=pr123 (lower-case letters, digits, hyphens)")
    try:
        validate_suffix("ENV_SUFFIX", suffix)
    except ConfigError as exc:
        return str(exc).replace("config 'ENV_SUFFIX'", "ENV_SUFFIX")
    return None


def check_regions(primary: str | None, secondary: str | None) -> str | None:
    if primary and secondary and primary == secondary:
        return f"PRIMARY_REGION and SECONDARY_REGION must differ (both are {primary})"
    try:
        if primary:
            validate_region("PRIMARY_REGION", primary)
        if secondary:
            validate_region("SECONDARY_REGION", secondary)
        if primary and secondary:
            validate_region_pair(primary, secondary, "PRIMARY_REGION", "SECONDARY_REGION")
    except ConfigError as exc:
        return str(exc).replace("config ", "")
    except ImportError:
        # Region names are checked against botocore's endpoint data, and this check may run
        # on a Python without botocore (before the virtualenv exists). The layers and
        # `make plan` check the regions again with the project's botocore.
        return None
    return None


def check_pulumi() -> str | None:
    if shutil.which("pulumi"):
        return None
    return ("the Pulumi CLI is not installed (deploy, preview, outputs and destroy need it): "
            "install it with `curl -fsSL https://get.pulumi.com | sh` (or `brew install pulumi`) "
            "and make sure `pulumi` is on PATH. `make test` and `make plan` do not need it.")


def check_aws(region: str | None) -> str | None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client(
            "sts", region_name=region or os.environ.get("AWS_REGION") or "us-east-1",
            config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
        )
        identity = client.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        return (f"no usable AWS credentials ({exc.__class__.__name__}: {exc}): configure them "
                "(AWS_PROFILE, `aws sso login`, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and retry")
    print(f"preflight: deploying as {identity['Arn']}")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.preflight")
    parser.add_argument("checks", nargs="+", choices=["suffix", "regions", "pulumi", "aws"])
    parser.add_argument("--suffix", default=os.environ.get("ENV_SUFFIX"))
    parser.add_argument("--primary-region", default=os.environ.get("PRIMARY_REGION") or None)
    parser.add_argument("--secondary-region", default=os.environ.get("SECONDARY_REGION") or None)
    args = parser.parse_args(argv)
    for check in args.checks:
        if check == "suffix":
            problem = check_suffix(args.suffix)
        elif check == "regions":
            problem = check_regions(args.primary_region, args.secondary_region)
        elif check == "pulumi":
            problem = check_pulumi()
        else:
            problem = check_aws(args.primary_region)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
