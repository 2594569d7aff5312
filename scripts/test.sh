#!/usr/bin/env bash
# The test command: set up (idempotent), then run the whole suite against real local servers.
#   bash scripts/test.sh                 # everything, as CI runs it
#   bash scripts/test.sh -m "not slow"   # skip the slow end-to-end tests locally
#   bash scripts/test.sh tests/cli -x    # given paths: one pytest process, as usual
#
# The whole suite runs as two pytest processes side by side (each with its own servers, ports
# and temporary directories): the end-to-end half (tests/faults, tests/security, tests/system),
# which mostly waits on schedulers, workers and killed servers, and the rest. Each half keeps
# the usual test order. On 2 cores this takes about a third off the wall time; the second
# half's output is printed when it ends. BACKUP_DR_TEST_SPLIT=0 runs one process.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

E2E=(tests/faults tests/security tests/system)
REST=(tests/airflow tests/cli tests/dags tests/integration tests/ui tests/unit)

paths_given=0
for arg in "$@"; do
  case "$arg" in
    tests*|*.py|*::*) paths_given=1 ;;
  esac
done

check_rc() {  # pytest exit 5 = collected nothing: a failure, not a pass
  if [ "$1" -eq 5 ]; then
    echo "test.sh: pytest collected no tests ($2); that is a failure, not a pass" >&2
    return 1
  fi
  return "$1"
}

if [ "$paths_given" -eq 1 ] || [ "${BACKUP_DR_TEST_SPLIT:-1}" = "0" ]; then
  .venv/bin/python -m pytest "$@"
  check_rc $? "pytest $*"
  exit $?
fi

# every test directory is in exactly one half (a new directory must be added to one of them)
for d in tests/*/; do
  d="${d%/}"
  case " ${E2E[*]} ${REST[*]} " in
    *" $d "*) ;;
    *) [ "$d" = "tests/fixtures" ] || [ "$d" = "tests/__pycache__" ] || { echo "test.sh: $d is in neither half; add it to E2E or REST" >&2; exit 1; } ;;
  esac
done

log="$(mktemp -t backup-dr-e2e-XXXXXX.log)"
start=$SECONDS
.venv/bin/python -m pytest "$@" "${E2E[@]}" >"$log" 2>&1 &
e2e_pid=$!
.venv/bin/python -m pytest "$@" "${REST[@]}"
rest_rc=$?
wait "$e2e_pid"
e2e_rc=$?
echo
echo "==================== end-to-end half (${E2E[*]}) ===================="
cat "$log"
rm -f "$log"
echo
echo "test.sh: rest exit $rest_rc, end-to-end exit $e2e_rc, wall time $((SECONDS - start)) s"
check_rc "$rest_rc" "rest" && check_rc "$e2e_rc" "end-to-end"
