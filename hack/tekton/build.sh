#!/usr/bin/env bash
# Builds Tekton Pipelines' commands (github.com/tektoncd/pipeline/cmd/...) from the Go module proxy
# in a throwaway module and caches them outside the repo, keyed by version, so a warm run is a no-op.
#   build.sh        the pipelines controller only; prints its path
#   build.sh --all  every command the release's images need (hack/images puts each in an image at
#                   /ko-app/<cmd>, where Tekton's manifests and pod builder expect it); prints the dir
# Tekton v1.9.x pins client-go v0.32, which talks fine to the local v1.33 apiserver.
set -euo pipefail

TEKTON_VERSION="${TEKTON_VERSION:-v1.9.1}"
CACHE="${MODELPUSH_CACHE:-$HOME/.cache/model-image-push}"
BIN="$CACHE/bin/tekton-$TEKTON_VERSION"
OUT="$BIN/tekton-pipelines-controller"
# The release's Deployments (controller, webhook, events) and the images the controller injects into
# TaskRun pods (entrypoint, nop, workingdirinit, sidecarlogresults), and the remote resolvers' Deployment
# (config/resolvers). Each binary is cached on its own, so adding a command builds only that one.
ALL_CMDS=(controller webhook events entrypoint nop workingdirinit sidecarlogresults resolvers)
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { echo "tekton-build: $*" >&2; }

# The controller keeps its historical name; `--all` also gives it its command name (a hard link).
want=(controller)
[[ "${1:-}" == --all ]] && want=("${ALL_CMDS[@]}")
[[ -x "$OUT" && ! -e "$BIN/controller" ]] && ln "$OUT" "$BIN/controller"
missing=()
for cmd in "${want[@]}"; do
  [[ -x "$BIN/$cmd" ]] || missing+=("$cmd")
done
if ((${#missing[@]} == 0)); then
  if [[ "${1:-}" == --all ]]; then echo "$BIN"; else echo "$OUT"; fi
  exit 0
fi
# One build per cache at a time: a second caller (another worktree, a test) waits for it and then
# finds the binaries, instead of compiling the same packages next to it on a shared machine.
mkdir -p "$(dirname "$BIN")"
exec 9>"$BIN.lock"
flock 9
missing=()
for cmd in "${want[@]}"; do
  [[ -x "$BIN/$cmd" ]] || missing+=("$cmd")
done
if ((${#missing[@]} == 0)); then  # built by the caller we waited for
  if [[ "${1:-}" == --all ]]; then echo "$BIN"; else echo "$OUT"; fi
  exit 0
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
pkgs=("${missing[@]/#/github.com/tektoncd/pipeline/cmd/}")
log "resolving dependencies of ${missing[*]} at $TEKTON_VERSION"
go get "${pkgs[@]/%/@$TEKTON_VERSION}" >&2
log "compiling ${missing[*]} (cold build takes several minutes on a shared 2-core box)"
mkdir out
nice -n 10 go build -trimpath -ldflags "-s -w" -o out/ "${pkgs[@]}" >&2
for cmd in "${missing[@]}"; do
  mv "out/$cmd" "$BIN/$cmd.tmp.$$" && mv "$BIN/$cmd.tmp.$$" "$BIN/$cmd"
done
[[ -e "$OUT" ]] || ln "$BIN/controller" "$OUT"
log "built ${missing[*]} in $(( $(date +%s) - start ))s into $BIN"
if [[ "${1:-}" == --all ]]; then echo "$BIN"; else echo "$OUT"; fi
