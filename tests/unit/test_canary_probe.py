"""The canary's PostgreSQL liveness probe against a real server, and against peers that misbehave.

The real server comes from the machine's PostgreSQL server binaries (Debian package
``postgresql-15``; ``.ci/run`` installs it). The only skip is for a machine without
them. States a real server cannot be held in cheaply ("starting up", a stall after
'S') are played by a small fake TLS server.
"""

from __future__ import annotations

import json
import struct
import time
from types import SimpleNamespace

import pytest

from tests.support.lambdas import load_lambda
from tests.support.postgres import (
    DEFAULT_HBA,
    FakePostgres,
    closed_port,
    find_bindir,
    postgres_server,
    silent_listener,
)

canary = load_lambda("canary")


@pytest.fixture(scope="module")
def pg():
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package postgresql-15)")
    with postgres_server(bindir) as server:
        yield server


@pytest.fixture()
def tls_pg(pg):
    pg.ensure(running=True, ssl_on=True)
    return pg


# --- against a real server -------------------------------------------------------------

def test_tls_server_answers_with_an_auth_request_and_is_alive(tls_pg):
    result = canary.probe(tls_pg.host, tls_pg.port, 5)

    assert result.alive is True, result.reason
    # The cluster's pg_hba.conf asks TCP clients for scram-sha-256: a SASL request.
    assert "AuthenticationSASL" in result.reason
    assert result.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert 0 < result.elapsed_ms < 5000


def test_a_non_startup_error_means_alive(tls_pg):
    tls_pg.set_hba(("local all all trust", "hostssl all failover_canary 127.0.0.1/32 reject"))
    try:
        result = canary.probe(tls_pg.host, tls_pg.port, 5)
    finally:
        tls_pg.set_hba(DEFAULT_HBA)

    assert result.alive is True, result.reason
    assert "28000" in result.reason  # invalid_authorization_specification: pg_hba rejects us
    assert result.tls_version is not None


def test_server_without_tls_is_down(pg):
    pg.ensure(running=True, ssl_on=False)

    result = canary.probe(pg.host, pg.port, 5)

    assert result.alive is False
    assert "refused TLS" in result.reason
    assert result.tls_version is None


def test_stopped_server_is_down_quickly(pg):
    pg.ensure(running=False)

    result = canary.probe(pg.host, pg.port, 5)

    assert result.alive is False
    assert "refused" in result.reason
    assert result.elapsed_ms < 1000


def test_handler_returns_when_the_primary_is_alive(tls_pg, monkeypatch, capsys):
    monkeypatch.setenv("DB_HOST", tls_pg.host)
    monkeypatch.setenv("DB_PORT", str(tls_pg.port))
    monkeypatch.setenv("PROBE_TIMEOUT_SECONDS", "5")

    answer = canary.handler({"source": "aws.events"}, None)

    assert answer["alive"] is True
    assert answer["tls_version"] in {"TLSv1.2", "TLSv1.3"}
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    logged = json.loads(lines[0])
    assert logged["alive"] is True and logged["port"] == tls_pg.port


# --- against peers that are not a healthy server ---------------------------------------

def test_port_that_accepts_tcp_but_never_answers_times_out_within_budget():
    with silent_listener() as (host, port):
        started = time.monotonic()
        result = canary.probe(host, port, 0.6)
        wall = time.monotonic() - started

    assert result.alive is False
    assert "timed out during SSLRequest" in result.reason
    assert 0.5 <= wall < 1.5
    assert 500 <= result.elapsed_ms < 1500


def test_server_starting_up_is_down(tmp_path):
    from tests.support.postgres import write_self_signed_cert

    cert, key = write_self_signed_cert(tmp_path)
    with FakePostgres("starting-up", cert, key) as fake:
        result = canary.probe(fake.host, fake.port, 5)
        startup = fake.startup_messages[0]

    assert result.alive is False
    assert "57P03" in result.reason and "starting up" in result.reason
    assert result.tls_version is not None  # it got as far as TLS: the refusal is PostgreSQL's
    # The StartupMessage went out as protocol 3.0 with a user and a database, and no password.
    assert struct.unpack("!I", startup[:4])[0] == 196608
    params = startup[4:].split(b"\0")
    assert params[params.index(b"user") + 1] == b"failover_canary"
    assert params[params.index(b"database") + 1] == b"postgres"
    assert b"password" not in startup


def test_stall_after_ssl_answer_times_out_in_the_handshake(tmp_path):
    from tests.support.postgres import write_self_signed_cert

    cert, key = write_self_signed_cert(tmp_path)
    with FakePostgres("stall-after-s", cert, key) as fake:
        started = time.monotonic()
        result = canary.probe(fake.host, fake.port, 0.6)
        wall = time.monotonic() - started

    assert result.alive is False
    assert "TLS handshake" in result.reason
    assert wall < 1.5


def test_unexpected_answer_to_ssl_request_is_down(tmp_path):
    from tests.support.postgres import write_self_signed_cert

    cert, key = write_self_signed_cert(tmp_path)
    with FakePostgres("garbage", cert, key) as fake:
        result = canary.probe(fake.host, fake.port, 2)

    assert result.alive is False
    assert "unexpected answer" in result.reason


def test_unresolvable_host_is_down_within_budget():
    started = time.monotonic()
    result = canary.probe("canary-probe-test.invalid", 5432, 2)

    assert result.alive is False
    assert "resolv" in result.reason  # "could not resolve" or "timed out during name resolution"
    assert time.monotonic() - started < 3


def test_handler_raises_primary_down_when_refused(monkeypatch):
    monkeypatch.setenv("DB_HOST", "127.0.0.1")
    monkeypatch.setenv("DB_PORT", str(closed_port()))
    monkeypatch.delenv("PROBE_TIMEOUT_SECONDS", raising=False)

    with pytest.raises(canary.PrimaryDown) as raised:
        canary.handler({}, None)

    assert raised.value.result.alive is False
    assert "refused" in str(raised.value)


def test_handler_keeps_the_probe_inside_the_lambda_deadline(monkeypatch):
    # 1.6 s left in the invocation: the probe must give up ~1 s before the runtime would
    # kill the function, so the failure is reported as PrimaryDown, not a timeout.
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 1600)
    with silent_listener() as (host, port):
        monkeypatch.setenv("DB_HOST", host)
        monkeypatch.setenv("DB_PORT", str(port))
        monkeypatch.setenv("PROBE_TIMEOUT_SECONDS", "5")
        started = time.monotonic()
        with pytest.raises(canary.PrimaryDown):
            canary.handler({}, context)
        assert time.monotonic() - started < 1.2


def test_handler_requires_db_host(monkeypatch):
    monkeypatch.delenv("DB_HOST", raising=False)
    with pytest.raises(ValueError, match="DB_HOST"):
        canary.handler({}, None)


# --- wire format ------------------------------------------------------------------------

def test_ssl_request_is_the_documented_eight_bytes():
    # PostgreSQL protocol docs, "SSLRequest": Int32(8), Int32(80877103).
    assert canary.ssl_request() == bytes.fromhex("0000000804d2162f")


def test_error_fields_are_parsed():
    body = b"SFATAL\0C57P03\0Mthe database system is shutting down\0\0"
    assert canary.parse_error_fields(body) == {
        "S": "FATAL", "C": "57P03", "M": "the database system is shutting down",
    }
