#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd from
# the Go module proxy and caches them outside the repo, keyed by version, so a
# warm run is a no-op and a cold run (measured 6.5 min on 2 cores) happens once per
# machine. Prints the bin dir on stdout.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.33.13}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.24}"
CACHE="${MODELPUSH_CACHE:-$HOME/.cache/model-image-push}"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

log() { echo "build-control-plane: $*" >&2; }

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
have_k8s() { for b in "${K8S_CMDS[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done; }
if have_k8s && [[ -x "$BIN/etcd" ]]; then
  echo "$BIN"; exit 0
fi
# One build per cache at a time: a second caller (another worktree, a test) waits for it and then
# finds the binaries, instead of compiling the same packages next to it on a shared machine.
mkdir -p "$(dirname "$BIN")"
exec 9>"$BIN.lock"
flock 9
if have_k8s && [[ -x "$BIN/etcd" ]]; then
  echo "$BIN"; exit 0
fi
PATH="$(bash "$(dirname "$0")/go.sh"):$PATH"  # the project's Go when the machine has none new enough
mkdir -p "$BIN"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
start=$(date +%s)

if [[ ! -x "$BIN/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd"; cd "$work/etcd"
  go mod init local/etcd-build >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

if ! have_k8s; then
  log "building kubernetes $K8S_VERSION"
  mkdir -p "$work/k8s"; cd "$work/k8s"
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" > mod.json
  gomod="$(python3 -c 'import json,sys;print(json.load(open("mod.json"))["GoMod"])')"
  minor="${K8S_VERSION#v1.}"; staging_version="v0.${minor}"
  {
    echo "module local/k8s-build"
    echo "go 1.24.0"
    echo "godebug default=go1.24"
    echo "require k8s.io/kubernetes $K8S_VERSION"
    # k8s.io/kubernetes pins its staging modules at v0.0.0 and replaces them
    # with ./staging paths that do not exist in the module zip.
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  log "replacing $(grep -c '^replace' go.mod) staging modules with $staging_version"
  cat > tools.go <<'GO'
//go:build tools
package tools
GO
  pkgs=(); for b in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  go get "${pkgs[@]/%/@$K8S_VERSION}" >&2
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=${minor%%.*} -X $p.gitTreeState=clean -X $p.buildDate=$date -X $p.gitCommit=0000000000000000000000000000000000000000"
  done
  go build -trimpath -ldflags "$ld" -o "$work/out/" "${pkgs[@]}" >&2
  # /version must be real (knative-based controllers such as Tekton refuse v0.0.0-master).
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    got="$("$work/out/$b" --version)"
    [[ "$got" == "Kubernetes $K8S_VERSION" ]] || { log "$b --version printed '$got', want $K8S_VERSION"; exit 1; }
  done
  mv "$work/out/"* "$BIN/"
fi
log "built in $(( $(date +%s) - start ))s into $BIN"
echo "$BIN"
