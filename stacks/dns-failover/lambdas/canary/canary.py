"""Canary: is the primary PostgreSQL server alive and speaking TLS? (dns-failover layer)

Runs every minute in the primary region, inside the primary VPC, with no internet
and no AWS API access: it only opens a TCP connection to the database. Its verdict
reaches CloudWatch through the Lambda service itself: a healthy probe returns, a
failed one RAISES ``PrimaryDown``, so the function's own ``Errors`` metric (and
``Invocations``, for "the canary did not run at all") feeds the alarm behind the
Route 53 health check. No CloudWatch endpoint, NAT or credentials are needed.

Interface (kept in step with the Pulumi layer that deploys it):
    handler         ``canary.handler`` (runtime python3.13, standard library only)
    env DB_HOST                 primary endpoint address (required)
    env DB_PORT                 default 5432
    env PROBE_TIMEOUT_SECONDS   default 5; the budget for the WHOLE probe
    env WITNESS_NAME            optional (the replica canary sets it): a name whose Route 53
                                failover answer is WITNESS_HEALTHY_ADDRESS while the primary's
                                canary health check is healthy, WITNESS_FAILING_ADDRESS when not
    ``probe(host, port, timeout) -> ProbeResult(alive, reason, elapsed_ms, tls_version)``
    ``handler(event, context)`` returns a small dict when alive, raises ``PrimaryDown``
    when not. Set the function timeout a few seconds above PROBE_TIMEOUT_SECONDS.
    IAM: only CloudWatch Logs writes and the VPC network-interface actions.

The same code runs twice: in the primary VPC against the primary (its failures feed the
alarm and the Route 53 health check behind ``witness.<zone>``), and in the secondary VPC
against the replica. There it also resolves WITNESS_NAME through the VPC's resolver, which
answers from Route 53's data plane, and logs what Route 53 answered: that is how the
promoter, in the secondary region, learns Route 53's global verdict on the primary's canary
without calling Route 53's control plane (us-east-1). One JSON line per run carries both
(``{"event": "canary-probe", "alive": ..., "witness": ...}``); the lookup has its own
WITNESS_TIMEOUT_SECONDS budget and never changes the probe's verdict.

The probe is what ``pg_isready`` does, plus TLS (the server forces TLS):
    1. TCP connect.
    2. SSLRequest -> the server answers one byte: 'S' (go ahead) or 'N' (no TLS:
       not healthy for us, clients are required to use TLS).
    3. TLS handshake.
    4. StartupMessage (protocol 3.0) -> the first message the server sends back:
       'R' (any authentication request) -> alive;
       'E' with SQLSTATE 57P03 cannot_connect_now ("starting up", "shutting down",
       "not yet accepting connections"), 57P01 or 57P02 (shutting down) -> NOT alive;
       'E' with any other SQLSTATE (28000 no pg_hba.conf entry, 28P01, 3D000, 53300
       too many clients...) -> alive: the server accepts connections and answers.
    Timeouts, refusals, resets and handshake failures -> not alive, with the reason.
Every socket operation uses the time left of one overall deadline, so the whole
probe, DNS resolution included, ends within ``timeout`` seconds (plus scheduling
noise). No credentials are ever sent; the connection is simply closed (Terminate is
only valid once startup has completed).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

SSL_REQUEST_CODE = 80877103
PROTOCOL_3_0 = 3 << 16
PROBE_USER = "failover_canary"
PROBE_DATABASE = "postgres"
APPLICATION_NAME = "failover-canary"

# SQLSTATEs that mean "this server is not (or no longer) serving connections".
NOT_SERVING_SQLSTATES = {
    "57P01": "admin_shutdown",
    "57P02": "crash_shutdown",
    "57P03": "cannot_connect_now",
}
AUTH_REQUESTS = {
    0: "AuthenticationOk",
    2: "AuthenticationKerberosV5",
    3: "AuthenticationCleartextPassword",
    5: "AuthenticationMD5Password",
    7: "AuthenticationGSS",
    9: "AuthenticationSSPI",
    10: "AuthenticationSASL",
}
# A first reply larger than this is not PostgreSQL talking.
MAX_MESSAGE_BYTES = 64 * 1024
# Leave the Lambda runtime this much time to report a failure before it kills us.
LAMBDA_SAFETY_MARGIN_SECONDS = 1.0
# Budget of the witness lookup (one name through the VPC resolver), before the probe's own.
WITNESS_TIMEOUT_SECONDS = 2.0
WITNESS_VERDICTS = ("healthy", "unhealthy", "unresolved")


class PrimaryDown(Exception):
    """The primary did not prove itself alive; raising it is the canary's signal."""

    def __init__(self, result: ProbeResult):
        super().__init__(result.reason)
        self.result = result


