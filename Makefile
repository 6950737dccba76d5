# Front door of the multi-region RDS failover project. `make help` lists the targets.
#
# Real deployments need the Pulumi CLI and AWS credentials; `make install`, `make test`,
# `make lint`, `make plan` and `make rehearse` need neither.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
STAMP = $(VENV)/.installed

LAYERS := network primary-db secondary-db dns-failover
REVERSE_LAYERS := dns-failover secondary-db primary-db network

# Values a user or CI passes in (CI often derives the suffix from a branch name). None of
# them is ever pasted into recipe text: make exports them and recipes read "$$NAME", so a
# backtick, quote, `$(...)` or newline in a value is data, never a command, and the
# preflight refuses a bad one with a message naming the setting. `literal` keeps make
# itself from expanding a value (make would run `$(shell ...)` inside a command-line
# variable while exporting it).
#   ENV_SUFFIX, PRIMARY_REGION, SECONDARY_REGION: the deployment (see `make help`).
#   PLAN_ARGS: extra options of offline/plan.py, split like shell words but never run.
#   REFRESH=1: read the resources from AWS before `pulumi up`/`preview`.
#   POLICY=1: enforce the CrossGuard policy pack (policy/) on `pulumi up`/`preview`.
#   SECRETS_PROVIDER: secrets provider of stacks created from now on, e.g. awskms://alias/x.
USER_VARS := ENV_SUFFIX PRIMARY_REGION SECONDARY_REGION PLAN_ARGS REFRESH POLICY SECRETS_PROVIDER \
	PYTHON VENV
PULUMI_VARS := PULUMI_BACKEND_URL PULUMI_CONFIG_PASSPHRASE PULUMI_CONFIG_PASSPHRASE_FILE
literal = $(if $(filter undefined,$(origin $(1))),,$(eval override $(1) := $$(value $(1))))
$(foreach var,$(USER_VARS) $(PULUMI_VARS),$(call literal,$(var)))
export $(USER_VARS)

# State lives in a git-ignored file backend inside the repository unless the operator
# points PULUMI_BACKEND_URL elsewhere (e.g. s3://team-state-bucket in a region other than
# the primary); an empty value counts as unset, so it never falls through to whatever
# `pulumi login` last chose. That local backend's secrets are encrypted with a random
# passphrase the preflight draws once per checkout into a git-ignored file (mode 600).
# Any other backend needs a passphrase (or SECRETS_PROVIDER) of your own: the preflight
# refuses the constant earlier versions published.
LOCAL_BACKEND := file://$(CURDIR)/.pulumi-state
ifeq ($(strip $(PULUMI_BACKEND_URL)),)
override PULUMI_BACKEND_URL := $(LOCAL_BACKEND)
endif
export PULUMI_BACKEND_URL
ifeq ($(PULUMI_BACKEND_URL),$(LOCAL_BACKEND))
ifeq ($(origin PULUMI_CONFIG_PASSPHRASE)$(origin PULUMI_CONFIG_PASSPHRASE_FILE),undefinedundefined)
export PULUMI_CONFIG_PASSPHRASE_FILE := $(CURDIR)/.pulumi-passphrase
endif
endif
export PULUMI_SKIP_UPDATE_CHECK := true

# The suffix, region, switch, secrets and CLI checks need only the standard library, so
# they run before (and without) the virtualenv and fail at once; the AWS checks need boto3.
PREFLIGHT := PYTHONPATH=. "$$PYTHON" -m offline.preflight
VENV_PREFLIGHT := PYTHONPATH=. "$$VENV/bin/python" -m offline.preflight

# One universal, hash-pinned resolution of the runtime, test, dev and build dependencies
# for Python 3.10+ on every platform, made by the uv the lock itself pins.
LOCK_COMPILE := "$$VENV/bin/uv" pip compile pyproject.toml requirements-lock.in --extra dev \
	--universal --python-version 3.10 --generate-hashes --custom-compile-command "make lock" \
	--quiet -o requirements.lock
PIP_INSTALL := "$$VENV/bin/python" -m pip install --quiet --disable-pip-version-check

.PHONY: help install lock lock-upgrade test unit lint plan rehearse deploy destroy preview outputs \
	converge integration clean $(addprefix up-,$(LAYERS)) $(addprefix destroy-,$(LAYERS)) \
	$(addprefix preview-,$(LAYERS)) preflight-deploy preflight-static preflight-local

