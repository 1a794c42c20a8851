#!/usr/bin/env bash
# Builds Tekton's pipelines controller (github.com/tektoncd/pipeline/cmd/controller)
# from the Go module proxy in a throwaway module and caches it outside the repo,
# keyed by version, so a warm run is a no-op. Prints the binary path on stdout.
# Tekton v1.9.x pins client-go v0.32, which talks fine to the local v1.33 apiserver.
set -euo pipefail

TEKTON_VERSION="${TEKTON_VERSION:-v1.9.1}"
CACHE="${MODELPUSH_CACHE:-$HOME/.cache/model-image-push}"
BIN="$CACHE/bin/tekton-$TEKTON_VERSION"
OUT="$BIN/tekton-pipelines-controller"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { echo "tekton-build: $*" >&2; }

if [[ -x "$OUT" ]]; then
  echo "$OUT"; exit 0
fi
# One build per cache at a time: a second caller (another worktree, a test) waits for it and then
# finds the binaries, instead of compiling the same packages next to it on a shared machine.
mkdir -p "$(dirname "$BIN")"
exec 9>"$BIN.lock"
flock 9
if [[ -x "$OUT" ]]; then
  echo "$OUT"; exit 0
fi
PATH="$(bash "$(dirname "$0")/../go.sh"):$PATH"  # the project's Go when the machine has none new enough
mkdir -p "$BIN"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
start=$(date +%s)
cd "$work"

mod_json="$(go mod download -json "github.com/tektoncd/pipeline@$TEKTON_VERSION")"
upstream_gomod="$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["GoMod"])' <<<"$mod_json")"
{
  echo "module local/tekton-build"
  echo "go 1.24.0"
  echo "require github.com/tektoncd/pipeline $TEKTON_VERSION"
} > go.mod
# replace directives of a dependency are ignored by Go, so carry Tekton's own over
# (it pins the AWS ECR SDKs used by the credential helpers).
python3 - "$upstream_gomod" >> go.mod <<'PY'
import re, sys
text = open(sys.argv[1]).read()
lines = []
for block in re.findall(r"^replace \(\n(.*?)^\)", text, re.S | re.M):
    lines += [l.strip() for l in block.splitlines() if "=>" in l]
lines += [l[len("replace "):].strip() for l in text.splitlines() if l.startswith("replace ") and "=>" in l]
for l in lines:
    print("replace " + l.split("//")[0].strip())
PY
log "resolving dependencies of github.com/tektoncd/pipeline@$TEKTON_VERSION"
go get "github.com/tektoncd/pipeline/cmd/controller@$TEKTON_VERSION" >&2
log "compiling (cold build takes several minutes on a shared 2-core box)"
go build -trimpath -ldflags "-s -w" \
  -o "$OUT.tmp" github.com/tektoncd/pipeline/cmd/controller >&2
mv "$OUT.tmp" "$OUT"
log "built in $(( $(date +%s) - start ))s into $OUT"
echo "$OUT"
