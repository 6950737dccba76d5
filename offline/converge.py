"""``make converge``: bring the stacks in line with a promoted replica, without the primary region.

After the replica has been promoted (by the promoter, or by hand) the stacks still
describe a replica. Converging them is the first thing an operator does, and it must
work while the primary region is down (RUNBOOK.md, "Outage day"):

1. **Refuse unless the replica really stands alone.** The secondary-db stack's outputs
   (the state backend) name the replica; RDS DescribeDBInstances in the secondary
   region says whether it still replicates. Converging a replica that is still a replica
   would promote it by hand through Pulumi: that decision belongs to the promoter or to a
   person following RUNBOOK.md section 2, not to a converge.
2. **secondary-db**: ``pulumi config set replicaPromoted true`` and ``pulumi up``. The
   layer refreshes on every update (its Pulumi.yaml, ``refresh: always``), so the state
   learns of the promotion instead of asking RDS to promote again; every resource of the
   layer, and its only provider, are in the secondary region.
3. **dns-failover**: ``pulumi up --refresh=false`` with a ``--target`` for each resource of
   the layer's state that is not in the primary region (not on the primary-region
   provider, no ``region`` argument naming it). A refresh, or an update of the primary
   region's canary, alarm or topic, would call the region that is down; nothing there
   needs to change for the failover (``make plan --config
   secondary-db/replicaPromoted=true`` shows what does). The writer record's change is a
   Route 53 control-plane call, and that control plane lives in us-east-1: when
   GetHostedZone does not answer within seconds, this step is skipped instead of leaving
   the provider to retry for many minutes. Nothing depends on it: the writer fence (a
   health check) already sends writers to the promoted replica.

Every pulumi command runs in ``stacks/<layer>`` and needs the state backend (keep it out
of the primary region: README, State). Exit status: 0 converged, 2 refused (nothing
changed), 1 a pulumi command failed, 3 secondary-db converged but dns-failover skipped
(Route 53's control plane did not answer; run it again later).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offline.harness import PROVIDER_TYPE
from offline.outputs import REPO_ROOT
from shared.contract import FailoverOutputs, SecondaryDbOutputs
from shared.naming import Namer

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_PARTIAL = 0, 1, 2, 3

# Runs `pulumi <args>` in stacks/<layer>; returns (exit status, stdout, stderr).
Pulumi = Callable[[str, Sequence[str]], tuple[int, str, str]]


class Refused(Exception):
    """The converge must not run; the message says why and what to do."""


def run_pulumi(layer: str, args: Sequence[str]) -> tuple[int, str, str]:
    result = subprocess.run(["pulumi", *args], cwd=REPO_ROOT / "stacks" / layer,
                            capture_output=True, text=True, check=False)
    return result.returncode, result.stdout, result.stderr


def _client(service: str, region: str):
    import boto3
    from botocore.config import Config

    return boto3.client(service, region_name=region,
                        config=Config(connect_timeout=5, read_timeout=15,
                                      retries={"max_attempts": 2}))


def _rds_client(region: str):
    return _client("rds", region)


def route53_control_plane_answers(zone_id: str, region: str,
                                  client_for: Callable[[str, str], Any] = _client) -> str | None:
    """None when Route 53's API answers GetHostedZone for ``zone_id``, else why not.

    Route 53's API is global, served from us-east-1 whatever region the client names
    (``region`` only picks the partition's endpoint). An error answer (access denied, no
    such zone) is an answer: the update then reports it itself. Only a call that gets no
    answer at all (connection refused, timeouts) means the control plane is unreachable.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client_for("route53", region).get_hosted_zone(Id=zone_id)
    except ClientError:
        return None
    except BotoCoreError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass(frozen=True)
class Replica:
    identifier: str
    region: str
    status: str


def _required(pulumi: Pulumi, layer: str, args: Sequence[str]) -> str:
    code, out, err = pulumi(layer, args)
    if code != 0:
        raise Refused(f"stacks/{layer}: `pulumi {' '.join(args)}` failed: "
                      f"{(err or out).strip() or f'exit status {code}'}")
    return out


def promoted_replica(stack: str, pulumi: Pulumi,
                     rds_for: Callable[[str], Any] = _rds_client) -> Replica:
    """The secondary-db layer's instance, if RDS in its region reports it standing alone."""
    outputs = json.loads(_required(pulumi, "secondary-db",
                                   ["stack", "output", "--json", "--stack", stack]) or "{}")
    identifier = outputs.get(SecondaryDbOutputs.INSTANCE_IDENTIFIER)
    region = outputs.get(SecondaryDbOutputs.REGION)
    if not identifier or not region:
        raise Refused(f"the secondary-db stack {stack} exports no "
                      f"{SecondaryDbOutputs.INSTANCE_IDENTIFIER}/{SecondaryDbOutputs.REGION}: "
                      "deploy it first (make deploy)")
    if outputs.get(SecondaryDbOutputs.PROMOTED) is True:
        print("converge: the secondary-db stack already says replicaPromoted=true; "
              "converging again")
    try:
        db = rds_for(region).describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    except Exception as exc:  # botocore errors, named in the refusal
        raise Refused(f"could not describe {identifier} in {region} "
                      f"({type(exc).__name__}: {exc})") from None
    source = db.get("ReadReplicaSourceDBInstanceIdentifier")
    if source:
        raise Refused(
            f"{identifier} in {region} is still a read replica of {source}: it has not been "
            "promoted, and a converge never promotes. Let the promoter decide, or promote by "
            "hand (RUNBOOK.md section 2), then run make converge again")
    return Replica(identifier=identifier, region=region, status=db.get("DBInstanceStatus", ""))


