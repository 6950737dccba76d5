"""The rehearsal end to end: deploy, integration tests, drill and teardown on the emulator.

Runs ``python -m offline.rehearse`` as an operator would, in non-default regions (nothing
may depend on us-east-1/us-west-2), with the outputs file in a temporary directory so a
real ``cfn-outputs/flat-outputs.json`` is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared.contract import LAYERS

REPO = Path(__file__).resolve().parents[1]
# Variables that would change what the rehearsal or its test runs do.
_INHERITED = ("AWS_", "FLAT_OUTPUTS_PATH", "RUN_FAILOVER_DRILL", "DRILL_REPORT_PATH", "MOTO_")


def rehearse(tmp_path: Path, suffix: str, primary: str, secondary: str, *extra: str
             ) -> tuple[subprocess.CompletedProcess, dict, str]:
    outputs = tmp_path / "flat-outputs.json"
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED)}
    proc = subprocess.run(
        [sys.executable, "-m", "offline.rehearse", "--suffix", suffix,
         "--primary-region", primary, "--secondary-region", secondary,
         "--outputs", str(outputs), "--report-json", str(report_path), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    transcript = f"{proc.stdout[-8000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, transcript
    assert not outputs.exists(), "the outputs of a torn-down rehearsal were left behind"
    return proc, json.loads(report_path.read_text()), transcript


def operations(refused: list[str]) -> set[str]:
    """"service:Operation (region)" -> Operation."""
    return {call.split(":", 1)[1].split(" ", 1)[0] for call in refused}


def test_rehearsal_deploys_tests_drills_and_leaves_nothing(tmp_path):
    proc, report, transcript = rehearse(tmp_path, "rehearsal", "eu-west-1", "eu-central-1")
    assert "nothing of the deployment is left in the emulator" in proc.stdout, transcript
    assert "REHEARSAL PASSED" in proc.stdout
    assert report["passed"] is True and report["failures"] == []
    assert set(report["deployed"]) == set(LAYERS)
    assert all(report["deployed"][layer] for layer in LAYERS)
    assert report["left"] == {}
    # Each deliberately broken deployment was caught by its test.
    assert report["mutations"] and all(caught for _, _, caught in report["mutations"])
    # Integration tests really ran: only checks that need real AWS may be skipped.
    tests = report["tests"]
    assert tests["failed"] == [] and len(tests["passed"]) >= 15, tests
    assert all("real AWS only" in why for _, why in tests["skipped"]), tests["skipped"]
    # Each drill on its own deployment, each with its result.
    drills = {drill["name"]: drill for drill in report["drills"]}
    assert list(drills) == ["regional outage", "instance failure"]
    assert all(drill["result"] == "passed" for drill in drills.values()), report["drills"]
    outage = drills["regional outage"]
    assert [name.rsplit("::", 1)[-1] for name in outage["pytest"]["passed"]] == ["test_regional_outage_drill"]
    assert outage["phases"][-1][0].startswith("the region comes back")
    # The played outage refused the promoter's calls to the primary region, and nothing
    # on the failover path tried Route 53's control plane.
    assert {"DescribeAlarms", "DescribeDBInstances"} <= operations(outage["refused"])
    assert all(call.endswith("(eu-west-1)") or call.startswith("route53:") for call in outage["refused"])
    assert not {"GetHealthCheckStatus", "ChangeResourceRecordSets"} & operations(outage["refused"])
    assert drills["instance failure"]["phases"][-1][0].startswith("old primary recovers")
    # The outage day on the first deployment: converged without the primary region (Route 53's
    # control plane answers: the primary is not us-east-1), tests after the failover, failback.
    day = report["outage_day"]
    assert day["result"] == "passed", day
    assert day["converge_exits"] == [0] and day["refused"] == []
    steps = {step["name"]: step for step in day["steps"]}
    assert all(step["ok"] for step in day["steps"]), day["steps"]
    assert "failback 6: dns-failover back to primary -> primary, secondary -> replica" in steps
    assert len(day["tests"]["passed"]) >= 4 and not day["tests"]["failed"] and not day["tests"]["skipped"]
    for layer in LAYERS:
        assert report["teardown"][layer]["errors"] == []


def test_with_us_east_1_down_the_converge_waits_for_route53_and_finishes_once_it_is_back(tmp_path):
    # Route 53's control plane lives in us-east-1: the outage day refuses it too, so the
    # converge does secondary-db, skips dns-failover (exit 3) and finishes after the outage.
    _, report, transcript = rehearse(tmp_path, "rehearsal-use1", "us-east-1", "ca-central-1",
                                        "--skip-mutation-checks")
    day = report["outage_day"]
    assert day["result"] == "passed" and day["route53_control_plane_down"] is True, transcript
    assert day["converge_exits"] == [3, 0]
    # The converge's only refused call: its probe of Route 53's control plane.
    assert operations(day["refused"]) == {"GetHostedZone"}
    assert report["left"] == {} and report["passed"] is True
