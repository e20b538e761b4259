#!/usr/bin/env bash
# Makes sure prometheus and promtool are installed from Debian's `prometheus`
# package (Prometheus 2, 2.42 or later, at whatever build Debian's archive
# holds: see integration/tools/debian.sh), and prints where they are (stdout only):
#   prometheus=/usr/bin/prometheus
#   promtool=/usr/bin/promtool
# When a satisfying version is installed it only prints the paths (and the
# version, on stderr). Otherwise it installs it (needs root and apt).
# The Debian service is never left enabled or running: right after the install
# it is stopped and disabled, and a prometheus process that appeared during the
# install and runs as the package's `prometheus` user is killed (ours run as
# the test's user and are started later). Progress goes to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../tools/debian.sh
. "$ROOT/integration/tools/debian.sh"

# Any build of Prometheus 2 from 2.42 on (Debian 12's): the rule tests and
# the dashboard queries are written for Prometheus 2's PromQL and promtool.
MIN_VERSION=${PROMETHEUS_MIN_VERSION:-2.42}
MAJOR=2
PROMETHEUS=/usr/bin/prometheus
PROMTOOL=/usr/bin/promtool

print_paths() {
  echo "prometheus=$PROMETHEUS"
  echo "promtool=$PROMTOOL"
}

# service_pids lists the running /usr/bin/prometheus processes owned by the
# package's user: what the package's maintainer scripts would start.
service_pids() {
  local dir pid
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$(readlink "$dir/exe" 2>/dev/null || true)" = "$PROMETHEUS" ] || continue
    [ "$(stat -c %U "$dir" 2>/dev/null || true)" = prometheus ] || continue
    echo "$pid"
  done
}

if deb_ok prometheus "$MIN_VERSION" "$MAJOR" && [ -x "$PROMETHEUS" ] && [ -x "$PROMTOOL" ]; then
  deb_log "prometheus $(deb_version prometheus) (want >= $MIN_VERSION, major $MAJOR)"
  print_paths
  exit 0
fi

before=$(service_pids)
deb_ensure prometheus "$MIN_VERSION" "$MAJOR"

# Undo what the package's maintainer scripts enabled or started.
if command -v systemctl >/dev/null; then
  if [ -d /run/systemd/system ]; then systemctl stop prometheus.service >&2 || true; fi
  systemctl disable prometheus.service >&2 || true
fi
if command -v update-rc.d >/dev/null && [ -e /etc/init.d/prometheus ]; then
  update-rc.d prometheus disable >&2 || true
fi
started=()
for pid in $(service_pids); do
  case " $(echo $before) " in *" $pid "*) continue ;; esac
  started+=("$pid")
done
if [ ${#started[@]} -gt 0 ]; then
  deb_log "stopping the prometheus the package started (pid ${started[*]})"
  kill -TERM "${started[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    alive=()
    for pid in "${started[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi
    done
    [ ${#alive[@]} -eq 0 ] && break
    sleep 0.1
  done
  if [ ${#alive[@]} -gt 0 ]; then kill -KILL "${alive[@]}" 2>/dev/null || true; fi
fi
[ -x "$PROMETHEUS" ] && [ -x "$PROMTOOL" ] || { deb_log "prometheus is installed but $PROMETHEUS or $PROMTOOL is missing"; exit 1; }
print_paths
