#!/usr/bin/env bash
# Set up everything the tests and the demo need, idempotently:
#   - Debian packages (redis-server, redis-tools, git, chromium, postgresql-client, prometheus) when missing
#   - .venv with the pinned set (requirements-test.txt + constraints-3.3.2-py3.11.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v git >/dev/null 2>&1 || need+=(git)
command -v zstd >/dev/null 2>&1 || need+=(zstd)  # the README's stock restore of a zstd archive (tested)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# pg_dump / pg_restore: the PostgreSQL engine's stock tools (Airflow's own metadata DB)
{ command -v pg_dump && command -v pg_restore; } >/dev/null 2>&1 || need+=(postgresql-client)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)   # promtool + prometheus: the alert-rule and scrape tests
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Only the binaries are needed: the tests start their own prometheus on 127.0.0.1. The
  # package's service (on systemd hosts) would listen on every interface on :9090.
  if [[ " ${need[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 \
     && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.backup-dr-installed"
want="$(cat requirements.txt requirements-test.txt constraints-3.3.2-py3.11.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned Python packages (a few minutes on a fresh machine)"
  .venv/bin/python -m pip install -q --disable-pip-version-check "pip==26.3"
  .venv/bin/python -m pip install -q --disable-pip-version-check \
      -r requirements-test.txt -c constraints-3.3.2-py3.11.txt
  echo "$want" > "$stamp"
fi
bash scripts/install-cli.sh   # .venv/bin/backup-dr (the CLI without PYTHONPATH=plugins)
