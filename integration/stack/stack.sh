#!/usr/bin/env bash
# The local stack: Kinesis (kinesis-local and kinesalite), DynamoDB (dynalite)
# and a search server speaking the Elasticsearch bulk API (VictoriaLogs).
#
#   stack.sh install install the servers (pinned, cached) without starting them
#   stack.sh up      install (pinned, cached) and start what is not running; idempotent
#   stack.sh down    stop what `up` started, by PID
#   stack.sh status  print what runs where
#   stack.sh stop NAME / start NAME   stop or start one server (fault-injection tests)
#
# Everything binds to 127.0.0.1. State, logs, PIDs and built tools live under
# $STACK_DIR (default .stack at the repository root, ignored by git). Ports can
# be overridden with the variables below.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/integration/stack"
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
case "$STACK_DIR" in /*) ;; *) STACK_DIR="$ROOT/$STACK_DIR" ;; esac

KINESIS_LOCAL_PORT=${KINESIS_LOCAL_PORT:-4568}
KINESIS_LOCAL_TLS_PORT=${KINESIS_LOCAL_TLS_PORT:-4567}
KINESALITE_PORT=${KINESALITE_PORT:-4569}
DYNALITE_PORT=${DYNALITE_PORT:-8000}
VICTORIALOGS_PORT=${VICTORIALOGS_PORT:-9428}

# Pinned versions. The npm ones are pinned again by package-lock.json.
VICTORIAMETRICS_VERSION=v1.102.1

SERVERS="kinesis-local kinesalite dynalite victorialogs"

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pidfile() { echo "$STACK_DIR/run/$1.pid"; }

running() {
  local pf; pf=$(pidfile "$1")
  [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null
}

port_of() {
  case "$1" in
    kinesis-local) echo "$KINESIS_LOCAL_PORT" ;;
    kinesalite) echo "$KINESALITE_PORT" ;;
    dynalite) echo "$DYNALITE_PORT" ;;
    victorialogs) echo "$VICTORIALOGS_PORT" ;;
  esac
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_npm() {
  local stamp="$STACK_DIR/npm.stamp" want
  want=$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)
  if [ -d "$HERE/node_modules" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  command -v npm >/dev/null || die "npm is needed for the Kinesis and DynamoDB emulators"
  log "installing emulators with npm ci (kinesis-local, kinesalite, dynalite)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >"$STACK_DIR/logs/npm.log" 2>&1) ||
    { cat "$STACK_DIR/logs/npm.log" >&2; die "npm ci failed"; }
  echo "$want" >"$stamp"
}

install_victorialogs() {
  local bin="$STACK_DIR/bin/victoria-logs-$VICTORIAMETRICS_VERSION"
  if [ -x "$bin" ]; then return; fi
  log "building VictoriaLogs $VICTORIAMETRICS_VERSION from the Go module proxy (once; cached in $STACK_DIR/bin)"
  (cd "$ROOT/integration/tools/victorialogs" &&
    GOFLAGS=-mod=mod go build -o "$bin.tmp" github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs) \
    >"$STACK_DIR/logs/build-victorialogs.log" 2>&1 ||
    { cat "$STACK_DIR/logs/build-victorialogs.log" >&2; die "building VictoriaLogs failed"; }
  mv "$bin.tmp" "$bin"
}

start_one() {
  local name=$1 port; port=$(port_of "$name")
  if running "$name"; then return; fi
  if port_open "$port"; then
    die "port $port for $name is taken by a process this stack did not start; free it or set the port variable"
  fi
  local logf="$STACK_DIR/logs/$name.log" nm="$HERE/node_modules"
  mkdir -p "$STACK_DIR/data"
  case "$name" in
    kinesis-local)
      KINESIS_MOCK_PLAIN_PORT=$port KINESIS_MOCK_TLS_PORT=$KINESIS_LOCAL_TLS_PORT \
        KINESIS_MOCK_CERT_PATH="$nm/kinesis-local/server.json" \
        CREATE_STREAM_DURATION=0ms DELETE_STREAM_DURATION=0ms UPDATE_SHARD_COUNT_DURATION=0ms \
        SPLIT_SHARD_DURATION=0ms MERGE_SHARDS_DURATION=0ms SHARD_LIMIT=100000 LOG_LEVEL=WARN \
        AWS_REGION=us-east-1 AWS_ACCOUNT_ID=000000000000 \
        setsid node -r "$HERE/listen-localhost.js" "$nm/kinesis-local/main.js" >"$logf" 2>&1 </dev/null &
      ;;
    kinesalite)
      setsid node -r "$HERE/listen-localhost.js" "$nm/kinesalite/cli.js" --port "$port" \
        --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 --shardLimit 100000 >"$logf" 2>&1 </dev/null &
      ;;
    dynalite)
      # On disk, so that a restart (fault tests) keeps leases and checkpoints.
      mkdir -p "$STACK_DIR/data/dynalite"
      setsid node "$nm/dynalite/cli.js" --host 127.0.0.1 --port "$port" --path "$STACK_DIR/data/dynalite" \
        --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$logf" 2>&1 </dev/null &
      ;;
    victorialogs)
      setsid "$STACK_DIR/bin/victoria-logs-$VICTORIAMETRICS_VERSION" -httpListenAddr="127.0.0.1:$port" \
        -storageDataPath="$STACK_DIR/data/victorialogs" -retentionPeriod=30d -loggerLevel=WARN \
        -insert.maxLineSizeBytes=8MiB -search.maxQueryDuration=60s >"$logf" 2>&1 </dev/null &
      ;;
  esac
  echo $! >"$(pidfile "$name")"
}

await_one() {
  local name=$1 port i; port=$(port_of "$name")
  for i in $(seq 1 600); do
    if ! running "$name"; then
      tail -n 30 "$STACK_DIR/logs/$name.log" >&2 || true
      die "$name exited during start-up (log: $STACK_DIR/logs/$name.log)"
    fi
    if port_open "$port"; then
      case "$name" in
        victorialogs) curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return ;;
        *) curl -sS -o /dev/null -X POST "http://127.0.0.1:$port/" >/dev/null 2>&1 && return ;;
      esac
    fi
    sleep 0.1
  done
  die "$name did not become ready on 127.0.0.1:$port within 60s (log: $STACK_DIR/logs/$name.log)"
}

write_env() {
  cat >"$STACK_DIR/env" <<ENV
# Written by 'make stack-up'; source it: . $STACK_DIR/env
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=streambudget-local
export AWS_SECRET_ACCESS_KEY=streambudget-local
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$KINESIS_LOCAL_PORT
export STREAMBUDGET_KINESALITE_URL=http://127.0.0.1:$KINESALITE_PORT
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DYNALITE_PORT
export STREAMBUDGET_ES_URL=http://127.0.0.1:$VICTORIALOGS_PORT/insert/elasticsearch
export STREAMBUDGET_LOGSQL_URL=http://127.0.0.1:$VICTORIALOGS_PORT/select/logsql/query
ENV
}

stop_one() {
  local name=$1 pf pid i; pf=$(pidfile "$name")
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
}

cmd_up() {
  mkdir -p "$STACK_DIR/run" "$STACK_DIR/logs" "$STACK_DIR/bin"
  local name started=""
  for name in $SERVERS; do running "$name" || started="$started $name"; done
  if [ -n "$started" ]; then
    # A failed start-up stops what this call started, so nothing is left behind.
    trap 'for n in $started; do stop_one "$n"; done' EXIT
    # A fresh start begins with empty state; `start NAME` (a restart) keeps it.
    for name in $started; do
      case "$name" in
        dynalite) rm -rf "$STACK_DIR/data/dynalite" ;;
        victorialogs) rm -rf "$STACK_DIR/data/victorialogs" ;;
      esac
    done
    install_npm
    install_victorialogs
    for name in $started; do start_one "$name"; done
    for name in $started; do await_one "$name"; done
    trap - EXIT
  fi
  write_env
  if [ -n "$started" ]; then log "started:$started"; else log "already up"; fi
  cmd_status
}

cmd_down() {
  local name
  for name in $SERVERS; do stop_one "$name"; done
  rm -f "$STACK_DIR/env"
  log "down"
}

cmd_status() {
  local name
  for name in $SERVERS; do
    if running "$name"; then
      printf '  %-14s up    127.0.0.1:%s  pid %s\n' "$name" "$(port_of "$name")" "$(cat "$(pidfile "$name")")" >&2
    else
      printf '  %-14s down\n' "$name" >&2
    fi
  done
  [ -f "$STACK_DIR/env" ] && log "endpoints: source $STACK_DIR/env"
  return 0
}

case "${1:-}" in
  install) mkdir -p "$STACK_DIR/logs" "$STACK_DIR/bin"; install_npm; install_victorialogs ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  stop) stop_one "${2:?stop NAME}" ;;
  start) mkdir -p "$STACK_DIR/run" "$STACK_DIR/logs"; start_one "${2:?start NAME}"; await_one "$2" ;;
  *) echo "usage: $0 install|up|down|status|stop NAME|start NAME" >&2; exit 2 ;;
esac
