# webfleet — the two commands that matter: `make lab` and `make test`. See README.md.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

VENV        := .venv
BIN         := $(CURDIR)/$(VENV)/bin
PY          := python3
SCENARIO    ?=
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_VAULT_IDENTITY_LIST ?= lab@$(CURDIR)/inventories/lab/vault-pass.txt
export ANSIBLE_FORCE_COLOR := false
export PY_COLORS := 0
export MOLECULE_NO_LOG := false

.PHONY: all venv engine images lint unit molecule test test-fleet lab lab-down bench clean help

all: venv

help:
	@echo "make lab        two-DC fleet in local containers, converged, endpoints printed"
	@echo "make lab-down   remove the lab containers and networks"
	@echo "make test       yamllint + ansible-lint + pytest unit tests + every Molecule scenario"
	@echo "make test SCENARIO=base   lint, unit tests and one scenario"
	@echo "make test-fleet site.yml via ansible-runner, drift check, add/remove a host, on the lab"
	@echo "make bench      benchmarks (bench/results/); ONLY=rerun,http,failover,rolling on a running lab"

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

engine:
	scripts/engine.sh

images: engine
	images/build.sh

lint: venv
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production --strict -q

unit: venv
	$(BIN)/pytest -q tests/unit

molecule: venv images
	WEBFLEET_SCENARIOS="$(SCENARIO)" $(BIN)/pytest -p no:cacheprovider -rA -v -s tests/test_scenarios.py

test: venv
	scripts/test.sh $(SCENARIO)

# The fleet as operators and AWX run it, on the lab (ansible-runner, idempotence, drift check,
# adding and removing a host). Brings the lab up from bare containers and removes it after.
test-fleet: venv images
	$(BIN)/pytest -p no:cacheprovider -rA -v -s tests/fleet

lab: venv images
	scripts/lab.sh up

lab-down: venv
	scripts/lab.sh down

# make bench ONLY=http,failover runs some sections on a lab that is already up.
bench: venv images
	scripts/bench.sh $(if $(ONLY),--only $(ONLY)) $(if $(MERGE),--merge)

clean:
	rm -rf .cache
