"""Keep a fresh Airflow API token in a file, for Prometheus to scrape ``/backup-dr/metrics``.

The metrics endpoint sits behind Airflow's own authentication (the same as the catalog
page), and Airflow's tokens expire (``[api_auth] jwt_expiration_time``, 24 h by default).
Prometheus reads a bearer token from ``authorization.credentials_file`` on every scrape, so
this small loop logs in as a read-only user (``POST /auth/token``, SimpleAuthManager's
login) and rewrites that file before the token expires. Standard library only: it runs in
the Airflow image (docker-compose's ``prometheus-token`` service) or on any host.

The password never appears on a command line: it comes from ``$AIRFLOW_SCRAPE_PASSWORD``
or from the SimpleAuthManager passwords file (JSON ``{"user": "password"}``).

    python airflow_token.py --api http://airflow-apiserver:8080 --user prometheus \\
        --passwords-file /opt/airflow/config/simple_auth_manager_passwords.json \\
        --out /prometheus-token/token --every 6h
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger("airflow_token")
_UNITS = {"s": 1, "m": 60, "h": 3600}


def seconds(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``6h``."""
    unit = text[-1] if text and text[-1] in _UNITS else "s"
    try:
        return float(text.rstrip("smh")) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m or 6h") from None


def password(user: str, passwords_file: str | None) -> str:
    env = os.environ.get("AIRFLOW_SCRAPE_PASSWORD")
    if env:
        return env
    if not passwords_file:
        raise SystemExit("no password: set AIRFLOW_SCRAPE_PASSWORD or pass --passwords-file")
    try:
        known = json.loads(Path(passwords_file).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"cannot read the passwords file {passwords_file}: {e}") from None
    if user not in known:
        raise SystemExit(f"user {user!r} is not in {passwords_file}; add it to [core] simple_auth_manager_users "
                         f"(e.g. '{user}:viewer') and restart the API server")
    return known[user]


def fetch(api: str, user: str, secret: str, timeout: float = 30) -> str:
    body = json.dumps({"username": user, "password": secret}).encode()
    req = urllib.request.Request(api.rstrip("/") + "/auth/token", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())["access_token"]


def write(out: Path, token: str) -> None:
    """Atomically (Prometheus may read the file at any moment); readable by the scraper's user."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".token-")
    with os.fdopen(fd, "w") as f:
        f.write(token)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--api", required=True, help="Airflow API server base URL, e.g. http://airflow-apiserver:8080")
    p.add_argument("--user", required=True, help="a read-only (viewer) user of the API server")
    p.add_argument("--passwords-file", help="SimpleAuthManager's passwords JSON (else $AIRFLOW_SCRAPE_PASSWORD)")
    p.add_argument("--out", required=True, type=Path, help="the token file Prometheus reads (credentials_file)")
    p.add_argument("--every", type=seconds, help="keep running, renewing the token this often (below the JWT lifetime)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    while True:
        try:
            write(args.out, fetch(args.api, args.user, password(args.user, args.passwords_file)))
            log.info("token for %s written to %s", args.user, args.out)
            delay = args.every
        except (OSError, urllib.error.URLError, KeyError, ValueError) as e:  # API server not up yet, or restarting
            if args.every is None:
                log.error("could not get a token from %s: %s", args.api, e)
                return 1
            log.warning("could not get a token from %s (%s); retrying in 30s", args.api, e)
            delay = 30
        if args.every is None:
            return 0
        time.sleep(delay)


if __name__ == "__main__":
    sys.exit(main())
