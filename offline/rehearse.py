"""Rehearse the whole life of a deployment on a local AWS emulator.

``python -m offline.rehearse --suffix demo`` (``make rehearse ENV_SUFFIX=demo``):

1. starts moto's server on a free loopback port and points every AWS SDK call
   of this process and its children at it (throw-away credentials);
2. seeds what an operator provides beforehand: the master secret;
3. deploys the four layers in order, each by running its real program under
   the Pulumi mock runtime with ``MotoBackend``, which creates every resource
   in the emulator and hands the emulator's identifiers back as outputs; each
   layer's exports feed the next through its StackReference;
4. writes ``cfn-outputs/flat-outputs.json`` as ``make outputs`` does;
5. runs the integration tests (``tests/integration``) against the emulator;
6. breaks the deployment on purpose, one mutation at a time
   (``offline.mutations``), and checks that the test meant to catch each fails;
7. runs the regional-outage drill (the emulator refuses every call to the
   primary region and to Route 53's control plane), then the outage day on the
   same deployment (``offline.outage_day``: ``make converge`` with the primary
   region down, the credentials from the secondary region, the integration
   tests that make sense after a failover, then the region back and the
   failback of RUNBOOK.md section 3), and destroys the layers in reverse order;
8. deploys again and runs the instance-failure drill, then destroys the layers
   again and checks that nothing of either deployment is left;
9. prints what was deployed, what was not emulated (by name), the test,
   mutation and drill results, the teardown and the time of every phase, and
   writes the same report as JSON (``rehearse-out/report-<suffix>.json``).

Each drill promotes the replica (one-way), so each gets a deployment of its own.
It exits non-zero when any step fails. Nothing here reaches AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.emulator import apply_environment, emulator_environment, inventory, leftovers, start_emulator
from offline.harness import REPO_ROOT, LayerRun, run_layer
from offline.mutations import MUTATIONS, mutated_outputs
from offline.outage_day import AFTER_FAILOVER_MARKER, OutageDay, OutageDayResult, SeededSecret
from offline.outputs import write_flat_outputs
from offline.preflight import check_master_secret
from shared.config import (
    DEFAULT_PRIMARY_REGION,
    DEFAULT_SECONDARY_REGION,
    DictSource,
    load_common,
    load_primary_db_settings,
)
from shared.contract import LAYERS, stack_reference_name

DEFAULT_OUTPUTS = REPO_ROOT / "cfn-outputs" / "flat-outputs.json"
REPORT_DIR = REPO_ROOT / "rehearse-out"
INTEGRATION_DIR = REPO_ROOT / "tests" / "integration"
DRILL_TEST = INTEGRATION_DIR / "test_failover_drill.py"
# (drill, test): each runs on a deployment of its own, in this order. The regional outage
# comes first, on the deployment the integration tests ran on: the emulator keeps metric
# data across deployments of the same names, and the canary failures the other drill plays
# would still count in the minutes Route 53's view is read for (it sums a minute's data).
DRILLS = (
    ("regional outage", f"{DRILL_TEST}::test_regional_outage_drill"),
    ("instance failure", f"{DRILL_TEST}::test_failover_drill"),
)
# The integration tests' marker for checks only real AWS can answer; a skip with any
# other reason fails the rehearsal (a skipped test must not pass for a green one).
REAL_AWS_ONLY_PREFIX = "real AWS only"
PYTEST_TIMEOUT_SECONDS = 300


@dataclass
class PytestRun:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    output: str = ""
    returncode: int = 0

    @property
    def unexpected_skips(self) -> list[tuple[str, str]]:
        return [(t, why) for t, why in self.skipped if REAL_AWS_ONLY_PREFIX not in why]

    @property
    def ok(self) -> bool:
        return (self.returncode == 0 and not self.failed and bool(self.passed)
                and not self.unexpected_skips)


@dataclass
class DrillResult:
    name: str
    test: str
    run: PytestRun | None = None
    phases: list[tuple[str, float]] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # calls the played outage refused
    promoted: list[str] = field(default_factory=list)  # instances the drill promoted

    @property
    def ok(self) -> bool:
        return self.run is not None and self.run.ok


@dataclass
class Report:
    suffix: str
    regions: tuple[str, str]
    phases: list[tuple[str, float]] = field(default_factory=list)
    deployed: dict[str, dict[str, int]] = field(default_factory=dict)
    not_emulated: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)
    tests: PytestRun | None = None
    drills: list[DrillResult] = field(default_factory=list)
    outage_day: OutageDayResult | None = None
    mutations: list[tuple[str, str, bool]] = field(default_factory=list)
    teardown: dict[str, dict[str, Any]] = field(default_factory=dict)
    left: dict[str, list[str]] = field(default_factory=dict)
    kms_pending_deletion: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases.append((name, time.perf_counter() - start))


def layer_config(suffix: str, primary: str, secondary: str) -> dict[str, Any]:
    return {"environmentSuffix": suffix, "aws:region": primary, "secondaryRegion": secondary}


def seed_master_secret(config: dict[str, Any], stack: str) -> SeededSecret:
    """Create the secret an operator creates once before the first deploy, replicated to
    the secondary region (README, Deploying step 1); the deploy preflight's check of it
    must pass, as it must before a real deploy."""
    import boto3

    settings = load_primary_db_settings(DictSource(config, stack=stack))
    common = settings.common
    client = boto3.client("secretsmanager", region_name=common.primary_region)
    secret = {"username": "dbadmin", "password": secrets.token_urlsafe(24)}
    client.create_secret(Name=settings.master_secret_id, SecretString=json.dumps(secret),
                         Description="Master credentials (seeded by the rehearsal)",
                         AddReplicaRegions=[{"Region": common.secondary_region}])
    problem = check_master_secret(settings.master_secret_id, common.primary_region,
                                  common.secondary_region)
    if problem:
        raise RuntimeError(f"deploy preflight: {problem}")
    return SeededSecret(settings.master_secret_id, secret)


def delete_master_secret(secret_id: str, primary: str, secondary: str) -> None:
    """As README's teardown says: the replica first (Secrets Manager refuses to delete a
    secret that still has replicas), then the secret."""
    import boto3

    client = boto3.client("secretsmanager", region_name=primary)
    replicas = [r["Region"] for r in
                client.describe_secret(SecretId=secret_id).get("ReplicationStatus") or []]
    if secondary in replicas:
        client.remove_regions_from_replication(SecretId=secret_id,
                                               RemoveReplicaRegions=[secondary])
    client.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)


def layer_outputs(runs: dict[str, LayerRun]) -> dict[str, dict[str, Any]]:
    """Each layer's exports as ``pulumi stack output --json`` shows them (secrets masked)."""
    return {
        layer: {key: "[secret]" if key in run.secret_exports else value
                for key, value in run.exports.items()}
        for layer, run in runs.items()
    }


