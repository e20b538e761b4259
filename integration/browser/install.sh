#!/usr/bin/env bash
# Makes sure Debian's chromium is installed at the pinned version and prints
# its path (stdout only). Installs it when missing (needs root and apt).
# The status page test loads a running consumer's page in it, headless.
set -euo pipefail

VERSION=${CHROMIUM_DEB_VERSION:-156.0.8078.79-1~deb12u1}
CHROMIUM=/usr/bin/chromium
LOCK=${TMPDIR:-/tmp}/streambudget-chromium-install.lock

log() { printf 'install.sh: %s\n' "$*" >&2; }
installed() {
  [ "$(dpkg-query -W -f='${Status} ${Version}' chromium 2>/dev/null || true)" = "install ok installed $VERSION" ] && [ -x "$CHROMIUM" ]
}

if ! installed; then
  command -v apt-get >/dev/null || { log "apt-get not found: chromium $VERSION comes from Debian's chromium package"; exit 1; }
  [ "$(id -u)" = 0 ] || { log "installing Debian's chromium $VERSION needs root (run: sudo $0)"; exit 1; }
  exec 9>"$LOCK"
  flock 9
  if ! installed; then
    log "installing chromium $VERSION from Debian (once)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "chromium=$VERSION" >&2; then
      apt-get update >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "chromium=$VERSION" >&2 ||
        { log "chromium=$VERSION is not in the archive; find the current one with apt-cache policy chromium and update VERSION in $0"; exit 1; }
    fi
  fi
fi
echo "$CHROMIUM"