help:
	@echo "make install                      create $(VENV) and install the locked dependencies (requirements.lock)"
	@echo "make lock | make lock-upgrade     re-resolve requirements.lock after a pyproject.toml change | upgrade all"
	@echo "make test                         unit tests, policy checks, PostgreSQL probe tests and the"
	@echo "                                  emulator rehearsal (no AWS account, no Pulumi CLI)"
	@echo "make lint                         ruff, the workflow schema check and zizmor"
	@echo "make plan ENV_SUFFIX=x            offline synthesis of all layers + policy rules (CI: scripts/plan)"
	@echo "make rehearse ENV_SUFFIX=x        deploy/test/fail over/destroy against an AWS emulator"
	@echo "make deploy ENV_SUFFIX=x          pulumi up every layer in order (real AWS)"
	@echo "make up-<layer> ENV_SUFFIX=x      one layer: $(LAYERS)"
	@echo "                                  (also preview-<layer>, destroy-<layer>)"
	@echo "make preview ENV_SUFFIX=x         pulumi preview every layer (upstream layers must exist)"
	@echo "make outputs ENV_SUFFIX=x         write cfn-outputs/flat-outputs.json from the stacks"
	@echo "make converge ENV_SUFFIX=x        after a promotion: converge secondary-db and dns-failover"
	@echo "                                  without the primary region (RUNBOOK.md, outage day)"
	@echo "make integration                  integration tests against cfn-outputs/flat-outputs.json"
	@echo "make destroy ENV_SUFFIX=x         destroy every layer in reverse order and remove the stacks"
	@echo "make unit | make clean            unit tests only | remove generated outputs and caches"
	@echo "Optional: PRIMARY_REGION=... SECONDARY_REGION=... (default us-east-1 / us-west-2);"
	@echo "          POLICY=1 enforces the policy pack, REFRESH=1 reads AWS first (deploy, up, preview);"
	@echo "          SECRETS_PROVIDER=awskms://alias/... encrypts the secrets of new stacks with KMS"

# Hash-checked wheels only, then the project itself on top (editable, no dependency
# resolution, built by the locked setuptools), then a check that the lock still covers
# everything pyproject.toml asks for.
$(STAMP): requirements.lock pyproject.toml
	"$$PYTHON" -m venv "$$VENV"
	$(PIP_INSTALL) --require-hashes --only-binary :all: -r requirements.lock
	$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	"$$VENV/bin/python" scripts/check_lock.py
	@touch "$$VENV/.installed"

install: $(STAMP)

# `make lock` keeps every pin it can and resolves only what pyproject.toml changed;
# `make lock-upgrade` moves every package to its newest allowed version. Both take uv
# from the current lock; `make install` then installs the new lock.
define relock
	[ -x "$$VENV/bin/uv" ] || { "$$PYTHON" -m venv "$$VENV" && \
		$(PIP_INSTALL) --require-hashes --only-binary :all: -r requirements.lock; }
	$(LOCK_COMPILE)
endef

lock:
	$(relock)

lock-upgrade:
	$(relock) --upgrade

test: $(STAMP)
	"$$VENV/bin/python" -m pytest

unit: $(STAMP)
	"$$VENV/bin/python" -m pytest tests/unit

# zizmor runs offline (--offline): its online audits need a GitHub token and network
# access to github.com, which CI here does not have; every offline audit runs.
lint: $(STAMP)
	"$$VENV/bin/ruff" check .
	"$$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
	"$$VENV/bin/zizmor" --offline --no-progress .github/workflows

preflight-local:
	@$(PREFLIGHT) suffix regions switches

# scripts/plan exits with the plan's own status (0 ok, 1 policy violation, 2 invalid
# configuration, 3 synthesis failure); make can only report it in its error line and
# exits 2 itself, so CI scripts run scripts/plan directly.
plan: preflight-local $(STAMP)
	scripts/plan

rehearse: preflight-local $(STAMP)
	"$$VENV/bin/python" -m offline.rehearse --suffix "$$ENV_SUFFIX" \
		$${PRIMARY_REGION:+--primary-region "$$PRIMARY_REGION"} \
		$${SECONDARY_REGION:+--secondary-region "$$SECONDARY_REGION"}

integration: $(STAMP)
	"$$VENV/bin/python" -m pytest tests/integration -p no:cacheprovider

preflight-static:
	@$(PREFLIGHT) suffix regions switches secrets pulumi
ifeq ($(PULUMI_BACKEND_URL),$(LOCAL_BACKEND))
	@mkdir -p .pulumi-state  # the file backend needs its directory to exist
endif

# `state-backend` warns when the state or its KMS key is in the primary region; any
# target that runs pulumi against real AWS should run it (through this target).
preflight-deploy: preflight-static $(STAMP)
	@$(VENV_PREFLIGHT) aws state-backend

