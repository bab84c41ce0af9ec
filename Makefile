# Thin wrappers; every target bootstraps uv and the locked virtualenv when missing.
SHELL := /bin/bash
PYTHON ?= python3.11
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev
export UV_PYTHON_DOWNLOADS := never
# Plans start fresh processes: precompiled bytecode saves seconds per run (this machine sets PYTHONDONTWRITEBYTECODE).
export UV_COMPILE_BYTECODE := 1

.PHONY: setup tools plan up test lint typecheck unit checkov wheel-test dist release lowest-sdk kserve-client policy-pack pulumi-cli preview preview-env deploy smoke bench bench-plan bench-serving bench-drift \
        check check-all policy-config model-promote model-rollback graphs

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(BIN)/mlops-infra: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON) --quiet
	@touch $@

setup: $(BIN)/mlops-infra

tools:
	scripts/ensure-tools.sh

plan: setup
	$(BIN)/mlops-infra plan $(STACK)

# The architecture pictures of the prod stacks in docs/: the DOT comes from the offline plan and is
# deterministic (tests/test_architecture_graphs.py fails when a committed one is stale); Graphviz's `dot`
# (Debian package graphviz, installed by `make tools`) draws the SVG from it.
graphs: setup tools
	$(BIN)/mlops-infra plan prod --graph --format dot > docs/architecture-prod.dot
	dot -Tsvg docs/architecture-prod.dot -o docs/architecture-prod.svg
	$(BIN)/mlops-infra plan prod-gcp --graph --format dot > docs/architecture-prod-gcp.dot
	dot -Tsvg docs/architecture-prod-gcp.dot -o docs/architecture-prod-gcp.svg

# `pulumi` runs the program with the uv toolchain (Pulumi.yaml: it looks `uv` up on PATH) and the policy pack
# with .venv's python: both directories go on PATH.
PULUMI_PATH := $(CURDIR)/$(BIN):$(CURDIR)/$(TOOLS)/bin:$$PATH
# The pack's settings for this stack, generated from its stack file (`make policy-config`): the same config
# `mlops-infra check` applies, so the real pack and `check` reach the same verdict.
POLICY_CONFIG := policies/config/$(STACK).json

up: setup
	PATH="$(PULUMI_PATH)" pulumi up --stack $(STACK)

# CI's deploy path (.github/workflows): a pinned, checksum-verified Pulumi CLI, non-interactive runs.
PULUMI_VERSION := 3.272.0
PULUMI := $(TOOLS)/pulumi/bin/pulumi

$(PULUMI):
	mkdir -p $(TOOLS)/pulumi/bin
	curl -fsSL https://get.pulumi.com/releases/sdk/pulumi-v$(PULUMI_VERSION)-linux-x64.tar.gz -o $(TOOLS)/pulumi.tgz
	curl -fsSL https://github.com/pulumi/pulumi/releases/download/v$(PULUMI_VERSION)/pulumi-$(PULUMI_VERSION)-checksums.txt -o $(TOOLS)/pulumi.sums
	cd $(TOOLS) && grep " pulumi-v$(PULUMI_VERSION)-linux-x64.tar.gz$$" pulumi.sums | awk '{print $$1"  pulumi.tgz"}' | sha256sum -c -
	tar -xzf $(TOOLS)/pulumi.tgz -C $(TOOLS)/pulumi/bin --strip-components=1

pulumi-cli: $(PULUMI)

preview: setup $(PULUMI)
	$(BIN)/mlops-infra policy-config $(STACK) --check
	PATH="$(PULUMI_PATH)" $(PULUMI) preview --stack $(STACK) --policy-pack policies --policy-pack-config $(POLICY_CONFIG) --diff --non-interactive

# For pr.yml's preview through `pulumi/actions`, which runs the CLI itself: what `make preview` prepares before
# calling pulumi, left for the steps after this one: the locked .venv (the policy pack's virtualenv), a current
# policy config for $(STACK), and PULUMI_PATH's directories on GITHUB_PATH (`uv` for Pulumi.yaml's toolchain).
preview-env: setup
	$(BIN)/mlops-infra policy-config $(STACK) --check
	echo "$(CURDIR)/$(TOOLS)/bin" >> "$${GITHUB_PATH:?set by GitHub Actions: the PATH of later steps}"
	echo "$(CURDIR)/$(BIN)" >> "$$GITHUB_PATH"

deploy: setup $(PULUMI)
	$(BIN)/mlops-infra policy-config $(STACK) --check
	PATH="$(PULUMI_PATH)" $(PULUMI) up --stack $(STACK) --policy-pack policies --policy-pack-config $(POLICY_CONFIG) --yes --non-interactive