def run_pytest(args: list[str], env: dict[str, str]) -> PytestRun:
    with tempfile.TemporaryDirectory(prefix="rehearsal-pytest-") as tmp:
        xml = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider",
                   f"--junitxml={xml}", "-q", "-rs"]
        proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=PYTEST_TIMEOUT_SECONDS, check=False)
        result = PytestRun(output=proc.stdout + proc.stderr, returncode=proc.returncode)
        if not xml.exists():
            result.failed.append(f"pytest produced no report (exit {proc.returncode})")
            return result
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = f"{Path(case.get('file') or case.get('classname', '')).name}::{case.get('name')}"
            skipped = case.find("skipped")
            if case.find("failure") is not None or case.find("error") is not None:
                result.failed.append(name)
            elif skipped is not None:
                result.skipped.append((name, skipped.get("message", "")))
            else:
                result.passed.append(name)
    return result


def deploy(report: Report, backend: Any, config: dict[str, Any], stack: str, label: str
           ) -> dict[str, LayerRun]:
    runs: dict[str, LayerRun] = {}
    upstream: dict[str, dict[str, Any]] = {}
    common = load_common(DictSource(config, stack=stack))
    for layer in LAYERS:
        try:
            with report.phase(f"deploy {layer} ({label})"):
                run = run_layer(layer, config, stack=stack, upstream=upstream, backend=backend)
        finally:
            counts: dict[str, int] = {}
            for item in backend.created_in(layer):
                counts[item.type] = counts.get(item.type, 0) + 1
            if counts:
                report.deployed.setdefault(layer, dict(sorted(counts.items())))
        runs[layer] = run
        upstream[stack_reference_name(common, layer)] = run.exports
    return runs