# Select (or create, with SECRETS_PROVIDER if given) the stack named after the suffix and
# pin both regions in its config, so every layer of one deployment agrees on where it lives.
# An existing stack keeps its secrets provider (`pulumi stack change-secrets-provider`).
define select_stack
	cd stacks/$(1) && pulumi stack select --create "$$ENV_SUFFIX" \
		$${SECRETS_PROVIDER:+--secrets-provider "$$SECRETS_PROVIDER"} >/dev/null && \
	if [ -n "$$PRIMARY_REGION" ]; then \
		pulumi config set aws:region "$$PRIMARY_REGION" --stack "$$ENV_SUFFIX"; fi && \
	if [ -n "$$SECONDARY_REGION" ]; then \
		pulumi config set secondaryRegion "$$SECONDARY_REGION" --stack "$$ENV_SUFFIX"; fi
endef

# The switches the preflight checked (REFRESH and POLICY are 1, 0 or empty).
PULUMI_SWITCHES := $$([ "$$REFRESH" != 1 ] || echo --refresh) \
	$$([ "$$POLICY" != 1 ] || echo --policy-pack ../../policy)

# Shell snippet, run inside stacks/<layer>: true when the suffix's stack exists, false when
# Pulumi reports that it does not; any other error (unreachable backend, expired
# credentials...) exits 2 with Pulumi's message, so it is never taken for "nothing deployed".
define stack_exists
	{ out="$$(pulumi stack select "$$ENV_SUFFIX" 2>&1 >/dev/null)" || { \
	  case "$$out" in *"no stack named"*) false ;; \
	  *) echo "error: stacks/$$(basename "$$PWD"): $$out" >&2; exit 2 ;; esac; }; }
endef

# The database layers need the master secret, replicated to the secondary region: without
# the replica the credentials are unreadable exactly while the primary region is down.
MASTER_SECRET_CHECK := $(VENV_PREFLIGHT) master-secret

$(addprefix up-,$(LAYERS)): up-%: preflight-deploy
	$(if $(filter primary-db secondary-db,$*),@$(MASTER_SECRET_CHECK))
	@echo "==> pulumi up: $* ($$ENV_SUFFIX)"
	$(call select_stack,$*)
	cd stacks/$* && pulumi up --yes --stack "$$ENV_SUFFIX" $(PULUMI_SWITCHES)

$(addprefix preview-,$(LAYERS)): preview-%: preflight-deploy
	$(call select_stack,$*)
	cd stacks/$* && pulumi preview --stack "$$ENV_SUFFIX" $(PULUMI_SWITCHES)

# Layers deploy one after another; make stops at the first failure. The secret is checked
# before the first layer too, so a missing replica stops the deploy before anything changes.
deploy: preflight-deploy
	@$(MASTER_SECRET_CHECK)
	@for layer in $(LAYERS); do $(MAKE) --no-print-directory up-$$layer || exit 1; done

preview: preflight-deploy
	@for layer in $(LAYERS); do $(MAKE) --no-print-directory preview-$$layer || exit 1; done

# A layer that was never deployed has no stack: skip it, so teardown after a partial
# deployment (or a second teardown) still succeeds.
$(addprefix destroy-,$(LAYERS)): destroy-%: preflight-deploy
	@cd stacks/$* && if $(stack_exists); then \
		echo "==> pulumi destroy: $* ($$ENV_SUFFIX)"; \
		pulumi destroy --yes --stack "$$ENV_SUFFIX" && \
		pulumi stack rm --yes --stack "$$ENV_SUFFIX"; \
	else echo "==> $*: no stack $$ENV_SUFFIX, nothing to destroy"; fi

destroy: preflight-deploy
	@for layer in $(REVERSE_LAYERS); do $(MAKE) --no-print-directory destroy-$$layer || exit 1; done

# After a promotion, with the primary region possibly down (offline/converge.py, RUNBOOK.md
# "Outage day"): credentials are checked with STS in the secondary region, and the master
# secret's replica there; nothing here calls the primary region.
converge: preflight-static $(STAMP)
	@$(VENV_PREFLIGHT) --sts-region secondary aws state-backend secret-replica
	"$$VENV/bin/python" -m offline.converge --stack "$$ENV_SUFFIX"

outputs: $(STAMP)
	@$(PREFLIGHT) suffix secrets pulumi
	@for layer in $(LAYERS); do rc=0; (cd stacks/$$layer && $(stack_exists)) || rc=$$?; \
		if [ $$rc = 1 ]; then echo "error: layer $$layer has no stack $$ENV_SUFFIX:" \
		"deploy it first (make deploy ENV_SUFFIX=$$ENV_SUFFIX)" >&2; fi; \
		[ $$rc = 0 ] || exit 2; done
	"$$VENV/bin/python" -m offline.outputs --stack "$$ENV_SUFFIX"

clean:
	rm -rf cfn-outputs plan-out .pytest_cache .ruff_cache
