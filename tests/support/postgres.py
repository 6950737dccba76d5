"""Real and fake PostgreSQL peers for tests that speak the wire protocol.

``PostgresServer`` runs a throwaway PostgreSQL cluster from the machine's server
binaries (Debian package ``postgresql-15``, or any ``postgresql-NN``): found through
``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``. PostgreSQL refuses to run
as root, so when the tests run as root (as on this project's CI machines) the cluster
lives in a temporary directory owned by the ``postgres`` user and every server command
runs through ``runuser -u postgres``; as any other user (GitHub's runners) it runs
directly. It listens on a free loopback port only, with a fresh
self-signed certificate, and can be restarted with TLS off, stopped, or given other
pg_hba.conf rules.

``FakePostgres`` is a tiny TLS-capable stand-in for states a real server cannot be
held in cheaply (answering "the database system is starting up", stalling mid-way).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import pwd
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from glob import glob
from pathlib import Path

SERVER_USER = "postgres"
DEFAULT_HBA = (
    "local all all trust",
    "hostssl all all 127.0.0.1/32 scram-sha-256",
    "host all all 127.0.0.1/32 scram-sha-256",
)


def find_bindir() -> Path | None:
    """The directory holding ``initdb``, ``postgres`` and ``pg_ctl``, or None."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))

    def major(path: str) -> int:
        version = Path(path).parent.name
        return int(version) if version.isdigit() else 0

    candidates += [Path(p) for p in sorted(glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)]
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_self_signed_cert(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A one-day P-256 certificate for 127.0.0.1/localhost; returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class PostgresServer:
    """One throwaway cluster; ``start``/``stop``/``ensure`` switch its state."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.host = "127.0.0.1"
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pgtest-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.running = False
        self.ssl = False
        self._as_root = os.geteuid() == 0
        if self._as_root:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError as missing:
                raise RuntimeError(
                    f"running as root but there is no '{SERVER_USER}' user to run PostgreSQL as "
                    "(the Debian server package creates it)"
                ) from missing
            self._uid, self._gid = account.pw_uid, account.pw_gid
        self.cert, self.key = write_self_signed_cert(self.root)
        self._give_to_server_user(self.root, self.cert, self.key)

    def _give_to_server_user(self, *paths: Path) -> None:
        if self._as_root:
            for path in paths:
                os.chown(path, self._uid, self._gid)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}\n{log}")
        return done

    def init(self) -> PostgresServer:
        self._run(
            "initdb", "-D", str(self.data), "-U", SERVER_USER, "-E", "UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '{self.host}'\n"
                f"unix_socket_directories = '{self.root}'\n"
                f"ssl_cert_file = '{self.cert}'\nssl_key_file = '{self.key}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 16MB\nmax_connections = 20\n"
            )
        self.set_hba(DEFAULT_HBA, reload=False)
        return self

    def set_hba(self, lines: tuple[str, ...], reload: bool = True) -> None:
        hba = self.data / "pg_hba.conf"
        hba.write_text("\n".join(lines) + "\n")
        self._give_to_server_user(hba)
        if reload and self.running:
            # A restart, not a SIGHUP: a reload is asynchronous, and a test must not
            # race the postmaster re-reading the file.
            ssl_on = self.ssl
            self.stop()
            self.start(ssl_on)

    def start(self, ssl_on: bool = True) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", f"-c ssl={'on' if ssl_on else 'off'}", "start",
        )
        self.running, self.ssl = True, ssl_on

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast", "stop")
            self.running = False

    def ensure(self, running: bool = True, ssl_on: bool = True) -> None:
        if running and self.running and self.ssl == ssl_on:
            return
        self.stop()
        if running:
            self.start(ssl_on)

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(bindir: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(bindir)
    try:
        server.init()
        server.start(ssl_on=True)
        yield server
    finally:
        server.cleanup()


def error_response(sqlstate: str, message: str, severity: str = "FATAL") -> bytes:
    body = b"".join(
        code + value.encode() + b"\0"
        for code, value in ((b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", message))
    ) + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


class FakePostgres:
    """A loopback server that speaks just enough of the protocol to misbehave on purpose.

    behaviour:
      "starting-up"  'S', TLS handshake, read the StartupMessage, answer 57P03, close.
      "stall-after-s" answer 'S' to the SSLRequest, then never start the handshake.
      "garbage"      answer 'X' to the SSLRequest.
    """

    def __init__(self, behaviour: str, cert: Path, key: Path):
        self.behaviour = behaviour
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self.startup_messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"fake-pg-{behaviour}", daemon=True)

    def __enter__(self) -> FakePostgres:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with contextlib.suppress(OSError), conn:
                conn.settimeout(10)
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        request = _recv_exact(conn, 8)
        if struct.unpack("!II", request) != (8, 80877103):
            return
        if self.behaviour == "garbage":
            conn.sendall(b"X")
            return
        conn.sendall(b"S")
        if self.behaviour == "stall-after-s":
            self._stop.wait(30)
            return
        with self._context.wrap_socket(conn, server_side=True) as tls:
            length = struct.unpack("!I", _recv_exact(tls, 4))[0]
            self.startup_messages.append(_recv_exact(tls, length - 4))
            tls.sendall(error_response("57P03", "the database system is starting up"))


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data.extend(chunk)
    return bytes(data)


@contextlib.contextmanager
def silent_listener() -> Iterator[tuple[str, int]]:
    """A port whose kernel completes TCP handshakes (backlog) but no one ever answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=8)
    try:
        yield listener.getsockname()[:2]
    finally:
        listener.close()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()