def teardown(report: Report, backend: Any, label: str) -> None:
    for layer in reversed(LAYERS):
        with report.phase(f"destroy {layer} ({label})"):
            result = backend.destroy_layer(layer)
        totals = report.teardown.setdefault(layer, {"deleted": 0, "already_gone": 0, "released": [],
                                                    "errors": []})
        totals["deleted"] += len(result.deleted)
        totals["already_gone"] += len(result.already_gone)
        totals["released"] += result.released
        totals["errors"] += result.errors
        report.failures.extend(f"teardown of {layer} ({label}): {e}" for e in result.errors)


def run_drill(report: Report, drill: DrillResult, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="rehearsal-drill-") as tmp:
        path = Path(tmp) / "drill.json"
        with report.phase(f"{drill.name} drill"):
            drill_env = dict(env, RUN_FAILOVER_DRILL="1", DRILL_REPORT_PATH=str(path))
            drill.run = run_pytest([drill.test], drill_env)
        if path.exists():
            drilled = json.loads(path.read_text())
            drill.phases = [tuple(p) for p in drilled["phases"]]
            drill.corrections = list(drilled.get("corrections", []))
            drill.refused = list(drilled.get("refused", []))
            drill.promoted = list(drilled.get("promoted", []))
    report.drills.append(drill)
    if not drill.ok:
        report.failures.append(f"{drill.name} drill")


def check_tests_bite(report: Report, outputs: dict[str, Any], env: dict[str, str]) -> None:
    """Apply each mutation, run the test that must catch it, undo it."""
    with tempfile.TemporaryDirectory(prefix="rehearsal-mutation-") as tmp:
        for mutation in MUTATIONS:
            revert, override = mutation.apply(outputs)
            try:
                path = Path(tmp) / "flat-outputs.json"
                path.write_text(mutated_outputs(outputs, override))
                result = run_pytest([mutation.test], dict(env, FLAT_OUTPUTS_PATH=str(path)))
            finally:
                revert()
            test_name = mutation.test.rsplit("::", 1)[-1]
            caught = any(name.endswith(f"::{test_name}") for name in result.failed)
            report.mutations.append((mutation.name, test_name, caught))
            if not caught:
                report.failures.append(f"mutation '{mutation.name}' was not caught by {test_name}")


