"""A real redis-server on a free loopback port, for the tests (and the benchmarks)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RedisServer:
    """`redis-server` with an append-only file in `directory`, fsynced on every write unless
    `fsync` says otherwise (`everysec`, `no`)."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        cluster: bool = False,
        fsync: str = "always",
        tls: bool = False,
    ) -> None:
        self.directory = directory
        self.fsync = fsync
        self.cluster = cluster
        self.tls = tls
        self.port = port or self._free_port()
        self.process: subprocess.Popen | None = None
        scheme = ("rediss" if tls else "redis") + ("+cluster" if cluster else "")
        self.url = f"{scheme}://127.0.0.1:{self.port}/0"
        if tls:
            self.url += f"?ssl_ca_certs={directory / 'cert.pem'}"

    def _free_port(self) -> int:
        while True:
            port = free_port()
            # A cluster node also listens on port + 10000 (its bus): that must exist and be free.
            if not self.cluster or (port + 10000 < 65536 and _is_free(port + 10000)):
                return port

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        if self.tls:
            command[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            command += self._certificate()
        command += ["--dir", str(self.directory), "--save", ""]
        command += ["--appendonly", "yes", "--appendfsync", self.fsync]
        if self.cluster:
            command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        log = self.directory / "redis.log"
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        if self.cluster:
            self.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            while b"cluster_state:ok" not in self.command("CLUSTER", "INFO"):
                time.sleep(0.05)
        return self

    def _certificate(self) -> list[str]:
        """A self-signed certificate for 127.0.0.1 (its own CA), made with openssl."""
        cert, key = self.directory / "cert.pem", self.directory / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        return ["--tls-cert-file", str(cert), "--tls-key-file", str(key)] + [
            "--tls-ca-cert-file",
            str(cert),
            "--tls-auth-clients",
            "no",
        ]

    def command(self, *words: str) -> bytes:
        """Send one command with the inline protocol; return the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            if self.tls:
                context = ssl.create_default_context(cafile=self.directory / "cert.pem")
                with context.wrap_socket(sock, server_hostname="127.0.0.1") as secure:
                    secure.sendall(" ".join(words).encode() + b"\r\n")
                    return secure.recv(65536)
            sock.sendall(" ".join(words).encode() + b"\r\n")
            return sock.recv(65536)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.command("PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass
            if self.process is not None and self.process.poll() is not None:
                output = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited: {output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server the way a crash would (the append-only file keeps every write)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
