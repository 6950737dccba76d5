"""The rehearsal's outage day: RUNBOOK.md sections 2.5, 2.6 and 3, played on the emulator.

After the regional-outage drill has promoted the replica, ``make rehearse`` lives through
the rest of that day on the same deployment:

1. **The primary region goes down** (again) for every emulated client: the rehearsal's
   backend, the converge and the integration tests (``RegionRefusal``); Route 53's control
   plane goes with it when the primary region is us-east-1, its home.
2. **make converge**: ``offline.converge`` itself runs, with its ``pulumi`` commands
   answered by the harness over the emulator (``HarnessPulumi``: ``stack output``,
   ``stack export``, ``config set``, ``up`` with its targets). It must call nothing in the
   primary region; with us-east-1 down it converges secondary-db and leaves dns-failover
   for later (exit 3), as it would on AWS.
3. **Credentials**: the master secret's replica, read in the secondary region only, holds
   the credentials the operator seeded.
4. **The integration tests that make sense after a failover** (marker ``after_failover``),
   with the outage handed to their clients.
5. **The region comes back**: a converge that waited for Route 53 runs again, and the
   writer record's PRIMARY member names the promoted instance.
6. **Failback** (RUNBOOK.md section 3) as far as the emulator allows: the old primary is
   snapshotted and deleted, a replica of the new primary is built in the old region,
   switched over to (promotion, both writer members UPSERTed), adopted by the primary-db
   layer, the secondary region's replica rebuilt through secondary-db, the ledger cleared,
   and dns-failover updated with REFRESH=1 (the refresh reads the records back). What the emulator cannot
   play is listed in ``not_rehearsed``.

Each step is recorded with what it checked; the rehearsal then tears the deployment down.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from offline.converge import EXIT_OK, EXIT_PARTIAL, converge, route53_control_plane_answers
from offline.emulator import EmulatorCorrections, endpoint_region
from offline.harness import (
    CREATED,
    DELETED,
    SKIPPED,
    UPDATED,
    LayerRun,
    refreshes_on_update,
    run_layer,
    state_export,
)
from offline.moto_backend import create_read_replica
from offline.outputs import write_flat_outputs
from shared.config import DictSource, load_common
from shared.contract import (
    LAYERS,
    FailoverOutputs,
    NetworkOutputs,
    PrimaryDbOutputs,
    SecondaryDbOutputs,
    stack_reference_name,
)
from shared.naming import Namer

INSTANCE = "aws:rds/instance:Instance"
# The integration tests that check a deployment after a failover.
AFTER_FAILOVER_MARKER = "after_failover"
AFTER_FAILOVER_ENV = "RUN_AFTER_FAILOVER"


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class OutageDayResult:
    primary_region: str
    route53_down: bool
    steps: list[Step] = field(default_factory=list)
    converge_exits: list[int] = field(default_factory=list)
    tests: Any = None  # the after-failover integration tests (offline.rehearse.PytestRun)
    refused: list[str] = field(default_factory=list)
    not_rehearsed: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps) and (
            self.tests is not None and self.tests.ok)

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.steps.append(Step(name, ok, detail))
        return ok


@dataclass(frozen=True)
class SeededSecret:
    """The master secret the operator created before the first deploy (README step 1)."""

    secret_id: str
    value: Mapping[str, str]


class HarnessPulumi:
    """The ``pulumi`` commands ``offline.converge`` runs, answered by the harness.

    ``up`` re-runs the layer's program against its last run (``run_layer(previous=...)``)
    with the stack config ``config set`` gave it, honouring ``--target`` and the refresh
    (``--refresh``/``--refresh=false``, else the layer's Pulumi.yaml: secondary-db says
    ``refresh: always``); the backend makes the provider's calls in the emulator.
    """

    def __init__(self, backend: Any, config: Mapping[str, Any], stack: str,
                 runs: Mapping[str, LayerRun]):
        self.backend, self.config, self.stack = backend, dict(config), stack
        self.runs = dict(runs)
        self.stack_config: dict[str, dict[str, Any]] = {layer: {} for layer in LAYERS}
        self.commands: list[str] = []

    def layer_config(self, layer: str) -> dict[str, Any]:
        return {**self.config, **self.stack_config[layer]}

    def upstream(self) -> dict[str, dict[str, Any]]:
        common = load_common(DictSource(self.config, stack=self.stack))
        return {stack_reference_name(common, layer): run.exports for layer, run in self.runs.items()}

    def up(self, layer: str, targets: Sequence[str] | None = None,
           previous: LayerRun | None = None, refresh: bool | None = None) -> LayerRun:
        if refresh is None:
            refresh = refreshes_on_update(layer)
        run = run_layer(layer, self.layer_config(layer), stack=self.stack,
                        upstream=self.upstream(), backend=self.backend,
                        previous=previous or self.runs[layer],
                        targets=list(targets) if targets is not None else None,
                        refresh=refresh)
        self.runs[layer] = run
        return run

    def __call__(self, layer: str, args: Sequence[str]) -> tuple[int, str, str]:
        args = list(args)
        targets = args.count("--target")
        shown = args if not targets else [a for a in args if a != "--target" and not a.startswith("urn:")]
        self.commands.append(f"stacks/{layer}: pulumi {shlex.join(shown)}"
                             + (f" with {targets} --target" if targets else ""))
        try:
            if args[:3] == ["stack", "output", "--json"]:
                return 0, json.dumps(self.runs[layer].exports), ""
            if args[:2] == ["stack", "export"]:
                return 0, json.dumps(state_export(self.runs[layer]), default=str), ""
            if args[:2] == ["config", "set"]:
                value = args[3]
                self.stack_config[layer][args[2]] = {"true": True, "false": False}.get(value, value)
                return 0, "", ""
            if args[:1] == ["up"]:
                targets = [args[i + 1] for i, arg in enumerate(args) if arg == "--target"]
                flag = next((a for a in args if a == "--refresh" or a.startswith("--refresh=")), None)
                run = self.up(layer, targets or None,
                              refresh=None if flag is None else flag != "--refresh=false")
                counts = {k: list(run.changes.values()).count(k)
                          for k in (CREATED, UPDATED, DELETED, SKIPPED)}
                return 0, f"{layer}: {counts}\n", ""
        except Exception as exc:  # as the CLI would: the command fails with its message
            return 1, "", f"error: {type(exc).__name__}: {exc}\n"
        return 2, "", f"error: the harness does not answer `pulumi {shlex.join(args)}`\n"


@dataclass
class OutageDay:
    """Everything the outage day works with; ``run`` plays it."""

    backend: Any
    config: Mapping[str, Any]
    stack: str
    runs: Mapping[str, LayerRun]
    secret: SeededSecret
    promoted: Sequence[str]  # what the drill promoted (moto's answers are corrected for it)
    outputs_path: Path
    test_env: Mapping[str, str]
    run_tests: Callable[[list[str], dict[str, str]], Any]
    integration_dir: Path

    def run(self) -> tuple[OutageDayResult, dict[str, LayerRun]]:
        common = load_common(DictSource(self.config, stack=self.stack))
        primary, secondary = common.primary_region, common.secondary_region
        # Route 53's API lives in one region of the partition (us-east-1 in the commercial one):
        # refusing the primary region refuses it too when that is its home.
        result = OutageDayResult(primary, route53_down=endpoint_region("route53", primary) == primary)
        corrections = EmulatorCorrections(promoted=self.promoted)
        self.backend.add_client_hook(corrections.hook)
        pulumi = HarnessPulumi(self.backend, self.config, self.stack, self.runs)
        try:
            self._during_the_outage(result, pulumi, corrections, primary, secondary)
        finally:
            self.backend.stop_refusing()
        if all(step.ok for step in result.steps):
            self._after_the_outage(result, pulumi, corrections, primary, secondary)
        result.corrections = list(corrections.applied)
        return result, pulumi.runs

    # ----------------------------------------------------------------- the outage
    def _during_the_outage(self, result: OutageDayResult, pulumi: HarnessPulumi,
                           corrections: EmulatorCorrections, primary: str, secondary: str) -> None:
        backend = self.backend
        backend.refuse([primary])
        refused_before = len(backend.refused)
        result.check("the primary region goes down", True,
                     f"every call to {primary}" + (" and to Route 53's control plane" if
                                                   result.route53_down else "") + " is refused")

        code = converge(self.stack, pulumi, rds_for=lambda region: backend.client("rds", region),
                        route53_check=lambda zone, region: route53_control_plane_answers(
                            zone, region, client_for=backend.client))
        result.converge_exits.append(code)
        refused = backend.refused[refused_before:]
        result.refused += [str(call) for call in refused]
        expected = EXIT_PARTIAL if result.route53_down else EXIT_OK
        # The only refused call a converge may make is its probe of Route 53's control plane.
        stray = [str(c) for c in refused if not (c.service == "route53" and c.operation == "GetHostedZone")]
        result.check("make converge with the primary region down",
                     code == expected and not stray,
                     f"exit {code} (expected {expected}); refused calls besides the Route 53 "
                     f"probe: {stray or 'none'}; commands: {'; '.join(pulumi.commands)}")

        arn = pulumi.runs["secondary-db"].exports.get(SecondaryDbOutputs.MASTER_SECRET_ARN, "")
        value = json.loads(backend.client("secretsmanager", secondary)
                           .get_secret_value(SecretId=arn)["SecretString"])
        same = value == dict(self.secret.value)
        result.check("credentials from the secondary region's secret replica",
                     arn.split(":")[3] == secondary and same,
                     f"{arn}: {'the seeded credentials' if same else 'OTHER credentials'}")

        write_flat_outputs({layer: run.exports for layer, run in pulumi.runs.items()},
                           self.outputs_path)
        env = dict(self.test_env, **backend.outage.environment(),
                   **corrections.environment(), **{AFTER_FAILOVER_ENV: "1"})
        result.tests = self.run_tests([str(self.integration_dir), "-m", AFTER_FAILOVER_MARKER], env)
        result.check("integration tests after the failover, primary region still down",
                     result.tests.ok, f"{len(result.tests.passed)} passed, "
                     f"{len(result.tests.failed)} failed, {len(result.tests.skipped)} skipped")

    # ----------------------------------------------------------------- the way back
    def _after_the_outage(self, result: OutageDayResult, pulumi: HarnessPulumi,
                          corrections: EmulatorCorrections, primary: str, secondary: str) -> None:
        backend = self.backend
        if result.converge_exits[-1] == EXIT_PARTIAL:
            code = converge(self.stack, pulumi, rds_for=lambda region: backend.client("rds", region),
                            route53_check=lambda zone, region: route53_control_plane_answers(
                                zone, region, client_for=backend.client))
            result.converge_exits.append(code)
            result.check("make converge again once Route 53 answers", code == EXIT_OK, f"exit {code}")
        exports = {k: v for run in pulumi.runs.values() for k, v in run.exports.items()}
        writer = self._writer_members(exports)
        result.check("writers name the promoted instance", writer.get("primary") ==
                     exports[SecondaryDbOutputs.ADDRESS], f"writer members: {writer}")
        snapshot = f"{exports[PrimaryDbOutputs.INSTANCE_IDENTIFIER]}-diverged"
        try:
            self._failback(result, pulumi, corrections, exports, snapshot, primary, secondary)
        except Exception as exc:  # reported as the step that failed; the teardown still runs
            result.check("failback", False, f"{type(exc).__name__}: {exc}")
        finally:
            self._delete_snapshot(snapshot, primary)
            result.not_rehearsed.append(
                f"keeping the forensic snapshot {snapshot}: the rehearsal deletes it so the "
                "teardown can prove nothing is left")

    def _writer_sets(self, exports: Mapping[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        """The Route 53 client and the writer record's members, as Route 53 lists them."""
        route53 = self.backend.client("route53", exports[SecondaryDbOutputs.REGION])
        name = exports[FailoverOutputs.WRITER_NAME].rstrip(".") + "."
        sets = route53.list_resource_record_sets(HostedZoneId=exports[FailoverOutputs.ZONE_ID],
                                                 StartRecordName=name)["ResourceRecordSets"]
        return route53, [s for s in sets if s["Name"] == name and s.get("SetIdentifier")]

    def _writer_members(self, exports: Mapping[str, Any]) -> dict[str, str]:
        """The writer record's members (set identifier -> value), from Route 53's API."""
        return {s["SetIdentifier"]: s["ResourceRecords"][0]["Value"]
                for s in self._writer_sets(exports)[1]}

    def _delete_snapshot(self, snapshot: str, region: str) -> None:
        rds = self.backend.client("rds", region)
        taken = {s["DBSnapshotIdentifier"] for s in
                 rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]}
        if snapshot in taken:
            rds.delete_db_snapshot(DBSnapshotIdentifier=snapshot)

    def _failback(self, result: OutageDayResult, pulumi: HarnessPulumi,
                  corrections: EmulatorCorrections, exports: dict[str, Any], snapshot: str,
                  primary: str, secondary: str) -> None:
        backend, namer = self.backend, Namer(self.stack)
        rds_p, rds_s = backend.client("rds", primary), backend.client("rds", secondary)
        old_primary = exports[PrimaryDbOutputs.INSTANCE_IDENTIFIER]
        result.not_rehearsed.append(
            "RUNBOOK 3 steps 0 and 6, automationMode manual and back: the promoter does not run "
            "in the emulator (Lambda needs Docker), so pausing it changes nothing here")

        # 1. Isolate the old primary: a forensic snapshot, then delete it.
        rds_p.create_db_snapshot(DBInstanceIdentifier=old_primary, DBSnapshotIdentifier=snapshot)
        rds_p.get_waiter("db_snapshot_available").wait(DBSnapshotIdentifier=snapshot,
                                                       WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        rds_p.delete_db_instance(DBInstanceIdentifier=old_primary, SkipFinalSnapshot=True)
        result.check("failback 1: snapshot and delete the old primary", True,
                     f"snapshot {snapshot} in {primary}; {old_primary} deleted")

        # 2. A replica of the new primary in the old region, under the old identifier.
        primary_db = pulumi.runs["primary-db"]
        declared = primary_db.one(INSTANCE).inputs
        create_read_replica(
            backend, primary, old_primary, exports[SecondaryDbOutputs.INSTANCE_ARN],
            create={"SourceRegion": secondary, "KmsKeyId": exports[PrimaryDbOutputs.KMS_KEY_ARN],
                    "DBSubnetGroupName": namer.name("pg-subnets-primary"),
                    "VpcSecurityGroupIds": [exports[NetworkOutputs.PRIMARY.db_security_group_id]],
                    "DBInstanceClass": exports[PrimaryDbOutputs.INSTANCE_CLASS]},
            # The TLS group, attached once the replica exists (RDS refuses it at creation).
            modify={"DBParameterGroupName": exports[PrimaryDbOutputs.PARAMETER_GROUP_NAME]})
        rds_p.get_waiter("db_instance_available").wait(DBInstanceIdentifier=old_primary,
                                                       WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        rds_p.reboot_db_instance(DBInstanceIdentifier=old_primary)
        rebuilt = rds_p.describe_db_instances(DBInstanceIdentifier=old_primary)["DBInstances"][0]
        result.check("failback 2: a replica of the new primary in the old region",
                     rebuilt.get("ReadReplicaSourceDBInstanceIdentifier")
                     == exports[SecondaryDbOutputs.INSTANCE_ARN],
                     f"{old_primary} replicates from {rebuilt.get('ReadReplicaSourceDBInstanceIdentifier')}")

        # 3. Switchover: promote it, then both writer members to its address.
        rds_p.promote_read_replica(DBInstanceIdentifier=old_primary,
                                   BackupRetentionPeriod=int(declared.get("backupRetentionPeriod") or 1))
        rds_p.get_waiter("db_instance_available").wait(DBInstanceIdentifier=old_primary,
                                                       WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        address = rds_p.describe_db_instances(
            DBInstanceIdentifier=old_primary)["DBInstances"][0]["Endpoint"]["Address"]
        self._upsert_writer_members(exports, address)
        members = self._writer_members(exports)
        result.check("failback 3: switchover (promotion, both writer members UPSERTed)",
                     set(members.values()) == {address}, f"writer members: {members}")

        # 4. The primary-db layer adopts the rebuilt instance (pulumi refresh + import).
        instance = primary_db.one(INSTANCE)
        read = rds_p.describe_db_instances(DBInstanceIdentifier=old_primary)["DBInstances"][0]
        adopted = replace(instance, id=read["DbiResourceId"], outputs=dict(
            instance.outputs, id=read["DbiResourceId"], resourceId=read["DbiResourceId"],
            arn=read["DBInstanceArn"], address=address, status=read["DBInstanceStatus"]))
        imported = replace(primary_db, resources=[adopted if r.urn == instance.urn else r
                                                  for r in primary_db.resources])
        backend.adopt(instance.urn, read["DbiResourceId"])
        reconciled = pulumi.up("primary-db", previous=imported)
        replaced = [urn for urn, change in reconciled.changes.items() if change in (CREATED, DELETED)]
        result.check("failback 4: primary-db adopts the rebuilt instance, updates in place only",
                     not replaced and reconciled.exports[PrimaryDbOutputs.ADDRESS] == address,
                     f"created or deleted: {replaced or 'none'}; exported address "
                     f"{reconciled.exports[PrimaryDbOutputs.ADDRESS]}")

        # 5. Rebuild the secondary region's replica through the layer; clear the ledger.
        stale = pulumi.runs["secondary-db"]
        removed = self._destroy_with_dependents(stale, stale.one(INSTANCE).urn)
        # The promoted instance is gone; the replica built under its identifier is a replica.
        corrections.forget(stale.exports[SecondaryDbOutputs.INSTANCE_IDENTIFIER])
        pulumi.stack_config["secondary-db"]["replicaPromoted"] = False
        kept = replace(stale, resources=[r for r in stale.resources if r.urn not in removed])
        rebuilt_replica = pulumi.up("secondary-db", previous=kept)
        replica = rds_s.describe_db_instances(
            DBInstanceIdentifier=rebuilt_replica.exports[SecondaryDbOutputs.INSTANCE_IDENTIFIER])["DBInstances"][0]
        ledger = pulumi.runs["dns-failover"].exports[FailoverOutputs.LEDGER_TABLE_NAME]
        key = {"pk": {"S": f"failover/{rebuilt_replica.exports[SecondaryDbOutputs.INSTANCE_IDENTIFIER]}"}}
        backend.client("dynamodb", secondary).delete_item(TableName=ledger, Key=key)
        result.check("failback 5: the secondary region's replica rebuilt, the ledger cleared",
                     replica.get("ReadReplicaSourceDBInstanceIdentifier") == read["DBInstanceArn"]
                     and rebuilt_replica.exports[SecondaryDbOutputs.PROMOTED] is False,
                     f"{len(removed)} resources destroyed and recreated; the replica replicates "
                     f"from {replica.get('ReadReplicaSourceDBInstanceIdentifier')}")

        # 6. dns-failover with REFRESH=1: the refresh reads the records step 3 changed.
        final = pulumi.up("dns-failover", refresh=True)
        exports = {k: v for run in pulumi.runs.values() for k, v in run.exports.items()}
        members = self._writer_members(exports)
        changed = sorted(r.name for r in final.resources if final.changes.get(r.urn) == UPDATED)
        result.check("failback 6: dns-failover back to primary -> primary, secondary -> replica",
                     members == {"primary": exports[PrimaryDbOutputs.ADDRESS],
                                 "secondary": exports[SecondaryDbOutputs.ADDRESS]},
                     f"writer members: {members}; updated: {', '.join(changed) or 'nothing'}")
        result.not_rehearsed.append(
            "the new DbiResourceIds of a failback: moto copies a source's DbiResourceId to its "
            "replicas, so the rebuilt instances keep the old ids here and the IAM connect policy "
            "does not change; on AWS the dns-failover update of step 6 makes a new default "
            "policy version (emulated in tests/unit/test_moto_converge.py)")

    def _upsert_writer_members(self, exports: Mapping[str, Any], address: str) -> None:
        """RUNBOOK 3 step 3: both members to ``address``, each keeping its set identifier,
        failover role, TTL and health check exactly as Route 53 lists them."""
        route53, sets = self._writer_sets(exports)
        changes = [{"Action": "UPSERT", "ResourceRecordSet": {**s, "ResourceRecords": [{"Value": address}]}}
                   for s in sets]
        route53.change_resource_record_sets(HostedZoneId=exports[FailoverOutputs.ZONE_ID],
                                            ChangeBatch={"Changes": changes})

    def _destroy_with_dependents(self, run: LayerRun, urn: str) -> set[str]:
        """`pulumi destroy --target <urn> --target-dependents`: the resource and everything
        that depends on it (inputs, parent, depends_on), dependents first."""
        doomed = {urn}
        grew = True
        while grew:
            grew = False
            for r in run.resources:
                if r.urn not in doomed and ({*r.dependencies, r.parent_urn} & doomed):
                    doomed.add(r.urn)
                    grew = True
        for record in reversed([r for r in run.resources if r.urn in doomed]):
            if record.custom:
                self.backend.delete(record)
        return doomed
