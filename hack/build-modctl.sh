#!/usr/bin/env bash
# Builds modctl (github.com/modelpack/modctl, the ModelPack reference CLI) from the Go module proxy and
# caches it outside the repo, keyed by version, so a warm run is a no-op. Prints the binary path.
# tests/push/test_modelpack.py uses it as an independent consumer of our ModelPack artifacts.
# Builds without cgo: libgit2 is only behind a build tag. About 1 min cold on 2 cores.
set -euo pipefail

MODCTL_VERSION="${MODCTL_VERSION:-v0.2.2}"
CACHE="${MODELPUSH_CACHE:-$HOME/.cache/model-image-push}"
BIN="$CACHE/bin/modctl-$MODCTL_VERSION"
OUT="$BIN/modctl"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
# A Go new enough for the build (hack/go.sh brings a pinned one when the machine has none).
if [[ -f "$(dirname "$0")/go.sh" ]]; then PATH="$(bash "$(dirname "$0")/go.sh"):$PATH"; fi

if [[ -x "$OUT" ]]; then
  echo "$OUT"; exit 0
fi
mkdir -p "$BIN"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
start=$(date +%s)
# `go install pkg@version` asks the proxy for the module's version list, which the proxy here refuses;
# building inside the downloaded module (its own go.mod and go.sum, no replace directives) does not.
src="$(go mod download -json "github.com/modelpack/modctl@$MODCTL_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$work/modctl" .) >&2
mv "$work/modctl" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "modctl-build: built in $(( $(date +%s) - start ))s into $OUT" >&2
echo "$OUT"
