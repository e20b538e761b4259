#!/usr/bin/env bash
# make demo: brings the local stack up (reusing it if it is up), runs the
# scenario with `streambudget demo`, and stops what it started, Ctrl-C too.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
export STACK_DIR

if [ ! -f "$STACK_DIR/env" ]; then
  trap 'integration/stack/stack.sh down' EXIT
fi
integration/stack/stack.sh up 2>&1 | tail -n 1
# shellcheck disable=SC1091
. "$STACK_DIR/env"
"$STACK_DIR/bin/streambudget" lint budgets/
"$STACK_DIR/bin/streambudget" plan budgets/
echo
exec_status=0
"$STACK_DIR/bin/streambudget" demo "$@" || exec_status=$?
exit "$exec_status"
