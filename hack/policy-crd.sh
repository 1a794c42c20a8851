#!/usr/bin/env bash
# Prints the path of sigstore policy-controller's ClusterImagePolicy CRD, taken from its Go module
# (downloaded once into the Go module cache), so tests check config/samples/clusterimagepolicy.yaml
# against the real schema.
set -euo pipefail
VERSION="${POLICY_CONTROLLER_VERSION:-v0.13.0}"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
dir="$(cd / && go mod download -json "github.com/sigstore/policy-controller@$VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
crd="$dir/config/300-clusterimagepolicy.yaml"
[[ -f "$crd" ]] || { echo "policy-crd: $crd missing" >&2; exit 1; }
echo "$crd"
