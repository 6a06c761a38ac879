# One entry point for humans. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SANDBOX := PYTHONPATH=sandbox $(BIN)/python -m icc_sandbox
# Tools that call ansible-playbook by name (molecule) find the pinned one.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help setup test e2e browser sandbox-build fresh-check lint sanity molecule bench bench-sandbox sandbox-up sandbox-down sandbox-status demo clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with the pinned tools

# A Debian python3 makes virtualenvs only with python3-venv (ensurepip): installed when missing.
$(STAMP): requirements.txt meta/ee-requirements.txt
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || bash sandbox/install-debian-packages.sh python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

test: setup browser sandbox-build ## run every test: lint, unit, contract and sandbox integration tests
	$(BIN)/python -m pytest

e2e: setup browser sandbox-build ## the real Open WebUI in the sandbox, through headless Chromium (part of make test)
	$(BIN)/python -m pytest -m e2e

# sandbox/install.sh apt-get installs the sandbox's Debian packages that are missing (etcd-server,
# golang-go, rsync, jq, openssl, dpkg-dev, make, iproute2; through install-debian-packages.sh).
# Before pytest, not inside its first test: on a new machine the Kubernetes build takes minutes
# (over a test's 15-minute limit on a busy 2-core machine, as the fresh root showed). Both are
# cached outside the checkout, so on a machine that has them this takes a second.
sandbox-build: ## install the sandbox's Debian packages, build its Kubernetes and install the real Open WebUI (each once, cached)
	@bash sandbox/install.sh >/dev/null
	@bash sandbox/install-open-webui.sh >/dev/null

# The browser test's Chromium is Debian's, and Playwright's own driver (a node binary in its
# wheel) needs libatomic1, which a minimal Debian lacks (the fresh root showed it).
browser: ## install Debian's Chromium for the browser test, once
	@bash sandbox/install-debian-packages.sh chromium fonts-liberation libatomic1

lint: setup ## ruff and ansible-lint (production profile)
	$(BIN)/ruff check .
	$(BIN)/ansible-lint --profile production

sanity: setup ## ansible-test sanity (validate-modules, import, yamllint...) on a copy of the collection
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_sanity.py

# BENCH_ARGS: e.g. --quick, --runs 5, --fleet 1,10, --ref HEAD (a clean export of a commit).
bench: setup ## benchmark the playbooks on a sandbox of their own (1, 10, 40 namespaces): benchmarks/results.json
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

bench-sandbox: setup ## time fresh sandbox start-ups (target: ready in 30 s or less)
	@$(SANDBOX) bench --runs 3

sandbox-up: setup ## build (once) and start the local ICC sandbox; prints KUBECONFIG exports
	@$(SANDBOX) up

sandbox-down: setup ## stop the local ICC sandbox and remove its files
	@$(SANDBOX) down

sandbox-status: setup ## is the sandbox running, and where
	@$(SANDBOX) status

demo: setup ## set up, start the sandbox, deploy TGI + the real Open WebUI into the student namespace
	@$(SANDBOX) up --real-open-webui
	@echo
	@$(SANDBOX) nodes
	@echo
	$(BIN)/ansible-playbook -i inventories/sandbox playbooks/deploy.yml
	@echo
	@$(SANDBOX) nodes
	@echo
	@echo "Reachable from this machine (the sandbox's gateway on 127.0.0.1; no port-forward needed):"
	@$(SANDBOX) services
	@echo "Open WebUI: log in as admin@example.com / sandbox-admin-pw (inventories/sandbox/group_vars/all.yml)"
	@echo "Again: changes nothing. Remove: $(BIN)/ansible-playbook -i inventories/sandbox playbooks/cleanup.yml"
	@echo "Stop the sandbox with: make sandbox-down"

fresh-check: ## README's make demo in a brand-new Debian 12 root (mmdebstrap; as root), as CI runs it
	@.ci/fresh-check demo

molecule: setup ## the Molecule default scenario (sandbox, or ICC_MOLECULE_KUBECONFIG)
	$(BIN)/molecule test

clean: sandbox-down ## stop the sandbox and remove .venv and caches (keeps the Kubernetes build cache)
	rm -rf $(VENV) .ansible .pytest_cache .ruff_cache .sandbox
