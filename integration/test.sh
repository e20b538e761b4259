#!/usr/bin/env bash
# Runs the integration tests on the local stack. Starts the stack when it is
# not up and stops it again afterwards (a stack that was already up is left
# running). A missing server is a failure, never a skip.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
export STACK_DIR

started=no
if [ ! -f "$STACK_DIR/env" ]; then
  started=yes
  trap 'integration/stack/stack.sh down' EXIT
fi
integration/stack/stack.sh up
# shellcheck disable=SC1091
. "$STACK_DIR/env"
export STREAMBUDGET_STACK_DIR="$STACK_DIR"

go build -o "$STACK_DIR/bin/streambudget" ./cmd/streambudget
export STREAMBUDGET_BIN="$STACK_DIR/bin/streambudget"

# The integration package's tests run in parallel (each has its own streams,
# lease tables and proxies); they mostly wait on budgets and timeouts, so
# more of them than cores. Arguments go to go test (-run TestName).
go test -tags integration -count=1 -parallel "${INTEGRATION_PARALLEL:-8}" -timeout 12m ./integration/ "$@"
if [ "$started" = yes ]; then echo "stopping the stack this run started"; fi
