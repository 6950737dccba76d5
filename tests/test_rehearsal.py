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


def test_rehearsal_deploys_tests_drills_and_leaves_nothing(tmp_path):
    outputs = tmp_path / "flat-outputs.json"
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED)}
    proc = subprocess.run(
        [sys.executable, "-m", "offline.rehearse", "--suffix", "rehearsal",
         "--primary-region", "eu-west-1", "--secondary-region", "eu-central-1",
         "--outputs", str(outputs), "--report-json", str(report_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    transcript = f"{proc.stdout[-8000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, transcript
    assert "nothing of the deployment is left in the emulator" in proc.stdout, transcript
    assert "REHEARSAL PASSED" in proc.stdout

    report = json.loads(report_path.read_text())
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
    assert {"DescribeAlarms", "DescribeDBInstances"} <= set(outage["refused"])
    assert not {"GetHealthCheckStatus", "ChangeResourceRecordSets"} & set(outage["refused"])
    assert drills["instance failure"]["phases"][-1][0].startswith("old primary recovers")
    for layer in LAYERS:
        assert report["teardown"][layer]["errors"] == []
    # The outputs described a deployment that no longer exists: not left behind.
    assert not outputs.exists()
