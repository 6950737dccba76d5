# Front door of the multi-region RDS failover project. `make help` lists the targets.
#
# Real deployments need the Pulumi CLI and AWS credentials; `make install`, `make test`,
# `make lint`, `make plan` and `make rehearse` need neither.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

LAYERS := network primary-db secondary-db dns-failover
REVERSE_LAYERS := dns-failover secondary-db primary-db network

ENV_SUFFIX ?=
PRIMARY_REGION ?=
SECONDARY_REGION ?=
PLAN_ARGS ?=
# REFRESH=1: read the resources from AWS before `pulumi up`/`preview` (after out-of-band changes).
# POLICY=1: enforce the CrossGuard policy pack (policy/) on `pulumi up`/`preview`.
REFRESH ?=
POLICY ?=

# State lives in a git-ignored file backend inside the repository unless the operator
# points PULUMI_BACKEND_URL elsewhere (e.g. s3://team-state-bucket); an empty value counts
# as unset, so it never falls through to whatever `pulumi login` last chose. The
# passphrase default protects nothing: it exists so the local backend works without
# prompts, and applies ONLY to that local backend. Set PULUMI_CONFIG_PASSPHRASE (or
# PULUMI_CONFIG_PASSPHRASE_FILE, or a KMS secrets provider) for any shared backend.
LOCAL_BACKEND := file://$(CURDIR)/.pulumi-state
ifeq ($(strip $(PULUMI_BACKEND_URL)),)
export PULUMI_BACKEND_URL := $(LOCAL_BACKEND)
ifeq ($(origin PULUMI_CONFIG_PASSPHRASE)$(origin PULUMI_CONFIG_PASSPHRASE_FILE),undefinedundefined)
export PULUMI_CONFIG_PASSPHRASE := local-backend-only-not-a-secret
endif
endif
export PULUMI_SKIP_UPDATE_CHECK := true

# The suffix, region and CLI checks need only the standard library, so they run before
# (and without) the virtualenv and fail at once; the AWS check needs boto3.
PREFLIGHT_ARGS = --suffix "$(ENV_SUFFIX)" --primary-region "$(PRIMARY_REGION)" \
	--secondary-region "$(SECONDARY_REGION)"
PREFLIGHT = PYTHONPATH="$(CURDIR)" $(PYTHON) -m offline.preflight $(PREFLIGHT_ARGS)

.PHONY: help install test unit lint plan rehearse deploy destroy preview outputs integration \
	clean $(addprefix up-,$(LAYERS)) $(addprefix destroy-,$(LAYERS)) \
	$(addprefix preview-,$(LAYERS)) preflight-deploy preflight-static preflight-local

help:
	@echo "make install                      create $(VENV) and install the project with its extras"
	@echo "make test                         unit tests, policy checks, PostgreSQL probe tests and the"
	@echo "                                  emulator rehearsal (no AWS account, no Pulumi CLI)"
	@echo "make lint                         ruff and the workflow schema check"
	@echo "make plan ENV_SUFFIX=x            offline synthesis of all layers + policy rules"
	@echo "make rehearse ENV_SUFFIX=x        deploy/test/fail over/destroy against an AWS emulator"
	@echo "make deploy ENV_SUFFIX=x          pulumi up every layer in order (real AWS)"
	@echo "make up-<layer> ENV_SUFFIX=x      one layer: $(LAYERS)"
	@echo "                                  (also preview-<layer>, destroy-<layer>)"
	@echo "make preview ENV_SUFFIX=x         pulumi preview every layer (upstream layers must exist)"
	@echo "make outputs ENV_SUFFIX=x         write cfn-outputs/flat-outputs.json from the stacks"
	@echo "make integration                  integration tests against cfn-outputs/flat-outputs.json"
	@echo "make destroy ENV_SUFFIX=x         destroy every layer in reverse order and remove the stacks"
	@echo "make unit | make clean            unit tests only | remove generated outputs and caches"
	@echo "Optional: PRIMARY_REGION=... SECONDARY_REGION=... (default us-east-1 / us-west-2);"
	@echo "          POLICY=1 enforces the policy pack, REFRESH=1 reads AWS first (deploy, up, preview)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

preflight-local:
	@$(PREFLIGHT) suffix regions

plan: preflight-local $(STAMP)
	$(PY) -m offline.plan --suffix "$(ENV_SUFFIX)" \
		$(if $(PRIMARY_REGION),--primary-region "$(PRIMARY_REGION)") \
		$(if $(SECONDARY_REGION),--secondary-region "$(SECONDARY_REGION)") $(PLAN_ARGS)

