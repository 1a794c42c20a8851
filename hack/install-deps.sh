#!/usr/bin/env bash
# Installs everything the project needs, idempotently: Debian packages, a Go
# toolchain when the machine has none new enough (hack/go.sh), the Python
# virtualenv with locked versions, and the control-plane binaries (built from
# Go modules, cached outside the repo by version). A fresh Debian 12 needs only
# python3, make and root (or sudo) before this.
# INSTALL_DEPS_STOP_AFTER=go stops once `go version` works (the fresh-machine check in tests/setup);
# SKIP_GO_BUILDS=1 stops after the venv (make test-unit); SKIP_CONTROL_PLANE=1 builds only what tests/push uses.
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-venv: `python3 -m venv` (and its ensurepip) is a separate package on Debian;
# ca-certificates: HTTPS to PyPI and the Go module proxy on a minimal image.
APT_PACKAGES=(python3-venv ca-certificates docker-registry skopeo buildah openssl busybox-static mmdebstrap catatonit)
# Real nodes: containerd 1.6 + runc per node, CNI bridge/host-local/loopback, iptables for kube-proxy.
APT_PACKAGES+=(containerd runc containernetworking-plugins iptables conntrack)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# Go only for the builds (SKIP_GO_BUILDS=1, as in make test-unit, needs none). The build scripts
# ask hack/go.sh as well; with this PATH it answers at once.
if [[ "${SKIP_GO_BUILDS:-0}" != 1 || "${INSTALL_DEPS_STOP_AFTER:-}" == go ]]; then
  PATH="$(bash hack/go.sh):$PATH"
  export PATH
fi
if [[ "${INSTALL_DEPS_STOP_AFTER:-}" == go ]]; then
  go version
  exit 0
fi

# requirements.lock is the runtime set (the image installs only it); requirements-dev.lock adds
# the test and lint tools on top.
if [[ ! -x .venv/bin/python ]] || ! cat requirements.lock requirements-dev.lock | cmp -s - .venv/.installed-lock; then
  echo "install-deps: creating .venv from requirements-dev.lock" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  cat requirements.lock requirements-dev.lock > .venv/.installed-lock
fi

if [[ "${SKIP_GO_BUILDS:-0}" == 1 ]]; then
  exit 0
fi
# The registry matrix of tests/push (distribution v3 ~1.5 min cold, go-containerregistry seconds).
bash hack/build-registries.sh >/dev/null

if [[ "${SKIP_CONTROL_PLANE:-0}" != 1 ]]; then
  bash hack/build-control-plane.sh >/dev/null
  bash hack/build-control-plane.sh node >/dev/null  # kubelet + kube-proxy for the real nodes
  bash hack/build-local-path.sh >/dev/null          # the cluster's dynamic PV provisioner
  bash hack/tekton/build.sh --all >/dev/null  # Tekton commands for its in-cluster images (~8 min cold)
  bash hack/build-cosign.sh >/dev/null  # the real cosign, which verifies our signatures (~3 min cold)
  bash hack/build-referrers-registry.sh >/dev/null  # ggcr's registry with the OCI 1.1 referrers API (seconds)
fi
bash hack/build-modctl.sh >/dev/null  # modctl, the ModelPack consumer in tests/push/test_modelpack.py (~1 min cold)
