#!/usr/bin/env bash
# Installs everything the project needs, idempotently: Debian packages, the
# Python virtualenv with locked versions, and the control-plane binaries
# (built from Go modules, cached outside the repo by version).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(docker-registry skopeo buildah openssl busybox-static)
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

if [[ ! -x .venv/bin/python ]] || ! cmp -s requirements.lock .venv/.installed-lock; then
  echo "install-deps: creating .venv from requirements.lock" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  cp requirements.lock .venv/.installed-lock
fi

# The registry matrix of tests/push (distribution v3 ~1.5 min cold, go-containerregistry seconds).
bash hack/build-registries.sh >/dev/null

if [[ "${SKIP_CONTROL_PLANE:-0}" != 1 ]]; then
  bash hack/build-control-plane.sh >/dev/null
  bash hack/tekton/build.sh >/dev/null  # Tekton pipelines controller for tests/tekton (~4 min cold)
  bash hack/build-cosign.sh >/dev/null  # the real cosign, which verifies our signatures (~3 min cold)
  bash hack/build-referrers-registry.sh >/dev/null  # ggcr's registry with the OCI 1.1 referrers API (seconds)
fi
bash hack/build-modctl.sh >/dev/null  # modctl, the ModelPack consumer in tests/push/test_modelpack.py (~1 min cold)
