#!/usr/bin/env bash
# Builds Rancher's local-path-provisioner (the cluster's dynamic PV provisioner) from the Go module
# proxy and caches it outside the repo, keyed by version, so a warm run is a no-op (cold: about
# 1.5 min on 2 cores). Prints the binary's path on stdout. Its release manifest
# (deploy/local-path-storage.yaml) comes from the same module (`--manifest` prints its path).
set -euo pipefail

LOCAL_PATH_VERSION="${LOCAL_PATH_VERSION:-v0.0.30}"
MODULE=github.com/rancher/local-path-provisioner
CACHE="${MODELPUSH_CACHE:-$HOME/.cache/model-image-push}"
BIN="$CACHE/bin/local-path-provisioner-$LOCAL_PATH_VERSION"
OUT="$BIN/local-path-provisioner"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

module_dir() { go mod download -json "$MODULE@$LOCAL_PATH_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
if [[ "${1:-}" == --manifest ]]; then
  echo "$(module_dir)/deploy/local-path-storage.yaml"; exit 0
fi
if [[ -x "$OUT" ]]; then
  echo "$OUT"; exit 0
fi
mkdir -p "$BIN"
start=$(date +%s)
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"
printf 'module local/local-path-build\ngo 1.24.0\nrequire %s %s\n' "$MODULE" "$LOCAL_PATH_VERSION" > go.mod
go get "$MODULE@$LOCAL_PATH_VERSION" >&2
nice -n 10 go build -trimpath -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_VERSION" -o "$OUT.tmp.$$" "$MODULE" >&2
mv "$OUT.tmp.$$" "$OUT"
echo "local-path-build: built in $(( $(date +%s) - start ))s into $OUT" >&2
echo "$OUT"
