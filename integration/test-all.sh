#!/usr/bin/env bash
# make test: every test, unit and integration, on a fresh machine as on one
# that ran it before. What it needs it installs and starts itself.
#
# Two lanes run side by side, so that the CPU the integration tests leave
# idle (they mostly wait on budgets and timeouts) does the compiling:
#
#   lane A (normal priority)
#     stack-tools  npm ci for the emulators and VictoriaLogs built from the
#                  Go module proxy, beside Debian's chromium and prometheus
#                  (one apt at a time)
#     integration  the local stack started once (and stopped again if this
#                  run started it), the integration tests in parallel
#     charts       the chart, Prometheus rule and dashboard packages, every
#                  manifest against Kubernetes' types (helm from lane B)
#     image        the image: reproducible, pushed and pulled, its binary run
#   lane B (nice 19, in an autogroup of nice 19: it takes only the CPU lane A
#   and the stack's servers leave idle)
#     helm         built from the Go module proxy
#     unit         go test of every package that needs no server or tool, with the
#                  race detector where goroutines share memory
#     fuzz         every fuzz target, then the simulation on new seeds, for
#                  FUZZTIME each; beside it:
#     simulation   the consumer core's simulation over SIM_SEEDS schedules
#                  (without the race detector, which the unit phase ran it under)
#
# Builds without the race detector share one set of compiled packages
# (CGO_ENABLED=0 -trimpath, the image's flags). Each phase's wall time is
# printed at the end and written to $STACK_DIR/test-times.txt; each lane's
# output goes to $STACK_DIR/logs/test-lane-{a,b}.log and is printed when the
# lane ends.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
export STACK_DIR
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-3s}
SIM_SEEDS=${SIM_SEEDS:-2000}
# go vet runs once, with the unit tests; -vet=off elsewhere (go build
# ignores it).
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -vet=off"
# Most of make test's CPU is the Go compiler, which at the default GOGC=100
# spends about a third of its time collecting garbage: at 800 the same builds
# take 29% less CPU (measured: cmd/streambudget from an empty cache, 126 ->
# 89 CPU s), for a few hundred MB more per compile. The tests that measure
# memory set their own collector (batchPeak in pkg/document; the integration
# harness starts streambudget with GOGC=100, as a pod runs it).
export GOGC=${GOGC:-800}
mkdir -p "$STACK_DIR/logs"
times="$STACK_DIR/test-times.txt"
: >"$times"
start_all=$(date +%s)

# phase NAME COMMAND...: runs one phase and records its wall and CPU time
# (user + system, of the phase's processes that were waited for).
phase() {
  local name=$1 t rc=0 cpu
  shift
  t=$(date +%s)
  printf '\n== %s\n' "$name"
  cpu=$(mktemp)
  ( "$@"; rc=$?; times >"$cpu"; exit $rc ) || rc=$?
  printf '%-12s %4ds wall %5s CPU  (%s)\n' "$name" "$(($(date +%s) - t))" "$(tail -n 1 "$cpu" | cpu_seconds)" \
    "$([ $rc = 0 ] && echo ok || echo FAILED)" >>"$times"
  rm -f "$cpu"
  return $rc
}

# cpu_seconds reads a line of `times` (children's user and system time, as
# 1m2.345s 0m1.000s) and prints their sum in whole seconds.
cpu_seconds() {
  awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } printf "%ds", s }'
}

stack_tools() {
  local rc=0 debian
  (integration/browser/install.sh >/dev/null && integration/prometheus/install.sh >/dev/null) 2>&1 &
  debian=$!
  integration/stack/stack.sh install || rc=1
  wait "$debian" || rc=1
  return $rc
}

charts() {
  until [ -f "$STACK_DIR/helm.ready" ]; do
    [ -f "$STACK_DIR/helm.failed" ] && { echo "building helm failed (lane B)"; return 1; }
    sleep 1
  done
  "$GO" test -count=1 ./integration/helm ./integration/prometheus
  make --no-print-directory test-k8s
}

lane_a() {
  local rc=0
  phase stack-tools stack_tools || return 1
  phase integration integration/test.sh || rc=1
  phase charts charts || rc=1
  phase image make --no-print-directory test-image || rc=1
  return $rc
}

