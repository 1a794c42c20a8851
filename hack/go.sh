#!/usr/bin/env bash
# Prints the bin directory of a Go toolchain new enough for every Go build in hack/.
#
# Uses the `go` on PATH when it is at least GO_MIN; otherwise brings the pinned toolchain
# (GO_VERSION) from the Go module proxy, where the Go project publishes it as the module
# golang.org/toolchain, into the project cache. Needs only python3 (no go, curl or unzip), checks the
# zip against the sha256 pinned below, and never touches a system Go. A no-op once cached.
#   export PATH="$(bash hack/go.sh):$PATH"
set -euo pipefail

# The strictest module we build needs this (distribution v3.1.2: `go 1.26.0`; cosign, go-containerregistry
# and modctl need 1.25); the pinned toolchain is the one every build in DESIGN.md was verified with.
GO_MIN="${GO_MIN:-1.26.0}"
GO_VERSION="${GO_VERSION:-1.26.8}"
declare -A GO_ZIP_SHA256=(
  [linux-amd64]=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
)
CACHE="${MODELPUSH_CACHE:-$HOME/.cache/model-image-push}"
DEST="$CACHE/go/go$GO_VERSION"

log() { echo "go.sh: $*" >&2; }

# "go1.26.8" / "go1.26rc1" -> 1 26 8, compared numerically against GO_MIN.
new_enough() {
  python3 - "$1" "$GO_MIN" <<'PY'
import re, sys
def parts(v):
    nums = [int(n) for n in re.findall(r"\d+", re.sub(r"(rc|beta).*$", "", v.removeprefix("go")))]
    return (nums + [0, 0, 0])[:3]
sys.exit(0 if parts(sys.argv[1]) >= parts(sys.argv[2]) else 1)
PY
}

if system_go="$(command -v go)"; then
  have="$(GOTOOLCHAIN=local "$system_go" env GOVERSION 2>/dev/null || true)"
  if [[ -n "$have" ]] && new_enough "$have"; then
    dirname "$system_go"; exit 0
  fi
  log "go on PATH is ${have:-unusable}; need >= go$GO_MIN, using the project's go$GO_VERSION"
fi
if [[ -x "$DEST/bin/go" ]]; then
  echo "$DEST/bin"; exit 0
fi

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) log "no Go toolchain pinned for $(uname -m)"; exit 1 ;;
esac
platform="linux-$arch"
sha="${GO_ZIP_SHA256[$platform]:-}"
[[ -n "$sha" ]] || { log "no sha256 pinned for golang.org/toolchain go$GO_VERSION $platform: add it to GO_ZIP_SHA256"; exit 1; }

# The first http(s) entry of GOPROXY (as `go env` would give it; the public proxy by default).
proxies="${GOPROXY:-}"
if [[ -z "$proxies" && -n "${system_go:-}" ]]; then proxies="$(GOTOOLCHAIN=local "$system_go" env GOPROXY 2>/dev/null || true)"; fi
proxy="$(tr ',|' '\n\n' <<<"${proxies:-https://proxy.golang.org}" | grep -m1 -E '^https?://' || true)"
proxy="${proxy:-https://proxy.golang.org}"
url="${proxy%/}/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.$platform.zip"

mkdir -p "$CACHE/go"
tmp="$(mktemp -d "$CACHE/go/.fetch.XXXXXX")"; trap 'rm -rf "$tmp"' EXIT
log "fetching $url"
python3 - "$url" "$sha" "$tmp" <<'PY'
import hashlib, os, shutil, sys, urllib.request, zipfile

url, want, tmp = sys.argv[1:4]
zpath = os.path.join(tmp, "toolchain.zip")
digest = hashlib.sha256()
with urllib.request.urlopen(url, timeout=120) as resp, open(zpath, "wb") as out:
    while chunk := resp.read(1 << 20):
        digest.update(chunk)
        out.write(chunk)
if digest.hexdigest() != want:
    sys.exit(f"go.sh: {url} has sha256 {digest.hexdigest()}, pinned {want}")
root = os.path.join(tmp, "go")
with zipfile.ZipFile(zpath) as zf:
    for info in zf.infolist():
        # entries are golang.org/toolchain@v0.0.1-go<ver>.<platform>/<path inside GOROOT>
        rel = info.filename.split("/", 2)[2] if info.filename.count("/") >= 2 else ""
        if not rel or info.is_dir() or rel.startswith("/") or ".." in rel.split("/"):
            continue
        target = os.path.join(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(target, (info.external_attr >> 16) & 0o777 or 0o644)
os.remove(zpath)
PY
got="$("$tmp/go/bin/go" env GOVERSION)"
[[ "$got" == "go$GO_VERSION" ]] || { log "fetched toolchain reports $got, want go$GO_VERSION"; exit 1; }
mv -T "$tmp/go" "$DEST" 2>/dev/null || [[ -x "$DEST/bin/go" ]]  # another run may have won the race
log "go$GO_VERSION ready in $DEST"
echo "$DEST/bin"
