#!/usr/bin/env bash
# The demo: set up (idempotent), start local stand-ins, seed sample data, run the critical_data
# backup DAG, a restore drill and the health check, and print where the backups went.
#   bash scripts/demo.sh [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYTHONPATH=plugins exec .venv/bin/python -m backup_dr.devstack.demo "$@"
