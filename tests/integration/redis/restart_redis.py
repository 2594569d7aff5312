"""A restart command for a test redis-server, as a data_dir restore runs it (argv only, no secrets).

    restart_redis.py --config C --pidfile P --port N [--fail-once | --no-start-once | --empty-once | --pause-once MARKER]

Stops the server whose PID is in the pidfile (SIGTERM; it saves nothing when ``save ""``),
waits until it is gone, then starts ``redis-server C --daemonize yes`` (the password stays in
the 0600 config file). Fault injection for rollback tests, each used up on first use:
``--fail-once`` stops the server and exits 3 without starting it; ``--no-start-once`` stops
it and exits 0 without starting it (a server that "does not come up"); ``--empty-once``
starts it reading another, absent dump file with AOF off (it serves, but empty);
``--pause-once`` stops it and sleeps a minute before starting it (a slow restart to kill
the restore in).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(pidfile: Path, port: int) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = None
    try:
        is_redis = pid is not None and b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        is_redis = False
    if is_redis:  # a stale pidfile may name a reused PID: only ever signal a redis-server
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while (pidfile.exists() or _listening(port)) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _listening(port):
        sys.exit("redis-server did not stop")


def _use_marker(path: str | None) -> bool:
    if path and os.path.exists(path):
        os.unlink(path)
        return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fail-once")
    ap.add_argument("--no-start-once")
    ap.add_argument("--empty-once")
    ap.add_argument("--pause-once")
    args = ap.parse_args()
    _stop(Path(args.pidfile), args.port)
    if _use_marker(args.fail_once):
        print("injected failure: redis stopped and not started", file=sys.stderr)
        sys.exit(3)
    if _use_marker(args.no_start_once):
        return
    if _use_marker(args.pause_once):
        time.sleep(60)
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    wrong = ["--dbfilename", "absent.rdb", "--appendonly", "no"] if _use_marker(args.empty_once) else []
    subprocess.run([binary, args.config, "--daemonize", "yes", *wrong], check=True)


if __name__ == "__main__":
    main()