build_helm() {
  if integration/helm/helm.sh >/dev/null; then touch "$STACK_DIR/helm.ready"; else touch "$STACK_DIR/helm.failed"; return 1; fi
}

# unit runs the packages whose goroutines share memory under the race
# detector (a go statement, sync/atomic, a mutex, a wait group or errgroup in
# their non-test files), and the others (decoding, rules, documents, advice:
# one goroutine each) without it.
unit() {
  local pkg dir race=() plain=()
  for pkg in $("$GO" list -f '{{.ImportPath}}={{.Dir}}' ./... | grep -v -e /integration/helm= -e /integration/prometheus=); do
    dir=${pkg#*=}
    if grep -qsE '^[[:space:]]*go [a-zA-Z_(]|"sync/atomic"|sync\.(Mutex|RWMutex|WaitGroup)|errgroup' $(ls "$dir"/*.go 2>/dev/null | grep -v _test.go); then
      race+=("${pkg%%=*}")
    else
      plain+=("${pkg%%=*}")
    fi
  done
  echo "race detector: ${race[*]##*/streambudget/}"
  CGO_ENABLED=1 GOFLAGS= "$GO" test -race -count=1 "${race[@]}" && "$GO" test -count=1 "${plain[@]}"
}

lane_b() {
  local rc=0
  phase helm build_helm || rc=1
  phase unit unit || rc=1
  # Side by side: a fuzz target runs on one core, and the simulation fills
  # the other (and the cores lane A leaves idle once it is done).
  phase fuzz make --no-print-directory fuzz FUZZTIME="$FUZZTIME" FUZZPARALLEL=1 &
  local fuzz=$!
  phase simulation "$GO" test -count=1 -run '^TestSimulation$' ./pkg/consumer -sim.seeds "$SIM_SEEDS" || rc=1
  wait $fuzz || rc=1
  return $rc
}

rm -f "$STACK_DIR/helm.ready" "$STACK_DIR/helm.failed" "$STACK_DIR/lane-b.sid"
lane_a >"$STACK_DIR/logs/test-lane-a.log" 2>&1 &
a=$!
# Lane B in a session of its own, so that it is an autogroup of its own
# where the kernel groups sessions (sched_autogroup): a nice value counts only
# within an autogroup, so the group's own is lowered too. Then the servers of
# the stack (each in its own session) and the integration tests get the CPU
# first, and their timing holds.
setsid -w nice -n 19 bash -c "echo \$\$ >$STACK_DIR/lane-b.sid; { echo 19 >/proc/self/autogroup; } 2>/dev/null;
  $(declare -f phase cpu_seconds build_helm unit lane_b)
  times=$times GO=$GO FUZZTIME=$FUZZTIME SIM_SEEDS=$SIM_SEEDS STACK_DIR=$STACK_DIR lane_b" \
  >"$STACK_DIR/logs/test-lane-b.log" 2>&1 &
b=$!
stop_lanes() {
  kill "$a" 2>/dev/null
  [ -f "$STACK_DIR/lane-b.sid" ] && pkill -s "$(cat "$STACK_DIR/lane-b.sid")" 2>/dev/null
  exit 130
}
trap stop_lanes INT TERM
echo "make test: lane A (tools, integration, charts, image) and lane B (helm, unit, fuzz, simulation) run side by side"
echo "progress: tail -f $STACK_DIR/logs/test-lane-{a,b}.log"
rc_a=0 rc_b=0
wait "$b" || rc_b=$?
printf '\n######## lane B: helm, unit, fuzz, simulation\n'
cat "$STACK_DIR/logs/test-lane-b.log"
wait "$a" || rc_a=$?
printf '\n######## lane A: tools, integration, charts, image\n'
cat "$STACK_DIR/logs/test-lane-a.log"

printf '%-12s %4ds\n' total "$(($(date +%s) - start_all))" >>"$times"
printf '\n== wall time by phase (%s)\n' "$times"
cat "$times"
if [ $rc_a != 0 ] || [ $rc_b != 0 ]; then
  echo "make test FAILED: see the phases marked FAILED above" >&2
  exit 1
fi
