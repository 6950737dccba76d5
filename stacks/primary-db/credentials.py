"""Master credentials read from an existing Secrets Manager secret.

The project never creates or rotates the secret (the operator creates it once,
replicated to the secondary region, see the README), so destroying a stack can
never lose it. The password only ever travels as a Pulumi secret: encrypted in
the state, never exported, and never part of an error message. The secret's ARN
is exported: it is what applications in the primary region read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# RDS for PostgreSQL master user name and password rules (CreateDBInstance).
_USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_PASSWORD_RE = re.compile(r'^[\x21-\x7e]{8,128}$')
_PASSWORD_FORBIDDEN = set('/"@')


class SecretFormatError(pulumi.RunError):
    """The secret's content breaks RDS's rules. Raised inside an apply: as a RunError,
    `pulumi up` reports its one-line message instead of a traceback."""


@dataclass(frozen=True)
class MasterCredentials:
    username: pulumi.Output[str]
    password: pulumi.Output[str]  # always a Pulumi secret
    secret_arn: pulumi.Output[str]


def read_master_credentials(secret_id: str, opts: pulumi.InvokeOptions) -> MasterCredentials:
    """The AWSCURRENT version of ``secret_id``, parsed and checked against RDS's rules."""
    version = aws.secretsmanager.get_secret_version_output(secret_id=secret_id, opts=opts)
    parsed = version.secret_string.apply(lambda text: parse_secret(secret_id, text))
    return MasterCredentials(
        username=parsed.apply(lambda pair: pair[0]),
        password=pulumi.Output.secret(parsed.apply(lambda pair: pair[1])),
        secret_arn=version.secret_arn,
    )


def parse_secret(secret_id: str, text: str) -> tuple[str, str]:
    """(username, password) from the secret's JSON; errors never echo the value."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise SecretFormatError(
            f"secret {secret_id} must hold JSON like {{\"username\": ..., \"password\": ...}}"
        ) from None
    if not isinstance(data, dict):
        raise SecretFormatError(f"secret {secret_id} must hold a JSON object")
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not _USERNAME_RE.match(username):
        raise SecretFormatError(
            f"secret {secret_id}: 'username' must be 1-63 letters, digits or underscores "
            "starting with a letter"
        )
    if (not isinstance(password, str) or not _PASSWORD_RE.match(password)
            or _PASSWORD_FORBIDDEN & set(password)):
        raise SecretFormatError(
            f"secret {secret_id}: 'password' must be 8-128 printable ASCII characters "
            "without '/', '\"', '@' or spaces"
        )
    return username, password
