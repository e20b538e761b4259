#!/usr/bin/env bash
# Makes sure prometheus and promtool are installed from Debian's `prometheus`
# package at the pinned version, and prints where they are (stdout only):
#   prometheus=/usr/bin/prometheus
#   promtool=/usr/bin/promtool
# When the pinned version is installed it only prints the paths. Otherwise it
# runs `apt-get update` once and installs the pinned version (needs root).
# The Debian service is never left enabled or running: right after the install
# it is stopped and disabled, and a prometheus process that appeared during the
# install and runs as the package's `prometheus` user is killed (ours run as
# the test's user and are started later). Progress goes to stderr.
set -euo pipefail

# Found with `apt-cache policy prometheus` after `apt-get update` (Debian 12 bookworm main;
# the archive keeps only the current point-release build, so a new one needs a new pin).
VERSION=${PROMETHEUS_DEB_VERSION:-2.42.0+ds-5+deb12u1}
PROMETHEUS=/usr/bin/prometheus
PROMTOOL=/usr/bin/promtool
LOCK=${TMPDIR:-/tmp}/streambudget-prometheus-install.lock

log() { printf 'install.sh: %s\n' "$*" >&2; }

installed() {
  [ "$(dpkg-query -W -f='${Status} ${Version}' prometheus 2>/dev/null || true)" = "install ok installed $VERSION" ] &&
    [ -x "$PROMETHEUS" ] && [ -x "$PROMTOOL" ]
}

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

if installed; then
  print_paths
  exit 0
fi

command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
  { log "apt-get and dpkg-query not found: prometheus $VERSION comes from Debian's prometheus package"; exit 1; }
[ "$(id -u)" = 0 ] ||
  { log "installing Debian's prometheus $VERSION needs root (run: sudo $0)"; exit 1; }

# One install at a time (test packages run in parallel).
exec 9>"$LOCK"
flock 9
if installed; then
  print_paths
  exit 0
fi

before=$(service_pids)
export DEBIAN_FRONTEND=noninteractive
log "installing Debian's prometheus $VERSION (once)"
apt-get update >&2
apt-get install -y --no-install-recommends --allow-downgrades "prometheus=$VERSION" >&2 ||
  { log "apt-get install prometheus=$VERSION failed; if the archive moved on, pick the version from 'apt-cache policy prometheus' and update VERSION in $0"; exit 1; }

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
  log "stopping the prometheus the package started (pid ${started[*]})"
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

installed || { log "prometheus $VERSION is still not installed after apt-get install"; exit 1; }
print_paths
