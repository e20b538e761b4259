#!/usr/bin/env bash
# Prints the path of the pinned helm binary, building it first when it is not
# cached: helm.sh/helm/v3 at the version pinned by integration/tools/helm/go.mod,
# from the Go module proxy, into $STACK_DIR/bin (once; later runs reuse it).
# Progress goes to stderr, so `helm=$(integration/helm/helm.sh)` works.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
HELM_VERSION=v3.22.0

log() { printf 'helm.sh: %s\n' "$*" >&2; }

bin="$STACK_DIR/bin/helm-$HELM_VERSION"
if [ ! -x "$bin" ]; then
  mkdir -p "$STACK_DIR/bin" "$STACK_DIR/logs"
  pinned=$(cd "$ROOT/integration/tools/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
  if [ "$pinned" != "$HELM_VERSION" ]; then
    log "integration/tools/helm pins helm $pinned, this script wants $HELM_VERSION; update one of them"
    exit 1
  fi
  # The version stamps helm's own Makefile sets: without them helm calls
  # itself v3.22 and assumes Kubernetes 1.20 for `helm template`.
  k8s=$(cd "$ROOT/integration/tools/helm" && go list -m -f '{{.Version}}' k8s.io/client-go) # v0.MINOR.PATCH
  k8s_minor=$(echo "$k8s" | cut -d. -f2)
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  log "building helm $HELM_VERSION from the Go module proxy (once; cached in $STACK_DIR/bin)"
  tmp="$bin.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  buildlog="$STACK_DIR/logs/build-helm.log"
  (cd "$ROOT/integration/tools/helm" &&
    CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "$ldflags" -o "$tmp" helm.sh/helm/v3/cmd/helm) \
    >"$buildlog" 2>&1 ||
    { cat "$buildlog" >&2; log "building helm $HELM_VERSION failed"; exit 1; }
  mv -f "$tmp" "$bin"
fi
echo "$bin"