def rehearse(suffix: str, primary: str, secondary: str, outputs_path: Path,
             keep_outputs: bool = False, check_mutations: bool = True) -> Report:
    report = Report(suffix, (primary, secondary))
    config = layer_config(suffix, primary, secondary)
    stack = suffix
    load_common(DictSource(config, stack=stack))  # bad suffix/regions fail here, before anything starts

    with report.phase("start emulator"):
        emulator = start_emulator()
        env = emulator_environment(emulator.endpoint_url, primary)
        apply_environment(env)
        from offline.moto_backend import MotoBackend

        backend = MotoBackend(emulator.endpoint_url)

    previous_outputs = outputs_path.read_bytes() if outputs_path.exists() else None
    # Outputs of a real deployment may be there: keep a copy on disk until they are back.
    backup = outputs_path.with_name(outputs_path.name + ".before-rehearsal")
    if previous_outputs is not None:
        backup.write_bytes(previous_outputs)
    seeded: SeededSecret | None = None
    baseline: dict[str, set[str]] = {}
    deployed_label: str | None = None  # the deployment standing now, if any
    try:
        with report.phase("seed operator prerequisites"):
            # What the emulator holds before the deployment (default VPCs and the like).
            baseline = inventory(emulator.endpoint_url, (primary, secondary))
            seeded = seed_master_secret(config, stack)

        test_env = dict(os.environ, AWS_EMULATOR="moto", FLAT_OUTPUTS_PATH=str(outputs_path))
        test_env.pop("RUN_FAILOVER_DRILL", None)
        for number, (drill_name, drill_test) in enumerate(DRILLS, start=1):
            deployed_label = f"deployment {number}"
            try:
                runs = deploy(report, backend, config, stack, deployed_label)
            except Exception as exc:  # reported; the teardown below still runs
                report.failures.append(f"deploy ({deployed_label}): {type(exc).__name__}: {exc}")
                break
            with report.phase(f"write outputs ({deployed_label})"):
                write_flat_outputs(layer_outputs(runs), outputs_path)

            if number == 1:
                with report.phase("integration tests"):
                    report.tests = run_pytest([str(INTEGRATION_DIR), "-m",
                                               f"not destructive and not {AFTER_FAILOVER_MARKER}"],
                                              test_env)
                if not report.tests.ok:
                    report.failures.append("integration tests")
                if check_mutations and report.tests.ok:
                    with report.phase("mutation checks (tests must fail on a wrong deployment)"):
                        check_tests_bite(report, json.loads(outputs_path.read_text()), test_env)

            drill = DrillResult(drill_name, drill_test)
            run_drill(report, drill, test_env)
            if number == 1 and drill.ok:
                with report.phase("outage day (converge, credentials, tests, failback)"):
                    report.outage_day, _ = OutageDay(
                        backend=backend, config=config, stack=stack, runs=runs, secret=seeded,
                        promoted=drill.promoted, outputs_path=outputs_path, test_env=test_env,
                        run_tests=run_pytest, integration_dir=INTEGRATION_DIR).run()
                if not report.outage_day.ok:
                    report.failures.append("outage day")
            teardown(report, backend, deployed_label)
            deployed_label = None
        report.not_emulated = sorted({f"{n.layer}: {n.type} '{n.name}' ({n.reason})"
                                      for n in backend.not_emulated})
        report.not_emulated += [f"invoke {token} in {region} (answered synthetically)"
                                for token, region in sorted(set(backend.not_emulated_invokes))]

    except Exception as exc:  # e.g. a test run that timed out: reported, and torn down below
        report.failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        report.corrections = list(backend.corrections)
        if deployed_label:
            teardown(report, backend, deployed_label)
        with report.phase("verify nothing is left"):
            try:
                if seeded:
                    delete_master_secret(seeded.secret_id, primary, secondary)
                after = inventory(emulator.endpoint_url, (primary, secondary))
                report.left = leftovers(baseline, after)
                report.kms_pending_deletion = len(
                    after.get("kms pending-deletion", set()) - baseline.get("kms pending-deletion", set()))
            except Exception as exc:
                report.failures.append(f"inventory after teardown: {type(exc).__name__}: {exc}")
            if report.left:
                report.failures.append("resources left after teardown")
        if keep_outputs and previous_outputs is not None:
            report.notes.append(f"kept the rehearsal's {outputs_path}; the previous file is {backup}")
        if not keep_outputs:
            if previous_outputs is not None:
                outputs_path.write_bytes(previous_outputs)
                backup.unlink(missing_ok=True)
                report.notes.append(f"restored the previous {outputs_path}")
            elif outputs_path.exists():
                outputs_path.unlink()
                report.notes.append(f"removed {outputs_path} (it described the torn-down rehearsal; "
                                    "--keep-outputs keeps it)")
        emulator.stop()
    return report


def _seconds(value: float) -> str:
    return f"{value:6.2f}s"