@dataclass(frozen=True)
class ProbeResult:
    alive: bool
    reason: str
    elapsed_ms: float
    tls_version: str | None


class _Failure(Exception):
    """Ends the probe early with a reason (internal)."""


class _Deadline:
    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.end = self.start + seconds

    def remaining(self, phase: str) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"probe budget exhausted before {phase}")
        return left

    def elapsed_ms(self) -> float:
        return round((time.monotonic() - self.start) * 1000.0, 1)


def _tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A liveness probe, not a client: it sends no credentials and reads no data, so
    # an unverified certificate exposes nothing. Verifying would need a CA bundle
    # in the package and would turn a certificate rotation into a failover.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _resolve(host: str, port: int, deadline: _Deadline) -> list[tuple]:
    """getaddrinfo has no timeout of its own: run it in a thread we can stop waiting for."""
    answer: dict[str, object] = {}

    def lookup() -> None:
        try:
            answer["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            answer["error"] = error

    worker = threading.Thread(target=lookup, name="canary-resolve", daemon=True)
    worker.start()
    worker.join(deadline.remaining("name resolution"))
    if worker.is_alive():
        raise TimeoutError(f"resolving {host}")
    if "error" in answer:
        raise _Failure(f"could not resolve {host}: {answer['error']}")
    return answer["addresses"]  # type: ignore[return-value]


def _connect(host: str, port: int, deadline: _Deadline) -> socket.socket:
    last_error: OSError | None = None
    for family, kind, proto, _name, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.remaining("TCP connect"))
            sock.connect(address)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            last_error = error
    if isinstance(last_error, ConnectionRefusedError):
        raise _Failure(f"connection refused by {host}:{port}")
    raise _Failure(f"could not connect to {host}:{port}: {last_error}")


def _recv_exact(sock: socket.socket, size: int, deadline: _Deadline, phase: str) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        sock.settimeout(deadline.remaining(phase))
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise _Failure(f"server closed the connection during {phase}")
        chunks.extend(chunk)
    return bytes(chunks)


def _send_all(sock: socket.socket, data: bytes, deadline: _Deadline, phase: str) -> None:
    sock.settimeout(deadline.remaining(phase))
    sock.sendall(data)


