#!/usr/bin/env bash
# Builds the Go registry implementations of the registry matrix (tests/push) from
# the Go module proxy, pinned, cached outside the repo by version; a no-op when
# cached. Prints one "name=path" line per registry on stdout.
# zot (zotregistry.dev/zot) is not in the matrix: the module proxy here refuses it
# (see README, "Registry compatibility").
set -euo pipefail

DISTRIBUTION_VERSION="${DISTRIBUTION_VERSION:-v3.0.0}"
GGCR_VERSION="${GGCR_VERSION:-v0.22.1}"
CACHE="${MODELPUSH_CACHE:-$HOME/.cache/model-image-push}"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { echo "build-registries: $*" >&2; }

# build NAME MODULE VERSION PACKAGE: go build PACKAGE from MODULE@VERSION into
# $CACHE/bin/NAME-VERSION/registry, atomically (temp name, then mv).
build() {
  local name="$1" module="$2" version="$3" pkg="$4"
  local dir="$CACHE/bin/$name-$version"
  if [[ ! -x "$dir/registry" ]]; then
    mkdir -p "$dir"
    local work; work="$(mktemp -d)"
    local start; start=$(date +%s)
    log "building $module@$version $pkg"
    (
      cd "$work"
      go mod init "local/$name-build" >/dev/null 2>&1
      # `go get PACKAGE@VERSION` (not the module) also records the go.sum lines of its imports.
      go get "$pkg@$version" >&2
      go build -trimpath -ldflags "-s -w" -o "$dir/registry.tmp.$$" "$pkg" >&2
    ) || { rm -rf "$work"; return 1; }
    mv "$dir/registry.tmp.$$" "$dir/registry"
    rm -rf "$work"
    log "built $name in $(( $(date +%s) - start ))s"
  fi
  echo "$name=$dir/registry"
}

build distribution github.com/distribution/distribution/v3 "$DISTRIBUTION_VERSION" \
  github.com/distribution/distribution/v3/cmd/registry
build ggcr github.com/google/go-containerregistry "$GGCR_VERSION" \
  github.com/google/go-containerregistry/cmd/registry
