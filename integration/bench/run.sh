#!/usr/bin/env bash
# make bench: the per-record and pacing benchmarks, then the end-to-end
# figures on the local stack (started and stopped as needed), in one table.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
export STACK_DIR
GO=${GO:-go}
BENCHTIME=${BENCHTIME:-1s}

if [ ! -f "$STACK_DIR/env" ]; then
  trap 'integration/stack/stack.sh down' EXIT
fi
integration/stack/stack.sh up 2>&1 | tail -n 1
# shellcheck disable=SC1091
. "$STACK_DIR/env"
"$GO" build -o "$STACK_DIR/bin/streambudget" ./cmd/streambudget
export STREAMBUDGET_BIN="$STACK_DIR/bin/streambudget"
mkdir -p "$STACK_DIR/bench"
rm -f "$STACK_DIR"/bench/*.figures.json
"$GO" test -tags integration -run NONE -bench "${E2E_BENCH:-.}" -benchtime 1x -timeout 30m ./integration/bench/ | tee "$STACK_DIR/bench/e2e.txt"
"$GO" run ./integration/bench/cmd/benchreport -go "$GO" -benchtime "$BENCHTIME"