rehearse: preflight-local $(STAMP)
	$(PY) -m offline.rehearse --suffix "$(ENV_SUFFIX)" \
		$(if $(PRIMARY_REGION),--primary-region "$(PRIMARY_REGION)") \
		$(if $(SECONDARY_REGION),--secondary-region "$(SECONDARY_REGION)")

integration: $(STAMP)
	$(PY) -m pytest tests/integration -p no:cacheprovider

preflight-static:
	@$(PREFLIGHT) suffix regions pulumi
ifeq ($(PULUMI_BACKEND_URL),$(LOCAL_BACKEND))
	@mkdir -p .pulumi-state  # the file backend needs its directory to exist
endif

preflight-deploy: preflight-static $(STAMP)
	@$(PY) -m offline.preflight $(PREFLIGHT_ARGS) aws

# Select (or create) the stack named after the suffix and pin both regions in its config,
# so every layer of one deployment agrees on where it lives.
define select_stack
	cd stacks/$(1) && pulumi stack select --create "$(ENV_SUFFIX)" >/dev/null && \
	$(if $(PRIMARY_REGION),pulumi config set aws:region "$(PRIMARY_REGION)" --stack "$(ENV_SUFFIX)" &&) \
	$(if $(SECONDARY_REGION),pulumi config set secondaryRegion "$(SECONDARY_REGION)" --stack "$(ENV_SUFFIX)" &&) true
endef

# Shell snippet, run inside stacks/<layer>: true when the suffix's stack exists, false when
# Pulumi reports that it does not; any other error (unreachable backend, expired
# credentials...) exits 2 with Pulumi's message, so it is never taken for "nothing deployed".
define stack_exists
	{ out="$$(pulumi stack select "$(ENV_SUFFIX)" 2>&1 >/dev/null)" || { \
	  case "$$out" in *"no stack named"*) false ;; \
	  *) echo "error: stacks/$$(basename "$$PWD"): $$out" >&2; exit 2 ;; esac; }; }
endef

$(addprefix up-,$(LAYERS)): up-%: preflight-deploy
	@echo "==> pulumi up: $* ($(ENV_SUFFIX))"
	$(call select_stack,$*)
	cd stacks/$* && pulumi up --yes --stack "$(ENV_SUFFIX)" $(if $(REFRESH),--refresh) \
		$(if $(POLICY),--policy-pack ../../policy)

$(addprefix preview-,$(LAYERS)): preview-%: preflight-deploy
	$(call select_stack,$*)
	cd stacks/$* && pulumi preview --stack "$(ENV_SUFFIX)" $(if $(REFRESH),--refresh) \
		$(if $(POLICY),--policy-pack ../../policy)

# Layers deploy one after another; make stops at the first failure.
deploy: preflight-deploy
	@for layer in $(LAYERS); do $(MAKE) --no-print-directory up-$$layer || exit 1; done

preview: preflight-deploy
	@for layer in $(LAYERS); do $(MAKE) --no-print-directory preview-$$layer || exit 1; done

# A layer that was never deployed has no stack: skip it, so teardown after a partial
# deployment (or a second teardown) still succeeds.
$(addprefix destroy-,$(LAYERS)): destroy-%: preflight-deploy
	@cd stacks/$* && if $(stack_exists); then \
		echo "==> pulumi destroy: $* ($(ENV_SUFFIX))"; \
		pulumi destroy --yes --stack "$(ENV_SUFFIX)" && \
		pulumi stack rm --yes --stack "$(ENV_SUFFIX)"; \
	else echo "==> $*: no stack $(ENV_SUFFIX), nothing to destroy"; fi

destroy: preflight-deploy
	@for layer in $(REVERSE_LAYERS); do $(MAKE) --no-print-directory destroy-$$layer || exit 1; done

outputs: $(STAMP)
	@$(PREFLIGHT) suffix pulumi
	@for layer in $(LAYERS); do rc=0; (cd stacks/$$layer && $(stack_exists)) || rc=$$?; \
		if [ $$rc = 1 ]; then echo "error: layer $$layer has no stack $(ENV_SUFFIX):" \
		"deploy it first (make deploy ENV_SUFFIX=$(ENV_SUFFIX))" >&2; fi; \
		[ $$rc = 0 ] || exit 2; done
	$(PY) -m offline.outputs --stack "$(ENV_SUFFIX)"

clean:
	rm -rf cfn-outputs plan-out .pytest_cache .ruff_cache
