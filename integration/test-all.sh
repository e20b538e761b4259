#!/usr/bin/env bash
# make test: every test, unit and integration, on a fresh machine as on one
# that ran it before. What it needs it installs and starts itself.
#
#   tools        from the start, in the background: Debian's chromium and
#                prometheus (one apt at a time), npm ci for the emulators,
#                VictoriaLogs and helm built from the Go module proxy
#   unit         go test -race of every package that needs no server or tool
#   fuzz         every fuzz target for FUZZTIME
#   simulation   the consumer core's simulation over SIM_SEEDS schedules
#                (without the race detector, which the unit phase ran it under)
#   charts       once the tools are in: the chart, Prometheus rule and
#                dashboard packages, every manifest against Kubernetes' types,
#                the image
#   integration  the local stack started once (and stopped again if this run
#                started it), the integration tests in parallel
#
# Each phase's wall time is printed at the end and written to
# $STACK_DIR/test-times.txt. Logs of the tools phase: $STACK_DIR/logs/tools-*.log.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
export STACK_DIR
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3s}
SIM_SEEDS=${SIM_SEEDS:-1000}
mkdir -p "$STACK_DIR/logs"
times="$STACK_DIR/test-times.txt"
: >"$times"
start_all=$(date +%s)

say() { printf '\n== %s\n' "$*"; }
took() { # took NAME START
  local s=$(($(date +%s) - $2))
  printf '%-12s %4ds\n' "$1" "$s" >>"$times"
}

# tools: each install writes its own log; a failure is reported when the
# phase is waited for.
tools() {
  local pids=() rc=0 p
  (integration/browser/install.sh >/dev/null && integration/prometheus/install.sh >/dev/null) \
    >"$STACK_DIR/logs/tools-debian.log" 2>&1 &
  pids+=($!)
  integration/stack/stack.sh install >"$STACK_DIR/logs/tools-stack.log" 2>&1 &
  pids+=($!)
  integration/helm/helm.sh >"$STACK_DIR/logs/tools-helm.log" 2>&1 &
  pids+=($!)
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

t=$(date +%s)
tools &
tools_pid=$!
tools_start=$t

say "unit tests (race detector)"
t=$(date +%s)
# shellcheck disable=SC2046
"$GO" test -race -count=1 $("$GO" list ./... | grep -v -e /integration/helm -e /integration/prometheus)
took unit "$t"

say "fuzz targets, $FUZZTIME each"
t=$(date +%s)
make --no-print-directory fuzz FUZZTIME="$FUZZTIME"
took fuzz "$t"

say "simulation of the consumer core, $SIM_SEEDS schedules"
t=$(date +%s)
"$GO" test -count=1 -run '^TestSimulation$' ./pkg/consumer -sim.seeds "$SIM_SEEDS"
took simulation "$t"

say "waiting for the tools"
t=$(date +%s)
if ! wait "$tools_pid"; then
  for f in "$STACK_DIR"/logs/tools-*.log; do echo "--- $f"; tail -n 40 "$f"; done
  echo "installing the test tools failed (logs above)" >&2
  exit 1
fi
took tools-wait "$t"
printf '%-12s %4ds (in the background)\n' tools "$(($(date +%s) - tools_start))" >>"$times"
grep -h -e ' (want ' "$STACK_DIR"/logs/tools-debian.log || true

say "charts, rules, dashboards, manifests, image"
t=$(date +%s)
"$GO" test -count=1 ./integration/helm ./integration/prometheus
make --no-print-directory test-k8s
make --no-print-directory test-image
took charts "$t"

say "integration tests on the local stack"
t=$(date +%s)
integration/test.sh
took integration "$t"

printf '%-12s %4ds\n' total "$(($(date +%s) - start_all))" >>"$times"
say "wall time by phase ($times)"
cat "$times"
