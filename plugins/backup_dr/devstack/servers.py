"""Local stand-in servers on 127.0.0.1 for the tests, the demo and the benchmarks.

Each server is a real process (SecantusDB for MongoDB, Debian ``redis-server``,
``moto_server`` for S3, ``gcp-storage-emulator`` for GCS) started on a free port and
stopped by its PID, never by name, so nothing else on the machine is touched. The SMTP
and Slack-webhook sinks are small in-process servers that keep what they receive.

Secrets never go on a command line: Redis passwords and ACL users are written to a
0600 config file that ``redis-server`` reads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen | None, logfile: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:] if logfile and logfile.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting:\n{tail}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s")


class ManagedProcess:
    """A child process with its own session, log file and PID-based stop."""

    name = "server"

    def __init__(self, workdir: str | os.PathLike | None = None):
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"backup-dr-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.logfile = self.workdir / f"{self.name}.log"

    # subclasses provide
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 30.0) -> "ManagedProcess":
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
                env=self.env(), start_new_session=True,
            )
        _wait(self.ready, f"{self.name} on port {self.port}", timeout, self.proc, self.logfile)
        log.info("%s ready on 127.0.0.1:%s (pid %s)", self.name, self.port, self.proc.pid)
        return self

    def kill(self) -> None:
        """Hard kill (fault injection): SIGKILL the PID we started, no cleanup by the server."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None

    def restart(self, timeout: float = 30.0) -> "ManagedProcess":
        """Start again on the same port and data (after :meth:`kill` or :meth:`stop`)."""
        self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class MongoServer(ManagedProcess):
    """SecantusDB: the MongoDB wire protocol over WiredTiger, a one-node replica set ``secantus``."""

    name = "secantus"

    def __init__(self, workdir=None, *, oplog_max_entries: int = 1_000_000, oplog_retention_seconds: float = 6 * 3600, auth: bool = False):
        super().__init__(workdir)
        self.oplog_max_entries = oplog_max_entries
        self.oplog_retention_seconds = oplog_retention_seconds
        self.auth = auth

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(self.port),
            "--storage-path", str(self.workdir / "data"), "--log-level", "WARNING",
            "--oplog-max-entries", str(self.oplog_max_entries),
            "--oplog-retention-seconds", str(self.oplog_retention_seconds),
        ]
        return cmd + (["--auth"] if self.auth else [])

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def ready(self) -> bool:
        import pymongo

        with pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=300) as c:
            c.admin.command("ping")
        return True

    def client(self, **kw):
        import pymongo

        return pymongo.MongoClient(self.uri, **kw)


class RedisServer(ManagedProcess):
    """A private Debian ``redis-server``: own port, own ``dir``, debug commands on, no persistence
    unless asked. ``password`` and ``acl_users`` go into a 0600 config file, not argv."""

    name = "redis"

    def __init__(self, workdir=None, *, password: str | None = None, acl_users: dict[str, tuple[str, str]] | None = None,
                 appendonly: bool = False, save: str = "", extra: dict[str, str] | None = None):
        super().__init__(workdir)
        self.password = password
        self.acl_users = acl_users or {}  # name -> (password, rules)
        self.appendonly = appendonly
        self.save = save
        self.extra = extra or {}
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "redis.conf"

    def write_config(self) -> None:
        lines = [
            "bind 127.0.0.1", f"port {self.port}", f"dir {self.data_dir}", "daemonize no",
            f'save "{self.save}"', f"appendonly {'yes' if self.appendonly else 'no'}",
            "enable-debug-command yes", "repl-diskless-sync-delay 0", "protected-mode no",
            f"logfile {self.workdir / 'redis-server.log'}",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        for user, (pw, rules) in self.acl_users.items():
            lines.append(f"user {user} on >{pw} {rules}")
        lines += [f"{k} {v}" for k, v in self.extra.items()]
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        self.write_config()
        return [shutil.which("redis-server") or "/usr/bin/redis-server", str(self.config_path)]

    def client(self, **kw):
        import redis

        kw.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def ready(self) -> bool:
        with self.client(socket_timeout=1) as r:
            return r.ping() and r.info("persistence").get("loading", 0) == 0


class MotoServer(ManagedProcess):
    """``moto_server``: an S3 stand-in (accepts wrong checksums; verify client-side)."""

    name = "moto"
    access_key = "testing"
    secret_key = "testing"

    def command(self) -> list[str]:
        return [str(_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1) as r:
            return r.status == 200

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )


class GcsEmulator(ManagedProcess):
    """``gcp-storage-emulator --in-memory``: a GCS stand-in reached through STORAGE_EMULATOR_HOST."""

    name = "gcs"

    def command(self) -> list[str]:
        return [str(_BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(self.port), "--in-memory", "-q"]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(self.endpoint_url + "/storage/v1/b?project=test", timeout=1) as r:
            return r.status == 200

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        os.environ["STORAGE_EMULATOR_HOST"] = self.endpoint_url
        return storage.Client(project="test", credentials=AnonymousCredentials())


@dataclass
class SmtpSink:
    """An aiosmtpd server that keeps every message (``messages``: email.message.Message)."""

    port: int = field(default_factory=free_port)
    messages: list = field(default_factory=list)

    def start(self) -> "SmtpSink":
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Message

        sink = self

        class _Keep(Message):
            def handle_message(self, message):
                sink.messages.append(message)

        self._controller = Controller(_Keep(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @staticmethod
    def text(message) -> str:
        """Subject plus every decoded text part of a message (bodies arrive base64-encoded)."""
        parts = [str(message["Subject"] or "")]
        for part in message.walk():
            if part.get_content_maintype() == "text":
                payload = part.get_payload(decode=True) or b""
                parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        return "\n".join(parts)

    def wait_for(self, predicate: Callable = lambda m: True, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in list(self.messages) if predicate(m)]
            if found:
                return found
            time.sleep(0.1)
        return []


@dataclass
class HttpSink:
    """A tiny HTTP server that records every POST (a Slack incoming-webhook stand-in)."""

    port: int = field(default_factory=free_port)
    requests: list = field(default_factory=list)
    status: int = 200

    def start(self) -> "HttpSink":
        sink = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = body.decode("utf-8", "replace")
                sink.requests.append({"path": self.path, "body": payload, "headers": dict(self.headers)})
                self.send_response(sink.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self):  # noqa: N802 - doubles as a fake app health endpoint
                self.send_response(sink.status)
                self.end_headers()
                self.wfile.write(b'{"status": "ok"}')

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Callable = lambda r: True, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in list(self.requests) if predicate(r)]
            if found:
                return found
            time.sleep(0.1)
        return []