def _render_tests(title: str, result: PytestRun | None) -> list[str]:
    if result is None:
        return ["", f"{title}: not run"]
    lines = ["", f"{title}: {len(result.passed)} passed, {len(result.failed)} failed, "
                 f"{len(result.skipped)} skipped"]
    lines.extend(f"  FAILED  {name}" for name in result.failed)
    lines.extend(f"  skipped {name}: {why}" for name, why in result.skipped)
    lines.extend(f"  UNEXPECTED SKIP {name}" for name, _ in result.unexpected_skips)
    if not result.ok:
        lines.append("  --- pytest output ---")
        lines.extend(f"  {line}" for line in result.output.splitlines()[-80:])
    return lines


def _render_outage_day(day: OutageDayResult | None) -> list[str]:
    if day is None:
        return ["", "Outage day: not run (it follows a passing regional-outage drill)"]
    down = f"{day.primary_region}" + (" and Route 53's control plane" if day.route53_down else "")
    lines = ["", f"Outage day ({down} down, then back; RUNBOOK.md 2.5, 2.6, 3): "
                 f"{'passed' if day.ok else 'FAILED'}"]
    lines.extend(f"  {'ok  ' if step.ok else 'FAIL'}  {step.name}: {step.detail}" for step in day.steps)
    lines.extend(_render_tests("  after-failover integration tests", day.tests)[1:])
    if day.refused:
        lines.append("  calls refused during the outage: " + ", ".join(day.refused))
    lines.extend(f"  not rehearsed: {item}" for item in day.not_rehearsed)
    lines.extend(f"  emulator answers corrected: {c}" for c in day.corrections)
    return lines


