# model-image-push: `make help` lists the targets.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST := .venv/bin/pytest
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.DEFAULT_GOAL := help

##@ Newcomer
.PHONY: demo
demo: setup ## Push a synthetic model through the local cluster end to end (KEEP=1 leaves it running)
	$(PY) -m hack.demo $(if $(KEEP),--keep,)

.PHONY: test
test: setup ## Run every test: unit, registry, local cluster, end to end
	$(PYTEST) -q -p no:cacheprovider

##@ Development
.PHONY: setup
setup: ## Install apt packages, the Python venv and the control-plane binaries (idempotent)
	bash hack/install-deps.sh

.PHONY: test-unit
test-unit: ## Pure unit tests only (no registry, no cluster, no Go build)
	SKIP_GO_BUILDS=1 bash hack/install-deps.sh
	$(PYTEST) -q -p no:cacheprovider tests/unit

.PHONY: test-push
test-push: ## Push engine tests against a real docker-registry
	SKIP_CONTROL_PLANE=1 bash hack/install-deps.sh
	$(PYTEST) -q -p no:cacheprovider tests/push

.PHONY: test-e2e
test-e2e: setup ## Cluster, controller and Tekton end-to-end tests on the local control plane
	$(PYTEST) -q -p no:cacheprovider tests/cluster tests/e2e tests/tekton

.PHONY: lint
lint: ## ruff check and format check
	.venv/bin/ruff check controller hack tests bench
	.venv/bin/ruff format --check controller hack tests bench

.PHONY: bench
bench: setup ## Side-by-side benchmarks (native vs buildah vs skopeo); prints tables
	$(PY) bench/push_bench.py $(BENCH_ARGS)

##@ Local cluster
.PHONY: cluster-up
cluster-up: setup ## Start control plane, node agent and registry in the background (NODE_EPHEMERAL=2Gi)
	$(PY) -m hack.localcluster up $(if $(NODE_EPHEMERAL),--node-ephemeral $(NODE_EPHEMERAL),)

.PHONY: cluster-down
cluster-down: ## Stop everything cluster-up started
	$(PY) -m hack.localcluster down

.PHONY: run
run: setup ## Run the controller in the foreground against $$KUBECONFIG or .local/kubeconfig
	KUBECONFIG=$${KUBECONFIG:-$(CURDIR)/.local/kubeconfig} $(PY) -m controller

##@ Deployment
IMG ?= quay.io/modelpush/model-image-push:latest
.PHONY: image
image: ## Build the image with podman or buildah (IMG=...)
	$$(command -v podman || command -v buildah) build -t $(IMG) -f Containerfile .

.PHONY: deploy
deploy: ## kubectl apply -k config/default
	kubectl apply -k config/default

.PHONY: undeploy
undeploy: ## kubectl delete -k config/default
	kubectl delete -k config/default --ignore-not-found

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)
