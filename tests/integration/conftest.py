"""Fixtures of the integration tests (deployed resources, driven by the flat outputs).

Without an outputs file every test here is skipped, with a message that says how to
produce one. Tests marked ``real_aws_only`` are skipped, with their reason, when the
suite runs against the emulator (``AWS_EMULATOR`` set by the rehearsal).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.integration import (
    ONGOING_OUTAGE,
    REAL_AWS_ONLY,
    Deployment,
    PlayedCanaries,
    PromoterRunner,
    client,
    no_outputs_message,
    outputs_path,
    under_emulator,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = outputs_path()
    emulated = under_emulator()
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        if not path.exists():
            item.add_marker(pytest.mark.skip(reason=no_outputs_message(path)))
            continue
        marker = item.get_closest_marker("real_aws_only")
        if marker is not None and emulated:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"{REAL_AWS_ONLY}: {why}"))


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    return Deployment.load()


@pytest.fixture(scope="session")
def emulated() -> bool:
    return under_emulator()


@pytest.fixture(scope="session", autouse=True)
def canaries_ran(deployment: Deployment, emulated: bool) -> None:
    """On AWS the canaries have been running since the deployment. The emulator cannot run
    them: their first healthy runs are played in the open (PlayedCanaries), so the deployed
    promoter sees what it sees on AWS a few minutes after a deployment."""
    # The canary lives in the primary region: while the rehearsal has that region down, it
    # does not run at all.
    if emulated and not ONGOING_OUTAGE.refuses("cloudwatch", deployment["primaryDbRegion"]):
        canaries = PlayedCanaries(deployment, client("route53", deployment["replicaRegion"]))
        canaries.primary("ok")
        canaries.relay_witness()


@pytest.fixture(scope="session")
def primary_region(deployment: Deployment) -> str:
    return deployment["primaryDbRegion"]


@pytest.fixture(scope="session")
def replica_region(deployment: Deployment) -> str:
    return deployment["replicaRegion"]


@pytest.fixture(scope="session")
def aws():
    """``aws("rds", region)``: a client through the standard credential and endpoint chain."""
    return client


@pytest.fixture
def promoter(deployment: Deployment, emulated: bool) -> PromoterRunner:
    return PromoterRunner(deployment, emulated)
