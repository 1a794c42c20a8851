#!/usr/bin/env bash
# Builds hack/referrers-registry (go-containerregistry's registry with the referrers API on) into a
# versioned cache dir; a no-op when cached. Prints the binary's path.
set -euo pipefail
GGCR_VERSION="${GGCR_VERSION:-v0.22.1}"
CACHE="${MODELPUSH_CACHE:-$HOME/.cache/model-image-push}"
BIN="$CACHE/bin/referrers-registry-ggcr-$GGCR_VERSION"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
if [[ -x "$BIN/registry" ]]; then echo "$BIN/registry"; exit 0; fi
src="$(cd "$(dirname "$0")/referrers-registry" && pwd)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cp "$src/main.go" "$work/"
cd "$work"
go mod init local/referrers-registry >/dev/null 2>&1
go get "github.com/google/go-containerregistry@$GGCR_VERSION" >&2
PATH="$(bash "$(dirname "$0")/go.sh"):$PATH"  # the project's Go when the machine has none new enough
mkdir -p "$BIN"
nice -n 10 go build -trimpath -ldflags "-s -w" -o "$BIN/registry.tmp.$$" . >&2
mv "$BIN/registry.tmp.$$" "$BIN/registry"
echo "$BIN/registry"
