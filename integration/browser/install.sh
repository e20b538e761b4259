#!/usr/bin/env bash
# Makes sure Debian's chromium is installed (version 120 or later, at whatever
# build the archive holds) and prints its path (stdout only). Installs it when
# missing (needs root and apt). The status page test loads a running
# consumer's page in it, headless.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../tools/debian.sh
. "$ROOT/integration/tools/debian.sh"

CHROMIUM=/usr/bin/chromium
# --headless=new and the flags the test passes exist since 112; 120 is what
# Debian 12 has shipped since its first security updates.
deb_ensure chromium "${CHROMIUM_MIN_VERSION:-120}"
[ -x "$CHROMIUM" ] || { deb_log "chromium is installed but $CHROMIUM is missing"; exit 1; }
echo "$CHROMIUM"
