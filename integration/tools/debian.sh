# Sourced by the install scripts: make sure a Debian package is installed at
# a minimum version, at whatever build the archive holds now.
#
#   deb_ensure PACKAGE MIN_VERSION [MAJOR]
#
# Nothing is pinned to an exact build: Debian's security archive keeps only
# the newest build of a package, so an exact pin breaks the day an update is
# published. The package must be at least MIN_VERSION (dpkg's comparison);
# with MAJOR, its upstream major version must also be MAJOR (where behaviour
# depends on it). An installed package that satisfies both is used as it is,
# without touching apt. Otherwise it installs (or upgrades) the package from
# the archive: first from the package lists as they are, then after one
# `apt-get update`. Needs root and apt. One install at a time, machine-wide
# (test packages run in parallel). It prints "PACKAGE VERSION" to stderr.
deb_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

deb_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'; }

# deb_ok PACKAGE MIN [MAJOR]: the installed version satisfies the pin.
deb_ok() {
  local v; v=$(deb_version "$1")
  [ -n "$v" ] || return 1
  dpkg --compare-versions "$v" ge "$2" || return 1
  if [ -n "${3:-}" ]; then
    local upstream=${v#*:}
    [ "${upstream%%.*}" = "$3" ] || return 1
  fi
}

deb_ensure() {
  local pkg=$1 min=$2 major=${3:-} want
  want="$pkg >= $min${major:+, major $major}"
  if deb_ok "$pkg" "$min" "$major"; then
    deb_log "$pkg $(deb_version "$pkg") (want $want)"
    return 0
  fi
  command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
    { deb_log "apt-get not found: $want comes from Debian's $pkg package"; return 1; }
  [ "$(id -u)" = 0 ] || { deb_log "installing Debian's $want needs root (run: sudo $0)"; return 1; }
  exec 9>"${TMPDIR:-/tmp}/streambudget-apt.lock"
  flock 9
  if ! deb_ok "$pkg" "$min" "$major"; then
    export DEBIAN_FRONTEND=noninteractive
    deb_log "installing Debian's $pkg ($want)"
    if ! apt-get install -y --no-install-recommends "$pkg" >&2 || ! deb_ok "$pkg" "$min" "$major"; then
      apt-get update >&2
      apt-get install -y --no-install-recommends "$pkg" >&2 ||
        { deb_log "apt-get install $pkg failed"; flock -u 9; return 1; }
    fi
  fi
  flock -u 9
  if ! deb_ok "$pkg" "$min" "$major"; then
    deb_log "Debian's archive holds $pkg $(deb_version "$pkg"), not $want; see 'apt-cache policy $pkg'"
    return 1
  fi
  deb_log "$pkg $(deb_version "$pkg") (want $want)"
}