def _provider_urn(reference: str | None) -> str:
    # A state resource names its provider as "<provider URN>::<provider id>".
    return (reference or "").rsplit("::", 1)[0]


def dns_failover_targets(resources: Iterable[Mapping[str, Any]], primary_provider_name: str
                         ) -> tuple[list[str], str, list[str]]:
    """(targets, primary region, skipped URNs) from the dns-failover layer's state resources.

    Targets are the custom resources neither on the primary-region provider nor naming the
    primary region in their own ``region`` input (pulumi-aws 7 per-resource region, and the
    project's dynamic resources); providers and the stack are never targets.
    """
    resources = list(resources)
    primary = [r for r in resources if r.get("type") == PROVIDER_TYPE
               and r.get("urn", "").endswith(f"::{primary_provider_name}")]
    if len(primary) != 1:
        raise Refused(f"the dns-failover state holds {len(primary)} providers named "
                      f"{primary_provider_name}, not one: is this the right stack?")
    primary_urn = primary[0]["urn"]
    primary_region = (primary[0].get("inputs") or {}).get("region")
    if not primary_region:
        raise Refused(f"the dns-failover state's provider {primary_provider_name} has no region")
    targets, skipped = [], []
    for resource in resources:
        if not resource.get("custom") or resource.get("type") == PROVIDER_TYPE:
            continue
        in_primary = (_provider_urn(resource.get("provider")) == primary_urn
                      or (resource.get("inputs") or {}).get("region") == primary_region)
        (skipped if in_primary else targets).append(resource["urn"])
    return targets, primary_region, skipped


def converge(stack: str, pulumi: Pulumi = run_pulumi,
             rds_for: Callable[[str], Any] = _rds_client,
             route53_check: Callable[[str, str], str | None] = route53_control_plane_answers
             ) -> int:
    try:
        replica = promoted_replica(stack, pulumi, rds_for)
        print(f"converge: {replica.identifier} in {replica.region} stands alone "
              f"({replica.status}); converging secondary-db and dns-failover")
        dns_outputs = json.loads(_required(pulumi, "dns-failover",
                                           ["stack", "output", "--json", "--stack", stack]) or "{}")
        zone_id = dns_outputs.get(FailoverOutputs.ZONE_ID)
        if not zone_id:
            raise Refused(f"the dns-failover stack {stack} exports no {FailoverOutputs.ZONE_ID}: "
                          "deploy it first (make deploy)")
        state = json.loads(_required(pulumi, "dns-failover", ["stack", "export", "--stack", stack]))
        targets, primary_region, skipped = dns_failover_targets(
            (state.get("deployment") or {}).get("resources") or [],
            Namer(stack).logical("aws", "primary"))
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if not targets:
        print("error: the dns-failover state holds nothing outside the primary region",
              file=sys.stderr)
        return EXIT_REFUSED

    for layer, args in (
        ("secondary-db", ["config", "set", "replicaPromoted", "true", "--stack", stack]),
        # refresh: always (Pulumi.yaml): reads the promoted instance, all in the secondary region.
        ("secondary-db", ["up", "--yes", "--stack", stack]),
    ):
        if not _step(pulumi, layer, args):
            return EXIT_FAILED

    unreachable = route53_check(zone_id, replica.region)
    if unreachable:
        print(f"warning: dns-failover NOT converged: Route 53's control plane (us-east-1) does "
              f"not answer ({unreachable}). Writers already reach {replica.identifier} through "
              f"the writer fence; run make converge ENV_SUFFIX={stack} again once it answers",
              file=sys.stderr)
        return EXIT_PARTIAL
    print(f"converge: dns-failover: {len(targets)} resources targeted, {len(skipped)} in "
          f"{primary_region} left alone")
    if not _step(pulumi, "dns-failover", ["up", "--yes", "--stack", stack, "--refresh=false",
                                          *(arg for urn in targets for arg in ("--target", urn))]):
        return EXIT_FAILED
    print(f"converge: done. Next: make outputs ENV_SUFFIX={stack}, then RUNBOOK.md (Outage day)")
    return EXIT_OK


def _step(pulumi: Pulumi, layer: str, args: list[str]) -> bool:
    targets = args.count("--target")
    shown = args if not targets else [*args[:args.index("--target")], f"--target ... ({targets})"]
    print(f"==> stacks/{layer}: pulumi {' '.join(shown)}", flush=True)
    code, out, err = pulumi(layer, args)
    sys.stdout.write(out)
    sys.stderr.write(err)
    if code != 0:
        print(f"error: stacks/{layer}: pulumi {args[0]} failed (exit status {code}); the steps "
              "before it are done, run make converge again once the cause is fixed",
              file=sys.stderr)
    return code == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.converge")
    parser.add_argument("--stack", required=True, help="stack name (the environment suffix)")
    args = parser.parse_args(argv)
    return converge(args.stack)


if __name__ == "__main__":
    sys.exit(main())