def render(report: Report) -> str:
    lines = [f"Rehearsal of suffix '{report.suffix}' in {report.regions[0]} + {report.regions[1]} "
             "(AWS API emulator: moto; nothing reached AWS)", ""]
    lines.append("Deployed (resources created in the emulator, per layer and type):")
    total = 0
    for layer in LAYERS:
        counts = report.deployed.get(layer)
        if counts is None:
            lines.append(f"  {layer}: not deployed")
            continue
        total += sum(counts.values())
        lines.append(f"  {layer}: {sum(counts.values())}")
        lines.extend(f"    {count:3d}  {type_}" for type_, count in counts.items())
    lines.append(f"  total: {total}")
    lines.append("")
    lines.append("Not emulated (answered with synthetic outputs, by name):")
    lines.extend(f"  - {item}" for item in report.not_emulated or ["none"])
    lines.append("Created but not run by the emulator: Lambda functions (moto runs function code "
                 "only in Docker); the tests call the promoter's handler in-process with the "
                 "deployed function's configuration.")
    if report.corrections:
        lines.append("Emulator differences the rehearsal corrects or works around (openly):")
        lines.extend(f"  - {c}" for c in report.corrections)
    lines.extend(_render_tests("Integration tests", report.tests))
    if report.mutations:
        lines.append("")
        lines.append("Mutation checks (a deliberately wrong deployment must fail its test):")
        lines.extend(f"  {'caught' if caught else 'NOT CAUGHT'}: {name} -> {test}"
                     for name, test, caught in report.mutations)
    for drill in report.drills:
        lines.extend(_render_tests(f"Failover drill: {drill.name} ({drill.test.rsplit('::', 1)[-1]})",
                                   drill.run))
        if drill.phases:
            lines.append("  drill phases:")
            lines.extend(f"    {_seconds(sec)}  {name}" for name, sec in drill.phases)
        if drill.refused:
            lines.append("  calls the played outage refused: " + ", ".join(drill.refused))
        if drill.corrections:
            lines.append("  emulator answers the drill corrected to documented AWS behaviour:")
            lines.extend(f"    - {c}" for c in drill.corrections)
    lines.extend(_render_outage_day(report.outage_day))
    lines.append("")
    lines.append("Teardown (reverse layer order, both deployments):")
    for layer in reversed(LAYERS):
        t = report.teardown.get(layer)
        if t is None:
            continue
        lines.append(f"  {layer}: {t['deleted']} deleted, {t['already_gone']} already gone, "
                     f"{len(t['released'])} released, {len(t['errors'])} errors")
        lines.extend(f"    released: {r}" for r in t["released"])
        lines.extend(f"    ERROR: {e}" for e in t["errors"])
    if report.kms_pending_deletion:
        lines.append(f"  KMS keys scheduled for deletion (how AWS deletes keys): "
                     f"{report.kms_pending_deletion}")
    if report.left:
        lines.append("  LEFT IN THE EMULATOR:")
        for kind, items in report.left.items():
            lines.extend(f"    {kind}: {item}" for item in items)
    else:
        lines.append("  nothing of the deployment is left in the emulator")
    lines.append("")
    lines.append("Time per phase:")
    lines.extend(f"  {_seconds(sec)}  {name}" for name, sec in report.phases)
    lines.append(f"  {_seconds(sum(s for _, s in report.phases))}  total")
    lines.extend(f"Note: {n}" for n in report.notes)
    lines.append("")
    if report.failures:
        lines.append("REHEARSAL FAILED: " + "; ".join(report.failures))
    else:
        lines.append("REHEARSAL PASSED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suffix", required=True, help="environment suffix (ENV_SUFFIX)")
    parser.add_argument("--primary-region", default=DEFAULT_PRIMARY_REGION)
    parser.add_argument("--secondary-region", default=DEFAULT_SECONDARY_REGION)
    parser.add_argument("--outputs", type=Path, default=DEFAULT_OUTPUTS,
                        help="where to write the flat outputs (default: %(default)s)")
    parser.add_argument("--keep-outputs", action="store_true",
                        help="keep the outputs file after the teardown")
    parser.add_argument("--report-json", type=Path,
                        help="where to write the report as JSON (default: rehearse-out/report-<suffix>.json)")
    parser.add_argument("--skip-mutation-checks", action="store_true",
                        help="do not break the deployment on purpose to prove the tests catch it")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = rehearse(args.suffix, args.primary_region, args.secondary_region,
                      args.outputs.resolve(), keep_outputs=args.keep_outputs,
                      check_mutations=not args.skip_mutation_checks)
    print(render(report))
    print(f"(wall clock {time.perf_counter() - started:.1f}s)")
    report_path = args.report_json or REPORT_DIR / f"report-{args.suffix}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(_as_json(report), indent=2, default=str))
    print(f"report written to {report_path}")
    return 1 if report.failures else 0


def _as_json(report: Report) -> dict[str, Any]:
    def result(r: PytestRun | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {"passed": r.passed, "failed": r.failed, "skipped": r.skipped, "ok": r.ok}

    return {
        "suffix": report.suffix, "regions": report.regions, "phases": report.phases,
        "deployed": report.deployed, "not_emulated": report.not_emulated,
        "corrections": report.corrections, "tests": result(report.tests),
        "drills": [{"name": d.name, "test": d.test, "result": "passed" if d.ok else "failed",
                    "pytest": result(d.run), "phases": d.phases, "corrections": d.corrections,
                    "refused": d.refused} for d in report.drills],
        "outage_day": _outage_day_json(report.outage_day, result),
        "mutations": report.mutations,
        "teardown": report.teardown, "left": report.left,
        "kms_pending_deletion": report.kms_pending_deletion, "failures": report.failures,
        "passed": not report.failures,
    }


def _outage_day_json(day: OutageDayResult | None, result: Callable[[Any], Any]) -> dict[str, Any] | None:
    if day is None:
        return None
    return {"result": "passed" if day.ok else "failed", "primary_region_down": day.primary_region,
            "route53_control_plane_down": day.route53_down,
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in day.steps],
            "converge_exits": day.converge_exits, "tests": result(day.tests),
            "refused": day.refused, "not_rehearsed": day.not_rehearsed,
            "corrections": day.corrections}


if __name__ == "__main__":
    sys.exit(main())