def ssl_request() -> bytes:
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def startup_message(user: str = PROBE_USER, database: str = PROBE_DATABASE) -> bytes:
    params = b"".join(
        key.encode() + b"\0" + value.encode() + b"\0"
        for key, value in (("user", user), ("database", database), ("application_name", APPLICATION_NAME))
    )
    body = struct.pack("!I", PROTOCOL_3_0) + params + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def parse_error_fields(body: bytes) -> dict[str, str]:
    """ErrorResponse body: (field code byte, NUL-terminated string)*, then a NUL."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(body) and body[position] != 0:
        code = chr(body[position])
        end = body.find(b"\0", position + 1)
        if end < 0:
            break
        fields[code] = body[position + 1:end].decode("utf-8", errors="replace")
        position = end + 1
    return fields


def _read_message(sock: socket.socket, deadline: _Deadline, phase: str) -> tuple[bytes, bytes]:
    header = _recv_exact(sock, 5, deadline, phase)
    kind, length = header[:1], struct.unpack("!I", header[1:])[0]
    if length < 4 or length > MAX_MESSAGE_BYTES:
        raise _Failure(f"malformed reply to the startup message (type {kind!r}, length {length})")
    return kind, _recv_exact(sock, length - 4, deadline, phase)


def _judge_startup_reply(kind: bytes, body: bytes, tls_version: str | None) -> tuple[bool, str]:
    if kind == b"R":
        code = struct.unpack("!I", body[:4])[0] if len(body) >= 4 else -1
        name = AUTH_REQUESTS.get(code, f"authentication request {code}")
        return True, f"server answered the startup message with {name} over {tls_version}"
    if kind == b"E":
        fields = parse_error_fields(body)
        sqlstate, message = fields.get("C", "?????"), fields.get("M", "")
        if sqlstate in NOT_SERVING_SQLSTATES:
            return False, (
                f"server is not serving connections: {sqlstate} "
                f"{NOT_SERVING_SQLSTATES[sqlstate]} ({message})"
            )
        return True, (
            f"server answered the startup message over {tls_version} with error {sqlstate} "
            f"({message}): it is accepting connections"
        )
    return False, f"unexpected reply to the startup message (message type {kind!r})"


def probe(
    host: str,
    port: int,
    timeout: float,
    *,
    user: str = PROBE_USER,
    database: str = PROBE_DATABASE,
) -> ProbeResult:
    """Probe a PostgreSQL server once; never raises for network or protocol failures."""
    deadline = _Deadline(timeout)
    phase = "name resolution and TCP connect"
    tls_version: str | None = None
    sock: socket.socket | None = None

    def result(alive: bool, reason: str) -> ProbeResult:
        return ProbeResult(alive, reason, deadline.elapsed_ms(), tls_version)

    try:
        sock = _connect(host, port, deadline)
        phase = "SSLRequest"
        _send_all(sock, ssl_request(), deadline, phase)
        answer = _recv_exact(sock, 1, deadline, phase)
        if answer == b"N":
            return result(False, "server refused TLS (answered 'N' to the SSLRequest); TLS is required")
        if answer != b"S":
            return result(False, f"unexpected answer to the SSLRequest: {answer!r}")
        phase = "TLS handshake"
        tls = _tls_context().wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        sock = tls
        # CPython bounds the whole handshake by the socket timeout, not each read.
        tls.settimeout(deadline.remaining(phase))
        tls.do_handshake()
        tls_version = tls.version()
        phase = "startup message"
        _send_all(tls, startup_message(user, database), deadline, phase)
        kind, body = _read_message(tls, deadline, phase)
        if kind == b"v":  # NegotiateProtocolVersion: the real answer follows it.
            kind, body = _read_message(tls, deadline, phase)
        return result(*_judge_startup_reply(kind, body, tls_version))
    except TimeoutError:
        return result(False, f"timed out during {phase} (budget {timeout:g} s)")
    except _Failure as failure:
        return result(False, str(failure))
    except ssl.SSLError as error:
        return result(False, f"TLS handshake failed: {error}")
    except ConnectionRefusedError:
        return result(False, f"connection refused by {host}:{port}")
    except ConnectionResetError:
        return result(False, f"connection reset by the server during {phase}")
    except OSError as error:
        return result(False, f"network error during {phase}: {error}")
    finally:
        if sock is not None:
            sock.close()


def _settings(environ: Mapping[str, str]) -> tuple[str, int, float]:
    host = (environ.get("DB_HOST") or "").strip()
    if not host:
        raise ValueError("DB_HOST is required")
    port = int(environ.get("DB_PORT") or 5432)
    timeout = float(environ.get("PROBE_TIMEOUT_SECONDS") or 5)
    if not 0 < port < 65536 or timeout <= 0:
        raise ValueError(f"invalid DB_PORT={port} or PROBE_TIMEOUT_SECONDS={timeout}")
    return host, port, timeout


def observe_witness(name: str, healthy_address: str, failing_address: str,
                    timeout: float = WITNESS_TIMEOUT_SECONDS) -> tuple[str, str]:
    """(verdict, detail): which member of the witness failover pair Route 53 answers with."""
    try:
        addresses = {info[4][0] for info in _resolve(name, 0, _Deadline(timeout))}
    except (TimeoutError, _Failure) as error:
        return "unresolved", str(error)
    if healthy_address in addresses:
        return "healthy", f"{name} -> {healthy_address} (PRIMARY: the canary's health check is healthy)"
    if failing_address in addresses:
        return "unhealthy", f"{name} -> {failing_address} (SECONDARY: the canary's health check is unhealthy)"
    return "unresolved", f"{name} -> {sorted(addresses)}: neither witness address"


def handler(event: object, context: object) -> dict:
    host, port, timeout = _settings(os.environ)
    record: dict[str, object] = {"event": "canary-probe", "host": host, "port": port}
    witness_name = (os.environ.get("WITNESS_NAME") or "").strip()
    if witness_name:
        record["witness"], record["witness_detail"] = observe_witness(
            witness_name, os.environ.get("WITNESS_HEALTHY_ADDRESS", ""),
            os.environ.get("WITNESS_FAILING_ADDRESS", ""))
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining_ms):
        # Report "down" ourselves rather than let the runtime time us out silently.
        timeout = max(0.1, min(timeout, remaining_ms() / 1000.0 - LAMBDA_SAFETY_MARGIN_SECONDS))
    result = probe(host, port, timeout)
    record.update(asdict(result))
    print(json.dumps(record, sort_keys=True), flush=True)
    if not result.alive:
        raise PrimaryDown(result)
    return {"alive": True, "reason": result.reason, "elapsed_ms": result.elapsed_ms,
            "tls_version": result.tls_version}