smoke: setup $(PULUMI)
	aws eks update-kubeconfig --name "$$($(PULUMI) stack output clusterName --stack $(STACK))" --kubeconfig $(TOOLS)/kubeconfig-$(STACK)
	KUBECONFIG=$(TOOLS)/kubeconfig-$(STACK) kubectl wait --for=condition=Ready nodes --all --timeout=300s
	KUBECONFIG=$(TOOLS)/kubeconfig-$(STACK) kubectl -n serving wait --for=condition=Ready pod -l app.kubernetes.io/name=model-server --timeout=600s

# The policy pack offline (no cloud, no Pulumi CLI): `check` on $(STACK), `check-all` on every stack plus the
# freshness of every policies/config/<stack>.json; `policy-config` regenerates those files.
check: setup
	$(BIN)/mlops-infra check $(STACK)

check-all: setup
	$(BIN)/mlops-infra check
	$(BIN)/mlops-infra policy-config --check

policy-config: setup
	$(BIN)/mlops-infra policy-config

# Model promotion (.github/workflows/promote-model.yml) against $MLFLOW_TRACKING_URI. The retraining job is not
# part of the installed package: its directory goes on PYTHONPATH, as the tests and its image do.
RETRAIN_JOB := PYTHONPATH="$(CURDIR)/workloads/retraining" $(BIN)/python -m retrain_job

model-promote: setup
	$(RETRAIN_JOB) run

model-rollback: setup
	$(RETRAIN_JOB) rollback

lint: setup
	$(BIN)/ruff check infra tests policies workloads monitoring examples scripts
	$(BIN)/ruff format --check infra tests policies workloads monitoring examples scripts
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

unit: setup tools kserve-client
	$(BIN)/pytest -n 2

# The KServe SDK (a client the serving tests drive the server with) pins pandas<3 and protobuf 6, which the
# project's environment does not take: it gets its own environment from uv.lock's `kserve-client` group.
kserve-client: $(UV)
	UV_PROJECT_ENVIRONMENT=.venv-kserve $(UV) sync --frozen --only-group kserve-client --python $(PYTHON) --quiet

checkov: setup
	scripts/checkov.sh

test: lint typecheck unit checkov wheel-test lowest-sdk

# Side by side with a baseline revision in the same run (BASELINE=<git ref> to choose it; default: main before
# the speed-ups of issue 15).
bench-plan: setup
	$(BIN)/python bench/bench_plan.py $(if $(BASELINE),--baseline $(BASELINE))

bench-serving: setup tools
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python workloads/serving/bench/run.py

bench-drift: setup
	$(BIN)/python workloads/retraining/bench/bench_drift.py

bench: bench-plan bench-drift bench-serving

# The package as another repo installs it (fresh virtualenv outside the checkout): examples and stacks plan.
wheel-test: $(UV)
	scripts/wheel_test.sh $(UV) $(PYTHON)

# Release artifacts (wheel + sdist) into dist/; the version comes from the git tag (hatch-vcs).
dist: $(UV)
	rm -rf dist
	$(UV) build --out-dir dist

# CI's release job (tag vX.Y.Z): the built files and the tag's CHANGELOG section as a GitHub release.
release: dist
	scripts/release_notes.sh "$(GITHUB_REF_NAME:v%=%)" > $(TOOLS)/release-notes.md
	gh release create "$(GITHUB_REF_NAME)" dist/* --title "$(GITHUB_REF_NAME)" --notes-file $(TOOLS)/release-notes.md

# The suite's SDK-facing tests on the lowest Pulumi SDK pyproject.toml allows (the lock pins the newest).
LOWEST_PULUMI = $(shell sed -n 's/.*"pulumi>=\([0-9.]*\),.*/\1/p' pyproject.toml)
lowest-sdk: $(UV)
	UV_PROJECT_ENVIRONMENT=.venv-lowest $(UV) sync --frozen --python $(PYTHON) --quiet
	$(UV) pip install --quiet --python .venv-lowest/bin/python "pulumi==$(LOWEST_PULUMI).0"
	.venv-lowest/bin/python -c "import importlib.metadata as m; print('pulumi', m.version('pulumi'))"
	.venv-lowest/bin/pytest -n 2 -p no:cacheprovider tests/test_offline.py tests/test_examples.py tests/components \
		tests/aws tests/gcp tests/services tests/workloads

# The policy pack as a self-contained directory for `pulumi policy publish` (requirements pinned to the wheel).
policy-pack: dist
	$(PYTHON) scripts/policy_pack_bundle.py dist dist/policy-pack
